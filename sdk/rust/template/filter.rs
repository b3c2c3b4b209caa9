//! {{name}}: forwards readings at or above a minimum and drops everything else.
//!
//! params: field (default "value"), min (default 0)
//! A JSON object whose `field` is a number >= `min` goes on unchanged; anything else (smaller
//! readings, other fields, payloads that are not JSON) is dropped.
//!
//! The SDK is the `edged` crate (edged_sdk/lib.rs): `edged::emit` publishes new messages,
//! `export_filter!(.., tick)` adds periodic summaries.
#![no_std]

use edged::{Filter, Level, Params, Verdict};

struct MinFilter {
    field: Option<&'static [u8]>,
    min: f64,
}

impl Filter for MinFilter {
    /// Called once with the params; `Err(code)` refuses the module.
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.field = params.get("field");
        match params.number_strict("min", 0.0) {
            Ok(min) => self.min = min,
            Err(()) => {
                edged::log(Level::Error, "{{name}}: param 'min' must be a number");
                return Err(1);
            }
        }
        Ok(())
    }

    /// Called once per message: forward, drop, or `edged::emit` new messages.
    fn on_message(&mut self, _topic: &[u8], payload: &[u8]) -> Verdict {
        let field = self.field.unwrap_or(b"value");
        match edged::json_field(payload, field).ok().and_then(edged::parse_number) {
            Some(v) if v >= self.min => Verdict::Forward,
            _ => Verdict::Drop,
        }
    }
}

// The initial value must be a constant; init fills it in.
edged::export_filter!(MinFilter, MinFilter { field: None, min: 0.0 });

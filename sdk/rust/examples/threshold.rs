//! threshold: turns readings above a limit into one alert message.
//!
//! params: field (default "value"), limit (required), topic (default "alert")
//! A JSON object whose `field` is a number strictly greater than `limit` becomes one message
//! on `topic`:
//!   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
//! Everything else is dropped. Same behaviour as examples/filters/threshold.c.
#![no_std]

use edged::{Filter, Level, Params, Verdict};

struct Threshold {
    field: &'static [u8],
    limit_text: &'static [u8], // echoed as written in the config
    limit: f64,
    topic: &'static [u8],
}

impl Filter for Threshold {
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.field = params.get("field").unwrap_or(b"value");
        let limit = params.get("limit").and_then(|text| Some((text, edged::parse_number(text)?)));
        match limit {
            Some((text, value)) => {
                self.limit_text = text;
                self.limit = value;
            }
            None => {
                edged::log(Level::Error, "threshold: param 'limit' is required and must be a number");
                return Err(1);
            }
        }
        self.topic = params.get("topic").unwrap_or(b"alert");
        // Checked here because a bad topic would otherwise fail every alert.
        if !edged::topic_valid(self.topic) {
            edged::log(Level::Error, "threshold: param 'topic' is not a valid topic");
            return Err(2);
        }
        Ok(())
    }

    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict {
        let raw = match edged::json_field(payload, self.field) {
            Ok(raw) => raw,
            Err(_) => return Verdict::Drop,
        };
        match edged::parse_number(raw) {
            Some(v) if v > self.limit => {}
            _ => return Verdict::Drop,
        }
        // An alert that does not fit the output area cannot be shortened without lying, so it
        // is not sent; the reading is dropped either way.
        let _ = edged::emit_with(self.topic, |w| {
            w.str("{\"topic\":").json_string(topic);
            w.str(",\"field\":").json_string(self.field);
            w.str(",\"value\":").bytes(raw);
            w.str(",\"limit\":").bytes(self.limit_text);
            w.byte(b'}');
        });
        Verdict::Drop
    }
}

edged::export_filter!(
    Threshold,
    Threshold { field: b"", limit_text: b"", limit: 0.0, topic: b"" }
);

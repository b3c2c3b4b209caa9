//! annotate: sets MQTT 5 properties on each message it passes on, and refuses the ones that
//! lack a user property it requires.
//!
//! params (all optional):
//!   content_type   content type to set (e.g. application/json)
//!   property       name of a user property to add, with
//!   value          its value
//!   require        name of a user property every input must carry (e.g. traceparent); an
//!                  input without it is refused (REJECT) with the reason, and lands in the
//!                  dead letters
//! Topic and payload go on unchanged; what the filter does not set comes from the input as
//! the output rule says (docs/properties.md). Same behaviour as examples/filters/annotate.c.
//! Built against the SDK with its `properties` feature.
#![no_std]

use edged::{props, Filter, Level, Params, Verdict, Writer};

struct Annotate {
    content_type: Option<&'static [u8]>,
    property: Option<(&'static [u8], &'static [u8])>,
    require: Option<&'static [u8]>,
    reason: [u8; 160],
}

impl Filter for Annotate {
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.content_type = params.get("content_type");
        self.property = match (params.get("property"), params.get("value")) {
            (Some(name), Some(value)) => Some((name, value)),
            (None, None) => None,
            _ => {
                edged::log(Level::Error, "annotate: params 'property' and 'value' go together");
                return Err(1);
            }
        };
        self.require = params.get("require");
        if self.require.map_or(false, |r| r.len() > 100) {
            edged::log(Level::Error, "annotate: param 'require' is over 100 bytes");
            return Err(2);
        }
        Ok(())
    }

    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict {
        if let Some(name) = self.require {
            if props::user_property(name).is_none() {
                let mut why = Writer::new(&mut self.reason);
                why.str("missing user property ").bytes(name);
                return edged::reject(why.as_bytes());
            }
        }
        if let Some(t) = self.content_type {
            let _ = props::set_content_type(t);
        }
        if let Some((name, value)) = self.property {
            let _ = props::set_user_property(name, value);
        }
        let _ = edged::emit(topic, payload);
        Verdict::Drop // the call emitted, so it returns EMIT
    }
}

edged::export_filter!(
    Annotate,
    Annotate { content_type: None, property: None, require: None, reason: [0; 160] }
);

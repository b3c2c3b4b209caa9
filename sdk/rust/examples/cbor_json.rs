//! cbor_json: CBOR payloads to JSON, or JSON to CBOR.
//!
//! params: direction  to_json (default) or from_json
//!         topic      the output topic (default: the input topic)
//!
//! The mapping is docs/binary-payloads.md. A payload that is not one well-formed item (or
//! JSON document), is nested deeper than 32 levels, or (from JSON) has no encoding in the
//! format is refused: edged dead-letters it with the reason. Same behaviour as
//! examples/filters/cbor_json.c.
#![no_std]

use edged::binary::{self, Format, Scratch};
use edged::{Filter, Level, Params, Verdict, Writer};

const FORMAT: Format = Format::Cbor;

struct Codec {
    from_json: bool,
    topic: Option<&'static [u8]>,
}

static mut OUT: [u8; edged::OUTPUT_CAP - 4 - 8] = [0; edged::OUTPUT_CAP - 4 - 8];
static mut GATHER: [u8; edged::INPUT_CAP] = [0; edged::INPUT_CAP];
static mut WORDS: [u32; edged::INPUT_CAP / 4 + 2] = [0; edged::INPUT_CAP / 4 + 2];
static mut REASON: [u8; 200] = [0; 200];

impl Filter for Codec {
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.from_json = match params.get("direction") {
            None | Some(b"to_json") => false,
            Some(b"from_json") => true,
            Some(_) => {
                edged::log(Level::Error, "param 'direction' must be to_json or from_json");
                return Err(1);
            }
        };
        self.topic = params.get("topic");
        if let Some(t) = self.topic {
            if !edged::topic_valid(t) {
                edged::log(Level::Error, "param 'topic' is not a valid topic");
                return Err(2);
            }
        }
        Ok(())
    }

    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict {
        // SAFETY: single-threaded; the statics are used only during this call.
        let (out, gather, words, reason) = unsafe { (&mut OUT, &mut GATHER, &mut WORDS, &mut REASON) };
        let mut w = Writer::new(out);
        let mut scratch = Scratch { bytes: gather, words };
        let (result, prefix) = if self.from_json {
            (binary::from_json(FORMAT, payload, &mut w, &mut scratch), "JSON to CBOR: ")
        } else {
            (binary::to_json(FORMAT, payload, &mut w, &mut scratch), "CBOR to JSON: ")
        };
        let why = match result {
            Ok(()) if w.failed() => "the result does not fit the output area",
            Ok(()) => {
                // Emitted, the call returns EMIT; a record that cannot be emitted is dropped.
                let _ = edged::emit(self.topic.unwrap_or(topic), w.as_bytes());
                return Verdict::Drop;
            }
            Err(why) => why,
        };
        let mut r = Writer::new(reason);
        r.str(prefix).str(why);
        edged::reject(r.as_bytes())
    }
}

edged::export_filter!(Codec, Codec { from_json: false, topic: None });

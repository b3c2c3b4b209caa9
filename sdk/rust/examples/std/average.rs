//! average-std: examples/average.rs written with std, for wasm32-wasi.
//!
//! Same params, output and state (format 1) as average.rs and examples/filters/average.c: one
//! summary per topic on every tick, in the order topics were first seen. What std brings: the
//! windows are a `Vec` with a `HashMap` from topic to index, topics and summaries are `Vec`s and
//! `String`s built with `format!`, and a bad param or a dropped reading is reported with
//! `eprintln!`, which edged logs at warning level.
//!
//! Built by `make std` (the SDK crate with `--cfg 'feature="std"'`, then this file as a cdylib
//! for wasm32-wasi). The module imports `fd_write` (`eprintln!`: capability `log`) and
//! `random_get` (the random keys of `HashMap::new()`: capability `random`).
//!
//! Limits as in average.rs: 64 topics of at most 200 bytes each, readings below 1e15 in
//! magnitude.

use std::collections::HashMap;

use edged::{EmitError, Filter, Params, StateReader, StateWriter, Verdict, Writer};

const MAX_TOPICS: usize = 64;
const MAX_TOPIC_LEN: usize = 200;
const MAX_SUFFIX_LEN: usize = 200;

struct Window {
    topic: Vec<u8>,
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

struct Average {
    windows: Vec<Window>, // first-seen order
    index: Option<HashMap<Vec<u8>, usize>>, // made in init: HashMap::new() is not const
    warned_topics: bool,
    warned_range: bool,
    field: Vec<u8>,
    suffix: Vec<u8>,
    decimals: u32,
}

/// `v` with `decimals` digits, as the C SDK prints it. Rust's own `{:.2}` differs on the
/// conformance input: it rounds the tie 0.125 to 0.12 (C: 0.13) and prints -0.001 as -0.00.
fn fixed(v: f64, decimals: u32) -> String {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.fixed(v, decimals);
    String::from_utf8_lossy(w.as_bytes()).into_owned()
}

impl Average {
    fn find_or_add(&mut self, topic: &[u8]) -> Option<usize> {
        let index = self.index.get_or_insert_with(HashMap::new);
        if let Some(&i) = index.get(topic) {
            return Some(i);
        }
        if self.windows.len() == MAX_TOPICS || topic.len() > MAX_TOPIC_LEN {
            if !self.warned_topics {
                self.warned_topics = true;
                eprintln!(
                    "average: more than {} topics or a topic over {} bytes; its readings are dropped",
                    MAX_TOPICS, MAX_TOPIC_LEN
                );
            }
            return None;
        }
        index.insert(topic.to_vec(), self.windows.len());
        self.windows.push(Window { topic: topic.to_vec(), count: 0, sum: 0.0, min: 0.0, max: 0.0 });
        Some(self.windows.len() - 1)
    }
}

impl Filter for Average {
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.index = Some(HashMap::new());
        self.field = params.get("field").unwrap_or(b"value").to_vec();
        self.suffix = params.get("suffix").unwrap_or(b"/avg").to_vec();
        let suffix = &self.suffix;
        if suffix.len() > MAX_SUFFIX_LEN || (!suffix.is_empty() && !edged::topic_valid(suffix)) {
            eprintln!("average: param 'suffix' must be topic text of at most {} bytes", MAX_SUFFIX_LEN);
            return Err(1);
        }
        match params.number_strict("decimals", 2.0) {
            Ok(v) if v >= 0.0 && v <= 20.0 && v == (v as i32) as f64 => self.decimals = v as u32,
            _ => {
                eprintln!("average: param 'decimals' must be an integer 0..20");
                return Err(2);
            }
        }
        Ok(())
    }

    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict {
        // The SDK's parser, not str::parse: the same digits as the C filter, to the last bit.
        let v = match edged::json_field(payload, &self.field).ok().and_then(edged::parse_number) {
            Some(v) => v,
            None => return Verdict::Drop,
        };
        if !(v > -edged::FIXED_LIMIT && v < edged::FIXED_LIMIT) {
            if !self.warned_range {
                self.warned_range = true;
                eprintln!("average: ignoring readings of magnitude 1e15 or more");
            }
            return Verdict::Drop;
        }
        let w = match self.find_or_add(topic) {
            Some(i) => &mut self.windows[i],
            None => return Verdict::Drop,
        };
        if w.count == 0 {
            w.sum = 0.0;
            w.min = v;
            w.max = v;
        }
        w.count += 1;
        w.sum += v;
        if v < w.min {
            w.min = v;
        }
        if v > w.max {
            w.max = v;
        }
        Verdict::Drop
    }

    fn on_tick(&mut self, now_ms: i64) {
        let d = self.decimals;
        for w in self.windows.iter_mut().filter(|w| w.count > 0) {
            // Rounding in the sum can land a hair outside [min, max]; the true mean cannot.
            let mut avg = w.sum / w.count as f64;
            if avg < w.min {
                avg = w.min;
            }
            if avg > w.max {
                avg = w.max;
            }
            let topic = [&w.topic[..], &self.suffix[..]].concat();
            let payload = format!(
                "{{\"avg\":{},\"min\":{},\"max\":{},\"count\":{},\"ts\":{}}}",
                fixed(avg, d),
                fixed(w.min, d),
                fixed(w.max, d),
                w.count,
                now_ms
            );
            // A full output area keeps the remaining windows for the next tick.
            if edged::emit(&topic, payload.as_bytes()) == Err(EmitError::NoRoom) {
                break;
            }
            w.count = 0;
        }
    }

    fn save_state(&self, w: &mut StateWriter) -> u32 {
        w.u32(self.windows.len() as u32);
        for x in &self.windows {
            let keep = |v: f64| if x.count == 0 { 0.0 } else { v };
            w.bytes(&x.topic).u64(x.count as u64);
            w.f64(keep(x.sum)).f64(keep(x.min)).f64(keep(x.max));
        }
        1
    }

    /// Refused: 1 an unknown format, 2 more topics or a longer topic than this build keeps,
    /// 3 a topic twice. A short or long blob is refused by the SDK.
    fn load_state(&mut self, format: u32, r: &mut StateReader) -> Result<(), i32> {
        if format != 1 {
            return Err(1);
        }
        let n = r.u32().ok_or(edged::STATE_TRUNCATED)? as usize;
        if n > MAX_TOPICS {
            return Err(2);
        }
        for _ in 0..n {
            let (topic, count, sum, min, max) = match (r.bytes(), r.u64(), r.f64(), r.f64(), r.f64()) {
                (Some(t), Some(c), Some(s), Some(lo), Some(hi)) => (t, c, s, lo, hi),
                _ => return Err(edged::STATE_TRUNCATED),
            };
            if topic.len() > MAX_TOPIC_LEN || count > i64::MAX as u64 {
                return Err(2);
            }
            if self.windows.iter().any(|w| w.topic == topic) {
                return Err(3);
            }
            let i = self.find_or_add(topic).ok_or(2)?;
            let w = &mut self.windows[i];
            w.count = count as i64;
            w.sum = sum;
            w.min = min;
            w.max = max;
        }
        Ok(())
    }
}

edged::export_filter!(
    Average,
    Average {
        windows: Vec::new(),
        index: None,
        warned_topics: false,
        warned_range: false,
        field: Vec::new(),
        suffix: Vec::new(),
        decimals: 0,
    },
    tick,
    state
);

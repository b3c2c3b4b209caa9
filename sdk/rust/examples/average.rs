//! average: replaces a stream of readings with one summary per tick.
//!
//! params: field (default "value"), suffix (default "/avg"), decimals (default 2, 0..20)
//! Every message is dropped; its numeric `field` is added to the window of its topic. On each
//! tick, every topic with readings (in the order topics were first seen) gets one message on
//! <topic><suffix>:
//!   {"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
//! and its window starts over. When the output area is full the remaining topics keep their
//! windows for the next tick. Same behaviour as examples/filters/average.c.
//!
//! Limits: 64 topics of at most 200 bytes each (others are dropped with one warning); readings
//! of magnitude 1e15 or more are ignored, since they could not be printed without an exponent.
//!
//! State, format 1, the same blob as average.c: the number of topics (u32), then per topic in
//! first-seen order its text (u32 length, bytes), count (u64), sum, min and max (f64; 0 for an
//! empty window).
#![no_std]

use edged::{EmitError, Filter, Level, Params, StateReader, StateWriter, Verdict, Writer};

const MAX_TOPICS: usize = 64;
const MAX_TOPIC_LEN: usize = 200;
const MAX_SUFFIX_LEN: usize = 200;

#[derive(Clone, Copy)]
struct Window {
    hash: u32,
    len: usize,
    topic: [u8; MAX_TOPIC_LEN],
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

const EMPTY: Window =
    Window { hash: 0, len: 0, topic: [0; MAX_TOPIC_LEN], count: 0, sum: 0.0, min: 0.0, max: 0.0 };

struct Average {
    windows: [Window; MAX_TOPICS], // index order = first-seen order
    n_windows: usize,
    warned_topics: bool,
    warned_range: bool,
    // Options and zeros only, so the initial value is all zero bytes: the 15 KiB table then
    // costs memory, not module size.
    field: Option<&'static [u8]>,
    suffix: Option<&'static [u8]>,
    decimals: u32,
}

impl Average {
    fn find_or_add(&mut self, topic: &[u8]) -> Option<&mut Window> {
        let h = edged::hash(topic);
        let known = self.windows[..self.n_windows]
            .iter()
            .position(|w| w.hash == h && &w.topic[..w.len] == topic);
        if let Some(i) = known {
            return Some(&mut self.windows[i]);
        }
        if self.n_windows == MAX_TOPICS || topic.len() > MAX_TOPIC_LEN {
            if !self.warned_topics {
                self.warned_topics = true;
                edged::log(
                    Level::Warn,
                    "average: more than 64 topics or a topic over 200 bytes; its readings are dropped",
                );
            }
            return None;
        }
        let w = &mut self.windows[self.n_windows];
        self.n_windows += 1;
        w.hash = h;
        w.len = topic.len();
        w.topic[..topic.len()].copy_from_slice(topic);
        Some(w)
    }
}

impl Filter for Average {
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        self.field = Some(params.get("field").unwrap_or(b"value"));
        let suffix = params.get("suffix").unwrap_or(b"/avg");
        self.suffix = Some(suffix);
        // An empty suffix is allowed (same topic out); anything else must be topic text, or
        // every summary would be refused at tick time.
        if suffix.len() > MAX_SUFFIX_LEN || (!suffix.is_empty() && !edged::topic_valid(suffix)) {
            edged::log(
                Level::Error,
                "average: param 'suffix' must be topic text of at most 200 bytes",
            );
            return Err(1);
        }
        match params.number_strict("decimals", 2.0) {
            Ok(v) if v >= 0.0 && v <= 20.0 && v == (v as i32) as f64 => self.decimals = v as u32,
            _ => {
                edged::log(Level::Error, "average: param 'decimals' must be an integer 0..20");
                return Err(2);
            }
        }
        Ok(())
    }

    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict {
        let v = match edged::json_field(payload, self.field.unwrap_or(b"value")).ok().and_then(edged::parse_number) {
            Some(v) => v,
            None => return Verdict::Drop,
        };
        if !(v > -edged::FIXED_LIMIT && v < edged::FIXED_LIMIT) {
            if !self.warned_range {
                self.warned_range = true;
                edged::log(Level::Warn, "average: ignoring readings of magnitude 1e15 or more");
            }
            return Verdict::Drop;
        }
        let w = match self.find_or_add(topic) {
            Some(w) => w,
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
        let (suffix, decimals) = (self.suffix.unwrap_or(b""), self.decimals);
        for w in self.windows[..self.n_windows].iter_mut() {
            if w.count == 0 {
                continue;
            }
            let mut avg = w.sum / w.count as f64;
            // Rounding in the sum can land a hair outside [min, max]; the true mean cannot,
            // and clamping keeps it printable.
            if avg < w.min {
                avg = w.min;
            }
            if avg > w.max {
                avg = w.max;
            }
            let mut tbuf = [0u8; MAX_TOPIC_LEN + MAX_SUFFIX_LEN];
            let mut t = Writer::new(&mut tbuf);
            t.bytes(&w.topic[..w.len]).bytes(suffix);
            let sent = edged::emit_with(t.as_bytes(), |p| {
                p.str("{\"avg\":").fixed(avg, decimals);
                p.str(",\"min\":").fixed(w.min, decimals);
                p.str(",\"max\":").fixed(w.max, decimals);
                p.str(",\"count\":").int(w.count);
                p.str(",\"ts\":").int(now_ms);
                p.byte(b'}');
            });
            // Only a full output area stops the loop; the windows not yet sent wait for the
            // next tick rather than being lost.
            if sent == Err(EmitError::NoRoom) {
                break;
            }
            w.count = 0;
        }
    }

    fn save_state(&self, w: &mut StateWriter) -> u32 {
        w.u32(self.n_windows as u32);
        for x in &self.windows[..self.n_windows] {
            // An emptied window keeps its place in the order, not its old figures.
            let keep = |v: f64| if x.count == 0 { 0.0 } else { v };
            w.bytes(&x.topic[..x.len]).u64(x.count as u64);
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
            let (topic, count, sum, min, max) = (r.bytes(), r.u64(), r.f64(), r.f64(), r.f64());
            let (topic, count, sum, min, max) = match (topic, count, sum, min, max) {
                (Some(t), Some(c), Some(s), Some(lo), Some(hi)) => (t, c, s, lo, hi),
                _ => return Err(edged::STATE_TRUNCATED),
            };
            if topic.len() > MAX_TOPIC_LEN || count > i64::MAX as u64 {
                return Err(2);
            }
            if self.windows[..self.n_windows].iter().any(|w| &w.topic[..w.len] == topic) {
                return Err(3);
            }
            let w = self.find_or_add(topic).ok_or(2)?;
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
        windows: [EMPTY; MAX_TOPICS],
        n_windows: 0,
        warned_topics: false,
        warned_range: false,
        field: None,
        suffix: None,
        decimals: 0,
    },
    tick,
    state
);

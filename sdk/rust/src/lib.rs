//! Rust SDK for edged filters (filter ABI v1, `docs/filter-abi.md`).
//!
//! A filter is a type implementing [`Filter`], turned into a module by [`export_filter!`]:
//!
//! ```ignore
//! #![no_std]
//! use edged::{Filter, Params, Verdict};
//!
//! struct Readings;
//!
//! impl Filter for Readings {
//!     fn on_message(&mut self, _topic: &[u8], payload: &[u8]) -> Verdict {
//!         match edged::json_field(payload, b"value") {
//!             Ok(raw) if edged::parse_number(raw).is_some() => Verdict::Forward,
//!             _ => Verdict::Drop,
//!         }
//!     }
//! }
//!
//! edged::export_filter!(Readings, Readings);
//! ```
//!
//! The crate is `#![no_std]`, needs no allocator and brings its own panic handler (a panic
//! traps, which the host counts as `trap` and survives). With its `std` feature (rustc:
//! `--cfg 'feature="std"'`) it links std and leaves the panic handler to it, for filters that use
//! std on `wasm32-wasi` (README.md, "With std"). Every routine behaves byte for byte
//! like its counterpart in the C SDK (`sdk/c/edged.h`), so a filter gives the same output
//! whichever of the two it is written with.
//!
//! The SDK keeps its state in statics: WebAssembly instances are single-threaded and the host
//! never calls into an instance twice at once.

#![cfg_attr(not(feature = "std"), no_std)]
#![allow(clippy::missing_safety_doc)]

// CBOR, MessagePack and a JSON tokenizer (docs/binary-payloads.md), with the `binary`
// feature (rustc: `--cfg 'feature="binary"'`; sdk/rust/Makefile sets it): a project that
// copies only this file builds without them.
#[cfg(feature = "binary")]
pub mod binary;
#[cfg(feature = "binary")]
pub mod json;

#[cfg(feature = "properties")]
pub mod props;
#[cfg(feature = "properties")]
pub use props::{emit_with, reject};

/// The ABI version this SDK speaks.
pub const ABI_VERSION: i32 = 1;
/// Size of the input area: larger messages never reach the filter.
pub const INPUT_CAP: usize = 64 * 1024;
/// Size of the output area, including its 4-byte header.
pub const OUTPUT_CAP: usize = 64 * 1024;
/// Bytes kept for the params.
pub const PARAMS_CAP: usize = 4096;
/// Number of params kept.
pub const MAX_PARAMS: usize = 32;
/// Most digits [`Writer::fixed`] prints after the point.
pub const FIXED_MAX_DECIMALS: u32 = 20;
/// [`Writer::fixed`] refuses magnitudes at or above this.
pub const FIXED_LIMIT: f64 = 1e15;
/// What `edged_init` returns when the params are malformed or too many.
pub const INIT_BAD_PARAMS: i32 = -1;
/// The largest state blob, saved or loaded (the node's `budgets.max_state` caps it too).
pub const STATE_CAP: usize = 64 * 1024;
/// What `edged_state_load` returns when [`Filter::load_state`] accepted a blob but a read ran
/// past its end (C: `EDGED_STATE_TRUNCATED`).
pub const STATE_TRUNCATED: i32 = -1;
/// ... or left bytes unread (C: `EDGED_STATE_TRAILING`).
pub const STATE_TRAILING: i32 = -2;

/// What happens to the input message when the filter emitted nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The message stops here.
    Drop = 0,
    /// The message goes on unchanged.
    Forward = 1,
    /// The filter refuses the message: returned by [`reject`], which wrote the reason. The
    /// input is dead-lettered with it; what was emitted during the call still goes on.
    Reject = 3,
}

/// Log levels of the host's `edged.log` import.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Why [`emit`] wrote nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EmitError {
    /// The record does not fit in what is left of the output area (C: `-1`).
    NoRoom,
    /// The host would refuse the topic: empty, over 65535 bytes, or with `+`, `#` or NUL (C: `-2`).
    BadTopic,
}

/// Why [`json_field`] found no value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JsonError {
    /// The object has no such top-level key (C: `-1`).
    NotFound,
    /// Not a JSON object, or malformed before the key (C: `-2`).
    Malformed,
}

/// A filter: one value of this type lives for the whole life of the instance.
pub trait Filter {
    /// Called once after instantiation. `Err(code)` refuses the module; use positive codes
    /// (negative ones belong to the SDK). The host shows the code to the operator.
    fn init(&mut self, params: &Params) -> Result<(), i32> {
        let _ = params;
        Ok(())
    }

    /// Called once per message. If [`emit`] succeeded at least once during the call, the call
    /// returns EMIT whatever this returns, and the input is not forwarded (emit it yourself to
    /// keep it).
    fn on_message(&mut self, topic: &[u8], payload: &[u8]) -> Verdict;

    /// Called every `tick_interval` seconds when exported with `export_filter!(.., tick)`.
    fn on_tick(&mut self, now_ms: i64) {
        let _ = now_ms;
    }

    /// With `export_filter!(.., state)`: writes the state and returns its format, the filter's
    /// own number for this layout. Called between messages; must not change what the filter
    /// does next.
    fn save_state(&self, w: &mut StateWriter) -> u32 {
        let _ = w;
        0
    }

    /// With `export_filter!(.., state)`: reads a saved state back, on a fresh instance before
    /// its first message. `Err(code)` refuses it (use positive codes); the node then throws the
    /// instance away and starts the filter fresh, so a half-done load need not be undone.
    /// `Ok` with a failed read or bytes left unread is refused by the SDK.
    fn load_state(&mut self, format: u32, r: &mut StateReader) -> Result<(), i32> {
        let _ = (format, r);
        Err(1)
    }
}

// ---- host import and static state ------------------------------------------------------------

#[link(wasm_import_module = "edged")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: u32);
}

#[repr(C, align(8))]
struct Area<const N: usize>([u8; N]);

static mut INPUT: Area<INPUT_CAP> = Area([0; INPUT_CAP]);
static mut OUTPUT: Area<OUTPUT_CAP> = Area([0; OUTPUT_CAP]);
/// The ABI's 16-byte buffer descriptor, filled in by `edged_buffers`.
static mut DESCRIPTOR: [u32; 4] = [0; 4];
/// Mirrors the `used` word of the output area.
static mut USED: usize = 0;
/// Set by a successful emit.
static mut EMITTED: bool = false;

static mut PSTORE: [u8; PARAMS_CAP] = [0; PARAMS_CAP];
/// (key start, key len, value start, value len) in PSTORE.
static mut PARAMS: [(u16, u16, u16, u16); MAX_PARAMS] = [(0, 0, 0, 0); MAX_PARAMS];
static mut PCOUNT: usize = 0;
/// With `export_filter!(.., state)`: where a save is written, and where the host writes a load.
static mut STATE: Area<STATE_CAP> = Area([0; STATE_CAP]);
/// The ABI's 12-byte state descriptor: ptr, len, format.
static mut STATE_DESCRIPTOR: [u32; 3] = [0; 3];
static mut INITIALISED: bool = false;

#[cfg(not(any(test, feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// ---- strings and logging ---------------------------------------------------------------------

/// FNV-1a, 32 bits: enough to spread topics over a small per-topic table.
pub fn hash(s: &[u8]) -> u32 {
    let mut h: u32 = 2166136261;
    for &b in s {
        h ^= b as u32;
        h = h.wrapping_mul(16777619);
    }
    h
}

/// Sends `msg` to the host log. Each call crosses into the host (about 9 µs against 2 µs for a
/// whole message): log from init and ticks, or once behind a flag.
pub fn log(level: Level, msg: &str) {
    log_bytes(level, msg.as_bytes());
}

/// [`log`] for text that is not a `&str` (it should still be UTF-8).
pub fn log_bytes(level: Level, msg: &[u8]) {
    // SAFETY: the host reads `len` bytes at `ptr`, which lie in this module's memory.
    unsafe { host_log(level as i32, msg.as_ptr(), msg.len() as u32) }
}

// ---- output ----------------------------------------------------------------------------------

/// True if the host would accept `t` as an emitted topic: 1..65535 bytes without `+`, `#` or
/// NUL (UTF-8 validity is not checked). Useful to vet a topic param in init.
pub fn topic_valid(t: &[u8]) -> bool {
    !t.is_empty() && t.len() <= 65535 && !t.iter().any(|&c| c == b'+' || c == b'#' || c == 0)
}

fn put_u32(area: &mut [u8], at: usize, v: u32) {
    area[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Appends one record to the output area; on error nothing was written. Use it only inside
/// `on_message` or `on_tick`.
pub fn emit(topic: &[u8], payload: &[u8]) -> Result<(), EmitError> {
    emit_with(topic, |w| {
        w.bytes(payload);
    })
}

/// Like [`emit`], with the payload written by `build` straight into the output area, so no
/// scratch buffer is needed. If any append of `build` fails (the record would not fit), nothing
/// is emitted and the result is [`EmitError::NoRoom`]. With the `properties` feature this is
/// [`props::emit_with`], which adds the properties set since the last emit.
#[cfg(not(feature = "properties"))]
pub fn emit_with(topic: &[u8], build: impl FnOnce(&mut Writer)) -> Result<(), EmitError> {
    // The host drops the whole call's output if one topic is invalid; refusing it here keeps
    // the other records of the call alive.
    if !topic_valid(topic) {
        return Err(EmitError::BadTopic);
    }
    // SAFETY: single-threaded; nothing else borrows OUTPUT during the call.
    let out = unsafe { &mut OUTPUT.0 };
    let used = unsafe { USED };
    let room = OUTPUT_CAP - 4 - used;
    if room < 8 || topic.len() > room - 8 {
        return Err(EmitError::NoRoom);
    }
    let start = 4 + used;
    let body = start + 8 + topic.len();
    let (head, rest) = out.split_at_mut(body);
    let mut w = Writer::new(&mut rest[..room - 8 - topic.len()]);
    build(&mut w);
    if w.failed {
        return Err(EmitError::NoRoom);
    }
    let plen = w.len;
    head[start + 8..body].copy_from_slice(topic);
    put_u32(head, start, topic.len() as u32);
    put_u32(head, start + 4, plen as u32);
    let used = used + 8 + topic.len() + plen;
    put_u32(head, 0, used as u32);
    unsafe {
        USED = used;
        EMITTED = true;
    }
    Ok(())
}

/// Refuses the input: it is dead-lettered with `reason` (at most 1 KiB is kept) and what was
/// emitted during the call still goes on. Use as `return edged::reject(b"why");` after any
/// emits. Returns [`Verdict::Reject`], or [`Verdict::Drop`] when the reason does not fit in
/// what is left of the output area (the input is then dropped without a dead letter). Same
/// as the C SDK's `edged_reject`. With the `properties` feature this is [`props::reject`],
/// which writes the record with its third length.
#[cfg(not(feature = "properties"))]
pub fn reject(reason: &[u8]) -> Verdict {
    // SAFETY: single-threaded; nothing else borrows OUTPUT during the call.
    let out = unsafe { &mut OUTPUT.0 };
    let used = unsafe { USED };
    let room = OUTPUT_CAP - 4 - used;
    if room < 8 || reason.len() > room - 8 {
        return Verdict::Drop;
    }
    let start = 4 + used;
    put_u32(out, start, 0);
    put_u32(out, start + 4, reason.len() as u32);
    out[start + 8..start + 8 + reason.len()].copy_from_slice(reason);
    let used = used + 8 + reason.len();
    put_u32(out, 0, used as u32);
    unsafe { USED = used };
    Verdict::Reject
}

fn reset_output() {
    #[cfg(feature = "properties")]
    props::reset();
    unsafe {
        USED = 0;
        EMITTED = false;
        put_u32(&mut OUTPUT.0, 0, 0);
    }
}

// ---- params ----------------------------------------------------------------------------------

/// The module's params, as given to [`Filter::init`]. Values live as long as the instance.
pub struct Params {
    _private: (),
}

impl Params {
    /// The value of a param, or `None` when it is absent (an empty value is `Some(b"")`).
    pub fn get(&self, key: &str) -> Option<&'static [u8]> {
        let key = key.as_bytes();
        // SAFETY: PSTORE is written only by edged_init, once, before any Params exists.
        let (store, params, count) = unsafe { (&PSTORE, &PARAMS, PCOUNT) };
        for &(k, kl, v, vl) in &params[..count] {
            let (k, kl, v, vl) = (k as usize, kl as usize, v as usize, vl as usize);
            if &store[k..k + kl] == key {
                return Some(&store[v..v + vl]);
            }
        }
        None
    }

    /// `dflt` when the key is absent *or* not a JSON number.
    pub fn number(&self, key: &str, dflt: f64) -> f64 {
        match self.get(key) {
            Some(s) if !s.is_empty() => parse_number(s).unwrap_or(dflt),
            _ => dflt,
        }
    }

    /// `Ok(dflt)` when the key is absent, `Err(())` when it is present but not a number, so
    /// init can refuse a typo.
    #[allow(clippy::result_unit_err)]
    pub fn number_strict(&self, key: &str, dflt: f64) -> Result<f64, ()> {
        match self.get(key) {
            None => Ok(dflt),
            Some(s) => parse_number(s).ok_or(()),
        }
    }
}

fn bad_params(why: &str) -> i32 {
    unsafe { PCOUNT = 0 };
    log(Level::Error, why);
    INIT_BAD_PARAMS
}

fn parse_params(len: usize) -> i32 {
    unsafe {
        PCOUNT = 0;
        if INITIALISED {
            // Values handed out as &'static must never change under the filter.
            return bad_params("edged: edged_init called twice");
        }
        INITIALISED = true;
    }
    if len > INPUT_CAP {
        return bad_params("edged: params_len exceeds the input area");
    }
    if len > PARAMS_CAP {
        return bad_params("edged: params exceed EDGED_PARAMS_CAP");
    }
    // SAFETY: single-threaded, and no Params exists yet.
    let (store, params) = unsafe {
        PSTORE[..len].copy_from_slice(&INPUT.0[..len]);
        (&PSTORE, &mut PARAMS)
    };
    let mut count = 0;
    let mut pos = 0;
    while pos < len {
        let k = pos;
        while pos < len && store[pos] != 0 {
            pos += 1;
        }
        if pos == len {
            return bad_params("edged: params: key without NUL");
        }
        pos += 1;
        let v = pos;
        while pos < len && store[pos] != 0 {
            pos += 1;
        }
        if pos == len {
            return bad_params("edged: params: value without NUL");
        }
        if count == MAX_PARAMS {
            return bad_params("edged: more params than EDGED_MAX_PARAMS");
        }
        params[count] = (k as u16, (v - 1 - k) as u16, v as u16, (pos - v) as u16);
        count += 1;
        unsafe { PCOUNT = count };
        pos += 1;
    }
    0
}

// ---- JSON numbers ----------------------------------------------------------------------------

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The whole of `s` as one JSON number (no spaces, no `+`, no leading zeros, no bare `.`), or
/// `None`, also for values beyond the double range. Correctly rounded when the significant
/// digits form an integer below 2^53 and the decimal exponent is within ±22; otherwise within a
/// few units in the last place, exactly as the C SDK. Digits past the 19th significant one are
/// ignored.
pub fn parse_number(s: &[u8]) -> Option<f64> {
    let end = s.len();
    let digit = |p: usize| p < end && s[p].is_ascii_digit();
    let mut p = 0;
    let mut mant: u64 = 0;
    let mut sig = 0;
    let mut exp10: i32 = 0;
    let mut neg = false;

    if end == 0 {
        return None;
    }
    if s[0] == b'-' {
        neg = true;
        p = 1;
    }
    if p == end {
        return None;
    }
    if s[p] == b'0' {
        p += 1;
    } else if (b'1'..=b'9').contains(&s[p]) {
        while digit(p) {
            if sig < 19 {
                mant = mant * 10 + (s[p] - b'0') as u64;
                sig += 1;
            } else {
                exp10 += 1;
            }
            p += 1;
        }
    } else {
        return None;
    }
    if p < end && s[p] == b'.' {
        p += 1;
        if !digit(p) {
            return None;
        }
        while digit(p) {
            if sig < 19 {
                mant = mant * 10 + (s[p] - b'0') as u64;
                exp10 -= 1;
                if mant != 0 {
                    sig += 1; // leading zeros of 0.000x carry no precision
                }
            }
            p += 1;
        }
    }
    if p < end && (s[p] == b'e' || s[p] == b'E') {
        let mut eneg = false;
        let mut e: i32 = 0;
        p += 1;
        if p < end && (s[p] == b'+' || s[p] == b'-') {
            eneg = s[p] == b'-';
            p += 1;
        }
        if !digit(p) {
            return None;
        }
        while digit(p) {
            if e < 100000 {
                e = e * 10 + (s[p] - b'0') as i32; // saturate: the result is 0 or inf anyway
            }
            p += 1;
        }
        exp10 += if eneg { -e } else { e };
    }
    if p != end {
        return None;
    }

    let mut v = mant as f64;
    if mant != 0 {
        if exp10 > 400 {
            return None;
        }
        if exp10 < -400 {
            v = 0.0;
        } else if exp10 >= 0 {
            while exp10 > 22 {
                v *= 1e22;
                exp10 -= 22;
            }
            v *= POW10[exp10 as usize];
        } else {
            while exp10 < -22 {
                v /= 1e22;
                exp10 += 22;
            }
            v /= POW10[(-exp10) as usize];
        }
        if v.is_infinite() {
            return None;
        }
    }
    Some(if neg { -v } else { v })
}

// ---- JSON scanning ---------------------------------------------------------------------------

fn skip_ws(s: &[u8], mut p: usize) -> usize {
    while p < s.len() && matches!(s[p], b' ' | b'\t' | b'\n' | b'\r') {
        p += 1;
    }
    p
}

/// `p` at the opening quote; the index after the closing quote.
fn skip_string(s: &[u8], mut p: usize) -> Option<usize> {
    p += 1;
    while p < s.len() {
        if s[p] == b'\\' {
            p += 1;
            if p == s.len() {
                return None;
            }
        } else if s[p] == b'"' {
            return Some(p + 1);
        }
        p += 1;
    }
    None
}

/// `p` at `{` or `[`. Bracket kinds are tracked so that `{]` is refused; nesting deeper than 64
/// is refused rather than guessed at.
fn skip_nested(s: &[u8], mut p: usize) -> Option<usize> {
    let mut kinds: u64 = 0; // bit set = '{' at that depth
    let mut depth = 0;
    while p < s.len() {
        let c = s[p];
        if c == b'"' {
            p = skip_string(s, p)?;
            continue;
        }
        if c == b'{' || c == b'[' {
            if depth == 64 {
                return None;
            }
            if c == b'{' {
                kinds |= 1 << depth;
            } else {
                kinds &= !(1 << depth);
            }
            depth += 1;
        } else if c == b'}' || c == b']' {
            if depth == 0 {
                return None;
            }
            depth -= 1;
            if ((kinds >> depth) & 1 == 1) != (c == b'}') {
                return None;
            }
            if depth == 0 {
                return Some(p + 1);
            }
        }
        p += 1;
    }
    None
}

fn is_delim(c: u8) -> bool {
    matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
}

/// Scalar tokens run to the next delimiter; validity is judged only for the returned value.
fn skip_value(s: &[u8], mut p: usize) -> Option<usize> {
    if p == s.len() {
        return None;
    }
    match s[p] {
        b'"' => return skip_string(s, p),
        b'{' | b'[' => return skip_nested(s, p),
        _ => {}
    }
    let start = p;
    while p < s.len() && !is_delim(s[p]) {
        p += 1;
    }
    if p == start {
        None
    } else {
        Some(p)
    }
}

fn scalar_ok(v: &[u8]) -> bool {
    v == b"true" || v == b"false" || v == b"null" || parse_number(v).is_some()
}

/// The value of the first top-level `key` of the JSON object in `json`, exactly as written: a
/// number, a string with its quotes, `true`/`false`/`null`, or a whole nested object or array.
///
/// A scanner, not a validator: it stops at the first match. The returned value is checked to
/// be a complete token; what is inside a nested value or a string is not. Keys are compared
/// byte for byte with their text between the quotes.
pub fn json_field<'a>(json: &'a [u8], key: &[u8]) -> Result<&'a [u8], JsonError> {
    let end = json.len();
    let mut p = skip_ws(json, 0);
    if p == end || json[p] != b'{' {
        return Err(JsonError::Malformed);
    }
    p = skip_ws(json, p + 1);
    if p < end && json[p] == b'}' {
        return Err(JsonError::NotFound);
    }
    loop {
        if p == end || json[p] != b'"' {
            return Err(JsonError::Malformed);
        }
        let kend = skip_string(json, p).ok_or(JsonError::Malformed)?;
        let k = &json[p + 1..kend - 1];
        p = skip_ws(json, kend);
        if p == end || json[p] != b':' {
            return Err(JsonError::Malformed);
        }
        p = skip_ws(json, p + 1);
        let vend = skip_value(json, p).ok_or(JsonError::Malformed)?;
        if k == key {
            let v = &json[p..vend];
            if !matches!(v[0], b'"' | b'{' | b'[') && !scalar_ok(v) {
                return Err(JsonError::Malformed);
            }
            return Ok(v);
        }
        p = skip_ws(json, vend);
        if p == end {
            return Err(JsonError::Malformed);
        }
        if json[p] == b'}' {
            return Err(JsonError::NotFound);
        }
        if json[p] != b',' {
            return Err(JsonError::Malformed);
        }
        p = skip_ws(json, p + 1);
    }
}

// ---- text builder ----------------------------------------------------------------------------

/// Builds text in storage you provide. Every append is all or nothing; a failed append sets
/// `failed` and later appends are refused too, so a payload can be built with unchecked appends
/// and tested once with [`Writer::failed`].
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    failed: bool,
}

impl<'a> Writer<'a> {
    pub fn new(storage: &'a mut [u8]) -> Self {
        Writer { buf: storage, len: 0, failed: false }
    }

    /// What has been written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once an append was refused.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Empties the writer and clears `failed`.
    pub fn reset(&mut self) {
        self.len = 0;
        self.failed = false;
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        if self.failed || data.len() > self.buf.len() - self.len {
            self.failed = true;
            return self;
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        self
    }

    /// Appends UTF-8 text.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends one byte.
    pub fn byte(&mut self, c: u8) -> &mut Self {
        self.bytes(&[c])
    }

    /// Appends a 64-bit integer in decimal.
    pub fn int(&mut self, v: i64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut n = tmp.len();
        let mut m = v.unsigned_abs();
        loop {
            n -= 1;
            tmp[n] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if v < 0 {
            n -= 1;
            tmp[n] = b'-';
        }
        self.bytes(&tmp[n..])
    }

    /// Appends `v` with exactly `decimals` (0..20) digits after the point (none and no point
    /// for 0), no exponent. The digits are those of the exact binary value, rounded half away
    /// from zero: 0.125 gives `0.13`, while 2.675 (stored as 2.67499999…) gives `2.67`. A
    /// result that rounds to zero prints without a sign. Refused: |v| >= 1e15, NaN, infinities.
    pub fn fixed(&mut self, v: f64, decimals: u32) -> &mut Self {
        const TWO_POW_64: f64 = 18446744073709551616.0;
        const TWO_POW_M75: f64 = 2.6469779601696886e-23;
        let mut tmp = [0u8; 1 + 16 + 1 + FIXED_MAX_DECIMALS as usize];
        let mut dig = [0u8; FIXED_MAX_DECIMALS as usize];
        let mut limb = [0u64; 4]; // the fraction as 0.128 fixed point, 32 bits per limb
        let decimals = decimals as usize;
        if decimals > FIXED_MAX_DECIMALS as usize || !(v > -FIXED_LIMIT && v < FIXED_LIMIT) {
            self.failed = true;
            return self;
        }
        let neg = v < 0.0;
        let a = if neg { -v } else { v };
        let mut ip = a as u64;
        // Below 2^-75 every printable digit is 0 and the remainder is far from a half; from
        // there up, 128 bits hold the fraction exactly, so every digit and the rounding are.
        if a >= TWO_POW_M75 {
            let frac = a - ip as f64;
            let x = frac * TWO_POW_64;
            let hi = x as u64;
            let lo = ((x - hi as f64) * TWO_POW_64) as u64;
            limb = [lo & 0xffff_ffff, lo >> 32, hi & 0xffff_ffff, hi >> 32];
        }
        for d in dig.iter_mut().take(decimals) {
            let mut carry = 0u64;
            for l in limb.iter_mut() {
                let t = *l * 10 + carry;
                *l = t & 0xffff_ffff;
                carry = t >> 32;
            }
            *d = carry as u8;
        }
        if limb[3] >> 31 != 0 {
            // what is left is at least one half
            let mut i = decimals;
            while i > 0 && dig[i - 1] == 9 {
                dig[i - 1] = 0;
                i -= 1;
            }
            if i > 0 {
                dig[i - 1] += 1;
            } else {
                ip += 1;
            }
        }
        let nonzero = ip != 0 || dig[..decimals].iter().any(|&d| d != 0);
        let mut n = 0;
        if neg && nonzero {
            tmp[n] = b'-';
            n += 1;
        }
        let mut rev = [0u8; 16];
        let mut r = 0;
        loop {
            rev[r] = b'0' + (ip % 10) as u8;
            r += 1;
            ip /= 10;
            if ip == 0 {
                break;
            }
        }
        while r > 0 {
            r -= 1;
            tmp[n] = rev[r];
            n += 1;
        }
        if decimals > 0 {
            tmp[n] = b'.';
            n += 1;
            for &d in &dig[..decimals] {
                tmp[n] = b'0' + d;
                n += 1;
            }
        }
        self.bytes(&tmp[..n])
    }

    /// Appends `s` as a quoted JSON string, escaping `"`, `\` and control characters; other
    /// bytes pass through, so the result is valid JSON whenever `s` is valid UTF-8.
    pub fn json_string(&mut self, s: &[u8]) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let start = self.len;
        self.byte(b'"');
        for &c in s {
            match c {
                b'"' | b'\\' => self.bytes(&[b'\\', c]),
                b'\n' => self.bytes(b"\\n"),
                b'\r' => self.bytes(b"\\r"),
                b'\t' => self.bytes(b"\\t"),
                0..=0x1f => {
                    self.bytes(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]])
                }
                _ => self.byte(c),
            };
        }
        self.byte(b'"');
        if self.failed && self.len > start {
            // Keep the all-or-nothing promise of the other appends.
            self.len = start;
        }
        self
    }
}

// ---- state blobs -----------------------------------------------------------------------------

/// Writes a state blob: little-endian values, and byte strings as a u32 length then the bytes
/// (the same layout as the C SDK's `edged_put_*`). Every append is all or nothing; a failed one
/// sets `failed` and refuses the rest, and the SDK then saves nothing (the call traps, so the
/// node keeps the last good state).
pub struct StateWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    failed: bool,
}

impl<'a> StateWriter<'a> {
    pub fn new(storage: &'a mut [u8]) -> Self {
        StateWriter { buf: storage, len: 0, failed: false }
    }

    /// What has been written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once an append was refused.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Appends bytes as they are, without a length.
    pub fn raw(&mut self, data: &[u8]) -> &mut Self {
        if self.failed || data.len() > self.buf.len() - self.len {
            self.failed = true;
            return self;
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        self
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.raw(&[v])
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.raw(&v.to_bits().to_le_bytes())
    }

    /// Appends a u32 length, then the bytes; both or neither.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        if self.failed || data.len() > u32::MAX as usize || self.buf.len() - self.len < 4 + data.len() {
            self.failed = true;
            return self;
        }
        self.u32(data.len() as u32).raw(data)
    }
}

/// Reads a state blob written by [`StateWriter`] (or the C SDK's `edged_put_*`). A read past
/// the end gives `None` and sets `failed`, and so does every later read: a truncated blob can
/// never be half-understood as a whole one.
pub struct StateReader<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> StateReader<'a> {
    pub fn new(blob: &'a [u8]) -> Self {
        StateReader { buf: blob, pos: 0, failed: false }
    }

    /// True once a read ran past the end.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// True when every byte was read and no read failed.
    pub fn done(&self) -> bool {
        !self.failed && self.pos == self.buf.len()
    }

    /// The next `n` bytes as they are.
    pub fn raw(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.failed || n > self.buf.len() - self.pos {
            self.failed = true;
            return None;
        }
        let buf: &'a [u8] = self.buf;
        let out = &buf[self.pos..self.pos + n];
        self.pos += n;
        Some(out)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.raw(1).map(|b| b[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.raw(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.raw(8).map(|b| {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            u64::from_le_bytes(le)
        })
    }

    pub fn f64(&mut self) -> Option<f64> {
        self.u64().map(f64::from_bits)
    }

    /// A u32 length, then that many bytes. They live in the SDK's state buffer, which the next
    /// save overwrites: copy what you keep.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let at = self.pos;
        let n = self.u32()? as usize;
        let out = self.raw(n);
        if out.is_none() {
            self.pos = at;
        }
        out
    }
}

// ---- ABI entry points (called from the code export_filter! generates) -------------------------

#[doc(hidden)]
pub mod __rt {
    use super::*;

    pub fn buffers() -> i32 {
        // SAFETY: single-threaded; only addresses are taken.
        unsafe {
            DESCRIPTOR = [
                INPUT.0.as_ptr() as usize as u32,
                INPUT_CAP as u32,
                OUTPUT.0.as_ptr() as usize as u32,
                OUTPUT_CAP as u32,
            ];
            DESCRIPTOR.as_ptr() as usize as i32
        }
    }

    pub fn init<F: Filter>(filter: &mut F, params_len: i32) -> i32 {
        let code = parse_params(params_len as u32 as usize);
        if code != 0 {
            return code;
        }
        match filter.init(&Params { _private: () }) {
            Ok(()) => 0,
            Err(code) => code,
        }
    }

    pub fn on_message<F: Filter>(filter: &mut F, topic_len: i32, payload_len: i32) -> i32 {
        let (tl, pl) = (topic_len as u32 as usize, payload_len as u32 as usize);
        // The host promises the message fits; if it does not, a trap is the loudest answer.
        if tl > INPUT_CAP || pl > INPUT_CAP - tl {
            core::arch::wasm32::unreachable();
        }
        reset_output();
        // SAFETY: the input area is written only by the host, between calls.
        let input = unsafe { &INPUT.0[..tl + pl] };
        let verdict = filter.on_message(&input[..tl], &input[tl..]);
        if unsafe { EMITTED } && verdict != Verdict::Reject {
            2
        } else {
            verdict as i32
        }
    }

    pub fn state_save<F: Filter>(filter: &F) -> i32 {
        // SAFETY: single-threaded; the host copies the blob out before its next call.
        unsafe {
            let mut w = StateWriter::new(&mut STATE.0);
            let format = filter.save_state(&mut w);
            if w.failed() {
                // A cut state would lose data quietly; the trap keeps the last good one.
                log(Level::Error, "edged: the state does not fit STATE_CAP");
                core::arch::wasm32::unreachable();
            }
            STATE_DESCRIPTOR = [STATE.0.as_ptr() as usize as u32, w.len() as u32, format];
            STATE_DESCRIPTOR.as_ptr() as usize as i32
        }
    }

    pub fn state_buffer(len: i32) -> i32 {
        if len as u32 as usize > STATE_CAP {
            return -1;
        }
        unsafe { STATE.0.as_ptr() as usize as i32 }
    }

    pub fn state_load<F: Filter>(filter: &mut F, format: i32, len: i32) -> i32 {
        let len = len as u32 as usize;
        if len > STATE_CAP {
            core::arch::wasm32::unreachable();
        }
        // SAFETY: the host wrote the blob there, between calls.
        let mut r = StateReader::new(unsafe { &STATE.0[..len] });
        match filter.load_state(format as u32, &mut r) {
            Err(code) => code,
            Ok(()) if r.failed() => STATE_TRUNCATED,
            Ok(()) if !r.done() => STATE_TRAILING,
            Ok(()) => 0,
        }
    }

    pub fn on_tick<F: Filter>(filter: &mut F, now_ms: i64) -> i32 {
        reset_output();
        filter.on_tick(now_ms);
        if unsafe { EMITTED } {
            2
        } else {
            0
        }
    }
}

/// Defines the module's exports for a filter: `export_filter!(Type, initial value)`, or
/// `export_filter!(Type, initial value, tick)` to also export `edged_on_tick` (the ABI makes
/// `tick_interval` a config error for modules without it). Add `state` (after `tick`, if
/// both) to export the three state exports around [`Filter::save_state`] and
/// [`Filter::load_state`]. The initial value must be a constant expression: the filter lives
/// in a static, not on the stack.
#[macro_export]
macro_rules! export_filter {
    (@state) => {
        #[no_mangle]
        pub extern "C" fn edged_state_save() -> i32 {
            $crate::__rt::state_save(unsafe { &__EDGED_FILTER })
        }

        #[no_mangle]
        pub extern "C" fn edged_state_buffer(len: i32) -> i32 {
            $crate::__rt::state_buffer(len)
        }

        #[no_mangle]
        pub extern "C" fn edged_state_load(format: i32, len: i32) -> i32 {
            $crate::__rt::state_load(unsafe { &mut __EDGED_FILTER }, format, len)
        }
    };
    ($ty:ty, $init:expr, tick, state) => {
        $crate::export_filter!($ty, $init, tick);
        $crate::export_filter!(@state);
    };
    ($ty:ty, $init:expr, state) => {
        $crate::export_filter!($ty, $init);
        $crate::export_filter!(@state);
    };
    ($ty:ty, $init:expr) => {
        static mut __EDGED_FILTER: $ty = $init;

        #[no_mangle]
        pub extern "C" fn edged_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn edged_buffers() -> i32 {
            $crate::__rt::buffers()
        }

        #[no_mangle]
        pub extern "C" fn edged_init(params_len: i32) -> i32 {
            // SAFETY: the host never calls into an instance twice at once.
            $crate::__rt::init(unsafe { &mut __EDGED_FILTER }, params_len)
        }

        #[no_mangle]
        pub extern "C" fn edged_on_message(topic_len: i32, payload_len: i32) -> i32 {
            $crate::__rt::on_message(unsafe { &mut __EDGED_FILTER }, topic_len, payload_len)
        }

        $crate::__export_properties!();
    };
    ($ty:ty, $init:expr, tick) => {
        $crate::export_filter!($ty, $init);

        #[no_mangle]
        pub extern "C" fn edged_on_tick(now_ms: i64) -> i32 {
            $crate::__rt::on_tick(unsafe { &mut __EDGED_FILTER }, now_ms)
        }
    };
}

/// `edged_properties`, which `export_filter!` defines when the crate has its `properties`
/// feature, and only then.
#[cfg(feature = "properties")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_properties {
    () => {
        #[no_mangle]
        pub extern "C" fn edged_properties() -> i32 {
            $crate::props::descriptor()
        }
    };
}

#[cfg(not(feature = "properties"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_properties {
    () => {};
}

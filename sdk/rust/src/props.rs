//! MQTT 5 properties (`docs/properties.md`; the ABI's "Properties" section in
//! `docs/filter-abi.md`), with the crate's `properties` feature (rustc:
//! `--cfg 'feature="properties"'`). The feature is the opt-in: `export_filter!` then also
//! exports `edged_properties`, the host writes each message's properties into this module's
//! area before the call, and every record the module writes ([`crate::emit`],
//! [`crate::emit_with`], [`reject`]) has the third length. Without the feature none of this
//! is compiled, and a module builds to the same bytes as before.
//!
//! The input's properties are slices of a static area, valid during the call (copy what you
//! keep); nothing here allocates.

use crate::{put_u32, topic_valid, EmitError, Verdict, Writer, EMITTED, OUTPUT, OUTPUT_CAP, USED};

/// MQTT 5 property identifiers, as the ABI's entries use them.
pub const PAYLOAD_FORMAT: u32 = 1;
pub const MESSAGE_EXPIRY: u32 = 2;
pub const CONTENT_TYPE: u32 = 3;
pub const RESPONSE_TOPIC: u32 = 8;
pub const CORRELATION_DATA: u32 = 9;
pub const USER: u32 = 38;

/// The input's properties area (a message with more is dropped by the host,
/// `input_too_large`).
pub const PROPS_CAP: usize = 4096;
/// The most property bytes one emitted message may set.
pub const PROPS_OUT_CAP: usize = 1024;

#[repr(C, align(4))]
struct PropsArea([u8; PROPS_CAP]);

static mut PROPS_IN: PropsArea = PropsArea([0; PROPS_CAP]);
static mut PROPS_DESCRIPTOR: [u32; 2] = [0; 2];
/// What the next emit sets on its message.
static mut PROPS_OUT: [u8; PROPS_OUT_CAP] = [0; PROPS_OUT_CAP];
static mut PROPS_OUT_LEN: usize = 0;

/// One property entry: `a` is the value (a user property's name, with `b` its value); integer
/// properties are 4 little-endian bytes in `a`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Prop {
    pub id: u32,
    pub a: &'static [u8],
    pub b: &'static [u8],
}

/// The [`set`] calls' error: [`PROPS_OUT_CAP`] is full, and nothing was set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Full;

fn get_u32(p: &[u8], at: usize) -> usize {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize
}

/// The input's properties, in order (from [`iter`]). It ends early at a malformed entry,
/// which the host never writes.
pub struct Iter {
    pos: usize,
}

impl Iterator for Iter {
    type Item = Prop;

    fn next(&mut self) -> Option<Prop> {
        // SAFETY: the host writes the area between calls; nothing here writes it.
        let area: &'static [u8; PROPS_CAP] = unsafe { &PROPS_IN.0 };
        let used = get_u32(area, 0);
        if used > PROPS_CAP - 4 {
            return None;
        }
        let at = self.pos;
        if at >= used || used - at < 12 {
            return None;
        }
        let e = 4 + at;
        let (a, b) = (get_u32(area, e + 4), get_u32(area, e + 8));
        if a > used - at - 12 || b > used - at - 12 - a {
            return None;
        }
        self.pos = at + 12 + a + b;
        Some(Prop {
            id: get_u32(area, e) as u32,
            a: &area[e + 12..e + 12 + a],
            b: &area[e + 12 + a..e + 12 + a + b],
        })
    }
}

/// Every property of the input.
pub fn iter() -> Iter {
    Iter { pos: 0 }
}

/// The input's property `id` (not a user property).
pub fn get(id: u32) -> Option<&'static [u8]> {
    iter().find(|p| p.id == id).map(|p| p.a)
}

/// The value of the input's first user property called `name`.
pub fn user_property(name: &[u8]) -> Option<&'static [u8]> {
    iter().find(|p| p.id == USER && p.a == name).map(|p| p.b)
}

/// Sets a property on the next emitted message (emit takes them all and starts afresh). What
/// is not set comes from the input as the output rule says.
pub fn set(id: u32, a: &[u8], b: &[u8]) -> Result<(), Full> {
    // SAFETY: single-threaded; nothing else borrows PROPS_OUT during the call.
    let (out, len) = unsafe { (&mut PROPS_OUT, PROPS_OUT_LEN) };
    let room = PROPS_OUT_CAP - len;
    if room < 12 || a.len() > room - 12 || b.len() > room - 12 - a.len() {
        return Err(Full);
    }
    put_u32(out, len, id);
    put_u32(out, len + 4, a.len() as u32);
    put_u32(out, len + 8, b.len() as u32);
    out[len + 12..len + 12 + a.len()].copy_from_slice(a);
    out[len + 12 + a.len()..len + 12 + a.len() + b.len()].copy_from_slice(b);
    unsafe { PROPS_OUT_LEN = len + 12 + a.len() + b.len() };
    Ok(())
}

pub fn set_user_property(name: &[u8], value: &[u8]) -> Result<(), Full> {
    set(USER, name, value)
}

pub fn set_content_type(value: &[u8]) -> Result<(), Full> {
    set(CONTENT_TYPE, value, b"")
}

pub fn set_correlation_data(value: &[u8]) -> Result<(), Full> {
    set(CORRELATION_DATA, value, b"")
}

/// 0 or 1 (1: the payload is UTF-8 text).
pub fn set_payload_format(indicator: u32) -> Result<(), Full> {
    set(PAYLOAD_FORMAT, &indicator.to_le_bytes(), b"")
}

/// [`crate::emit_with`] with properties: the record carries those set since the last emit,
/// which it then forgets (on an error they stay set).
pub fn emit_with(topic: &[u8], build: impl FnOnce(&mut Writer)) -> Result<(), EmitError> {
    if !topic_valid(topic) {
        return Err(EmitError::BadTopic);
    }
    // SAFETY: single-threaded; nothing else borrows OUTPUT or PROPS_OUT during the call.
    let out = unsafe { &mut OUTPUT.0 };
    let props = unsafe { &PROPS_OUT[..PROPS_OUT_LEN] };
    let used = unsafe { USED };
    let room = OUTPUT_CAP - 4 - used;
    if room < 12 || topic.len() > room - 12 || props.len() > room - 12 - topic.len() {
        return Err(EmitError::NoRoom);
    }
    let start = 4 + used;
    let body = start + 12 + topic.len();
    let (head, rest) = out.split_at_mut(body);
    let mut w = Writer::new(&mut rest[..room - 12 - topic.len() - props.len()]);
    build(&mut w);
    if w.failed() {
        return Err(EmitError::NoRoom);
    }
    let plen = w.len();
    rest[plen..plen + props.len()].copy_from_slice(props);
    head[start + 12..body].copy_from_slice(topic);
    put_u32(head, start, topic.len() as u32);
    put_u32(head, start + 4, plen as u32);
    put_u32(head, start + 8, props.len() as u32);
    let used = used + 12 + topic.len() + plen + props.len();
    put_u32(head, 0, used as u32);
    unsafe {
        USED = used;
        EMITTED = true;
        PROPS_OUT_LEN = 0;
    }
    Ok(())
}

/// [`crate::reject`] with properties (it is that function then): the reason record has the
/// third length, 0. Refuses the input: it is dead-lettered with `reason` (the host keeps at
/// most 1 KiB) and what was emitted during the call still goes on. Use it last: `return
/// edged::reject(reason);`. [`Verdict::Reject`], or [`Verdict::Drop`] when the reason does not
/// fit in what is left of the output area (the input is then dropped without a dead letter).
pub fn reject(reason: &[u8]) -> Verdict {
    // SAFETY: single-threaded; nothing else borrows OUTPUT during the call.
    let out = unsafe { &mut OUTPUT.0 };
    let used = unsafe { USED };
    let room = OUTPUT_CAP - 4 - used;
    if room < 12 || reason.len() > room - 12 {
        return Verdict::Drop;
    }
    let start = 4 + used;
    put_u32(out, start, 0);
    put_u32(out, start + 4, reason.len() as u32);
    put_u32(out, start + 8, 0);
    out[start + 12..start + 12 + reason.len()].copy_from_slice(reason);
    let used = used + 12 + reason.len();
    put_u32(out, 0, used as u32);
    unsafe { USED = used };
    Verdict::Reject
}

pub(crate) fn reset() {
    unsafe { PROPS_OUT_LEN = 0 };
}

#[doc(hidden)]
pub fn descriptor() -> i32 {
    // SAFETY: single-threaded; only addresses are taken.
    unsafe {
        PROPS_DESCRIPTOR = [PROPS_IN.0.as_ptr() as usize as u32, PROPS_CAP as u32];
        PROPS_DESCRIPTOR.as_ptr() as usize as i32
    }
}

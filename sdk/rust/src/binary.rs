//! CBOR (RFC 8949) and MessagePack: a pull reader, writers on [`Writer`], and the conversion
//! to JSON and back of docs/binary-payloads.md. Written from the two specifications; no
//! crate is used (none is reachable for an offline build with Debian's rustc 1.63, and the
//! SDK has no dependencies). The counterpart of the C SDK's `edged_binary.h`.
//!
//! [`Reader::next`] returns one item at a time: containers as a start item, their elements,
//! then [`Item::End`], for definite and CBOR indefinite lengths alike; a tag is followed by its
//! one content item. Nesting deeper than [`MAX_DEPTH`] (containers, tags and indefinite
//! strings each count one level) is refused.

use crate::json::{self, Token};
use crate::Writer;

/// Levels of nesting the reader accepts.
pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Cbor,
    MessagePack,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Cbor => "CBOR",
            Format::MessagePack => "MessagePack",
        }
    }
}

/// Why reading stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The payload ends inside an item.
    Truncated,
    /// Bytes no item can start with, or a misplaced break.
    Invalid,
    /// More than [`MAX_DEPTH`] levels.
    TooDeep,
    /// Bytes after the top-level item ([`Reader::finish`]).
    Trailing,
}

impl Error {
    pub fn text(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::Invalid => "malformed",
            Error::TooDeep => "nested too deep",
            Error::Trailing => "bytes after the item",
        }
    }
}

/// One item.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Item<'a> {
    Uint(u64),
    /// The integer -1 - n.
    Nint(u64),
    /// A definite byte string, or one chunk of an indefinite one.
    Bytes(&'a [u8]),
    /// A definite text string (or chunk); the bytes are not checked for UTF-8.
    Text(&'a [u8]),
    /// CBOR indefinite-length byte string: definite chunks follow, then `End`.
    BytesStart,
    /// CBOR indefinite-length text string: definite chunks follow, then `End`.
    TextStart,
    /// Its element count (`None`: indefinite); the elements follow, then `End`.
    Array(Option<u64>),
    /// Its pair count (`None`: indefinite); key, value, key, value..., then `End`.
    Map(Option<u64>),
    /// CBOR tag number; its one content item follows.
    Tag(u64),
    /// A float, and how many bytes it had: 2, 4 or 8.
    Float(f64, u8),
    False,
    True,
    /// CBOR null, MessagePack nil.
    Null,
    /// CBOR undefined.
    Undefined,
    /// CBOR simple value 0..19 or 32..255.
    Simple(u8),
    /// MessagePack ext: type and data.
    Ext(i8, &'a [u8]),
    /// The end of the innermost array, map or indefinite string.
    End,
    /// The top-level item is complete.
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Map,
    Tag,
    Bytes,
    Text,
}

#[derive(Clone, Copy)]
struct Frame {
    kind: Kind,
    indefinite: bool,
    left: u64, // definite: items still to come; indefinite: items seen
}

/// A reader over one payload. Plain data: clone it to look ahead.
#[derive(Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    format: Format,
    depth: usize,
    stack: [Frame; MAX_DEPTH],
    error: Option<Error>,
    done: bool,
}

/// IEEE 754 binary16 as a double (every half value is exact in a double).
pub fn half_to_f64(h: u16) -> f64 {
    let sign = (h as u64 >> 15) << 63;
    let e = (h >> 10) & 31;
    let m = (h & 0x3ff) as u64;
    if e == 0 {
        let v = m as f64 * (1.0 / 16_777_216.0); // m * 2^-24: zero and subnormals
        return if sign != 0 { -v } else { v };
    }
    if e == 31 {
        return f64::from_bits(sign | 0x7ff << 52 | m << 42);
    }
    f64::from_bits(sign | ((e as u64 + 1023 - 15) << 52) | m << 42)
}

impl<'a> Reader<'a> {
    pub fn new(format: Format, data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            format,
            depth: 0,
            stack: [Frame { kind: Kind::Array, indefinite: false, left: 0 }; MAX_DEPTH],
            error: None,
            done: false,
        }
    }

    /// Open containers, tags and indefinite strings.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The error that stopped the reader, if any.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        if self.error.is_none() {
            self.error = Some(e);
        }
        Err(self.error.unwrap_or(e))
    }

    /// An item is complete: the tags around it are too, and the enclosing container has one
    /// item fewer to go.
    fn item_done(&mut self) {
        while self.depth > 0 {
            let f = &mut self.stack[self.depth - 1];
            if f.kind == Kind::Tag {
                self.depth -= 1;
                continue;
            }
            if f.indefinite {
                f.left += 1;
            } else {
                f.left -= 1;
            }
            return;
        }
        self.done = true;
    }

    fn push(&mut self, kind: Kind, indefinite: bool, left: u64) -> Result<(), Error> {
        if self.depth == MAX_DEPTH {
            return self.fail(Error::TooDeep);
        }
        self.stack[self.depth] = Frame { kind, indefinite, left };
        self.depth += 1;
        Ok(())
    }

    fn be(&mut self, n: usize) -> Result<u64, Error> {
        if n > self.data.len() - self.pos {
            return self.fail(Error::Truncated);
        }
        let v = self.data[self.pos..self.pos + n].iter().fold(0u64, |v, &b| v << 8 | b as u64);
        self.pos += n;
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        if n > (self.data.len() - self.pos) as u64 {
            return self.fail(Error::Truncated);
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn container(&mut self, kind: Kind, n: Option<u64>) -> Result<Item<'a>, Error> {
        let rest = (self.data.len() - self.pos) as u64;
        match n {
            // Every item takes at least a byte: refusing counts beyond what is left keeps 2n
            // from wrapping.
            Some(n) if (kind == Kind::Array && n > rest) || (kind == Kind::Map && n > rest / 2) => {
                self.fail(Error::Truncated)
            }
            Some(n) => {
                self.push(kind, false, if kind == Kind::Map { 2 * n } else { n })?;
                Ok(if kind == Kind::Map { Item::Map(Some(n)) } else { Item::Array(Some(n)) })
            }
            None => {
                self.push(kind, true, 0)?;
                Ok(if kind == Kind::Map { Item::Map(None) } else { Item::Array(None) })
            }
        }
    }

    /// The next item.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Item<'a>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.done {
            return Ok(Item::Done);
        }
        if self.depth > 0 {
            let f = self.stack[self.depth - 1];
            if !f.indefinite && f.kind != Kind::Tag && f.left == 0 {
                self.depth -= 1;
                self.item_done();
                return Ok(Item::End);
            }
        }
        if self.pos >= self.data.len() {
            return self.fail(Error::Truncated);
        }
        let b = self.data[self.pos];
        self.pos += 1;
        let item = match self.format {
            Format::Cbor => self.cbor(b)?,
            Format::MessagePack => self.msgpack(b)?,
        };
        match item {
            Item::Array(_)
            | Item::Map(_)
            | Item::Tag(_)
            | Item::BytesStart
            | Item::TextStart
            | Item::End => {}
            _ => self.item_done(),
        }
        Ok(item)
    }

    fn cbor(&mut self, b: u8) -> Result<Item<'a>, Error> {
        let (major, ai) = (b >> 5, b & 31);
        if self.depth > 0 {
            let f = self.stack[self.depth - 1];
            if f.indefinite {
                if b == 0xff {
                    if f.kind == Kind::Map && f.left & 1 == 1 {
                        return self.fail(Error::Invalid);
                    }
                    self.depth -= 1;
                    self.item_done();
                    return Ok(Item::End);
                }
                // Chunks of an indefinite string are definite strings of its own type.
                if (f.kind == Kind::Bytes && (major != 2 || ai == 31))
                    || (f.kind == Kind::Text && (major != 3 || ai == 31))
                {
                    return self.fail(Error::Invalid);
                }
            }
        }
        let arg = match ai {
            0..=23 => ai as u64,
            24..=27 => self.be(1 << (ai - 24))?,
            28..=30 => return self.fail(Error::Invalid),
            _ if major < 2 || major >= 6 => return self.fail(Error::Invalid), // includes a stray break
            _ => 0,
        };
        let indefinite = ai == 31;
        Ok(match major {
            0 => Item::Uint(arg),
            1 => Item::Nint(arg),
            2 | 3 if indefinite => {
                let kind = if major == 2 { Kind::Bytes } else { Kind::Text };
                self.push(kind, true, 0)?;
                if major == 2 {
                    Item::BytesStart
                } else {
                    Item::TextStart
                }
            }
            2 => Item::Bytes(self.take(arg)?),
            3 => Item::Text(self.take(arg)?),
            4 => self.container(Kind::Array, if indefinite { None } else { Some(arg) })?,
            5 => self.container(Kind::Map, if indefinite { None } else { Some(arg) })?,
            6 => {
                self.push(Kind::Tag, false, 1)?;
                Item::Tag(arg)
            }
            _ => match ai {
                0..=19 => Item::Simple(ai),
                20 => Item::False,
                21 => Item::True,
                22 => Item::Null,
                23 => Item::Undefined,
                24 if arg < 32 => return self.fail(Error::Invalid), // RFC 8949 3.3
                24 => Item::Simple(arg as u8),
                25 => Item::Float(half_to_f64(arg as u16), 2),
                26 => Item::Float(f32::from_bits(arg as u32) as f64, 4),
                _ => Item::Float(f64::from_bits(arg), 8),
            },
        })
    }

    fn msgpack(&mut self, b: u8) -> Result<Item<'a>, Error> {
        Ok(match b {
            0x00..=0x7f => Item::Uint(b as u64),
            0x80..=0x8f => self.container(Kind::Map, Some((b & 15) as u64))?,
            0x90..=0x9f => self.container(Kind::Array, Some((b & 15) as u64))?,
            0xa0..=0xbf => Item::Text(self.take((b & 31) as u64)?),
            0xc0 => Item::Null,
            0xc2 => Item::False,
            0xc3 => Item::True,
            0xc4..=0xc6 => {
                let n = self.be(1 << (b - 0xc4))?;
                Item::Bytes(self.take(n)?)
            }
            0xd9..=0xdb => {
                let n = self.be(1 << (b - 0xd9))?;
                Item::Text(self.take(n)?)
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let n = if b <= 0xc9 { self.be(1 << (b - 0xc7))? } else { 1 << (b - 0xd4) };
                let t = self.be(1)? as u8 as i8;
                Item::Ext(t, self.take(n)?)
            }
            0xca => Item::Float(f32::from_bits(self.be(4)? as u32) as f64, 4),
            0xcb => Item::Float(f64::from_bits(self.be(8)?), 8),
            0xcc..=0xcf => Item::Uint(self.be(1 << (b - 0xcc))?),
            0xd0..=0xd3 => {
                let width = 1usize << (b - 0xd0);
                let raw = self.be(width)?;
                let shift = 64 - 8 * width as u32;
                let v = ((raw << shift) as i64) >> shift; // sign-extend
                if v < 0 {
                    Item::Nint(!(v as u64))
                } else {
                    Item::Uint(v as u64)
                }
            }
            0xdc | 0xdd => {
                let n = self.be(if b == 0xdc { 2 } else { 4 })?;
                self.container(Kind::Array, Some(n))?
            }
            0xde | 0xdf => {
                let n = self.be(if b == 0xde { 2 } else { 4 })?;
                self.container(Kind::Map, Some(n))?
            }
            0xe0..=0xff => Item::Nint((0xff - b) as u64),
            _ => return self.fail(Error::Invalid), // 0xc1 is never used
        })
    }

    /// Skips the rest of an item whose first item was just read at `depth` (the reader's
    /// depth before that read).
    pub fn skip_rest(&mut self, depth: usize) -> Result<(), Error> {
        while self.depth > depth {
            self.next()?;
        }
        Ok(())
    }

    /// Skips one whole item; returns its first item (`End` when the container ends instead).
    pub fn skip(&mut self) -> Result<Item<'a>, Error> {
        let depth = self.depth;
        let first = self.next()?;
        if first != Item::End && first != Item::Done {
            self.skip_rest(depth)?;
        }
        Ok(first)
    }

    /// `Ok` when exactly one complete top-level item was read and nothing follows it.
    pub fn finish(&mut self) -> Result<(), Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.done {
            return self.fail(Error::Truncated);
        }
        if self.pos != self.data.len() {
            return self.fail(Error::Trailing);
        }
        Ok(())
    }
}

// ---- base64 and big integers -----------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|i| i as u32)
}

impl<'a> Writer<'a> {
    /// All or nothing for a multi-part append that started at `start`.
    fn settle(&mut self, start: usize) -> &mut Self {
        if self.failed && self.len > start {
            self.len = start;
        }
        self
    }

    /// Appends `data` as base64: standard alphabet, padded (RFC 4648 section 4).
    pub fn base64(&mut self, data: &[u8]) -> &mut Self {
        let start = self.len;
        for chunk in data.chunks(3) {
            let v = chunk.iter().enumerate().fold(0u32, |v, (i, &b)| v | (b as u32) << (16 - 8 * i));
            let q = [
                B64[(v >> 18) as usize],
                B64[(v >> 12 & 63) as usize],
                if chunk.len() > 1 { B64[(v >> 6 & 63) as usize] } else { b'=' },
                if chunk.len() > 2 { B64[(v & 63) as usize] } else { b'=' },
            ];
            self.bytes(&q);
        }
        self.settle(start)
    }

    /// Appends the bytes of standard, padded base64 text; `Err` (nothing appended) for anything
    /// else or when they do not fit.
    pub fn unbase64(&mut self, text: &[u8]) -> Result<(), ()> {
        let start = self.len;
        if text.len() % 4 != 0 {
            return Err(());
        }
        let quads = text.len() / 4;
        for (i, q) in text.chunks(4).enumerate() {
            let last = i + 1 == quads;
            let pad = if last { q.iter().rev().take_while(|&&c| c == b'=').count() } else { 0 };
            if pad > 2 {
                self.len = start;
                return Err(());
            }
            let mut v = 0u32;
            for &c in &q[..4 - pad] {
                match b64_value(c) {
                    Some(x) => v = v << 6 | x,
                    None => {
                        self.len = start;
                        return Err(());
                    }
                }
            }
            v <<= 6 * pad as u32;
            self.bytes(&[(v >> 16) as u8, (v >> 8) as u8, v as u8][..3 - pad]);
        }
        if self.failed {
            self.len = start;
            return Err(());
        }
        Ok(())
    }

    /// Appends the decimal text of the big-endian unsigned integer `mag`, plus one when
    /// `add_one` (CBOR tag 3 holds -1 - n), with a '-' first when `negative`. `scratch`
    /// needs `mag.len() / 4 + 2` words, else the writer fails.
    pub fn bignum(&mut self, mag: &[u8], add_one: bool, negative: bool, scratch: &mut [u32]) -> &mut Self {
        if scratch.len() < mag.len() / 4 + 2 {
            self.failed = true;
            return self;
        }
        let mut limbs = 0; // base 1e9, least significant first
        for &byte in mag {
            let mut carry = byte as u64;
            for limb in scratch[..limbs].iter_mut() {
                let t = *limb as u64 * 256 + carry;
                *limb = (t % 1_000_000_000) as u32;
                carry = t / 1_000_000_000;
            }
            while carry > 0 {
                scratch[limbs] = (carry % 1_000_000_000) as u32;
                limbs += 1;
                carry /= 1_000_000_000;
            }
        }
        if add_one {
            let mut k = 0;
            loop {
                if k == limbs {
                    scratch[limbs] = 0;
                    limbs += 1;
                }
                scratch[k] += 1;
                if scratch[k] < 1_000_000_000 {
                    break;
                }
                scratch[k] = 0;
                k += 1;
            }
        }
        let start = self.len;
        if negative && limbs > 0 {
            self.byte(b'-');
        }
        if limbs == 0 {
            self.byte(b'0');
        }
        for k in (0..limbs).rev() {
            let mut d = [0u8; 9];
            let mut v = scratch[k];
            for j in (0..9).rev() {
                d[j] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            let skip = if k == limbs - 1 { d.iter().take(8).take_while(|&&c| c == b'0').count() } else { 0 };
            self.bytes(&d[skip..]);
        }
        self.settle(start)
    }

    /// Appends an integer of -2^64 .. 2^64-1 given as a reader's `Uint(n)` or `Nint(n)`.
    pub fn bin_int(&mut self, negative: bool, n: u64) -> &mut Self {
        let mut scratch = [0u32; 4];
        self.bignum(&n.to_be_bytes(), negative, negative, &mut scratch)
    }
}

// ---- CBOR writer -----------------------------------------------------------------------------

/// The half-precision bits of v when v is exactly a binary16 value.
fn to_half(v: f64) -> Option<u16> {
    let sign: u16 = if v.is_sign_negative() { 0x8000 } else { 0 };
    let a = f64::from_bits(v.to_bits() & !(1 << 63));
    if v.is_nan() {
        return Some(0x7e00);
    }
    if v.is_infinite() {
        return Some(sign | 0x7c00);
    }
    if a < 1.0 / 16384.0 {
        let t = a * 16_777_216.0; // exact: a power-of-two scale
        return if t == (t as u32) as f64 { Some(sign | t as u16) } else { None };
    }
    if a > 65504.0 {
        return None;
    }
    let (mut e, mut p) = (-14i32, 1.0 / 16384.0);
    while a >= p * 2.0 {
        p *= 2.0;
        e += 1;
    }
    let m = (a / p - 1.0) * 1024.0;
    if m != (m as u32) as f64 {
        return None;
    }
    Some(sign | ((e + 15) as u16) << 10 | m as u16)
}

impl<'a> Writer<'a> {
    /// An item head in its shortest form (RFC 8949 4.2.1, preferred serialization).
    pub fn cbor_head(&mut self, major: u8, arg: u64) -> &mut Self {
        let m = major << 5;
        if arg < 24 {
            return self.byte(m | arg as u8);
        }
        let (code, width) = match arg {
            0..=0xff => (24, 1),
            0x100..=0xffff => (25, 2),
            0x1_0000..=0xffff_ffff => (26, 4),
            _ => (27, 8),
        };
        let mut h = [0u8; 9];
        h[0] = m | code;
        h[1..1 + width].copy_from_slice(&arg.to_be_bytes()[8 - width..]);
        self.bytes(&h[..1 + width])
    }

    pub fn cbor_uint(&mut self, v: u64) -> &mut Self {
        self.cbor_head(0, v)
    }

    /// The integer -1 - v.
    pub fn cbor_nint(&mut self, v: u64) -> &mut Self {
        self.cbor_head(1, v)
    }

    pub fn cbor_int(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.cbor_head(1, !(v as u64))
        } else {
            self.cbor_head(0, v as u64)
        }
    }

    pub fn cbor_bytes(&mut self, data: &[u8]) -> &mut Self {
        let start = self.len;
        self.cbor_head(2, data.len() as u64).bytes(data).settle(start)
    }

    /// A text string; the bytes are written as they are.
    pub fn cbor_text(&mut self, text: &[u8]) -> &mut Self {
        let start = self.len;
        self.cbor_head(3, text.len() as u64).bytes(text).settle(start)
    }

    pub fn cbor_array(&mut self, n: u64) -> &mut Self {
        self.cbor_head(4, n)
    }

    pub fn cbor_map(&mut self, pairs: u64) -> &mut Self {
        self.cbor_head(5, pairs)
    }

    pub fn cbor_tag(&mut self, tag: u64) -> &mut Self {
        self.cbor_head(6, tag)
    }

    pub fn cbor_bool(&mut self, v: bool) -> &mut Self {
        self.byte(if v { 0xf5 } else { 0xf4 })
    }

    pub fn cbor_null(&mut self) -> &mut Self {
        self.byte(0xf6)
    }

    pub fn cbor_undefined(&mut self) -> &mut Self {
        self.byte(0xf7)
    }

    /// Indefinite-length array (4), map (5), byte (2) or text (3) string; close it with
    /// [`Writer::cbor_break`].
    pub fn cbor_indefinite(&mut self, major: u8) -> &mut Self {
        self.byte(major << 5 | 31)
    }

    pub fn cbor_break(&mut self) -> &mut Self {
        self.byte(0xff)
    }

    /// Simple values 0..19 and 32..255 (20..23 are false/true/null/undefined, 24..31 are
    /// reserved: the writer fails).
    pub fn cbor_simple(&mut self, v: u8) -> &mut Self {
        match v {
            0..=19 => self.byte(0xe0 | v),
            20..=31 => {
                self.failed = true;
                self
            }
            _ => self.bytes(&[0xf8, v]),
        }
    }

    /// Always the 9-byte double form.
    pub fn cbor_float64(&mut self, v: f64) -> &mut Self {
        let mut s = [0xfbu8; 9];
        s[1..].copy_from_slice(&v.to_bits().to_be_bytes());
        self.bytes(&s)
    }

    /// The shortest of half, single and double that holds v exactly; NaN as the half 0x7e00
    /// (RFC 8949 4.2.2).
    pub fn cbor_float(&mut self, v: f64) -> &mut Self {
        if let Some(h) = to_half(v) {
            let [a, b] = h.to_be_bytes();
            return self.bytes(&[0xf9, a, b]);
        }
        let f = v as f32;
        if f as f64 == v {
            let mut s = [0xfau8; 5];
            s[1..].copy_from_slice(&f.to_bits().to_be_bytes());
            return self.bytes(&s);
        }
        self.cbor_float64(v)
    }

    /// A JSON integer's text (`-?[0-9]+`) as CBOR: an integer within -2^64 .. 2^64-1, else a
    /// bignum (tag 2, or tag 3 holding -1 - n) without leading zero bytes. `scratch` needs
    /// `digits.len() + 1` bytes. `Err` for other text or a short scratch; the writer fails
    /// when the item does not fit.
    pub fn cbor_decimal(&mut self, digits: &[u8], scratch: &mut [u8]) -> Result<(), ()> {
        let (neg, body) = match digits.first() {
            Some(b'-') => (true, &digits[1..]),
            _ => (false, digits),
        };
        if body.is_empty() || scratch.len() < digits.len() + 1 {
            return Err(());
        }
        let mut len = 0; // scratch: little-endian base 256
        for &c in body {
            if !c.is_ascii_digit() {
                return Err(());
            }
            let mut carry = (c - b'0') as u32;
            for byte in scratch[..len].iter_mut() {
                let t = *byte as u32 * 10 + carry;
                *byte = t as u8;
                carry = t >> 8;
            }
            if carry > 0 {
                scratch[len] = carry as u8;
                len += 1;
            }
        }
        while len > 0 && scratch[len - 1] == 0 {
            len -= 1;
        }
        if neg {
            if len == 0 {
                self.cbor_uint(0); // -0
                return Ok(());
            }
            for byte in scratch[..len].iter_mut() {
                // n - 1, n >= 1
                let was = *byte;
                *byte = was.wrapping_sub(1);
                if was != 0 {
                    break;
                }
            }
            while len > 0 && scratch[len - 1] == 0 {
                len -= 1;
            }
        }
        if len <= 8 {
            let v = scratch[..len].iter().rev().fold(0u64, |v, &b| v << 8 | b as u64);
            self.cbor_head(if neg { 1 } else { 0 }, v);
            return Ok(());
        }
        let start = self.len;
        self.cbor_tag(if neg { 3 } else { 2 }).cbor_head(2, len as u64);
        for &byte in scratch[..len].iter().rev() {
            self.byte(byte);
        }
        self.settle(start);
        Ok(())
    }
}

// ---- MessagePack writer ----------------------------------------------------------------------

impl<'a> Writer<'a> {
    fn mp_head(&mut self, code: u8, v: u64, width: usize) -> &mut Self {
        let mut h = [0u8; 9];
        h[0] = code;
        h[1..1 + width].copy_from_slice(&v.to_be_bytes()[8 - width..]);
        self.bytes(&h[..1 + width])
    }

    pub fn msgpack_nil(&mut self) -> &mut Self {
        self.byte(0xc0)
    }

    pub fn msgpack_bool(&mut self, v: bool) -> &mut Self {
        self.byte(if v { 0xc3 } else { 0xc2 })
    }

    /// Integers in their shortest form.
    pub fn msgpack_uint(&mut self, v: u64) -> &mut Self {
        match v {
            0..=0x7f => self.byte(v as u8),
            0x80..=0xff => self.mp_head(0xcc, v, 1),
            0x100..=0xffff => self.mp_head(0xcd, v, 2),
            0x1_0000..=0xffff_ffff => self.mp_head(0xce, v, 4),
            _ => self.mp_head(0xcf, v, 8),
        }
    }

    pub fn msgpack_int(&mut self, v: i64) -> &mut Self {
        match v {
            0.. => self.msgpack_uint(v as u64),
            -32..=-1 => self.byte(v as i8 as u8),
            -128..=-33 => self.mp_head(0xd0, v as u64, 1),
            -32768..=-129 => self.mp_head(0xd1, v as u64, 2),
            -2_147_483_648..=-32769 => self.mp_head(0xd2, v as u64, 4),
            _ => self.mp_head(0xd3, v as u64, 8),
        }
    }

    pub fn msgpack_float64(&mut self, v: f64) -> &mut Self {
        self.mp_head(0xcb, v.to_bits(), 8)
    }

    pub fn msgpack_float32(&mut self, v: f32) -> &mut Self {
        self.mp_head(0xca, v.to_bits() as u64, 4)
    }

    fn mp_string(&mut self, text: bool, data: &[u8]) -> &mut Self {
        let start = self.len;
        let n = data.len() as u64;
        if text && n < 32 {
            self.byte(0xa0 | n as u8);
        } else if n <= 0xff {
            self.mp_head(if text { 0xd9 } else { 0xc4 }, n, 1);
        } else if n <= 0xffff {
            self.mp_head(if text { 0xda } else { 0xc5 }, n, 2);
        } else {
            self.mp_head(if text { 0xdb } else { 0xc6 }, n, 4);
        }
        self.bytes(data).settle(start)
    }

    /// A str; the bytes are written as they are.
    pub fn msgpack_str(&mut self, text: &[u8]) -> &mut Self {
        self.mp_string(true, text)
    }

    pub fn msgpack_bin(&mut self, data: &[u8]) -> &mut Self {
        self.mp_string(false, data)
    }

    pub fn msgpack_array(&mut self, n: u32) -> &mut Self {
        match n {
            0..=15 => self.byte(0x90 | n as u8),
            16..=0xffff => self.mp_head(0xdc, n as u64, 2),
            _ => self.mp_head(0xdd, n as u64, 4),
        }
    }

    pub fn msgpack_map(&mut self, pairs: u32) -> &mut Self {
        match pairs {
            0..=15 => self.byte(0x80 | pairs as u8),
            16..=0xffff => self.mp_head(0xde, pairs as u64, 2),
            _ => self.mp_head(0xdf, pairs as u64, 4),
        }
    }

    /// ext of type -128..127 (-1 is the timestamp); fixext for 1, 2, 4, 8 and 16 bytes.
    pub fn msgpack_ext(&mut self, ext_type: i8, data: &[u8]) -> &mut Self {
        let start = self.len;
        let n = data.len() as u64;
        match n {
            1 => self.byte(0xd4),
            2 => self.byte(0xd5),
            4 => self.byte(0xd6),
            8 => self.byte(0xd7),
            16 => self.byte(0xd8),
            0..=0xff => self.mp_head(0xc7, n, 1),
            0x100..=0xffff => self.mp_head(0xc8, n, 2),
            _ => self.mp_head(0xc9, n, 4),
        };
        self.byte(ext_type as u8).bytes(data).settle(start)
    }
}

// ---- conversion to JSON ----------------------------------------------------------------------

/// Scratch space for [`to_json`] and [`from_json`]: joined indefinite strings, decoded JSON
/// strings and base64, big integers. Give it the payload's size.
pub struct Scratch<'s> {
    pub bytes: &'s mut [u8],
    pub words: &'s mut [u32],
}

type Why = &'static str;

fn utf8(s: &[u8]) -> bool {
    core::str::from_utf8(s).is_ok()
}

struct ToJson<'a, 'w, 's> {
    r: Reader<'a>,
    out: &'w mut Writer<'s>,
}

impl<'a, 'w, 's> ToJson<'a, 'w, 's> {
    fn next(&mut self) -> Result<Item<'a>, Why> {
        self.r.next().map_err(Error::text)
    }

    /// The chunks of an indefinite string joined in scratch, and whether each chunk is valid
    /// UTF-8 (RFC 8949 3.2.3: a code point never spans two chunks).
    fn gather<'x>(&mut self, scratch: &'x mut [u8]) -> Result<(&'x [u8], bool), Why> {
        let mut n = 0;
        let mut valid = true;
        loop {
            match self.next()? {
                Item::End => break,
                Item::Bytes(c) | Item::Text(c) => {
                    if c.len() > scratch.len() - n {
                        return Err("string too long");
                    }
                    valid &= utf8(c);
                    scratch[n..n + c.len()].copy_from_slice(c);
                    n += c.len();
                }
                _ => return Err("malformed"),
            }
        }
        Ok((&scratch[..n], valid))
    }

    fn string(&mut self, s: &[u8], text: bool, valid: bool) {
        if text && valid {
            self.out.json_string(s);
        } else {
            self.out.str(if text { "{\"$str_b64\":\"" } else { "{\"$bytes\":\"" }).base64(s).str("\"}");
        }
    }

    /// Whether every key of the map whose start was just read is valid UTF-8 text.
    fn text_keys(&self) -> Result<bool, Why> {
        let mut peek = self.r.clone();
        loop {
            match peek.next().map_err(Error::text)? {
                Item::End => return Ok(true),
                Item::Text(k) if utf8(k) => {}
                Item::TextStart => loop {
                    match peek.next().map_err(Error::text)? {
                        Item::End => break,
                        Item::Text(c) if utf8(c) => {}
                        _ => return Ok(false),
                    }
                },
                _ => return Ok(false),
            }
            peek.skip().map_err(Error::text)?;
        }
    }

    fn value(&mut self, s: &mut Scratch) -> Result<(), Why> {
        let item = self.next()?;
        self.item(item, s)
    }

    fn item(&mut self, item: Item<'a>, s: &mut Scratch) -> Result<(), Why> {
        match item {
            Item::Uint(n) => {
                self.out.bin_int(false, n);
            }
            Item::Nint(n) => {
                self.out.bin_int(true, n);
            }
            Item::Float(v, _) => float_json(self.out, v),
            Item::False => {
                self.out.str("false");
            }
            Item::True => {
                self.out.str("true");
            }
            Item::Null => {
                self.out.str("null");
            }
            Item::Undefined => {
                self.out.str("{\"$undefined\":true}");
            }
            Item::Simple(n) => {
                self.out.str("{\"$simple\":").int(n as i64).byte(b'}');
            }
            Item::Bytes(b) => self.string(b, false, true),
            Item::Text(t) => self.string(t, true, utf8(t)),
            Item::BytesStart | Item::TextStart => {
                let (joined, valid) = self.gather(s.bytes)?;
                self.string(joined, item == Item::TextStart, valid);
            }
            Item::Ext(t, data) => {
                self.out.str("{\"$ext\":").int(t as i64).str(",\"data\":\"").base64(data).str("\"}");
            }
            Item::Array(_) => {
                self.out.byte(b'[');
                let mut first = true;
                loop {
                    let e = self.next()?;
                    if e == Item::End {
                        break;
                    }
                    if !first {
                        self.out.byte(b',');
                    }
                    first = false;
                    self.item(e, s)?;
                }
                self.out.byte(b']');
            }
            Item::Map(_) => {
                let object = self.text_keys()?;
                self.out.str(if object { "{" } else { "{\"$map\":[" });
                let mut first = true;
                loop {
                    let k = self.next()?;
                    if k == Item::End {
                        break;
                    }
                    if !first {
                        self.out.byte(b',');
                    }
                    first = false;
                    if object {
                        match k {
                            Item::Text(t) => {
                                self.out.json_string(t);
                            }
                            _ => {
                                let (joined, _) = self.gather(s.bytes)?;
                                self.out.json_string(joined);
                            }
                        }
                        self.out.byte(b':');
                    } else {
                        self.out.byte(b'[');
                        self.item(k, s)?;
                        self.out.byte(b',');
                    }
                    self.value(s)?;
                    if !object {
                        self.out.byte(b']');
                    }
                }
                self.out.str(if object { "}" } else { "]}" });
            }
            Item::Tag(tag @ (2 | 3)) => {
                let mag: &[u8] = match self.next()? {
                    Item::Bytes(b) => b,
                    Item::BytesStart => self.gather(s.bytes)?.0,
                    _ => return Err("a bignum tag without a byte string"),
                };
                self.out.bignum(mag, tag == 3, tag == 3, s.words);
            }
            Item::Tag(tag) => {
                self.out.str("{\"$tag\":").bin_int(false, tag).str(",\"value\":");
                self.value(s)?;
                self.out.byte(b'}');
            }
            Item::End | Item::Done => return Err("malformed"),
        }
        Ok(())
    }
}

fn float_json(out: &mut Writer, v: f64) {
    if v.is_nan() {
        out.str("{\"$float\":\"NaN\"}");
    } else if v.is_infinite() {
        out.str(if v > 0.0 { "{\"$float\":\"Infinity\"}" } else { "{\"$float\":\"-Infinity\"}" });
    } else {
        json::write_double(out, v);
    }
}

/// One CBOR or MessagePack item (the whole payload) as JSON, with the mapping of
/// docs/binary-payloads.md. `Err` says why it is refused: malformed, truncated, nested deeper
/// than [`MAX_DEPTH`], bytes after the item, or a string or bignum beyond the scratch space.
/// The writer fails when the JSON does not fit.
pub fn to_json(format: Format, payload: &[u8], out: &mut Writer, scratch: &mut Scratch) -> Result<(), Why> {
    let mut c = ToJson { r: Reader::new(format, payload), out };
    let first = c.next()?;
    c.item(first, scratch)?;
    match c.next()? {
        Item::Done => {}
        _ => return Err("malformed"),
    }
    c.r.finish().map_err(Error::text)
}

// ---- conversion from JSON --------------------------------------------------------------------

struct FromJson<'a, 'w, 's> {
    j: json::Reader<'a>,
    out: &'w mut Writer<'s>,
    format: Format,
}

const MALFORMED: Why = "malformed JSON";

fn key_is(t: &Token, name: &str) -> bool {
    matches!(t, Token::Key { raw, escapes: false } if *raw == name.as_bytes())
}

/// An integer token as sign and magnitude, if it fits 64 bits.
fn int_parts(t: &Token) -> Option<(bool, u64)> {
    let raw = match t {
        Token::Number { raw, float: false } => *raw,
        _ => return None,
    };
    let (neg, body) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        _ => (false, raw),
    };
    let mut v: u64 = 0;
    for &c in body {
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some((neg, v))
}

fn int_in(t: &Token, lo: i64, hi: u64) -> Option<i128> {
    let (neg, mag) = int_parts(t)?;
    let v = if neg { -(mag as i128) } else { mag as i128 };
    if v < lo as i128 || v > hi as i128 {
        None
    } else {
        Some(v)
    }
}

impl<'a, 'w, 's> FromJson<'a, 'w, 's> {
    fn next(&mut self) -> Result<Token<'a>, Why> {
        self.j.next().map_err(|_| MALFORMED)
    }

    fn expect(&mut self, want: Token) -> Result<(), Why> {
        if self.next()? == want {
            Ok(())
        } else {
            Err(MALFORMED)
        }
    }

    fn cbor(&self) -> bool {
        self.format == Format::Cbor
    }

    fn float(&mut self, v: f64) {
        if self.cbor() {
            self.out.cbor_float(v);
        } else {
            self.out.msgpack_float64(v);
        }
    }

    fn array_head(&mut self, n: usize) {
        if self.cbor() {
            self.out.cbor_array(n as u64);
        } else {
            self.out.msgpack_array(n as u32);
        }
    }

    fn map_head(&mut self, n: usize) {
        if self.cbor() {
            self.out.cbor_map(n as u64);
        } else {
            self.out.msgpack_map(n as u32);
        }
    }

    fn string(&mut self, raw: &[u8], s: &mut Scratch) -> Result<(), Why> {
        let mut g = Writer::new(s.bytes);
        json::unescape(&mut g, raw).map_err(|_| "a string with a lone surrogate")?;
        let text = g.as_bytes();
        if !utf8(text) {
            return Err("a string that is not UTF-8");
        }
        if self.cbor() {
            self.out.cbor_text(text);
        } else {
            self.out.msgpack_str(text);
        }
        Ok(())
    }

    fn number(&mut self, raw: &[u8], float: bool, s: &mut Scratch) -> Result<(), Why> {
        if float {
            let v = json::parse_double(raw).ok_or("a number beyond the double range")?;
            self.float(v);
            return Ok(());
        }
        if self.cbor() {
            let out = &mut *self.out;
            return match out.cbor_decimal(raw, s.bytes) {
                Err(()) if !out.failed() => Err("an integer too long"),
                _ => Ok(()),
            };
        }
        match int_parts(&Token::Number { raw, float: false }) {
            Some((false, v)) => {
                self.out.msgpack_uint(v);
            }
            Some((true, v)) if v <= 1 << 63 => {
                self.out.msgpack_int((v as i64).wrapping_neg());
            }
            _ => return Err("an integer beyond the MessagePack range"),
        }
        Ok(())
    }

    fn value(&mut self, s: &mut Scratch) -> Result<(), Why> {
        let t = self.next()?;
        if t == Token::ArrayEnd || t == Token::ObjectEnd {
            return Err(MALFORMED);
        }
        self.token(t, s)
    }

    fn token(&mut self, t: Token<'a>, s: &mut Scratch) -> Result<(), Why> {
        match t {
            Token::Null => {
                if self.cbor() {
                    self.out.cbor_null();
                } else {
                    self.out.msgpack_nil();
                }
            }
            Token::True | Token::False => {
                if self.cbor() {
                    self.out.cbor_bool(t == Token::True);
                } else {
                    self.out.msgpack_bool(t == Token::True);
                }
            }
            Token::Number { raw, float } => self.number(raw, float, s)?,
            Token::Str { raw, .. } => self.string(raw, s)?,
            Token::Array => {
                let n = self.j.count().map_err(|_| MALFORMED)?;
                self.array_head(n);
                for _ in 0..n {
                    self.value(s)?;
                }
                self.expect(Token::ArrayEnd)?;
            }
            Token::Object => {
                if self.special(s)? {
                    return Ok(());
                }
                let n = self.j.count().map_err(|_| MALFORMED)?;
                self.map_head(n);
                for _ in 0..n {
                    match self.next()? {
                        Token::Key { raw, .. } => self.string(raw, s)?,
                        _ => return Err(MALFORMED),
                    }
                    self.value(s)?;
                }
                self.expect(Token::ObjectEnd)?;
            }
            _ => return Err(MALFORMED),
        }
        Ok(())
    }

    /// The value token of member `name` of the object whose start was just read, found on a
    /// copy.
    fn member(&self, name: &str) -> Result<Token<'a>, Why> {
        let mut c = self.j.clone();
        loop {
            let k = c.next().map_err(|_| MALFORMED)?;
            if !matches!(k, Token::Key { .. }) {
                return Err(MALFORMED);
            }
            let v = c.next().map_err(|_| MALFORMED)?;
            if key_is(&k, name) {
                return Ok(v);
            }
            c.skip_rest(v).map_err(|_| MALFORMED)?;
        }
    }

    fn base64(&mut self, v: Token, s: &mut Scratch, put: fn(&mut Writer, &[u8])) -> Result<(), Why> {
        let raw = match v {
            Token::Str { raw, escapes: false } => raw,
            _ => return Err("bad base64"),
        };
        let mut g = Writer::new(s.bytes);
        g.unbase64(raw).map_err(|_| "bad base64")?;
        put(self.out, g.as_bytes());
        Ok(())
    }

    /// The special objects of the mapping: `Ok(true)` when the object just started is one
    /// (converted), `Ok(false)` for a plain object.
    fn special(&mut self, s: &mut Scratch) -> Result<bool, Why> {
        let n = self.j.count().map_err(|_| MALFORMED)?;
        if n == 0 || n > 2 {
            return Ok(false);
        }
        let mut c = self.j.clone();
        let k = c.next().map_err(|_| MALFORMED)?;
        let cbor = self.cbor();
        if n == 1 {
            const ONE: [&str; 6] = ["$float", "$bytes", "$str_b64", "$map", "$undefined", "$simple"];
            let which = match ONE.iter().position(|name| key_is(&k, name)) {
                Some(i) => i,
                None => return Ok(false),
            };
            self.j = c;
            let v = self.next()?;
            match which {
                0 => match v {
                    Token::Str { raw: b"NaN", .. } => self.float(f64::NAN),
                    Token::Str { raw: b"Infinity", .. } => self.float(f64::INFINITY),
                    Token::Str { raw: b"-Infinity", .. } => self.float(f64::NEG_INFINITY),
                    _ => return Err("a $float that is not NaN, Infinity or -Infinity"),
                },
                1 if cbor => self.base64(v, s, |w, b| {
                    w.cbor_bytes(b);
                })?,
                1 => self.base64(v, s, |w, b| {
                    w.msgpack_bin(b);
                })?,
                2 if cbor => self.base64(v, s, |w, b| {
                    w.cbor_text(b);
                })?,
                2 => self.base64(v, s, |w, b| {
                    w.msgpack_str(b);
                })?,
                3 => {
                    if v != Token::Array {
                        return Err("a $map that is not an array");
                    }
                    let pairs = self.j.count().map_err(|_| MALFORMED)?;
                    self.map_head(pairs);
                    for _ in 0..pairs {
                        self.expect(Token::Array).map_err(|_| "a $map entry that is not a pair")?;
                        self.value(s)?;
                        self.value(s)?;
                        self.expect(Token::ArrayEnd).map_err(|_| "a $map entry that is not a pair")?;
                    }
                    self.expect(Token::ArrayEnd)?;
                }
                4 if !cbor => return Err("$undefined has no MessagePack encoding"),
                4 if v != Token::True => return Err("an $undefined that is not true"),
                4 => {
                    self.out.cbor_undefined();
                }
                _ if !cbor => return Err("$simple has no MessagePack encoding"),
                _ => match int_in(&v, 0, 255) {
                    Some(n) if !(20..32).contains(&n) => {
                        self.out.cbor_simple(n as u8);
                    }
                    _ => return Err("a bad $simple"),
                },
            }
            self.expect(Token::ObjectEnd)?;
            return Ok(true);
        }
        // two members: {"$tag": N, "value": ...} or {"$ext": T, "data": "..."}, either order
        let v = c.next().map_err(|_| MALFORMED)?;
        c.skip_rest(v).map_err(|_| MALFORMED)?;
        let k2 = c.next().map_err(|_| MALFORMED)?;
        let pair = |a: &str, b: &str| (key_is(&k, a) && key_is(&k2, b)) || (key_is(&k, b) && key_is(&k2, a));
        let (tag, ext) = (pair("$tag", "value"), pair("$ext", "data"));
        if !tag && !ext {
            return Ok(false);
        }
        if tag {
            if !cbor {
                return Err("$tag has no MessagePack encoding");
            }
            let n = int_in(&self.member("$tag")?, 0, u64::MAX).ok_or("a $tag that is not 0..2^64-1")?;
            self.out.cbor_tag(n as u64);
            for _ in 0..2 {
                let k = self.next()?;
                if key_is(&k, "value") {
                    self.value(s)?;
                } else {
                    self.next()?;
                }
            }
            self.expect(Token::ObjectEnd)?;
            return Ok(true);
        }
        if cbor {
            return Err("$ext has no CBOR encoding");
        }
        let t = int_in(&self.member("$ext")?, -128, 127).ok_or("an $ext type that is not -128..127")?;
        let data = match self.member("data")? {
            Token::Str { raw, escapes: false } => raw,
            _ => return Err("bad base64"),
        };
        let mut g = Writer::new(s.bytes);
        g.unbase64(data).map_err(|_| "bad base64")?;
        self.out.msgpack_ext(t as i8, g.as_bytes());
        self.j.skip_rest(Token::Object).map_err(|_| MALFORMED)?;
        Ok(true)
    }
}

/// One JSON document as CBOR or MessagePack, with the mapping of docs/binary-payloads.md.
/// `Err` says why it is refused: malformed JSON, nesting deeper than [`json::MAX_DEPTH`], or
/// a value the format cannot hold. The writer fails when the result does not fit.
pub fn from_json(format: Format, text: &[u8], out: &mut Writer, scratch: &mut Scratch) -> Result<(), Why> {
    let mut c = FromJson { j: json::Reader::new(text), out, format };
    let first = c.next()?;
    c.token(first, scratch)?;
    c.expect(Token::Eof)
}

//! A pull tokenizer for whole JSON documents (RFC 8259), the counterpart of the C SDK's
//! `edged_json.h`: [`Reader::next`] returns one token at a time and checks the grammar as it
//! goes (commas, colons, matching brackets, escapes, number syntax, nothing after the
//! document), refusing nesting deeper than [`MAX_DEPTH`]. Strings come back as written between
//! their quotes; [`unescape`] decodes them. [`write_double`] writes a float as the shortest
//! text that reads back to it (exact integer arithmetic, the C SDK's algorithm);
//! [`parse_double`] reads one (core's correctly rounded parser).

use crate::Writer;

/// Containers deeper than this are refused.
pub const MAX_DEPTH: usize = 32;

/// One token. `Key` and `Str` hold the text between the quotes (escapes as written, `escapes`
/// set when there are any); `Number` the number as written (`float` when it has a `.` or an
/// exponent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Token<'a> {
    Object,
    ObjectEnd,
    Array,
    ArrayEnd,
    Key { raw: &'a [u8], escapes: bool },
    Str { raw: &'a [u8], escapes: bool },
    Number { raw: &'a [u8], float: bool },
    True,
    False,
    Null,
    /// The document is complete and nothing but whitespace follows it.
    Eof,
}

/// The text is not one JSON document, or nests deeper than [`MAX_DEPTH`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Malformed;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Value,
    ValueOrEnd,
    Key,
    KeyOrEnd,
    After,
    Done,
}

/// Plain data: clone it to look ahead (count an array's elements, find a member) and carry on
/// with the original.
#[derive(Clone)]
pub struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
    kinds: u64, // bit d set: the container at depth d is an object
    depth: usize,
    state: State,
    failed: bool,
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

fn hex(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// From just after the opening quote: the index of the closing quote, and whether there were
/// escapes.
fn string_end(t: &[u8], mut p: usize) -> Option<(usize, bool)> {
    let mut escapes = false;
    while p < t.len() {
        match t[p] {
            b'"' => return Some((p, escapes)),
            0..=0x1f => return None,
            b'\\' => {
                escapes = true;
                p += 1;
                match *t.get(p)? {
                    b'u' => {
                        if t.len() - p < 5 || !t[p + 1..p + 5].iter().all(|&c| hex(c).is_some()) {
                            return None;
                        }
                        p += 4;
                    }
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    _ => return None,
                }
            }
            _ => {}
        }
        p += 1;
    }
    None
}

fn digits(t: &[u8], mut p: usize) -> usize {
    while p < t.len() && t[p].is_ascii_digit() {
        p += 1;
    }
    p
}

/// The end of the JSON number starting at p, and whether it is a float.
fn number_end(t: &[u8], mut p: usize) -> Option<(usize, bool)> {
    let mut float = false;
    if p < t.len() && t[p] == b'-' {
        p += 1;
    }
    match t.get(p)? {
        b'0' => p += 1,
        b'1'..=b'9' => p = digits(t, p),
        _ => return None,
    }
    if p < t.len() && t[p] == b'.' {
        float = true;
        p += 1;
        if !t.get(p)?.is_ascii_digit() {
            return None;
        }
        p = digits(t, p);
    }
    if p < t.len() && (t[p] == b'e' || t[p] == b'E') {
        float = true;
        p += 1;
        if p < t.len() && (t[p] == b'+' || t[p] == b'-') {
            p += 1;
        }
        if !t.get(p)?.is_ascii_digit() {
            return None;
        }
        p = digits(t, p);
    }
    Some((p, float))
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Reader { text, pos: 0, kinds: 0, depth: 0, state: State::Value, failed: false }
    }

    /// How many containers are open.
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn fail<T>(&mut self) -> Result<T, Malformed> {
        self.failed = true;
        Err(Malformed)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.text.len() && is_ws(self.text[self.pos]) {
            self.pos += 1;
        }
    }

    fn close(&mut self, object: bool) -> Token<'a> {
        self.pos += 1;
        self.depth -= 1;
        self.state = if self.depth == 0 { State::Done } else { State::After };
        if object {
            Token::ObjectEnd
        } else {
            Token::ArrayEnd
        }
    }

    /// The next token.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Token<'a>, Malformed> {
        if self.failed {
            return Err(Malformed);
        }
        let t = self.text;
        loop {
            self.skip_ws();
            if self.state == State::Done {
                return if self.pos == t.len() { Ok(Token::Eof) } else { self.fail() };
            }
            if self.pos == t.len() {
                return self.fail();
            }
            let c = t[self.pos];
            let in_object = self.depth > 0 && (self.kinds >> (self.depth - 1)) & 1 == 1;
            match self.state {
                State::After => {
                    if c == b',' {
                        self.pos += 1;
                        self.state = if in_object { State::Key } else { State::Value };
                        continue;
                    }
                    if c != if in_object { b'}' } else { b']' } {
                        return self.fail();
                    }
                    return Ok(self.close(in_object));
                }
                State::ValueOrEnd if c == b']' => return Ok(self.close(false)),
                State::KeyOrEnd if c == b'}' => return Ok(self.close(true)),
                State::Key | State::KeyOrEnd => {
                    if c != b'"' {
                        return self.fail();
                    }
                    let (q, escapes) = match string_end(t, self.pos + 1) {
                        Some(found) => found,
                        None => return self.fail(),
                    };
                    let raw = &t[self.pos + 1..q];
                    self.pos = q + 1;
                    self.skip_ws();
                    if self.pos == t.len() || t[self.pos] != b':' {
                        return self.fail();
                    }
                    self.pos += 1;
                    self.state = State::Value;
                    return Ok(Token::Key { raw, escapes });
                }
                _ => {}
            }
            // a value
            if c == b'{' || c == b'[' {
                if self.depth == MAX_DEPTH {
                    return self.fail();
                }
                if c == b'{' {
                    self.kinds |= 1 << self.depth;
                } else {
                    self.kinds &= !(1 << self.depth);
                }
                self.depth += 1;
                self.pos += 1;
                self.state = if c == b'{' { State::KeyOrEnd } else { State::ValueOrEnd };
                return Ok(if c == b'{' { Token::Object } else { Token::Array });
            }
            let token = if c == b'"' {
                let (q, escapes) = match string_end(t, self.pos + 1) {
                    Some(found) => found,
                    None => return self.fail(),
                };
                let raw = &t[self.pos + 1..q];
                self.pos = q + 1;
                Token::Str { raw, escapes }
            } else if c == b'-' || c.is_ascii_digit() {
                let (q, float) = match number_end(t, self.pos) {
                    Some(found) => found,
                    None => return self.fail(),
                };
                let raw = &t[self.pos..q];
                self.pos = q;
                Token::Number { raw, float }
            } else if t[self.pos..].starts_with(b"true") {
                self.pos += 4;
                Token::True
            } else if t[self.pos..].starts_with(b"false") {
                self.pos += 5;
                Token::False
            } else if t[self.pos..].starts_with(b"null") {
                self.pos += 4;
                Token::Null
            } else {
                return self.fail();
            };
            // A scalar ends at a delimiter: "12ab" or "truex" is not JSON.
            if let Some(&d) = t.get(self.pos) {
                if !(d == b',' || d == b'}' || d == b']' || is_ws(d)) {
                    return self.fail();
                }
            }
            self.state = if self.depth == 0 { State::Done } else { State::After };
            return Ok(token);
        }
    }

    /// Skips the rest of a value whose first token was `first`: nothing for a scalar, up to
    /// the matching end for a container.
    pub fn skip_rest(&mut self, first: Token) -> Result<(), Malformed> {
        if first != Token::Object && first != Token::Array {
            return Ok(());
        }
        let depth = self.depth - 1;
        while self.depth > depth {
            self.next()?;
        }
        Ok(())
    }

    /// The number of elements of the array, or members of the object, whose start was just
    /// read; counted on a copy, so the reader does not move.
    pub fn count(&self) -> Result<usize, Malformed> {
        let mut c = self.clone();
        let mut n = 0;
        loop {
            let mut t = c.next()?;
            match t {
                Token::ArrayEnd | Token::ObjectEnd => return Ok(n),
                Token::Key { .. } => t = c.next()?,
                _ => {}
            }
            c.skip_rest(t)?;
            n += 1;
        }
    }
}

fn u4(raw: &[u8]) -> u32 {
    raw[..4].iter().fold(0, |v, &c| v << 4 | hex(c).unwrap_or(0))
}

/// Appends the text of a string token with its escapes decoded to UTF-8 (a `\uD83D\uDE00`
/// pair becomes one code point). `Err` for a lone surrogate or when `w` fails; bytes in the
/// text are copied as they are (check them with `core::str::from_utf8`).
pub fn unescape(w: &mut Writer, raw: &[u8]) -> Result<(), Malformed> {
    let start = w.len;
    let mut p = 0;
    while p < raw.len() {
        let q = raw[p..].iter().position(|&c| c == b'\\').map_or(raw.len(), |i| p + i);
        w.bytes(&raw[p..q]);
        if q == raw.len() {
            break;
        }
        let c = raw[q + 1];
        p = q + 2;
        match c {
            b'b' => w.byte(8),
            b'f' => w.byte(12),
            b'n' => w.byte(b'\n'),
            b'r' => w.byte(b'\r'),
            b't' => w.byte(b'\t'),
            b'u' => {
                let mut cp = u4(&raw[p..]);
                p += 4;
                if (0xd800..0xdc00).contains(&cp) {
                    if raw.len() - p < 6 || raw[p] != b'\\' || raw[p + 1] != b'u' {
                        w.len = start;
                        return Err(Malformed);
                    }
                    let lo = u4(&raw[p + 2..]);
                    if !(0xdc00..0xe000).contains(&lo) {
                        w.len = start;
                        return Err(Malformed);
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
                match char::from_u32(cp) {
                    Some(ch) => {
                        let mut tmp = [0u8; 4];
                        w.bytes(ch.encode_utf8(&mut tmp).as_bytes())
                    }
                    None => {
                        w.len = start;
                        return Err(Malformed);
                    }
                }
            }
            _ => w.byte(c), // " \ /
        };
    }
    if w.failed {
        if w.len > start {
            w.len = start;
        }
        return Err(Malformed);
    }
    Ok(())
}

// ---- exact float text -------------------------------------------------------------------------

// A double m * 2^e and the midpoints to its neighbours, written out as exact decimal integers
// (at most ~770 digits), pick the shortest digits between the midpoints: the same algorithm
// as the C SDK's edged_buf_double, so both print the same text (Python's repr, ties to the
// even digit).

const DEC_MAX: usize = 800;
const LIMBS: usize = 92;

/// The value, its two midpoints and a candidate, as decimal digits.
static mut DIGITS: [[u8; DEC_MAX]; 4] = [[0; DEC_MAX]; 4];

/// x * 2^s as an exact decimal integer times 10^min(s, 0): its digits into `out` (no leading
/// zeros, "0" for zero); returns the digit count.
fn dec_scaled(mut x: u64, s: i32, out: &mut [u8; DEC_MAX]) -> usize {
    const BASE: u64 = 1_000_000_000;
    let mut limb = [0u32; LIMBS]; // base 1e9, least significant first
    let mut n = 0;
    while x > 0 {
        limb[n] = (x % BASE) as u32;
        n += 1;
        x /= BASE;
    }
    let mut left = s.unsigned_abs();
    while left > 0 && n > 0 {
        let (mul, k) = if s > 0 {
            let k = left.min(29);
            (1u64 << k, k)
        } else {
            let k = left.min(13);
            (5u64.pow(k), k)
        };
        left -= k;
        let mut carry = 0u64;
        for l in limb[..n].iter_mut() {
            let t = *l as u64 * mul + carry;
            *l = (t % BASE) as u32;
            carry = t / BASE;
        }
        while carry > 0 {
            limb[n] = (carry % BASE) as u32;
            n += 1;
            carry /= BASE;
        }
    }
    if n == 0 {
        out[0] = b'0';
        return 1;
    }
    let mut len = 0;
    for i in (0..n).rev() {
        let mut d = [0u8; 9];
        let mut v = limb[i];
        for j in (0..9).rev() {
            d[j] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let skip = if i == n - 1 { d[..8].iter().take_while(|&&c| c == b'0').count() } else { 0 };
        out[len..len + 9 - skip].copy_from_slice(&d[skip..]);
        len += 9 - skip;
    }
    len
}

/// Compares a * 10^ae with b * 10^be (digits without leading zeros, "0" for zero).
fn dec_cmp(a: &[u8], ae: i32, b: &[u8], be: i32) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    let (az, bz) = (a == b"0", b == b"0");
    if az || bz {
        return match (az, bz) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        };
    }
    let (ao, bo) = (a.len() as i32 + ae, b.len() as i32 + be);
    if ao != bo {
        return ao.cmp(&bo);
    }
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(b'0');
        let y = b.get(i).copied().unwrap_or(b'0');
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

/// For a positive finite double: the lower midpoint, the value and the upper midpoint, at the
/// common scale 2^s.
fn double_parts(bits: u64) -> (u64, u64, u64, i32) {
    let be = ((bits >> 52) & 0x7ff) as i32;
    let mut m = bits & 0xf_ffff_ffff_ffff;
    let e = if be == 0 {
        -1074
    } else {
        m |= 1 << 52;
        be - 1075
    };
    // Below a power of two the lower neighbour is half as far.
    let lo = if m == 1 << 52 && be > 1 { 4 * m - 1 } else { 4 * m - 2 };
    (lo, 4 * m, 4 * m + 2, e - 2)
}

/// Appends `v` as the shortest JSON number that reads back to the same double (on a tie, the
/// even last digit), always with a `.` or an exponent (`1.0`, `0.1`, `1e+16`, `5e-324`): the
/// text of Python's repr and of the C SDK's `edged_buf_double`. NaN and the infinities have no
/// JSON text: `w` fails.
pub fn write_double(w: &mut Writer, v: f64) {
    use core::cmp::Ordering;
    if !v.is_finite() {
        w.failed = true;
        return;
    }
    let start = w.len;
    let raw = v.to_bits();
    if raw >> 63 == 1 {
        w.byte(b'-');
    }
    let bits = raw & !(1 << 63);
    if bits == 0 {
        w.str("0.0");
        if w.failed && w.len > start {
            w.len = start;
        }
        return;
    }
    let (lo4, v4, hi4, s) = double_parts(bits);
    let ex = s.min(0);
    // SAFETY: single-threaded, and write_double does not re-enter itself. Statics rather than
    // locals: zeroing 3 KiB of stack per float cost more than the arithmetic.
    let (dv, dl, dh, dc) = unsafe { (&mut DIGITS[0], &mut DIGITS[1], &mut DIGITS[2], &mut DIGITS[3]) };
    let vn = dec_scaled(v4, s, dv);
    let ln = dec_scaled(lo4, s, dl);
    let hn = dec_scaled(hi4, s, dh);
    // A midpoint itself reads back as v when v's mantissa is even.
    let even = bits & 1 == 0;
    let inside = |c: &[u8], ce: i32| {
        let l = dec_cmp(c, ce, &dl[..ln], ex);
        let h = dec_cmp(c, ce, &dh[..hn], ex);
        (l == Ordering::Greater || (even && l == Ordering::Equal))
            && (h == Ordering::Less || (even && h == Ordering::Equal))
    };
    let (mut cn, mut ce) = (vn, ex);
    dc[..vn].copy_from_slice(&dv[..vn]);
    'search: for p in 1..=vn.min(17) {
        // The nearer of the p-digit prefix and the same rounded up first; on an exact tie
        // the one whose last digit is even.
        let first_up = if p < vn && dv[p] != b'5' {
            dv[p] > b'5'
        } else if p < vn {
            let tie = dv[p + 1..vn].iter().all(|&c| c == b'0');
            if tie {
                (dv[p - 1] - b'0') & 1 == 1
            } else {
                true
            }
        } else {
            false
        };
        for attempt in 0..2 {
            let up = if attempt == 0 { first_up } else { !first_up };
            dc[..p].copy_from_slice(&dv[..p]);
            let (mut n, mut e) = (p, ex + (vn - p) as i32);
            if up {
                let mut i = p;
                while i > 0 && dc[i - 1] == b'9' {
                    dc[i - 1] = b'0';
                    i -= 1;
                }
                if i > 0 {
                    dc[i - 1] += 1;
                } else {
                    dc[0] = b'1'; // 99 -> 100: one digit, one order up
                    n = 1;
                    e += p as i32;
                }
            }
            if inside(&dc[..n], e) {
                cn = n;
                ce = e;
                break 'search;
            }
        }
        // Not found at 17 digits cannot happen for a double; all digits are then kept.
        if p == vn.min(17) {
            dc[..vn].copy_from_slice(&dv[..vn]);
        }
    }
    while cn > 1 && dc[cn - 1] == b'0' {
        cn -= 1;
        ce += 1;
    }
    let digits = &dc[..cn];
    let n = cn;
    let x = n as i32 - 1 + ce; // the value is d.ddd * 10^x
    if (-4..16).contains(&x) {
        if x >= 0 {
            let x = x as usize;
            for i in 0..=x {
                w.byte(if i < n { digits[i] } else { b'0' });
            }
            w.byte(b'.');
            if x + 1 < n {
                w.bytes(&digits[x + 1..]);
            } else {
                w.byte(b'0');
            }
        } else {
            w.bytes(b"0.");
            for _ in 0..(-x - 1) {
                w.byte(b'0');
            }
            w.bytes(digits);
        }
    } else {
        w.byte(digits[0]);
        if n > 1 {
            w.byte(b'.').bytes(&digits[1..]);
        }
        w.byte(b'e').byte(if x < 0 { b'-' } else { b'+' });
        let ax = x.unsigned_abs();
        if ax < 10 {
            w.byte(b'0');
        }
        w.int(ax as i64);
    }
    if w.failed && w.len > start {
        w.len = start;
    }
}

/// A JSON number's text as the nearest double (core's correctly rounded parser); `None` for
/// text that is not a JSON number, or a value beyond the double range.
pub fn parse_double(raw: &[u8]) -> Option<f64> {
    match number_end(raw, 0) {
        Some((end, _)) if end == raw.len() => {}
        _ => return None,
    }
    let v: f64 = core::str::from_utf8(raw).ok()?.parse().ok()?;
    if v.is_finite() {
        Some(v)
    } else {
        None
    }
}

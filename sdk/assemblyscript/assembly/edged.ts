// AssemblyScript SDK for edged filters (filter ABI v1, docs/filter-abi.md).
//
// A filter registers its callbacks with `filter(...)` and re-exports the ABI entry points:
//
//   import { Str, DROP, FORWARD, filter, jsonField, parseNumber } from "./edged";
//   export { edged_abi_version, edged_buffers, edged_init, edged_on_message } from "./edged";
//
//   const raw = new Str();
//   function onMessage(topic: Str, payload: Str): i32 {
//     if (jsonField(payload, VALUE, raw) == 0 && !isNaN(parseNumber(raw))) return FORWARD;
//     return DROP;
//   }
//   filter(onMessage);
//
// Build with the stub runtime (`asc --runtime stub --use abort=`): the SDK never allocates on
// the per-message path, so nothing needs collecting. Allocate your own objects (Str, Buf, text
// turned into bytes) at the top level or in init, never per message.
//
// Every routine behaves byte for byte like its counterpart in the C SDK (sdk/c/edged.h), so a
// filter gives the same output whichever of the two it is written with.

// ---- constants ------------------------------------------------------------------------------

export const ABI_VERSION: i32 = 1;
export const DROP: i32 = 0;
export const FORWARD: i32 = 1;
export const EMIT: i32 = 2;

export const LOG_DEBUG: i32 = 0;
export const LOG_INFO: i32 = 1;
export const LOG_WARN: i32 = 2;
export const LOG_ERROR: i32 = 3;

/** Size of the input area: larger messages never reach the filter. */
export const INPUT_CAP: u32 = 64 * 1024;
/** Size of the output area, including its 4-byte header. */
export const OUTPUT_CAP: u32 = 64 * 1024;
/** Bytes kept for the params. */
export const PARAMS_CAP: u32 = 4096;
/** Number of params kept. */
export const MAX_PARAMS: i32 = 32;
/** Most digits Buf.fixed prints after the point. */
export const FIXED_MAX_DECIMALS: i32 = 20;
/** Buf.fixed refuses magnitudes at or above this. */
export const FIXED_LIMIT: f64 = 1e15;
/** What edged_init returns when the params are malformed or too many. */
export const INIT_BAD_PARAMS: i32 = -1;

// ---- byte strings ---------------------------------------------------------------------------

/** Bytes in linear memory, not NUL-terminated: topics, payloads, params and slices of them. */
@final
export class Str {
  constructor(public ptr: usize = 0, public len: u32 = 0) {}

  /** The UTF-8 bytes of `s`, copied once: call it at the top level or in init. */
  static from(s: string): Str {
    const buf = String.UTF8.encode(s);
    return new Str(changetype<usize>(buf), <u32>buf.byteLength);
  }

  /** Points this Str at other bytes (no copy). */
  set(ptr: usize, len: u32): Str {
    this.ptr = ptr;
    this.len = len;
    return this;
  }

  /** True if both hold the same bytes. */
  equals(other: Str): bool {
    return strEq(this.ptr, this.len, other.ptr, other.len);
  }

  /** The bytes decoded as UTF-8 (allocates: keep it off the per-message path). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, this.len);
  }
}

function strEq(a: usize, alen: u32, b: usize, blen: u32): bool {
  if (alen != blen) return false;
  return memory.compare(a, b, alen) == 0;
}

function litEq(p: usize, len: u32, lit: Str): bool {
  return strEq(p, len, lit.ptr, lit.len);
}

/** FNV-1a, 32 bits: enough to spread topics over a small per-topic table. */
export function hash(s: Str): u32 {
  let h: u32 = 2166136261;
  for (let i: u32 = 0; i < s.len; i++) {
    h ^= <u32>load<u8>(s.ptr + i);
    h *= 16777619;
  }
  return h;
}

// ---- host import and static state -----------------------------------------------------------

// @ts-ignore: decorator
@external("edged", "log")
declare function hostLog(level: i32, ptr: usize, len: u32): void;

const IN: usize = memory.data(<i32>INPUT_CAP, 8);
const OUT: usize = memory.data(<i32>OUTPUT_CAP, 8);
const DESCRIPTOR: usize = memory.data(16, 4);
const PSTORE: usize = memory.data(<i32>PARAMS_CAP);
const PKEYS: usize = memory.data(MAX_PARAMS * 8, 4); // (start, len) pairs in PSTORE
const PVALS: usize = memory.data(MAX_PARAMS * 8, 4);
let pcount: i32 = 0;
let used: u32 = 0; // mirrors the `used` word of the output area
let emitted = false; // set by a successful emit

const TOPIC = new Str();
const PAYLOAD = new Str();

// ---- logging --------------------------------------------------------------------------------

/** Sends `msg` to the host log. Each call crosses into the host (about 9 µs against 2 µs for a
 * whole message) and this one allocates: log from init and ticks, or once behind a flag. */
export function log(level: i32, msg: string): void {
  const buf = String.UTF8.encode(msg);
  hostLog(level, changetype<usize>(buf), <u32>buf.byteLength);
}

/** Logs bytes that are already UTF-8, without allocating. */
export function logStr(level: i32, msg: Str): void {
  hostLog(level, msg.ptr, msg.len);
}

// ---- output ---------------------------------------------------------------------------------

/** True if the host would accept `t` as an emitted topic: 1..65535 bytes without '+', '#' or
 * NUL (UTF-8 validity is not checked). Useful to vet a topic param in init. */
export function topicValid(t: Str): bool {
  if (t.len == 0 || t.len > 65535) return false;
  for (let i: u32 = 0; i < t.len; i++) {
    const c = load<u8>(t.ptr + i);
    if (c == 0x2b || c == 0x23 || c == 0) return false;
  }
  return true;
}

/** Appends one record to the output area. 0: done; -1: it does not fit in what is left; -2:
 * the host would refuse the topic. Either way nothing was written on failure. Use it only in
 * the message and tick callbacks. */
export function emit(topic: Str, payload: Str): i32 {
  return emitBytes(topic, payload.ptr, payload.len);
}

/** emit() with a Buf's content as the payload; -1 also when the Buf has failed. */
export function emitBuf(topic: Str, payload: Buf): i32 {
  if (payload.failed) return -1;
  return emitBytes(topic, payload.ptr, payload.len);
}

function emitBytes(topic: Str, ptr: usize, len: u32): i32 {
  // The host drops the whole call's output if one topic is invalid; refusing it here keeps
  // the other records of the call alive.
  if (!topicValid(topic)) return -2;
  // Compared piecewise so that no sum can wrap.
  const room: u32 = OUTPUT_CAP - 4 - used;
  if (room < 8 || topic.len > room - 8 || len > room - 8 - topic.len) return -1;
  const rec = OUT + 4 + used;
  store<u32>(rec, topic.len);
  store<u32>(rec + 4, len);
  memory.copy(rec + 8, topic.ptr, topic.len);
  memory.copy(rec + 8 + topic.len, ptr, len);
  used += 8 + topic.len + len;
  store<u32>(OUT, used);
  emitted = true;
  return 0;
}

/** For assembly/props.ts, which writes records of its own: the bytes left in the output
 * area, where the next record goes, and counting `n` bytes written there (a message when
 * `isEmit`, else a reject reason). Filters call emit() instead. */
export function outputRoom(): u32 {
  return OUTPUT_CAP - 4 - used;
}

export function outputNext(): usize {
  return OUT + 4 + used;
}

export function outputAdvance(n: u32, isEmit: bool): void {
  used += n;
  store<u32>(OUT, used);
  if (isEmit) emitted = true;
}

function resetOutput(): void {
  used = 0;
  emitted = false;
  store<u32>(OUT, 0);
}

// ---- params ---------------------------------------------------------------------------------

/** The value of a param, or null when it is absent (an empty value has len 0). The returned
 * Str is new (allocates) and its bytes live as long as the instance: call it in init. */
export function param(key: string): Str | null {
  const k = Str.from(key);
  for (let i = 0; i < pcount; i++) {
    const kp = PKEYS + <usize>(i * 8);
    if (strEq(PSTORE + load<u32>(kp), load<u32>(kp, 4), k.ptr, k.len)) {
      const vp = PVALS + <usize>(i * 8);
      return new Str(PSTORE + load<u32>(vp), load<u32>(vp, 4));
    }
  }
  return null;
}

/** `dflt` when the key is absent *or* not a JSON number. */
export function paramNumber(key: string, dflt: f64): f64 {
  const s = param(key);
  if (s === null || s.len == 0) return dflt;
  const v = parseNumber(s);
  return isNaN(v) ? dflt : v;
}

/** `dflt` when the key is absent, NaN when it is present but not a JSON number, so init can
 * refuse a typo. */
export function paramNumberStrict(key: string, dflt: f64): f64 {
  const s = param(key);
  if (s === null) return dflt;
  return parseNumber(s);
}

// ---- JSON numbers ---------------------------------------------------------------------------

const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
  1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

// @ts-ignore: decorator
@inline
function isDigit(p: usize, end: usize): bool {
  if (p >= end) return false;
  const c = load<u8>(p);
  return c >= 0x30 && c <= 0x39;
}

/** The whole of `s` as one JSON number (no spaces, no '+', no leading zeros, no bare '.'), or
 * NaN for anything else, including values beyond the double range. Correctly rounded when the
 * significant digits form an integer below 2^53 and the decimal exponent is within ±22;
 * otherwise within a few units in the last place, exactly as the C SDK. Digits past the 19th
 * significant one are ignored. */
export function parseNumber(s: Str): f64 {
  return parseNumberAt(s.ptr, s.len);
}

function parseNumberAt(start: usize, len: u32): f64 {
  let p = start;
  const end = start + len;
  let mant: u64 = 0;
  let sig = 0; // significant digits kept in mant
  let exp10: i32 = 0;
  let neg = false;

  if (len == 0) return NaN;
  if (load<u8>(p) == 0x2d) {
    neg = true;
    p++;
  }
  if (p == end) return NaN;
  let c = load<u8>(p);
  if (c == 0x30) {
    p++;
  } else if (c >= 0x31 && c <= 0x39) {
    for (; isDigit(p, end); p++) {
      if (sig < 19) {
        mant = mant * 10 + <u64>(load<u8>(p) - 0x30);
        sig++;
      } else {
        exp10++;
      }
    }
  } else {
    return NaN;
  }
  if (p < end && load<u8>(p) == 0x2e) {
    p++;
    if (!isDigit(p, end)) return NaN;
    for (; isDigit(p, end); p++) {
      if (sig < 19) {
        mant = mant * 10 + <u64>(load<u8>(p) - 0x30);
        exp10--;
        if (mant != 0) sig++; // leading zeros of 0.000x carry no precision
      }
    }
  }
  if (p < end && (load<u8>(p) == 0x65 || load<u8>(p) == 0x45)) {
    let eneg = false;
    let e: i32 = 0;
    p++;
    if (p < end && (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d)) {
      eneg = load<u8>(p) == 0x2d;
      p++;
    }
    if (!isDigit(p, end)) return NaN;
    for (; isDigit(p, end); p++) {
      if (e < 100000) e = e * 10 + <i32>(load<u8>(p) - 0x30); // saturate: 0 or inf anyway
    }
    exp10 += eneg ? -e : e;
  }
  if (p != end) return NaN;

  let v = <f64>mant;
  if (mant != 0) {
    if (exp10 > 400) return NaN;
    if (exp10 < -400) {
      v = 0;
    } else if (exp10 >= 0) {
      for (; exp10 > 22; exp10 -= 22) v *= 1e22;
      v *= unchecked(POW10[exp10]);
    } else {
      for (; exp10 < -22; exp10 += 22) v /= 1e22;
      v /= unchecked(POW10[-exp10]);
    }
    if (!isFinite(v)) return NaN;
  }
  return neg ? -v : v;
}

// ---- JSON scanning --------------------------------------------------------------------------

function skipWs(p: usize, end: usize): usize {
  while (p < end) {
    const c = load<u8>(p);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    p++;
  }
  return p;
}

/** p at the opening quote; the address after the closing quote, or 0. */
function skipString(p: usize, end: usize): usize {
  for (p++; p < end; p++) {
    const c = load<u8>(p);
    if (c == 0x5c) {
      p++;
      if (p == end) return 0;
    } else if (c == 0x22) {
      return p + 1;
    }
  }
  return 0;
}

/** p at '{' or '['. Bracket kinds are tracked so that "{]" is refused; nesting deeper than 64
 * is refused rather than guessed at. */
function skipNested(p: usize, end: usize): usize {
  let kinds: u64 = 0; // bit set = '{' at that depth
  let depth: i32 = 0;
  while (p < end) {
    const c = load<u8>(p);
    if (c == 0x22) {
      p = skipString(p, end);
      if (p == 0) return 0;
      continue;
    }
    if (c == 0x7b || c == 0x5b) {
      if (depth == 64) return 0;
      if (c == 0x7b) kinds |= (<u64>1) << depth;
      else kinds &= ~((<u64>1) << depth);
      depth++;
    } else if (c == 0x7d || c == 0x5d) {
      if (depth == 0) return 0;
      depth--;
      if (((kinds >> depth) & 1) != <u64>(c == 0x7d)) return 0;
      if (depth == 0) return p + 1;
    }
    p++;
  }
  return 0;
}

function isDelim(c: u8): bool {
  return c == 0x2c || c == 0x7d || c == 0x5d || c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

/** Scalar tokens run to the next delimiter; validity is judged only for the returned value. */
function skipValue(p: usize, end: usize): usize {
  if (p == end) return 0;
  const c = load<u8>(p);
  if (c == 0x22) return skipString(p, end);
  if (c == 0x7b || c == 0x5b) return skipNested(p, end);
  const start = p;
  while (p < end && !isDelim(load<u8>(p))) p++;
  return p == start ? 0 : p;
}

const LIT_TRUE = Str.from("true");
const LIT_FALSE = Str.from("false");
const LIT_NULL = Str.from("null");

function scalarOk(p: usize, len: u32): bool {
  return litEq(p, len, LIT_TRUE) || litEq(p, len, LIT_FALSE) || litEq(p, len, LIT_NULL) ||
    !isNaN(parseNumberAt(p, len));
}

/** Finds the first top-level `key` of the JSON object in `json` and points `raw` at its value
 * exactly as written: a number, a string with its quotes, true/false/null, or a whole nested
 * object or array. Returns 0 when found, -1 when the object has no such key, -2 when `json` is
 * not an object or is malformed before the key is reached.
 *
 * A scanner, not a validator: it stops at the first match. The returned value is checked to be
 * a complete token; what is inside a nested value or a string is not. Keys are compared byte
 * for byte with their text between the quotes. */
export function jsonField(json: Str, key: Str, raw: Str): i32 {
  let p = json.ptr;
  const end = json.ptr + json.len;
  p = skipWs(p, end);
  if (p == end || load<u8>(p) != 0x7b) return -2;
  p = skipWs(p + 1, end);
  if (p < end && load<u8>(p) == 0x7d) return -1;
  for (;;) {
    if (p == end || load<u8>(p) != 0x22) return -2;
    const kend = skipString(p, end);
    if (kend == 0) return -2;
    const kptr = p + 1;
    const klen = <u32>(kend - p - 2);
    p = skipWs(kend, end);
    if (p == end || load<u8>(p) != 0x3a) return -2;
    p = skipWs(p + 1, end);
    const vend = skipValue(p, end);
    if (vend == 0) return -2;
    if (strEq(kptr, klen, key.ptr, key.len)) {
      const c = load<u8>(p);
      const vlen = <u32>(vend - p);
      if (c != 0x22 && c != 0x7b && c != 0x5b && !scalarOk(p, vlen)) return -2;
      raw.set(p, vlen);
      return 0;
    }
    p = skipWs(vend, end);
    if (p == end) return -2;
    if (load<u8>(p) == 0x7d) return -1;
    if (load<u8>(p) != 0x2c) return -2;
    p = skipWs(p + 1, end);
  }
  return -2; // not reached
}

// ---- text builder ---------------------------------------------------------------------------

const TMP: usize = memory.data(64); // digits for int and fixed
const DIG: usize = memory.data(FIXED_MAX_DECIMALS);
const HEX = Str.from("0123456789abcdef");

/** Builds text in static storage of a fixed capacity (allocated once: create Bufs at the top
 * level). Every append is all or nothing; a failed append sets `failed` and later appends are
 * refused too, so a payload can be built with unchecked appends and tested once. */
@final
export class Buf {
  ptr: usize;
  len: u32 = 0;
  cap: u32;
  failed: bool = false;

  constructor(cap: u32) {
    this.ptr = heap.alloc(cap);
    this.cap = cap;
  }

  /** Empties the Buf and clears `failed`. */
  reset(): Buf {
    this.len = 0;
    this.failed = false;
    return this;
  }

  /** Points `s` at the content (no copy). */
  view(s: Str): Str {
    return s.set(this.ptr, this.len);
  }

  /** Appends `n` bytes at `data`. */
  bytes(data: usize, n: u32): Buf {
    if (this.failed || n > this.cap - this.len) {
      this.failed = true;
      return this;
    }
    memory.copy(this.ptr + this.len, data, n);
    this.len += n;
    return this;
  }

  /** Appends the bytes of `s`. */
  str(s: Str): Buf {
    return this.bytes(s.ptr, s.len);
  }

  /** Appends one byte. */
  char(c: u8): Buf {
    if (this.failed || this.len == this.cap) {
      this.failed = true;
      return this;
    }
    store<u8>(this.ptr + this.len, c);
    this.len++;
    return this;
  }

  /** Appends a 64-bit integer in decimal. */
  int(v: i64): Buf {
    let n: u32 = 20;
    // Negate in unsigned arithmetic so i64.MIN has a magnitude.
    let m: u64 = v < 0 ? 0 - <u64>v : <u64>v;
    do {
      store<u8>(TMP + --n, <u8>(0x30 + m % 10));
      m /= 10;
    } while (m != 0);
    if (v < 0) store<u8>(TMP + --n, 0x2d);
    return this.bytes(TMP + n, 20 - n);
  }

  /** Appends `v` with exactly `decimals` (0..20) digits after the point (none and no point for
   * 0), no exponent. The digits are those of the exact binary value, rounded half away from
   * zero: 0.125 gives "0.13", while 2.675 (stored as 2.67499999...) gives "2.67". A result
   * that rounds to zero prints without a sign. Refused: |v| >= 1e15, NaN, infinities. */
  fixed(v: f64, decimals: i32): Buf {
    if (decimals < 0 || decimals > FIXED_MAX_DECIMALS || !(v > -FIXED_LIMIT && v < FIXED_LIMIT)) {
      this.failed = true;
      return this;
    }
    // the fraction as 0.128 fixed point, 32 bits per limb
    let l0: u64 = 0, l1: u64 = 0, l2: u64 = 0, l3: u64 = 0;
    const neg = v < 0;
    const a = neg ? -v : v;
    let ip = <u64>a;
    // Below 2^-75 every printable digit is 0 and the remainder is far from a half; from there
    // up, 128 bits hold the fraction exactly, so every digit and the rounding are exact.
    if (a >= reinterpret<f64>(0x3B40000000000000)) {
      const twoPow64 = reinterpret<f64>(0x43F0000000000000);
      const frac = a - <f64>ip;
      const x = frac * twoPow64;
      const hi = <u64>x;
      const lo = <u64>((x - <f64>hi) * twoPow64);
      l0 = lo & 0xffffffff;
      l1 = lo >> 32;
      l2 = hi & 0xffffffff;
      l3 = hi >> 32;
    }
    for (let i = 0; i < decimals; i++) {
      let t = l0 * 10;
      l0 = t & 0xffffffff;
      t = l1 * 10 + (t >> 32);
      l1 = t & 0xffffffff;
      t = l2 * 10 + (t >> 32);
      l2 = t & 0xffffffff;
      t = l3 * 10 + (t >> 32);
      l3 = t & 0xffffffff;
      store<u8>(DIG + i, <u8>(t >> 32));
    }
    if ((l3 >> 31) != 0) {
      // what is left is at least one half
      let i = decimals - 1;
      while (i >= 0 && load<u8>(DIG + i) == 9) store<u8>(DIG + i--, 0);
      if (i >= 0) store<u8>(DIG + i, load<u8>(DIG + i) + 1);
      else ip++;
    }
    let nonzero = ip != 0;
    for (let i = 0; i < decimals; i++) if (load<u8>(DIG + i) != 0) nonzero = true;

    let n: u32 = 0;
    if (neg && nonzero) store<u8>(TMP + n++, 0x2d);
    let digits: u32 = 0;
    let rest = ip;
    do {
      digits++;
      rest /= 10;
    } while (rest != 0);
    for (let k = digits; k > 0; k--) {
      store<u8>(TMP + n + k - 1, <u8>(0x30 + ip % 10));
      ip /= 10;
    }
    n += digits;
    if (decimals > 0) {
      store<u8>(TMP + n++, 0x2e);
      for (let i = 0; i < decimals; i++) store<u8>(TMP + n++, 0x30 + load<u8>(DIG + i));
    }
    return this.bytes(TMP, n);
  }

  /** Appends `s` as a quoted JSON string, escaping '"', '\' and control characters; other bytes
   * pass through, so the result is valid JSON whenever `s` is valid UTF-8. */
  jsonString(s: Str): Buf {
    const start = this.len;
    this.char(0x22);
    for (let i: u32 = 0; i < s.len; i++) {
      const c = load<u8>(s.ptr + i);
      if (c == 0x22 || c == 0x5c) {
        this.char(0x5c);
        this.char(c);
      } else if (c == 0x0a) {
        this.char(0x5c);
        this.char(0x6e);
      } else if (c == 0x0d) {
        this.char(0x5c);
        this.char(0x72);
      } else if (c == 0x09) {
        this.char(0x5c);
        this.char(0x74);
      } else if (c < 0x20) {
        store<u8>(TMP, 0x5c);
        store<u8>(TMP + 1, 0x75);
        store<u8>(TMP + 2, 0x30);
        store<u8>(TMP + 3, 0x30);
        store<u8>(TMP + 4, load<u8>(HEX.ptr + (c >> 4)));
        store<u8>(TMP + 5, load<u8>(HEX.ptr + (c & 15)));
        this.bytes(TMP, 6);
      } else {
        this.char(c);
      }
    }
    this.char(0x22);
    if (this.failed && this.len > start) {
      // Keep the all-or-nothing promise of the other appends.
      this.len = start;
    }
    return this;
  }
}

// ---- registration and ABI entry points ------------------------------------------------------

let onInit: (() => i32) | null = null;
let onMessage: ((topic: Str, payload: Str) => i32) | null = null;
let onTick: ((nowMs: i64) => void) | null = null;

/** Registers the filter. `message` returns DROP or FORWARD; if emit() succeeded at least once
 * during the call, the call returns EMIT whatever it returned, and the input is not forwarded
 * (emit it yourself to keep it). `init`, called once after the params are parsed, returns 0
 * when ready or a positive code to refuse the module. `tick` is called on edged_on_tick, which
 * the entry file exports only when the filter takes ticks. */
export function filter(
  message: (topic: Str, payload: Str) => i32,
  init: (() => i32) | null = null,
  tick: ((nowMs: i64) => void) | null = null,
): void {
  onMessage = message;
  onInit = init;
  onTick = tick;
}

export function edged_abi_version(): i32 {
  return ABI_VERSION;
}

export function edged_buffers(): i32 {
  store<u32>(DESCRIPTOR, <u32>IN);
  store<u32>(DESCRIPTOR, INPUT_CAP, 4);
  store<u32>(DESCRIPTOR, <u32>OUT, 8);
  store<u32>(DESCRIPTOR, OUTPUT_CAP, 12);
  return <i32>DESCRIPTOR;
}

function badParams(why: string): i32 {
  pcount = 0;
  log(LOG_ERROR, why);
  return INIT_BAD_PARAMS;
}

/** Exported by every SDK filter, so params can be configured for any of them. */
export function edged_init(paramsLen: u32): i32 {
  pcount = 0;
  if (paramsLen > INPUT_CAP) return badParams("edged: params_len exceeds the input area");
  if (paramsLen > PARAMS_CAP) return badParams("edged: params exceed EDGED_PARAMS_CAP");
  memory.copy(PSTORE, IN, paramsLen);
  let pos: u32 = 0;
  while (pos < paramsLen) {
    const k = pos;
    while (pos < paramsLen && load<u8>(PSTORE + pos) != 0) pos++;
    if (pos == paramsLen) return badParams("edged: params: key without NUL");
    const v = ++pos;
    while (pos < paramsLen && load<u8>(PSTORE + pos) != 0) pos++;
    if (pos == paramsLen) return badParams("edged: params: value without NUL");
    if (pcount == MAX_PARAMS) return badParams("edged: more params than EDGED_MAX_PARAMS");
    const at = <usize>(pcount * 8);
    store<u32>(PKEYS + at, k);
    store<u32>(PKEYS + at, v - 1 - k, 4);
    store<u32>(PVALS + at, v);
    store<u32>(PVALS + at, pos - v, 4);
    pcount++;
    pos++;
  }
  const init = onInit;
  return init === null ? 0 : init();
}

export function edged_on_message(topicLen: u32, payloadLen: u32): i32 {
  // The host promises the message fits; if it does not, a trap is the loudest answer.
  if (topicLen > INPUT_CAP || payloadLen > INPUT_CAP - topicLen) unreachable();
  resetOutput();
  TOPIC.set(IN, topicLen);
  PAYLOAD.set(IN + topicLen, payloadLen);
  const message = onMessage;
  const r = message === null ? DROP : message(TOPIC, PAYLOAD);
  return emitted ? EMIT : r;
}

export function edged_on_tick(nowMs: i64): i32 {
  resetOutput();
  const tick = onTick;
  if (tick !== null) tick(nowMs);
  return emitted ? EMIT : 0;
}

// binary.ts: CBOR (RFC 8949) and MessagePack payloads to JSON and back, by the mapping of
// docs/binary-payloads.md. No AssemblyScript package reads either format, so these are small
// readers and writers of our own. Nothing here allocates: every buffer is static memory, as the
// stub runtime requires, and the result is left in the output area read by `result()`.
//
//   const code = cborToJson(payload);      // also msgpackToJson, jsonToCbor, jsonToMsgpack
//   if (code != OK) { logStr(LOG_WARN, errorText(code)); return DROP; }
//   emit(topic, result(view));
import { Str } from "./edged";
import { dtoa_buffered } from "~lib/util/number";

export const MAX_DEPTH: i32 = 32;

/** Result codes of a conversion. */
export const OK: i32 = 0;
/** Ill-formed, truncated, trailing bytes, bad JSON, or a "$" object that does not spell its value. */
export const MALFORMED: i32 = 1;
/** Arrays, maps and tags nested deeper than MAX_DEPTH. */
export const TOO_DEEP: i32 = 2;
/** An integer MessagePack cannot hold (outside int64/uint64). */
export const OUT_OF_RANGE: i32 = 3;
/** A value the target format has no form for (a CBOR tag asked of MessagePack, ...). */
export const NO_EQUIVALENT: i32 = 4;
/** The output, or a bignum, does not fit the static areas. */
export const TOO_LARGE: i32 = 5;

const E_TEXTS: string[] = [
  "",
  "message dropped: malformed payload",
  "message dropped: nested deeper than 32",
  "message dropped: integer out of range for MessagePack",
  "message dropped: value has no equivalent in the target format",
  "message dropped: output too large",
];
const E_STRS: Str[] = [
  new Str(), Str.from(E_TEXTS[1]), Str.from(E_TEXTS[2]), Str.from(E_TEXTS[3]),
  Str.from(E_TEXTS[4]), Str.from(E_TEXTS[5]),
];

/** The log text of a result code (static, UTF-8). */
export function errorText(code: i32): Str {
  return E_STRS[code];
}

// ---- static areas ---------------------------------------------------------------------------

const OUT_CAP: u32 = 60 * 1024;
const OUT: usize = memory.data(<i32>OUT_CAP);
const STR_CAP: u32 = 64 * 1024;
const STRBUF: usize = memory.data(<i32>STR_CAP); // a JSON string unescaped, or CBOR chunks joined
const B64_CAP: u32 = 48 * 1024;
const B64BUF: usize = memory.data(<i32>B64_CAP); // base64 decoded
const LIMB_CAP: u32 = 8 * 1024;
const LIMBS: usize = memory.data(<i32>LIMB_CAP * 4, 4); // a bignum, little-endian base 2^32
const LIMBS2: usize = memory.data(<i32>LIMB_CAP * 4, 4);
const CHUNKS: usize = memory.data(10 * 1024 * 4, 4); // decimal digits in base 10^9
const DTOA: usize = memory.data(128, 2);
const TMP: usize = memory.data(32);
const DIGITS: usize = memory.data(1024); // significant digits of a JSON float

let olen: u32 = 0;
let ofull = false;

/** Points `s` at the output of the last conversion. */
export function result(s: Str): Str {
  return s.set(OUT, olen);
}

function ob(c: u32): void {
  if (olen >= OUT_CAP) {
    ofull = true;
    return;
  }
  store<u8>(OUT + olen, <u8>c);
  olen++;
}

function obytes(p: usize, n: u32): void {
  if (n > OUT_CAP - olen) {
    ofull = true;
    return;
  }
  memory.copy(OUT + olen, p, n);
  olen += n;
}

/** Writes an ASCII string literal (UTF-16 in memory) as bytes. */
function oa(s: string): void {
  const p = changetype<usize>(s);
  const n = s.length;
  for (let i = 0; i < n; i++) ob(<u32>load<u16>(p + (<usize>i << 1)));
}

function obe(v: u64, bytes: i32): void {
  for (let k = bytes - 1; k >= 0; k--) ob(<u32>((v >> (<u64>k * 8)) & 0xff));
}

// ---- writing JSON ---------------------------------------------------------------------------

function jsonUint(v: u64): void {
  let n = 20;
  do {
    store<u8>(TMP + --n, <u8>(0x30 + v % 10));
    v /= 10;
  } while (v != 0);
  obytes(TMP + n, 20 - n);
}

function jsonInt(v: i64): void {
  if (v < 0) {
    ob(0x2d);
    jsonUint(0 - <u64>v);
  } else {
    jsonUint(<u64>v);
  }
}

const SDIG: usize = memory.data(40); // significant digits of a printed float, ASCII
const CAND: usize = memory.data(64); // a shorter candidate, as JSON number text
let sdN: i32 = 0;
let sdExp: i32 = 0; // the value is SDIG, read as an integer, times 10^sdExp

/** Writes `num` in decimal at `at`; the number of bytes. */
function putInt(at: usize, num: i32): i32 {
  let n = 0;
  if (num < 0) {
    store<u8>(at, 0x2d);
    n++;
    num = -num;
  }
  let digits = 1;
  for (let x = num; x >= 10; x /= 10) digits++;
  for (let k = digits - 1; k >= 0; k--) {
    store<u8>(at + n + k, <u8>(0x30 + num % 10));
    num /= 10;
  }
  return n + digits;
}

/** Whether the first `k` digits of SDIG (plus one in the last place when `up`) still read back
 * to `a`; if so they become SDIG. */
function tryShorter(k: i32, up: bool, a: f64): bool {
  memory.copy(CAND, SDIG, <usize>k);
  let n = k;
  if (up) {
    let i = k - 1;
    while (i >= 0 && load<u8>(CAND + i) == 0x39) store<u8>(CAND + i--, 0x30);
    if (i >= 0) {
      store<u8>(CAND + i, load<u8>(CAND + i) + 1);
    } else {
      memory.copy(CAND + 1, CAND, <usize>k);
      store<u8>(CAND, 0x31);
      n++;
    }
  }
  let exp = sdExp + (sdN - k);
  store<u8>(CAND + n, 0x65);
  const len = n + 1 + putInt(CAND + n + 1, exp);
  if (parseFloat64(CAND, CAND + len) != a) return false;
  while (n > 1 && load<u8>(CAND + n - 1) == 0x30) {
    n--;
    exp++;
  }
  memory.copy(SDIG, CAND, <usize>n);
  sdN = n;
  sdExp = exp;
  return true;
}

/** Whether SDIG moved by one in its last place (`up` or down) still reads back to `a`; if so
 * that becomes SDIG. The last digit is never 0, so going down never borrows. */
function tryNudge(up: bool, a: f64): bool {
  memory.copy(CAND, SDIG, <usize>sdN);
  let n = sdN;
  let exp = sdExp;
  if (up) {
    let i = n - 1;
    while (i >= 0 && load<u8>(CAND + i) == 0x39) store<u8>(CAND + i--, 0x30);
    if (i >= 0) {
      store<u8>(CAND + i, load<u8>(CAND + i) + 1);
    } else {
      memory.copy(CAND + 1, CAND, <usize>n);
      store<u8>(CAND, 0x31);
      n++;
    }
  } else {
    store<u8>(CAND + n - 1, load<u8>(CAND + n - 1) - 1);
  }
  store<u8>(CAND + n, 0x65);
  const len = n + 1 + putInt(CAND + n + 1, exp);
  if (parseFloat64(CAND, CAND + len) != a) return false;
  while (n > 1 && load<u8>(CAND + n - 1) == 0x30) {
    n--;
    exp++;
  }
  memory.copy(SDIG, CAND, <usize>n);
  sdN = n;
  sdExp = exp;
  return true;
}

/** Compares the midpoint between SDIG and its neighbour (above when `up`) with `a` exactly:
 * negative when the midpoint is below a. */
function compareMid(up: bool, a: f64): i32 {
  for (let i = 0; i < sdN; i++) store<u8>(DIGITS + i, load<u8>(SDIG + i) - 0x30);
  if (!up) store<u8>(DIGITS + sdN - 1, load<u8>(DIGITS + sdN - 1) - 1);
  store<u8>(DIGITS + sdN, 5);
  sigDigits = sdN + 1;
  decExp = sdExp - 1;
  const bits = reinterpret<u64>(a);
  const e = <i32>(bits >> 52);
  const mant = e == 0 ? bits & 0xfffffffffffff : (bits & 0xfffffffffffff) | (<u64>1 << 52);
  return compareWith(mant, (e == 0 ? 1 : e) - 1075);
}

/** Among the digit strings of SDIG's length that read back to `a`, moves SDIG to the one
 * nearest a (Grisu2's can be a few places off in the last digit). */
function nearest(a: f64): void {
  // a 17-digit Grisu2 result was seen 3 places off: the steps stop at the double's neighbours
  for (let step = 0; step < 10; step++) {
    // a tie (a exactly halfway) goes to the even digit, as Python's repr does
    const c = compareMid(true, a);
    const odd = (load<u8>(SDIG + sdN - 1) & 1) == 1;
    if (c == -2 || c > 0 || (c == 0 && !odd) || !tryNudge(true, a)) break;
  }
  for (let step = 0; step < 10; step++) {
    if (sdN == 1 && load<u8>(SDIG) == 0x31) break;
    const c = compareMid(false, a);
    const odd = (load<u8>(SDIG + sdN - 1) & 1) == 1;
    if (c == -2 || c < 0 || (c == 0 && !odd) || !tryNudge(false, a)) break;
  }
}

/** The shortest text that reads back to v, laid out as Python's repr (and every SDK) does:
 * plain from 1e-4 up to 1e16 ("0.0001", "21.5", "1.0"), else with an exponent of at least two
 * digits ("1e+16", "1.5e-05"). NaN and the infinities become {"$float": ...}. The digits come
 * from the standard library's Grisu2, which reads back to v but, at 16 digits or more, is
 * sometimes a digit longer than needed or not the nearest; those are shortened and moved to
 * the nearest here, each candidate checked by reading it back. */
function jsonFloat(v: f64): void {
  if (isNaN(v)) return oa('{"$float":"NaN"}');
  if (!isFinite(v)) return oa(v > 0 ? '{"$float":"Infinity"}' : '{"$float":"-Infinity"}');
  if (v == 0) return oa((reinterpret<u64>(v) >> 63) != 0 ? "-0.0" : "0.0");
  const n = dtoa_buffered<f64>(DTOA, v);
  // the significant digits and exponent of what was printed
  sdN = 0;
  sdExp = 0;
  let afterPoint = false;
  for (let i: u32 = 0; i < n; i++) {
    const c = <u32>load<u16>(DTOA + (<usize>i << 1));
    if (c == 0x2e) {
      afterPoint = true;
    } else if (c == 0x65) {
      let e = 0;
      let neg = false;
      for (let j = i + 1; j < n; j++) {
        const d = <u32>load<u16>(DTOA + (<usize>j << 1));
        if (d == 0x2d) neg = true;
        else if (d >= 0x30 && d <= 0x39) e = e * 10 + <i32>(d - 0x30);
      }
      sdExp += neg ? -e : e;
      break;
    } else if (c >= 0x30 && c <= 0x39) {
      if (afterPoint) sdExp--;
      if (sdN == 0 && c == 0x30) continue;
      if (sdN < 40) store<u8>(SDIG + sdN++, <u8>c);
    }
  }
  while (sdN > 1 && load<u8>(SDIG + sdN - 1) == 0x30) {
    sdN--;
    sdExp++;
  }
  if (sdN >= 16) {
    const a = Math.abs(v);
    while (sdN > 1) {
      const up = load<u8>(SDIG + sdN - 1) >= 0x35;
      if (!tryShorter(sdN - 1, up, a) && !tryShorter(sdN - 1, !up, a)) break;
    }
    nearest(a);
  }
  floatLayout(v < 0, sdExp + sdN - 1);
}

/** Writes the sign, SDIG (sdN digits) and the exponent of its first digit as jsonFloat says. */
function floatLayout(neg: bool, exp: i32): void {
  if (neg) ob(0x2d);
  const n = sdN;
  if (exp >= 0 && exp < 16) {
    if (n > exp + 1) {
      obytes(SDIG, exp + 1);
      ob(0x2e);
      obytes(SDIG + exp + 1, n - exp - 1);
    } else {
      obytes(SDIG, n);
      for (let k = n; k < exp + 1; k++) ob(0x30);
      oa(".0");
    }
  } else if (exp < 0 && exp >= -4) {
    oa("0.");
    for (let k = 0; k < -exp - 1; k++) ob(0x30);
    obytes(SDIG, n);
  } else {
    ob(load<u8>(SDIG));
    if (n > 1) {
      ob(0x2e);
      obytes(SDIG + 1, n - 1);
    }
    ob(0x65);
    ob(exp < 0 ? 0x2d : 0x2b);
    const a = exp < 0 ? -exp : exp;
    if (a < 10) ob(0x30);
    jsonUint(<u64>a);
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function b64char(i: u32): u32 {
  return <u32>load<u16>(changetype<usize>(B64) + (<usize>i << 1));
}

function jsonBase64(p: usize, n: u32): void {
  ob(0x22);
  let i: u32 = 0;
  for (; i + 3 <= n; i += 3) {
    const x = (<u32>load<u8>(p + i) << 16) | (<u32>load<u8>(p + i + 1) << 8) | load<u8>(p + i + 2);
    ob(b64char(x >> 18));
    ob(b64char((x >> 12) & 63));
    ob(b64char((x >> 6) & 63));
    ob(b64char(x & 63));
  }
  if (n - i == 1) {
    const x = <u32>load<u8>(p + i) << 16;
    ob(b64char(x >> 18));
    ob(b64char((x >> 12) & 63));
    oa("==");
  } else if (n - i == 2) {
    const x = (<u32>load<u8>(p + i) << 16) | (<u32>load<u8>(p + i + 1) << 8);
    ob(b64char(x >> 18));
    ob(b64char((x >> 12) & 63));
    ob(b64char((x >> 6) & 63));
    ob(0x3d);
  }
  ob(0x22);
}

const HEXS = "0123456789abcdef";

function jsonString(p: usize, n: u32): void {
  ob(0x22);
  for (let i: u32 = 0; i < n; i++) {
    const c = <u32>load<u8>(p + i);
    if (c == 0x22 || c == 0x5c) {
      ob(0x5c);
      ob(c);
    } else if (c == 0x0a) {
      oa("\\n");
    } else if (c == 0x0d) {
      oa("\\r");
    } else if (c == 0x09) {
      oa("\\t");
    } else if (c == 0x08) {
      oa("\\b");
    } else if (c == 0x0c) {
      oa("\\f");
    } else if (c < 0x20) {
      oa("\\u00");
      ob(<u32>load<u16>(changetype<usize>(HEXS) + (<usize>(c >> 4) << 1)));
      ob(<u32>load<u16>(changetype<usize>(HEXS) + (<usize>(c & 15) << 1)));
    } else {
      ob(c);
    }
  }
  ob(0x22);
}

/** Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
function utf8Valid(p: usize, n: u32): bool {
  let i: u32 = 0;
  while (i < n) {
    const c = <u32>load<u8>(p + i);
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: u32 = 0;
    let cp: u32 = 0;
    let min: u32 = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      cp = c & 0x1f;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      cp = c & 0x0f;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (n - i <= need) return false;
    for (let k: u32 = 1; k <= need; k++) {
      const d = <u32>load<u8>(p + i + k);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return false;
    i += need + 1;
  }
  return true;
}

function jsonText(p: usize, n: u32): void {
  if (utf8Valid(p, n)) return jsonString(p, n);
  oa('{"$str_b64":');
  jsonBase64(p, n);
  ob(0x7d);
}

function jsonBytes(p: usize, n: u32): void {
  oa('{"$bytes":');
  jsonBase64(p, n);
  ob(0x7d);
}

/** The unsigned big-endian integer at p (plus one when `negative`, then negated) in decimal. */
function jsonBig(p: usize, len: u32, negative: bool): i32 {
  let n: u32 = (len + 3) / 4;
  if (n + 1 > LIMB_CAP) return TOO_LARGE;
  memory.fill(LIMBS, 0, (n + 1) * 4);
  for (let k: u32 = 0; k < len; k++) {
    const bit = (len - 1 - k) * 8;
    const at = LIMBS + ((bit / 32) << 2);
    store<u32>(at, load<u32>(at) | (<u32>load<u8>(p + k) << (bit % 32)));
  }
  if (negative) {
    // -1 - value: print 1 + value
    let k: u32 = 0;
    while (true) {
      const at = LIMBS + (k << 2);
      const x = load<u32>(at) + 1;
      store<u32>(at, x);
      if (x != 0) break;
      k++;
    }
    n++;
    ob(0x2d);
  }
  while (n > 0 && load<u32>(LIMBS + ((n - 1) << 2)) == 0) n--;
  let count: u32 = 0;
  while (n > 0) {
    let rem: u64 = 0;
    for (let k = <i32>n - 1; k >= 0; k--) {
      const at = LIMBS + (<usize>k << 2);
      const cur = (rem << 32) | <u64>load<u32>(at);
      store<u32>(at, <u32>(cur / 1000000000));
      rem = cur % 1000000000;
    }
    if (count == 10 * 1024) return TOO_LARGE;
    store<u32>(CHUNKS + (count << 2), <u32>rem);
    count++;
    while (n > 0 && load<u32>(LIMBS + ((n - 1) << 2)) == 0) n--;
  }
  if (count == 0) {
    ob(0x30);
    return OK;
  }
  jsonUint(<u64>load<u32>(CHUNKS + ((count - 1) << 2)));
  for (let k = <i32>count - 2; k >= 0; k--) {
    let x = load<u32>(CHUNKS + (<usize>k << 2));
    for (let d = 8; d >= 0; d--) {
      store<u8>(TMP + d, <u8>(0x30 + x % 10));
      x /= 10;
    }
    obytes(TMP, 9);
  }
  return OK;
}

// ---- reading binary -------------------------------------------------------------------------

let rp: usize = 0; // the next byte
let rend: usize = 0;

function left(): u64 {
  return <u64>(rend - rp);
}

/** Reads `bytes` big-endian bytes; false when the input ends first. */
let rv: u64 = 0;
function rbe(bytes: u32): bool {
  if (<u64>bytes > left()) return false;
  let v: u64 = 0;
  for (let k: u32 = 0; k < bytes; k++) v = (v << 8) | <u64>load<u8>(rp + k);
  rp += bytes;
  rv = v;
  return true;
}

// CBOR heads land here; callers copy them before reading further.
let hMajor: u32 = 0;
let hAi: u32 = 0;
let hArg: u64 = 0;
const INDEF: u32 = 31;

function cborHead(): i32 {
  if (rp >= rend) return MALFORMED;
  const b = <u32>load<u8>(rp++);
  hMajor = b >> 5;
  hAi = b & 31;
  if (hAi < 24) {
    hArg = hAi;
  } else if (hAi <= 27) {
    if (!rbe(1 << (hAi - 24))) return MALFORMED;
    hArg = rv;
  } else if (hAi == INDEF && ((hMajor >= 2 && hMajor <= 5) || hMajor == 7)) {
    hArg = 0;
  } else {
    return MALFORMED;
  }
  return OK;
}

// a string's bytes land here
let sPtr: usize = 0;
let sLen: u32 = 0;

/** The content of a byte or text string whose head was read (major, ai, arg); an indefinite
 * one is joined from its definite chunks of the same major type. */
function cborStr(major: u32, ai: u32, arg: u64): i32 {
  if (ai != INDEF) {
    if (arg > left()) return MALFORMED;
    sPtr = rp;
    sLen = <u32>arg;
    rp += <usize>arg;
    return OK;
  }
  let n: u32 = 0;
  while (true) {
    if (rp >= rend) return MALFORMED;
    if (load<u8>(rp) == 0xff) {
      rp++;
      sPtr = STRBUF;
      sLen = n;
      return OK;
    }
    if (cborHead() != OK) return MALFORMED;
    if (hMajor != major || hAi == INDEF || hArg > left()) return MALFORMED;
    const c = <u32>hArg;
    if (c > STR_CAP - n) return TOO_LARGE;
    memory.copy(STRBUF + n, rp, c);
    rp += c;
    n += c;
  }
}

/** Whether a container has another element: counted down in `remaining` when definite, up to
 * the break when indefinite (an input that ends first sets `moreErr`). */
let remaining: u64 = 0;
let moreErr: i32 = 0;
function more(ai: u32): bool {
  if (ai == INDEF) {
    if (rp >= rend) {
      moreErr = MALFORMED;
      return false;
    }
    if (load<u8>(rp) == 0xff) {
      rp++;
      return false;
    }
    return true;
  }
  if (remaining == 0) return false;
  remaining--;
  return true;
}

function cborSkip(depth: i32): i32 {
  const e = cborHead();
  if (e != OK) return e;
  const major = hMajor, ai = hAi, arg = hArg;
  if (major == 2 || major == 3) return cborStr(major, ai, arg);
  if (major >= 4 && major <= 6) {
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    if (major == 6) return cborSkip(depth + 1);
    let count = arg;
    if (major == 5 && ai != INDEF) {
      if (count > left()) return MALFORMED;
      count *= 2;
    }
    let k: u64 = 0;
    while (true) {
      remaining = count;
      moreErr = OK;
      const go = more(ai);
      count = remaining;
      if (moreErr != OK) return moreErr;
      if (!go) break;
      const r = cborSkip(depth + 1);
      if (r != OK) return r;
      k++;
    }
    if (major == 5 && (k & 1) == 1) return MALFORMED;
    return OK;
  }
  if (major == 7 && (ai == INDEF || (ai == 24 && arg < 32))) return MALFORMED;
  return OK;
}

function half(h: u32): f64 {
  const exp = (h >> 10) & 31;
  const mant = <f64>(h & 0x3ff);
  let v: f64;
  if (exp == 0) v = mant * reinterpret<f64>(0x3E70000000000000); // 2^-24
  else if (exp == 31) v = mant == 0 ? Infinity : NaN;
  else v = (mant + 1024) * Math.pow(2, <f64>(<i32>exp - 25));
  return (h & 0x8000) != 0 ? -v : v;
}

function cborItem(depth: i32): i32 {
  let e = cborHead();
  if (e != OK) return e;
  const major = hMajor, ai = hAi, arg = hArg;
  if (major == 0) {
    jsonUint(arg);
  } else if (major == 1) {
    if (arg < (<u64>1 << 63)) {
      jsonInt(-1 - <i64>arg);
    } else {
      for (let k = 0; k < 8; k++) store<u8>(TMP + k, <u8>(arg >> (<u64>(7 - k) * 8)));
      return jsonBig(TMP, 8, true);
    }
  } else if (major == 2 || major == 3) {
    e = cborStr(major, ai, arg);
    if (e != OK) return e;
    if (major == 2) jsonBytes(sPtr, sLen);
    else jsonText(sPtr, sLen);
  } else if (major == 4) {
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    ob(0x5b);
    let count = arg;
    let k = 0;
    while (true) {
      remaining = count;
      moreErr = OK;
      const go = more(ai);
      count = remaining;
      if (moreErr != OK) return moreErr;
      if (!go) break;
      if (k++ > 0) ob(0x2c);
      e = cborItem(depth + 1);
      if (e != OK) return e;
    }
    ob(0x5d);
  } else if (major == 5) {
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    return cborMap(ai, arg, depth);
  } else if (major == 6) {
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    if (arg == 2 || arg == 3) {
      e = cborHead();
      if (e != OK) return e;
      if (hMajor != 2) return MALFORMED;
      e = cborStr(hMajor, hAi, hArg);
      if (e != OK) return e;
      return jsonBig(sPtr, sLen, arg == 3);
    }
    oa('{"$tag":');
    jsonUint(arg);
    oa(',"value":');
    e = cborItem(depth + 1);
    if (e != OK) return e;
    ob(0x7d);
  } else if (ai == 20) {
    oa("false");
  } else if (ai == 21) {
    oa("true");
  } else if (ai == 22) {
    oa("null");
  } else if (ai == 23) {
    oa('{"$undefined":true}');
  } else if (ai < 20 || ai == 24) {
    if (ai == 24 && arg < 32) return MALFORMED; // RFC 8949 3.3
    oa('{"$simple":');
    jsonUint(arg);
    ob(0x7d);
  } else if (ai == 25) {
    jsonFloat(half(<u32>arg));
  } else if (ai == 26) {
    jsonFloat(<f64>reinterpret<f32>(<u32>arg));
  } else if (ai == 27) {
    jsonFloat(reinterpret<f64>(arg));
  } else {
    return MALFORMED; // a break where no item may end
  }
  return OK;
}

/** A map is an object when every key is a UTF-8 text string, else {"$map": [[k, v], ...]}:
 * the keys are looked at first, then the map is read again and written. */
function cborMap(ai: u32, arg: u64, depth: i32): i32 {
  const start = rp;
  let count = arg;
  let textKeys = true;
  let e = OK;
  while (true) {
    remaining = count;
    moreErr = OK;
    const go = more(ai);
    count = remaining;
    if (moreErr != OK) return moreErr;
    if (!go) break;
    if (textKeys) {
      const key = rp;
      e = cborHead();
      if (e != OK) return e;
      if (hMajor != 3) {
        textKeys = false;
      } else {
        e = cborStr(hMajor, hAi, hArg);
        if (e != OK) return e;
        if (!utf8Valid(sPtr, sLen)) textKeys = false;
      }
      rp = key;
    }
    e = cborSkip(depth + 1);
    if (e != OK) return e;
    e = cborSkip(depth + 1);
    if (e != OK) return e;
  }
  rp = start;
  count = arg;
  oa(textKeys ? "{" : '{"$map":[');
  let k = 0;
  while (true) {
    remaining = count;
    moreErr = OK;
    const go = more(ai);
    count = remaining;
    if (!go) break;
    if (k++ > 0) ob(0x2c);
    if (!textKeys) ob(0x5b);
    e = cborItem(depth + 1);
    if (e != OK) return e;
    ob(textKeys ? 0x3a : 0x2c);
    e = cborItem(depth + 1);
    if (e != OK) return e;
    if (!textKeys) ob(0x5d);
  }
  oa(textKeys ? "}" : "]}");
  return OK;
}

function begin(payload: Str): void {
  rp = payload.ptr;
  rend = payload.ptr + payload.len;
  olen = 0;
  ofull = false;
}

function finish(e: i32): i32 {
  if (e != OK) return e;
  if (rp != rend) return MALFORMED;
  return ofull ? TOO_LARGE : OK;
}

/** The one CBOR data item of `payload` as JSON. */
export function cborToJson(payload: Str): i32 {
  begin(payload);
  return finish(cborItem(0));
}

// ---- MessagePack to JSON --------------------------------------------------------------------

const K_SCALAR: u32 = 0, K_STR: u32 = 1, K_BIN: u32 = 2, K_EXT: u32 = 3, K_ARRAY: u32 = 4,
  K_MAP: u32 = 5;
let mKind: u32 = 0;
let mLen: u64 = 0;
let mExt: i32 = 0;

function mpLenOf(bytes: u32, kind: u32): i32 {
  if (!rbe(bytes)) return MALFORMED;
  mKind = kind;
  mLen = rv;
  return OK;
}

function isStr(c: u32): bool {
  return (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb);
}

/** Reads a code and its length; a scalar is written when `write`. */
function mpHead(write: bool): i32 {
  if (rp >= rend) return MALFORMED;
  const c = <u32>load<u8>(rp++);
  mKind = K_SCALAR;
  if (c <= 0x7f) {
    if (write) jsonUint(c);
  } else if (c >= 0xe0) {
    if (write) jsonInt(<i64><i8>c);
  } else if (c <= 0x8f) {
    mKind = K_MAP;
    mLen = c & 15;
  } else if (c <= 0x9f) {
    mKind = K_ARRAY;
    mLen = c & 15;
  } else if (c <= 0xbf) {
    mKind = K_STR;
    mLen = c & 31;
  } else if (c == 0xc0) {
    if (write) oa("null");
  } else if (c == 0xc1) {
    return MALFORMED; // never used
  } else if (c == 0xc2) {
    if (write) oa("false");
  } else if (c == 0xc3) {
    if (write) oa("true");
  } else if (c >= 0xc4 && c <= 0xc6) {
    return mpLenOf(1 << (c - 0xc4), K_BIN);
  } else if (c >= 0xc7 && c <= 0xc9) {
    if (mpLenOf(1 << (c - 0xc7), K_EXT) != OK || !rbe(1)) return MALFORMED;
    mExt = <i32><i8>rv;
  } else if (c == 0xca) {
    if (!rbe(4)) return MALFORMED;
    if (write) jsonFloat(<f64>reinterpret<f32>(<u32>rv));
  } else if (c == 0xcb) {
    if (!rbe(8)) return MALFORMED;
    if (write) jsonFloat(reinterpret<f64>(rv));
  } else if (c >= 0xcc && c <= 0xcf) {
    if (!rbe(1 << (c - 0xcc))) return MALFORMED;
    if (write) jsonUint(rv);
  } else if (c >= 0xd0 && c <= 0xd3) {
    const bytes: u32 = 1 << (c - 0xd0);
    if (!rbe(bytes)) return MALFORMED;
    const shift = <u64>(64 - bytes * 8);
    if (write) jsonInt(<i64>(rv << shift) >> shift);
  } else if (c >= 0xd4 && c <= 0xd8) {
    if (!rbe(1)) return MALFORMED;
    mKind = K_EXT;
    mExt = <i32><i8>rv;
    mLen = <u64>1 << (c - 0xd4);
  } else if (c >= 0xd9 && c <= 0xdb) {
    return mpLenOf(1 << (c - 0xd9), K_STR);
  } else if (c == 0xdc || c == 0xdd) {
    return mpLenOf(c == 0xdc ? 2 : 4, K_ARRAY);
  } else {
    return mpLenOf(c == 0xde ? 2 : 4, K_MAP);
  }
  return OK;
}

function mpItem(write: bool, depth: i32): i32 {
  let e = mpHead(write);
  if (e != OK) return e;
  const kind = mKind;
  const n = mLen;
  if (kind == K_SCALAR) return OK;
  if (kind == K_STR || kind == K_BIN || kind == K_EXT) {
    const ext = mExt;
    if (n > left()) return MALFORMED;
    const p = rp;
    rp += <usize>n;
    if (!write) return OK;
    if (kind == K_STR) {
      jsonText(p, <u32>n);
    } else if (kind == K_BIN) {
      jsonBytes(p, <u32>n);
    } else {
      oa('{"$ext":');
      jsonInt(ext);
      oa(',"data":');
      jsonBase64(p, <u32>n);
      ob(0x7d);
    }
    return OK;
  }
  if (depth >= MAX_DEPTH) return TOO_DEEP;
  if (n > left()) return MALFORMED;
  if (kind == K_ARRAY) {
    if (write) ob(0x5b);
    for (let k: u64 = 0; k < n; k++) {
      if (write && k > 0) ob(0x2c);
      e = mpItem(write, depth + 1);
      if (e != OK) return e;
    }
    if (write) ob(0x5d);
    return OK;
  }
  if (!write) {
    for (let k: u64 = 0; k < 2 * n; k++) {
      e = mpItem(false, depth + 1);
      if (e != OK) return e;
    }
    return OK;
  }
  const start = rp;
  let textKeys = true;
  for (let k: u64 = 0; k < n; k++) {
    if (textKeys) {
      const key = rp;
      if (rp < rend && isStr(<u32>load<u8>(rp))) {
        e = mpHead(false);
        if (e != OK) return e;
        if (mLen > left()) return MALFORMED;
        if (!utf8Valid(rp, <u32>mLen)) textKeys = false;
      } else {
        textKeys = false;
      }
      rp = key;
    }
    e = mpItem(false, depth + 1);
    if (e != OK) return e;
    e = mpItem(false, depth + 1);
    if (e != OK) return e;
  }
  rp = start;
  oa(textKeys ? "{" : '{"$map":[');
  for (let k: u64 = 0; k < n; k++) {
    if (k > 0) ob(0x2c);
    if (!textKeys) ob(0x5b);
    e = mpItem(true, depth + 1);
    if (e != OK) return e;
    ob(textKeys ? 0x3a : 0x2c);
    e = mpItem(true, depth + 1);
    if (e != OK) return e;
    if (!textKeys) ob(0x5d);
  }
  oa(textKeys ? "}" : "]}");
  return OK;
}

/** The one MessagePack value of `payload` as JSON. */
export function msgpackToJson(payload: Str): i32 {
  begin(payload);
  return finish(mpItem(true, 0));
}

// ---- reading JSON ---------------------------------------------------------------------------

let jp: usize = 0;
let jend: usize = 0;

function ws(): void {
  while (jp < jend) {
    const c = load<u8>(jp);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
    jp++;
  }
}

/** The next non-space byte, or -1 at the end. */
function peek(): i32 {
  ws();
  return jp < jend ? <i32>load<u8>(jp) : -1;
}

function expect(c: i32): bool {
  if (peek() != c) return false;
  jp++;
  return true;
}

function literal(s: string): bool {
  const n = <usize>s.length;
  if (jend - jp < n) return false;
  for (let i: usize = 0; i < n; i++) {
    if (<u32>load<u8>(jp + i) != <u32>load<u16>(changetype<usize>(s) + (i << 1))) return false;
  }
  jp += n;
  return true;
}

function hex4(): i32 {
  if (jend - jp < 4) return -1;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const c = <i32>load<u8>(jp + i);
    let d = -1;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  jp += 4;
  return v;
}

let jsLen: u32 = 0; // length of the string read into STRBUF

function put(c: u32): bool {
  if (jsLen >= STR_CAP) return false;
  store<u8>(STRBUF + jsLen++, <u8>c);
  return true;
}

/** The string at jp, unescaped into STRBUF (jsLen bytes); it must be UTF-8. */
function jstring(): i32 {
  if (peek() != 0x22) return MALFORMED;
  jp++;
  jsLen = 0;
  while (jp < jend) {
    const c = <u32>load<u8>(jp);
    if (c == 0x22) {
      jp++;
      return utf8Valid(STRBUF, jsLen) ? OK : MALFORMED;
    }
    if (c < 0x20) return MALFORMED;
    if (c != 0x5c) {
      if (!put(c)) return TOO_LARGE;
      jp++;
      continue;
    }
    if (jend - jp < 2) return MALFORMED;
    const e = <u32>load<u8>(jp + 1);
    jp += 2;
    let out: i32 = -1;
    if (e == 0x22 || e == 0x5c || e == 0x2f) out = e;
    else if (e == 0x62) out = 8;
    else if (e == 0x66) out = 12;
    else if (e == 0x6e) out = 10;
    else if (e == 0x72) out = 13;
    else if (e == 0x74) out = 9;
    if (out >= 0) {
      if (!put(out)) return TOO_LARGE;
      continue;
    }
    if (e != 0x75) return MALFORMED;
    let cp = hex4();
    if (cp < 0) return MALFORMED;
    if (cp >= 0xd800 && cp < 0xdc00 && jend - jp >= 6 && load<u8>(jp) == 0x5c && load<u8>(jp + 1) == 0x75) {
      const save = jp;
      jp += 2;
      const lo = hex4();
      if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      else jp = save;
    }
    if (cp >= 0xd800 && cp < 0xe000) return MALFORMED; // a lone surrogate
    let ok = true;
    if (cp < 0x80) {
      ok = put(cp);
    } else if (cp < 0x800) {
      ok = put(0xc0 | (cp >> 6)) && put(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
      ok = put(0xe0 | (cp >> 12)) && put(0x80 | ((cp >> 6) & 63)) && put(0x80 | (cp & 63));
    } else {
      ok = put(0xf0 | (cp >> 18)) && put(0x80 | ((cp >> 12) & 63)) &&
        put(0x80 | ((cp >> 6) & 63)) && put(0x80 | (cp & 63));
    }
    if (!ok) return TOO_LARGE;
  }
  return MALFORMED;
}

function digits(): u32 {
  const start = jp;
  while (jp < jend && load<u8>(jp) >= 0x30 && load<u8>(jp) <= 0x39) jp++;
  return <u32>(jp - start);
}

// the number read by jnumber: [numStart, jp)
let numStart: usize = 0;
let numFloat = false;

/** The number at jp, checked against the JSON grammar. */
function jnumber(): bool {
  ws();
  numStart = jp;
  numFloat = false;
  if (jp < jend && load<u8>(jp) == 0x2d) jp++;
  const first = jp;
  const n = digits();
  if (n == 0 || (n > 1 && load<u8>(first) == 0x30)) return false;
  if (jp < jend && load<u8>(jp) == 0x2e) {
    jp++;
    numFloat = true;
    if (digits() == 0) return false;
  }
  if (jp < jend && (load<u8>(jp) == 0x65 || load<u8>(jp) == 0x45)) {
    jp++;
    numFloat = true;
    if (jp < jend && (load<u8>(jp) == 0x2b || load<u8>(jp) == 0x2d)) jp++;
    if (digits() == 0) return false;
  }
  return true;
}

/** Reads over one value. Containers one level past MAX_DEPTH are allowed so that a "$" object
 * for a scalar there is read; what they are is decided when written. */
function jskip(depth: i32): i32 {
  const c = peek();
  if (c == 0x22) return jstring();
  if (c == 0x74) return literal("true") ? OK : MALFORMED;
  if (c == 0x66) return literal("false") ? OK : MALFORMED;
  if (c == 0x6e) return literal("null") ? OK : MALFORMED;
  if (c == 0x5b || c == 0x7b) {
    if (depth > MAX_DEPTH + 1) return TOO_DEEP;
    jp++;
    const close = c == 0x5b ? 0x5d : 0x7d;
    if (peek() == close) {
      jp++;
      return OK;
    }
    while (true) {
      if (c == 0x7b) {
        const e = jstring();
        if (e != OK) return e;
        if (!expect(0x3a)) return MALFORMED;
      }
      const e = jskip(depth + 1);
      if (e != OK) return e;
      const d = peek();
      jp++;
      if (d == close) return OK;
      if (d != 0x2c) return MALFORMED;
    }
  }
  return jnumber() ? OK : MALFORMED;
}

/** The number of elements of the array at jp (checked), leaving jp after its '['. */
function countElements(depth: i32): i32 {
  const start = jp;
  const e = jskip(depth);
  if (e != OK) return -e;
  jp = start + 1;
  if (peek() == 0x5d) {
    jp = start + 1;
    return 0;
  }
  let n = 0;
  while (true) {
    jskip(depth + 1);
    n++;
    const c = peek();
    jp++;
    if (c != 0x2c) break;
  }
  jp = start + 1;
  return n;
}

// ---- numbers from JSON ----------------------------------------------------------------------

let nLimbs: u32 = 0; // the magnitude in LIMBS

function limbsMulAdd(base: usize, n: u32, mul: u32, add: u32): u32 {
  let carry: u64 = add;
  for (let k: u32 = 0; k < n; k++) {
    const at = base + (k << 2);
    const x = <u64>load<u32>(at) * mul + carry;
    store<u32>(at, <u32>x);
    carry = x >> 32;
  }
  if (carry != 0) {
    if (n >= LIMB_CAP) return 0xffffffff;
    store<u32>(base + (n << 2), <u32>carry);
    n++;
  }
  return n;
}

/** The integer text's magnitude into LIMBS (nLimbs), minus one when `minusOne` and negative. */
function magnitude(p: usize, end: usize, minusOne: bool): i32 {
  const negative = load<u8>(p) == 0x2d;
  if (negative) p++;
  nLimbs = 1;
  store<u32>(LIMBS, 0);
  for (; p < end; p++) {
    nLimbs = limbsMulAdd(LIMBS, nLimbs, 10, load<u8>(p) - 0x30);
    if (nLimbs == 0xffffffff) return TOO_LARGE;
  }
  while (nLimbs > 1 && load<u32>(LIMBS + ((nLimbs - 1) << 2)) == 0) nLimbs--;
  const zero = nLimbs == 1 && load<u32>(LIMBS) == 0;
  if (minusOne && negative && !zero) {
    let k: u32 = 0;
    while (load<u32>(LIMBS + (k << 2)) == 0) store<u32>(LIMBS + (k++ << 2), 0xffffffff);
    store<u32>(LIMBS + (k << 2), load<u32>(LIMBS + (k << 2)) - 1);
    while (nLimbs > 1 && load<u32>(LIMBS + ((nLimbs - 1) << 2)) == 0) nLimbs--;
  }
  return negative && !zero ? 1 : 0;
}

function small(): u64 {
  return <u64>load<u32>(LIMBS) | (nLimbs > 1 ? <u64>load<u32>(LIMBS + 4) << 32 : 0);
}

// Decimal to double, correctly rounded: a first guess from 19 digits, then exact comparisons
// of the decimal value with the midpoints between neighbouring doubles (big integers), moving
// one step at a time.
let sigDigits: u32 = 0; // significant digits in DIGITS (at most 800, the 801st sticky)
let decExp: i32 = 0; // the value is DIGITS, read as an integer, times 10^decExp

function collectDigits(p: usize, end: usize): bool {
  sigDigits = 0;
  decExp = 0;
  let seenPoint = false;
  let sticky = false;
  let e: i32 = 0;
  let eneg = false;
  for (; p < end; p++) {
    const c = <u32>load<u8>(p);
    if (c == 0x2e) {
      seenPoint = true;
    } else if (c == 0x65 || c == 0x45) {
      p++;
      if (load<u8>(p) == 0x2d) {
        eneg = true;
        p++;
      } else if (load<u8>(p) == 0x2b) {
        p++;
      }
      for (; p < end; p++) if (e < 100000) e = e * 10 + <i32>(load<u8>(p) - 0x30);
      break;
    } else if (c >= 0x30 && c <= 0x39) {
      if (sigDigits == 0 && c == 0x30) {
        if (seenPoint) decExp--;
        continue;
      }
      if (sigDigits < 800) {
        store<u8>(DIGITS + sigDigits++, <u8>(c - 0x30));
        if (seenPoint) decExp--;
      } else {
        if (c != 0x30) sticky = true;
        if (!seenPoint) decExp++;
      }
    }
  }
  if (sticky) {
    store<u8>(DIGITS + sigDigits++, 1);
    decExp--;
  }
  decExp += eneg ? -e : e;
  return true;
}

/** Loads DIGITS into `base` as an integer; its limb count. */
function digitsInto(base: usize): u32 {
  let n: u32 = 1;
  store<u32>(base, 0);
  for (let i: u32 = 0; i < sigDigits; i++) n = limbsMulAdd(base, n, 10, load<u8>(DIGITS + i));
  return n;
}

function shiftLeft(base: usize, n: u32, bits: u32): u32 {
  const words = bits / 32;
  const rest = bits % 32;
  if (n + words + 1 > LIMB_CAP) return 0xffffffff;
  for (let k = <i32>n - 1; k >= 0; k--) {
    store<u32>(base + ((<usize>k + words) << 2), load<u32>(base + (<usize>k << 2)));
  }
  for (let k: u32 = 0; k < words; k++) store<u32>(base + (k << 2), 0);
  n += words;
  if (rest != 0) {
    let carry: u32 = 0;
    for (let k = words; k < n; k++) {
      const at = base + (k << 2);
      const x = load<u32>(at);
      store<u32>(at, (x << rest) | carry);
      carry = x >> (32 - rest);
    }
    if (carry != 0) {
      store<u32>(base + (n << 2), carry);
      n++;
    }
  }
  return n;
}

function compareLimbs(na: u32, nb: u32): i32 {
  while (na > 1 && load<u32>(LIMBS + ((na - 1) << 2)) == 0) na--;
  while (nb > 1 && load<u32>(LIMBS2 + ((nb - 1) << 2)) == 0) nb--;
  if (na != nb) return na > nb ? 1 : -1;
  for (let k = <i32>na - 1; k >= 0; k--) {
    const a = load<u32>(LIMBS + (<usize>k << 2));
    const b = load<u32>(LIMBS2 + (<usize>k << 2));
    if (a != b) return a > b ? 1 : -1;
  }
  return 0;
}

/** Compares the decimal value with mant * 2^exp2 (exactly); -2 when too large to decide. */
function compareWith(mant: u64, exp2: i32): i32 {
  let na = digitsInto(LIMBS);
  store<u32>(LIMBS2, <u32>mant);
  store<u32>(LIMBS2 + 4, <u32>(mant >> 32));
  let nb: u32 = 2;
  if (decExp >= 0) {
    for (let i = 0; i < decExp; i++) {
      na = limbsMulAdd(LIMBS, na, 10, 0);
      if (na == 0xffffffff) return -2;
    }
  } else {
    for (let i = 0; i < -decExp; i++) {
      nb = limbsMulAdd(LIMBS2, nb, 10, 0);
      if (nb == 0xffffffff) return -2;
    }
  }
  if (exp2 >= 0) nb = shiftLeft(LIMBS2, nb, <u32>exp2);
  else na = shiftLeft(LIMBS, na, <u32>-exp2);
  if (na == 0xffffffff || nb == 0xffffffff) return -2;
  return compareLimbs(na, nb);
}

/** The midpoint between adjacent non-negative doubles a < b as mant * 2^exp (exact). */
let midMant: u64 = 0;
let midExp: i32 = 0;
function midpoint(a: f64, b: f64): void {
  const ba = reinterpret<u64>(a), bb = reinterpret<u64>(b);
  const ea = <i32>(ba >> 52), eb = <i32>(bb >> 52);
  const ma = ea == 0 ? ba & 0xfffffffffffff : (ba & 0xfffffffffffff) | (<u64>1 << 52);
  const mb = eb == 0 ? bb & 0xfffffffffffff : (bb & 0xfffffffffffff) | (<u64>1 << 52);
  const xa = (ea == 0 ? 1 : ea) - 1075, xb = (eb == 0 ? 1 : eb) - 1075;
  // b's exponent is a's or one more (b = 2^1024 is passed as mant 2^53, exp 971)
  const sum = xb > xa ? ma + (mb << <u64>(xb - xa)) : ma + mb;
  midMant = sum;
  midExp = xa - 1;
}

function nextUp(v: f64): f64 {
  return reinterpret<f64>(reinterpret<u64>(v) + 1);
}

function nextDown(v: f64): f64 {
  return reinterpret<f64>(reinterpret<u64>(v) - 1);
}

/** The JSON float text [p, end) as the nearest double (ties to even). */
function parseFloat64(p: usize, end: usize): f64 {
  const negative = load<u8>(p) == 0x2d;
  collectDigits(p, end);
  if (sigDigits == 0) return negative ? -0.0 : 0.0;
  // decimal exponent of the leading digit: beyond the double range either way
  const lead = decExp + <i32>sigDigits;
  if (lead > 310) return negative ? -Infinity : Infinity;
  if (lead < -330) return negative ? -0.0 : 0.0;
  // a first guess from up to 19 digits
  let m: u64 = 0;
  const take = sigDigits < 19 ? sigDigits : 19;
  for (let i: u32 = 0; i < take; i++) m = m * 10 + <u64>load<u8>(DIGITS + i);
  let e = decExp + <i32>(sigDigits - take);
  let z = <f64>m;
  while (e > 0) {
    const s = e > 22 ? 22 : e;
    z *= Math.pow(10, <f64>s);
    e -= s;
  }
  while (e < 0) {
    const s = e < -22 ? 22 : -e;
    z /= Math.pow(10, <f64>s);
    e += s;
  }
  const MAX = reinterpret<f64>(0x7fefffffffffffff);
  if (!isFinite(z)) z = MAX;
  if (z == 0) z = reinterpret<f64>(1);
  for (let step = 0; step < 64; step++) {
    // above the midpoint with the next double up: go up
    const even = (reinterpret<u64>(z) & 1) == 0;
    let c: i32;
    if (z == MAX) {
      midMant = (<u64>1 << 54) - 1; // between MAX and 2^1024
      midExp = 970;
    } else {
      midpoint(z, nextUp(z));
    }
    c = compareWith(midMant, midExp);
    if (c == -2) break;
    if (c > 0 || (c == 0 && !even)) {
      if (z == MAX) return negative ? -Infinity : Infinity;
      z = nextUp(z);
      continue;
    }
    if (z == 0) break;
    const down = nextDown(z);
    midpoint(down, z);
    c = compareWith(midMant, midExp);
    if (c == -2) break;
    if (c < 0 || (c == 0 && !even)) {
      z = down;
      continue;
    }
    break;
  }
  return negative ? -z : z;
}

// ---- writing binary -------------------------------------------------------------------------

const CBOR: i32 = 0;
const MSGPACK: i32 = 1;
let fmt: i32 = CBOR;

function cborHeadOut(major: u32, n: u64): void {
  const m = major << 5;
  if (n < 24) {
    ob(m | <u32>n);
  } else if (n <= 0xff) {
    ob(m | 24);
    ob(<u32>n);
  } else if (n <= 0xffff) {
    ob(m | 25);
    obe(n, 2);
  } else if (n <= 0xffffffff) {
    ob(m | 26);
    obe(n, 4);
  } else {
    ob(m | 27);
    obe(n, 8);
  }
}

/** MessagePack's length-prefixed families: fix (when under fixMax), 8, 16, 32 bits. */
function mpHeadOut(fix: u32, fixMax: u64, c8: u32, c16: u32, n: u64): i32 {
  if (fix != 0 && n < fixMax) {
    ob(fix | <u32>n);
  } else if (c8 != 0 && n <= 0xff) {
    ob(c8);
    ob(<u32>n);
  } else if (n <= 0xffff) {
    ob(c16);
    obe(n, 2);
  } else if (n <= 0xffffffff) {
    ob(c16 + 1);
    obe(n, 4);
  } else {
    return TOO_LARGE;
  }
  return OK;
}

function wArray(n: u64): i32 {
  if (fmt == CBOR) {
    cborHeadOut(4, n);
    return OK;
  }
  return mpHeadOut(0x90, 16, 0, 0xdc, n);
}

function wMap(n: u64): i32 {
  if (fmt == CBOR) {
    cborHeadOut(5, n);
    return OK;
  }
  return mpHeadOut(0x80, 16, 0, 0xde, n);
}

function wText(p: usize, n: u32): i32 {
  if (fmt == CBOR) cborHeadOut(3, n);
  else if (mpHeadOut(0xa0, 32, 0xd9, 0xda, n) != OK) return TOO_LARGE;
  obytes(p, n);
  return OK;
}

function wBytes(p: usize, n: u32): i32 {
  if (fmt == CBOR) cborHeadOut(2, n);
  else if (mpHeadOut(0, 0, 0xc4, 0xc5, n) != OK) return TOO_LARGE;
  obytes(p, n);
  return OK;
}

/** The bits of v as IEEE binary16 when that holds v exactly, else -1. */
function toHalf(v: f64): i32 {
  const bits = reinterpret<u64>(v);
  const sign = <i32>((bits >> 48) & 0x8000);
  const a = Math.abs(v);
  if (a == 0) return sign;
  if (!isFinite(a)) return sign | 0x7c00;
  const exp = <i32>((bits >> 52) & 0x7ff) - 1023;
  const frac = bits & 0xfffffffffffff;
  if (exp >= -14 && exp <= 15) {
    if ((frac & ((<u64>1 << 42) - 1)) != 0) return -1;
    return sign | ((exp + 15) << 10) | <i32>(frac >> 42);
  }
  if (exp < -14 && exp >= -24) {
    const s = a * 16777216.0; // 2^24: a subnormal half is an integer count of 2^-24
    if (s != Math.floor(s)) return -1;
    return sign | <i32>s;
  }
  return -1;
}

function wFloat(v: f64): void {
  if (fmt == MSGPACK) {
    ob(0xcb);
    obe(isNaN(v) ? 0x7ff8000000000000 : reinterpret<u64>(v), 8);
    return;
  }
  // the smallest width that holds v exactly (RFC 8949 4.2.2)
  if (isNaN(v)) {
    ob(0xf9);
    ob(0x7e);
    ob(0x00);
    return;
  }
  const h = toHalf(v);
  if (h >= 0) {
    ob(0xf9);
    obe(<u64>h, 2);
  } else if (<f64><f32>v == v) {
    ob(0xfa);
    obe(<u64>reinterpret<u32>(<f32>v), 4);
  } else {
    ob(0xfb);
    obe(reinterpret<u64>(v), 8);
  }
}

function wInteger(p: usize, end: usize): i32 {
  if (fmt == CBOR) {
    const negative = magnitude(p, end, true) == 1;
    if (nLimbs <= 2) {
      cborHeadOut(negative ? 1 : 0, small());
      return OK;
    }
    cborHeadOut(6, negative ? 3 : 2);
    const top = load<u32>(LIMBS + ((nLimbs - 1) << 2));
    const lead: u32 = top >= 0x1000000 ? 4 : top >= 0x10000 ? 3 : top >= 0x100 ? 2 : 1;
    cborHeadOut(2, (nLimbs - 1) * 4 + lead);
    for (let b = <i32>lead - 1; b >= 0; b--) ob((top >> (<u32>b * 8)) & 0xff);
    for (let k = <i32>nLimbs - 2; k >= 0; k--) obe(<u64>load<u32>(LIMBS + (<usize>k << 2)), 4);
    return OK;
  }
  const negative = magnitude(p, end, false) == 1;
  if (nLimbs > 2) return OUT_OF_RANGE;
  const v = small();
  if (!negative) {
    if (v < 128) ob(<u32>v);
    else if (v <= 0xff) {
      ob(0xcc);
      ob(<u32>v);
    } else if (v <= 0xffff) {
      ob(0xcd);
      obe(v, 2);
    } else if (v <= 0xffffffff) {
      ob(0xce);
      obe(v, 4);
    } else {
      ob(0xcf);
      obe(v, 8);
    }
    return OK;
  }
  if (v > (<u64>1 << 63)) return OUT_OF_RANGE;
  const s = 0 - <i64>v;
  if (s >= -32) ob(<u32>(<u8>s));
  else if (s >= -128) {
    ob(0xd0);
    ob(<u32>(<u8>s));
  } else if (s >= -32768) {
    ob(0xd1);
    obe(<u64>s & 0xffff, 2);
  } else if (s >= -2147483648) {
    ob(0xd2);
    obe(<u64>s & 0xffffffff, 4);
  } else {
    ob(0xd3);
    obe(<u64>s, 8);
  }
  return OK;
}

/** STRBUF (jsLen bytes) as base64 into B64BUF; its length, or -1. */
function base64Decode(): i32 {
  const n = jsLen;
  if (n % 4 != 0) return -1;
  let out = 0;
  for (let i: u32 = 0; i < n; i += 4) {
    let x: u32 = 0;
    let pad = 0;
    for (let k: u32 = 0; k < 4; k++) {
      const c = <u32>load<u8>(STRBUF + i + k);
      let d: i32 = -1;
      if (c >= 0x41 && c <= 0x5a) d = c - 0x41;
      else if (c >= 0x61 && c <= 0x7a) d = c - 0x61 + 26;
      else if (c >= 0x30 && c <= 0x39) d = c - 0x30 + 52;
      else if (c == 0x2b) d = 62;
      else if (c == 0x2f) d = 63;
      else if (c == 0x3d && i + 4 == n && k >= 2) {
        pad++;
        d = 0;
      }
      if (d < 0 || (pad > 0 && c != 0x3d)) return -1;
      x = (x << 6) | <u32>d;
    }
    if (<u32>out + 3 > B64_CAP) return -1;
    store<u8>(B64BUF + out++, <u8>(x >> 16));
    if (pad < 2) store<u8>(B64BUF + out++, <u8>(x >> 8));
    if (pad < 1) store<u8>(B64BUF + out++, <u8>x);
    // the bits a padded quantum leaves over must be zero
    if ((pad == 1 && (x & 0xff) != 0) || (pad == 2 && (x & 0xffff) != 0)) return -1;
  }
  return out;
}

function keyIs(p: usize, n: u32, name: string): bool {
  if (n != <u32>name.length) return false;
  for (let i: u32 = 0; i < n; i++) {
    if (<u32>load<u8>(p + i) != <u32>load<u16>(changetype<usize>(name) + (<usize>i << 1))) {
      return false;
    }
  }
  return true;
}

/** An integer number at jp within lo..hi into `intValue`. */
let intValue: i64 = 0;
function smallInt(lo: i64, hi: i64): bool {
  if (!jnumber() || numFloat) return false;
  let p = numStart;
  const negative = load<u8>(p) == 0x2d;
  if (negative) p++;
  if (jp - p > 6) return false; // every caller's range has at most 3 digits
  let v: u64 = 0;
  for (; p < jp; p++) v = v * 10 + <u64>(load<u8>(p) - 0x30);
  if (negative) {
    if (v > (<u64>1 << 63)) return false;
    intValue = 0 - <i64>v;
  } else {
    intValue = <i64>v;
  }
  return intValue >= lo && intValue <= hi;
}

/** A tag number: an unsigned integer below 2^64. */
let tagValue: u64 = 0;
function tagNumber(): bool {
  if (!jnumber() || numFloat || load<u8>(numStart) == 0x2d) return false;
  if (jp - numStart > 20) return false;
  let v: u64 = 0;
  for (let p = numStart; p < jp; p++) {
    const d = <u64>(load<u8>(p) - 0x30);
    if (v > (0xffffffffffffffff - d) / 10) return false;
    v = v * 10 + d;
  }
  tagValue = v;
  return true;
}

function wValue(depth: i32): i32 {
  const c = peek();
  if (c == 0x22) {
    const e = jstring();
    if (e != OK) return e;
    return wText(STRBUF, jsLen);
  }
  if (c == 0x74) {
    if (!literal("true")) return MALFORMED;
    ob(fmt == CBOR ? 0xf5 : 0xc3);
    return OK;
  }
  if (c == 0x66) {
    if (!literal("false")) return MALFORMED;
    ob(fmt == CBOR ? 0xf4 : 0xc2);
    return OK;
  }
  if (c == 0x6e) {
    if (!literal("null")) return MALFORMED;
    ob(fmt == CBOR ? 0xf6 : 0xc0);
    return OK;
  }
  if (c == 0x5b) {
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    const n = countElements(depth);
    if (n < 0) return -n;
    let e = wArray(<u64>n);
    if (e != OK) return e;
    for (let k = 0; k < n; k++) {
      if (k > 0 && !expect(0x2c)) return MALFORMED;
      e = wValue(depth + 1);
      if (e != OK) return e;
    }
    return expect(0x5d) ? OK : MALFORMED;
  }
  if (c == 0x7b) return wObject(depth);
  if (!jnumber()) return MALFORMED;
  if (numFloat) {
    wFloat(parseFloat64(numStart, jp));
    return OK;
  }
  return wInteger(numStart, jp);
}

const F_NONE = 0, F_FLOAT = 1, F_BYTES = 2, F_STR = 3, F_UNDEF = 4, F_SIMPLE = 5, F_MAP = 6,
  F_EXT = 7, F_TAG = 8;

function wObject(depth: i32): i32 {
  if (depth > MAX_DEPTH) return TOO_DEEP;
  const start = jp;
  jp++;
  // count the members and recognise a "$" form by its keys
  let n = 0;
  let form = F_NONE;
  if (peek() == 0x7d) {
    jp++;
  } else {
    while (true) {
      const e = jstring();
      if (e != OK) return e;
      if (n == 0) {
        if (keyIs(STRBUF, jsLen, "$float")) form = F_FLOAT;
        else if (keyIs(STRBUF, jsLen, "$bytes")) form = F_BYTES;
        else if (keyIs(STRBUF, jsLen, "$str_b64")) form = F_STR;
        else if (keyIs(STRBUF, jsLen, "$undefined")) form = F_UNDEF;
        else if (keyIs(STRBUF, jsLen, "$simple")) form = F_SIMPLE;
        else if (keyIs(STRBUF, jsLen, "$map")) form = F_MAP;
        else if (keyIs(STRBUF, jsLen, "$ext")) form = F_EXT;
        else if (keyIs(STRBUF, jsLen, "$tag")) form = F_TAG;
      } else if (n == 1) {
        if (form == F_EXT && !keyIs(STRBUF, jsLen, "data")) form = F_NONE;
        if (form == F_TAG && !keyIs(STRBUF, jsLen, "value")) form = F_NONE;
      }
      n++;
      if (!expect(0x3a)) return MALFORMED;
      const s = jskip(depth + 1);
      if (s != OK) return s;
      const d = peek();
      jp++;
      if (d == 0x7d) break;
      if (d != 0x2c) return MALFORMED;
    }
  }
  const end = jp;
  const two = form == F_EXT || form == F_TAG;
  if (form != F_NONE && n == (two ? 2 : 1)) {
    jp = start + 1;
    const e = wSpecial(form, depth);
    if (e != OK) return e;
    if (!expect(0x7d) || jp != end) return MALFORMED;
    return OK;
  }
  if (depth >= MAX_DEPTH) return TOO_DEEP;
  jp = start + 1;
  let e = wMap(<u64>n);
  if (e != OK) return e;
  for (let k = 0; k < n; k++) {
    if (k > 0 && !expect(0x2c)) return MALFORMED;
    e = jstring();
    if (e != OK) return e;
    e = wText(STRBUF, jsLen);
    if (e != OK) return e;
    if (!expect(0x3a)) return MALFORMED;
    e = wValue(depth + 1);
    if (e != OK) return e;
  }
  return expect(0x7d) ? OK : MALFORMED;
}

/** Writes the value of a "$" object, jp after its '{'; leaves jp before the '}'. */
function wSpecial(form: i32, depth: i32): i32 {
  let e = jstring(); // the key
  if (e != OK) return e;
  if (!expect(0x3a)) return MALFORMED;
  if (form == F_FLOAT) {
    if (peek() != 0x22 || jstring() != OK) return MALFORMED;
    let v: f64;
    if (keyIs(STRBUF, jsLen, "NaN")) v = NaN;
    else if (keyIs(STRBUF, jsLen, "Infinity")) v = Infinity;
    else if (keyIs(STRBUF, jsLen, "-Infinity")) v = -Infinity;
    else return MALFORMED;
    wFloat(v);
    return OK;
  }
  if (form == F_BYTES || form == F_STR) {
    if (peek() != 0x22 || jstring() != OK) return MALFORMED;
    const n = base64Decode();
    if (n < 0) return MALFORMED;
    return form == F_BYTES ? wBytes(B64BUF, <u32>n) : wText(B64BUF, <u32>n);
  }
  if (form == F_UNDEF) {
    if (peek() != 0x74 || !literal("true")) return MALFORMED;
    if (fmt == MSGPACK) return NO_EQUIVALENT;
    ob(0xf7);
    return OK;
  }
  if (form == F_SIMPLE) {
    if (!smallInt(0, 255)) return MALFORMED;
    if (fmt == MSGPACK) return NO_EQUIVALENT;
    if (intValue >= 24 && intValue < 32) return NO_EQUIVALENT; // reserved, RFC 8949 3.3
    cborHeadOut(7, <u64>intValue);
    return OK;
  }
  if (form == F_EXT) {
    if (!smallInt(-128, 127)) return MALFORMED;
    const t = intValue;
    if (!expect(0x2c)) return MALFORMED;
    e = jstring();
    if (e != OK) return e;
    if (!expect(0x3a)) return MALFORMED;
    if (peek() != 0x22 || jstring() != OK) return MALFORMED;
    const n = base64Decode();
    if (n < 0) return MALFORMED;
    if (fmt == CBOR) return NO_EQUIVALENT;
    if (n == 1) ob(0xd4);
    else if (n == 2) ob(0xd5);
    else if (n == 4) ob(0xd6);
    else if (n == 8) ob(0xd7);
    else if (n == 16) ob(0xd8);
    else if (mpHeadOut(0, 0, 0xc7, 0xc8, <u64>n) != OK) return TOO_LARGE;
    ob(<u32>(<u8>t));
    obytes(B64BUF, <u32>n);
    return OK;
  }
  if (form == F_TAG) {
    if (!tagNumber()) return MALFORMED;
    const t = tagValue;
    if (!expect(0x2c)) return MALFORMED;
    e = jstring();
    if (e != OK) return e;
    if (!expect(0x3a)) return MALFORMED;
    if (fmt == MSGPACK) return NO_EQUIVALENT;
    if (depth >= MAX_DEPTH) return TOO_DEEP;
    cborHeadOut(6, t);
    return wValue(depth + 1);
  }
  // F_MAP: [[key, value], ...]
  if (peek() != 0x5b) return MALFORMED;
  if (depth >= MAX_DEPTH) return TOO_DEEP;
  const n = countElements(depth);
  if (n < 0) return -n;
  e = wMap(<u64>n);
  if (e != OK) return e;
  for (let k = 0; k < n; k++) {
    if (k > 0 && !expect(0x2c)) return MALFORMED;
    if (!expect(0x5b)) return MALFORMED;
    e = wValue(depth + 1);
    if (e != OK) return e;
    if (!expect(0x2c)) return MALFORMED;
    e = wValue(depth + 1);
    if (e != OK) return e;
    if (!expect(0x5d)) return MALFORMED;
  }
  return expect(0x5d) ? OK : MALFORMED;
}

function fromJson(text: Str, format: i32): i32 {
  fmt = format;
  jp = text.ptr;
  jend = text.ptr + text.len;
  olen = 0;
  ofull = false;
  const e = wValue(0);
  if (e != OK) return e;
  ws();
  if (jp != jend) return MALFORMED;
  return ofull ? TOO_LARGE : OK;
}

/** JSON text, as cborToJson writes it, to one CBOR data item. */
export function jsonToCbor(text: Str): i32 {
  return fromJson(text, CBOR);
}

/** JSON text, as msgpackToJson writes it, to one MessagePack value. */
export function jsonToMsgpack(text: Str): i32 {
  return fromJson(text, MSGPACK);
}

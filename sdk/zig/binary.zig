//! binary.zig: CBOR (RFC 8949) and MessagePack payloads to JSON and back, by the mapping of
//! docs/binary-payloads.md. Zig's standard library has neither format, so these are small
//! readers and writers of our own; they allocate nothing (static scratch areas) and write into
//! an `Out` over storage the caller owns.
//!
//!     var out = binary.Out.init(&storage);
//!     binary.cborToJson(&out, payload) catch |e| ...;   // also msgpackToJson
//!     binary.jsonToCbor(&out, text) catch |e| ...;      // also jsonToMsgpack
//!     edged.emit(topic, out.slice()) ...
//!
//! Errors: `Malformed` (ill-formed, truncated, trailing bytes, bad JSON or a "$" object that
//! does not spell its value), `TooDeep` (arrays, maps and tags nested deeper than 32),
//! `OutOfRange` (an integer MessagePack cannot hold), `NoEquivalent` (a CBOR-only value such
//! as a tag asked of MessagePack, or the reverse), `TooLarge` (the output or a bignum does not
//! fit the static areas).
const std = @import("std");

pub const max_depth = 32;

pub const Error = error{ Malformed, TooDeep, OutOfRange, NoEquivalent, TooLarge };

/// Where a conversion writes. A write past the end sets `full`; the conversion then fails with
/// TooLarge.
pub const Out = struct {
    buf: []u8,
    len: usize = 0,
    full: bool = false,

    pub fn init(buf: []u8) Out {
        return .{ .buf = buf };
    }
    pub fn slice(o: *const Out) []const u8 {
        return o.buf[0..o.len];
    }
    fn room(o: *Out, n: usize) ?[]u8 {
        if (o.full or o.buf.len - o.len < n) {
            o.full = true;
            return null;
        }
        const s = o.buf[o.len .. o.len + n];
        o.len += n;
        return s;
    }
    fn byte(o: *Out, c: u8) void {
        if (o.room(1)) |s| s[0] = c;
    }
    fn bytes(o: *Out, data: []const u8) void {
        if (o.room(data.len)) |s| @memcpy(s, data);
    }
    fn be(o: *Out, comptime T: type, v: T) void {
        if (o.room(@sizeOf(T))) |s| std.mem.writeInt(T, s[0..@sizeOf(T)], v, .big);
    }
};

// Scratch areas, sized for the 64 KiB input area.
var str_buf: [64 * 1024]u8 = undefined; // a JSON string, unescaped
var b64_buf: [48 * 1024]u8 = undefined; // a base64 string, decoded
var join_buf: [64 * 1024]u8 = undefined; // chunks of an indefinite CBOR string, joined
var limbs: [8 * 1024]u32 = undefined; // a bignum, little-endian base 2^32
var chunks: [10 * 1024]u32 = undefined; // its decimal digits, base 10^9

// ---- writing JSON -----------------------------------------------------------------------

fn jsonUint(o: *Out, v: u64) void {
    var tmp: [20]u8 = undefined;
    var i: usize = tmp.len;
    var x = v;
    while (true) {
        i -= 1;
        tmp[i] = @intCast('0' + x % 10);
        x /= 10;
        if (x == 0) break;
    }
    o.bytes(tmp[i..]);
}

fn jsonInt(o: *Out, v: i64) void {
    if (v < 0) {
        o.byte('-');
        jsonUint(o, @as(u64, @intCast(-(v + 1))) + 1);
    } else jsonUint(o, @intCast(v));
}

var float_buf: [std.fmt.float.min_buffer_size]u8 = undefined;

/// The shortest text that reads back to v (Ryu), laid out as Python's repr (and every SDK)
/// does: plain from 1e-4 up to 1e16 ("0.0001", "21.5", "1.0"), else with an exponent of at
/// least two digits ("1e+16", "1.5e-05"). NaN and the infinities become {"$float": ...}.
fn jsonFloat(o: *Out, v: f64) void {
    if (std.math.isNan(v)) return o.bytes("{\"$float\":\"NaN\"}");
    if (std.math.isInf(v)) return o.bytes(if (v > 0) "{\"$float\":\"Infinity\"}" else "{\"$float\":\"-Infinity\"}");
    const sci = std.fmt.float.render(&float_buf, v, .{ .mode = .scientific }) catch unreachable;
    // sci is -d.ddde-d: split it into sign, digits and exponent
    var digits: [24]u8 = undefined;
    var n: usize = 0;
    var exp: i32 = 0;
    var i: usize = 0;
    const neg = sci[0] == '-';
    if (neg) i = 1;
    while (i < sci.len) : (i += 1) {
        const c = sci[i];
        if (c == 'e') {
            exp = std.fmt.parseInt(i32, sci[i + 1 ..], 10) catch 0;
            break;
        }
        if (c != '.' and n < digits.len) {
            digits[n] = c;
            n += 1;
        }
    }
    while (n > 1 and digits[n - 1] == '0') n -= 1;
    floatLayout(o, neg, digits[0..n], exp);
}

/// A float's sign, significant digits (no leading or trailing zeros, except a lone "0") and
/// the decimal exponent of the first digit, laid out as jsonFloat says.
fn floatLayout(o: *Out, neg: bool, digits: []const u8, exp: i32) void {
    if (neg) o.byte('-');
    const n: i32 = @intCast(digits.len);
    if (exp >= 0 and exp < 16) {
        const int_len: usize = @intCast(exp + 1);
        if (n > exp + 1) {
            o.bytes(digits[0..int_len]);
            o.byte('.');
            o.bytes(digits[int_len..]);
        } else {
            o.bytes(digits);
            var k = n;
            while (k < exp + 1) : (k += 1) o.byte('0');
            o.bytes(".0");
        }
    } else if (exp < 0 and exp >= -4) {
        o.bytes("0.");
        var k: i32 = 0;
        while (k < -exp - 1) : (k += 1) o.byte('0');
        o.bytes(digits);
    } else {
        o.byte(digits[0]);
        if (n > 1) {
            o.byte('.');
            o.bytes(digits[1..]);
        }
        o.byte('e');
        o.byte(if (exp < 0) '-' else '+');
        const a: u64 = @abs(exp);
        if (a < 10) o.byte('0');
        jsonUint(o, a);
    }
}

fn jsonBase64(o: *Out, data: []const u8) void {
    const enc = std.base64.standard.Encoder;
    o.byte('"');
    if (o.room(enc.calcSize(data.len))) |s| _ = enc.encode(s, data);
    o.byte('"');
}

const hex = "0123456789abcdef";

fn jsonString(o: *Out, s: []const u8) void {
    o.byte('"');
    for (s) |c| {
        switch (c) {
            '"', '\\' => {
                o.byte('\\');
                o.byte(c);
            },
            '\n' => o.bytes("\\n"),
            '\r' => o.bytes("\\r"),
            '\t' => o.bytes("\\t"),
            8 => o.bytes("\\b"),
            12 => o.bytes("\\f"),
            0...7, 11, 14...0x1f => {
                o.bytes("\\u00");
                o.byte(hex[c >> 4]);
                o.byte(hex[c & 15]);
            },
            else => o.byte(c),
        }
    }
    o.byte('"');
}

/// A text string: a JSON string when UTF-8, else {"$str_b64": ...}.
fn jsonText(o: *Out, s: []const u8) void {
    if (std.unicode.utf8ValidateSlice(s)) return jsonString(o, s);
    o.bytes("{\"$str_b64\":");
    jsonBase64(o, s);
    o.byte('}');
}

fn jsonBytes(o: *Out, s: []const u8) void {
    o.bytes("{\"$bytes\":");
    jsonBase64(o, s);
    o.byte('}');
}

/// The unsigned big-endian integer `mag` (plus one when `negative`, then negated) in decimal.
fn jsonBig(o: *Out, mag: []const u8, negative: bool) Error!void {
    var n: usize = (mag.len + 3) / 4;
    if (n + 1 > limbs.len) return error.TooLarge;
    @memset(limbs[0 .. n + 1], 0);
    for (mag, 0..) |b, k| {
        const bit = (mag.len - 1 - k) * 8;
        limbs[bit / 32] |= @as(u32, b) << @intCast(bit % 32);
    }
    if (negative) { // -1 - mag: print 1 + mag
        var k: usize = 0;
        while (true) : (k += 1) {
            limbs[k] +%= 1;
            if (limbs[k] != 0) break;
        }
        n += 1;
        o.byte('-');
    }
    while (n > 0 and limbs[n - 1] == 0) n -= 1;
    var count: usize = 0;
    while (n > 0) {
        var rem: u64 = 0;
        var k = n;
        while (k > 0) {
            k -= 1;
            const cur = (rem << 32) | limbs[k];
            limbs[k] = @intCast(cur / 1_000_000_000);
            rem = cur % 1_000_000_000;
        }
        if (count == chunks.len) return error.TooLarge;
        chunks[count] = @intCast(rem);
        count += 1;
        while (n > 0 and limbs[n - 1] == 0) n -= 1;
    }
    if (count == 0) return o.byte('0');
    jsonUint(o, chunks[count - 1]);
    var k = count - 1;
    while (k > 0) {
        k -= 1;
        var digits: [9]u8 = undefined;
        var x = chunks[k];
        var d: usize = 9;
        while (d > 0) {
            d -= 1;
            digits[d] = @intCast('0' + x % 10);
            x /= 10;
        }
        o.bytes(&digits);
    }
}

// ---- CBOR to JSON -----------------------------------------------------------------------

const Reader = struct {
    p: []const u8,
    i: usize = 0,

    fn take(r: *Reader, n: u64) Error![]const u8 {
        if (n > r.p.len - r.i) return error.Malformed;
        const s = r.p[r.i .. r.i + @as(usize, @intCast(n))];
        r.i += @intCast(n);
        return s;
    }
    fn int(r: *Reader, comptime T: type) Error!T {
        const s = try r.take(@sizeOf(T));
        return std.mem.readInt(T, s[0..@sizeOf(T)], .big);
    }
    fn peek(r: *const Reader) Error!u8 {
        if (r.i >= r.p.len) return error.Malformed;
        return r.p[r.i];
    }
};

const Head = struct { major: u8, ai: u8, arg: u64 };
const indefinite = 31;

fn cborHead(r: *Reader) Error!Head {
    const b = (try r.take(1))[0];
    const major = b >> 5;
    const ai = b & 31;
    const arg: u64 = switch (ai) {
        0...23 => ai,
        24 => try r.int(u8),
        25 => try r.int(u16),
        26 => try r.int(u32),
        27 => try r.int(u64),
        indefinite => if ((major >= 2 and major <= 5) or major == 7) 0 else return error.Malformed,
        else => return error.Malformed,
    };
    return .{ .major = major, .ai = ai, .arg = arg };
}

/// The content of a byte or text string whose head was read; an indefinite one is joined from
/// its definite chunks of the same major type.
fn cborStr(r: *Reader, h: Head) Error![]const u8 {
    if (h.ai != indefinite) return r.take(h.arg);
    var n: usize = 0;
    while (true) {
        if (try r.peek() == 0xff) {
            r.i += 1;
            return join_buf[0..n];
        }
        const c = try cborHead(r);
        if (c.major != h.major or c.ai == indefinite) return error.Malformed;
        const s = try r.take(c.arg);
        if (s.len > join_buf.len - n) return error.TooLarge;
        @memcpy(join_buf[n .. n + s.len], s);
        n += s.len;
    }
}

/// Whether a container has another element: counted down when definite, up to the break
/// when indefinite.
fn more(r: *Reader, h: Head, left: *u64) Error!bool {
    if (h.ai == indefinite) {
        if (try r.peek() == 0xff) {
            r.i += 1;
            return false;
        }
        return true;
    }
    if (left.* == 0) return false;
    left.* -= 1;
    return true;
}

fn cborSkip(r: *Reader, depth: u32) Error!void {
    const h = try cborHead(r);
    switch (h.major) {
        2, 3 => _ = try cborStr(r, h),
        4, 5, 6 => {
            if (depth >= max_depth) return error.TooDeep;
            if (h.major == 6) return cborSkip(r, depth + 1);
            var left = h.arg;
            if (h.major == 5 and h.ai != indefinite) {
                if (left > r.p.len) return error.Malformed;
                left *= 2;
            }
            var k: u64 = 0;
            while (try more(r, h, &left)) : (k += 1) try cborSkip(r, depth + 1);
            if (h.major == 5 and k % 2 == 1) return error.Malformed;
        },
        7 => if (h.ai == indefinite or (h.ai == 24 and h.arg < 32)) return error.Malformed,
        else => {},
    }
}

fn half(bits: u16) f64 {
    return @floatCast(@as(f16, @bitCast(bits)));
}

fn cborItem(r: *Reader, o: *Out, depth: u32) Error!void {
    const h = try cborHead(r);
    switch (h.major) {
        0 => jsonUint(o, h.arg),
        1 => if (h.arg < 1 << 63) jsonInt(o, -1 - @as(i64, @intCast(h.arg))) else {
            var mag: [8]u8 = undefined;
            std.mem.writeInt(u64, &mag, h.arg, .big);
            try jsonBig(o, &mag, true);
        },
        2 => jsonBytes(o, try cborStr(r, h)),
        3 => jsonText(o, try cborStr(r, h)),
        4 => {
            if (depth >= max_depth) return error.TooDeep;
            o.byte('[');
            var left = h.arg;
            var k: u64 = 0;
            while (try more(r, h, &left)) : (k += 1) {
                if (k > 0) o.byte(',');
                try cborItem(r, o, depth + 1);
            }
            o.byte(']');
        },
        5 => {
            if (depth >= max_depth) return error.TooDeep;
            try cborMap(r, o, h, depth);
        },
        6 => {
            if (depth >= max_depth) return error.TooDeep;
            if (h.arg == 2 or h.arg == 3) {
                const c = try cborHead(r);
                if (c.major != 2) return error.Malformed;
                return jsonBig(o, try cborStr(r, c), h.arg == 3);
            }
            o.bytes("{\"$tag\":");
            jsonUint(o, h.arg);
            o.bytes(",\"value\":");
            try cborItem(r, o, depth + 1);
            o.byte('}');
        },
        else => switch (h.ai) {
            20 => o.bytes("false"),
            21 => o.bytes("true"),
            22 => o.bytes("null"),
            23 => o.bytes("{\"$undefined\":true}"),
            0...19, 24 => {
                if (h.ai == 24 and h.arg < 32) return error.Malformed; // RFC 8949 3.3
                o.bytes("{\"$simple\":");
                jsonUint(o, h.arg);
                o.byte('}');
            },
            25 => jsonFloat(o, half(@intCast(h.arg))),
            26 => jsonFloat(o, @floatCast(@as(f32, @bitCast(@as(u32, @intCast(h.arg)))))),
            27 => jsonFloat(o, @bitCast(h.arg)),
            else => return error.Malformed, // a break where no item may end
        },
    }
}

/// A map is an object when every key is a UTF-8 text string, else {"$map": [[k, v], ...]}:
/// the keys are looked at first, then the map is read again and written.
fn cborMap(r: *Reader, o: *Out, h: Head, depth: u32) Error!void {
    const start = r.i;
    var left = h.arg;
    var text_keys = true;
    while (try more(r, h, &left)) {
        if (text_keys) {
            const key = r.i;
            const k = try cborHead(r);
            if (k.major != 3 or !std.unicode.utf8ValidateSlice(try cborStr(r, k))) text_keys = false;
            r.i = key;
        }
        try cborSkip(r, depth + 1);
        try cborSkip(r, depth + 1);
    }
    r.i = start;
    left = h.arg;
    o.bytes(if (text_keys) "{" else "{\"$map\":[");
    var n: u64 = 0;
    while (try more(r, h, &left)) : (n += 1) {
        if (n > 0) o.byte(',');
        if (!text_keys) o.byte('[');
        try cborItem(r, o, depth + 1);
        o.byte(if (text_keys) ':' else ',');
        try cborItem(r, o, depth + 1);
        if (!text_keys) o.byte(']');
    }
    o.bytes(if (text_keys) "}" else "]}");
}

/// The one CBOR data item of `payload` as JSON.
pub fn cborToJson(o: *Out, payload: []const u8) Error!void {
    var r = Reader{ .p = payload };
    try cborItem(&r, o, 0);
    if (r.i != payload.len) return error.Malformed;
    if (o.full) return error.TooLarge;
}

// ---- MessagePack to JSON ----------------------------------------------------------------

fn isStr(c: u8) bool {
    return (c >= 0xa0 and c <= 0xbf) or (c >= 0xd9 and c <= 0xdb);
}

/// The length that follows a str, bin, array or map code of 8, 16 or 32 bits.
fn mpLen(r: *Reader, bits: u8) Error!u64 {
    return switch (bits) {
        8 => try r.int(u8),
        16 => try r.int(u16),
        else => try r.int(u32),
    };
}

const MpKind = enum { scalar, str, bin, ext, array, map };
const MpHead = struct { kind: MpKind, n: u64 = 0, ext: i8 = 0 };

/// Reads a code and its length; a scalar is written (or skipped when `o` is null).
fn mpHead(r: *Reader, o: ?*Out) Error!MpHead {
    const c = (try r.take(1))[0];
    switch (c) {
        0x00...0x7f => if (o) |w| jsonUint(w, c),
        0xe0...0xff => if (o) |w| jsonInt(w, @as(i8, @bitCast(c))),
        0x80...0x8f => return .{ .kind = .map, .n = c & 15 },
        0x90...0x9f => return .{ .kind = .array, .n = c & 15 },
        0xa0...0xbf => return .{ .kind = .str, .n = c & 31 },
        0xc0 => if (o) |w| w.bytes("null"),
        0xc1 => return error.Malformed, // never used
        0xc2 => if (o) |w| w.bytes("false"),
        0xc3 => if (o) |w| w.bytes("true"),
        0xc4 => return .{ .kind = .bin, .n = try mpLen(r, 8) },
        0xc5 => return .{ .kind = .bin, .n = try mpLen(r, 16) },
        0xc6 => return .{ .kind = .bin, .n = try mpLen(r, 32) },
        0xc7, 0xc8, 0xc9 => {
            const n = try mpLen(r, @as(u8, 8) << @intCast(c - 0xc7));
            return .{ .kind = .ext, .n = n, .ext = @bitCast(try r.int(u8)) };
        },
        0xca => {
            const v: f32 = @bitCast(try r.int(u32));
            if (o) |w| jsonFloat(w, @floatCast(v));
        },
        0xcb => {
            const v: f64 = @bitCast(try r.int(u64));
            if (o) |w| jsonFloat(w, v);
        },
        0xcc => {
            const v = try r.int(u8);
            if (o) |w| jsonUint(w, v);
        },
        0xcd => {
            const v = try r.int(u16);
            if (o) |w| jsonUint(w, v);
        },
        0xce => {
            const v = try r.int(u32);
            if (o) |w| jsonUint(w, v);
        },
        0xcf => {
            const v = try r.int(u64);
            if (o) |w| jsonUint(w, v);
        },
        0xd0 => {
            const v = try r.int(i8);
            if (o) |w| jsonInt(w, v);
        },
        0xd1 => {
            const v = try r.int(i16);
            if (o) |w| jsonInt(w, v);
        },
        0xd2 => {
            const v = try r.int(i32);
            if (o) |w| jsonInt(w, v);
        },
        0xd3 => {
            const v = try r.int(i64);
            if (o) |w| jsonInt(w, v);
        },
        0xd4...0xd8 => {
            const n = @as(u64, 1) << @intCast(c - 0xd4);
            return .{ .kind = .ext, .n = n, .ext = @bitCast(try r.int(u8)) };
        },
        0xd9 => return .{ .kind = .str, .n = try mpLen(r, 8) },
        0xda => return .{ .kind = .str, .n = try mpLen(r, 16) },
        0xdb => return .{ .kind = .str, .n = try mpLen(r, 32) },
        0xdc => return .{ .kind = .array, .n = try mpLen(r, 16) },
        0xdd => return .{ .kind = .array, .n = try mpLen(r, 32) },
        0xde => return .{ .kind = .map, .n = try mpLen(r, 16) },
        0xdf => return .{ .kind = .map, .n = try mpLen(r, 32) },
    }
    return .{ .kind = .scalar };
}

fn mpItem(r: *Reader, o: ?*Out, depth: u32) Error!void {
    const h = try mpHead(r, o);
    switch (h.kind) {
        .scalar => {},
        .str, .bin => {
            const s = try r.take(h.n);
            if (o) |w| if (h.kind == .str) jsonText(w, s) else jsonBytes(w, s);
        },
        .ext => {
            const s = try r.take(h.n);
            if (o) |w| {
                w.bytes("{\"$ext\":");
                jsonInt(w, h.ext);
                w.bytes(",\"data\":");
                jsonBase64(w, s);
                w.byte('}');
            }
        },
        .array => {
            if (depth >= max_depth) return error.TooDeep;
            if (h.n > r.p.len - r.i) return error.Malformed;
            if (o) |w| w.byte('[');
            var k: u64 = 0;
            while (k < h.n) : (k += 1) {
                if (o) |w| if (k > 0) w.byte(',');
                try mpItem(r, o, depth + 1);
            }
            if (o) |w| w.byte(']');
        },
        .map => {
            if (depth >= max_depth) return error.TooDeep;
            if (h.n > r.p.len - r.i) return error.Malformed;
            const w = o orelse {
                var k: u64 = 0;
                while (k < 2 * h.n) : (k += 1) try mpItem(r, null, depth + 1);
                return;
            };
            const start = r.i;
            var text_keys = true;
            var k: u64 = 0;
            while (k < h.n) : (k += 1) {
                if (text_keys) {
                    const key = r.i;
                    const c = try r.peek();
                    if (isStr(c)) {
                        const kh = try mpHead(r, null);
                        if (!std.unicode.utf8ValidateSlice(try r.take(kh.n))) text_keys = false;
                    } else text_keys = false;
                    r.i = key;
                }
                try mpItem(r, null, depth + 1);
                try mpItem(r, null, depth + 1);
            }
            r.i = start;
            w.bytes(if (text_keys) "{" else "{\"$map\":[");
            k = 0;
            while (k < h.n) : (k += 1) {
                if (k > 0) w.byte(',');
                if (!text_keys) w.byte('[');
                try mpItem(r, w, depth + 1);
                w.byte(if (text_keys) ':' else ',');
                try mpItem(r, w, depth + 1);
                if (!text_keys) w.byte(']');
            }
            w.bytes(if (text_keys) "}" else "]}");
        },
    }
}

/// The one MessagePack value of `payload` as JSON.
pub fn msgpackToJson(o: *Out, payload: []const u8) Error!void {
    var r = Reader{ .p = payload };
    try mpItem(&r, o, 0);
    if (r.i != payload.len) return error.Malformed;
    if (o.full) return error.TooLarge;
}

// ---- reading JSON -----------------------------------------------------------------------

const Json = struct {
    s: []const u8,
    i: usize = 0,

    fn ws(j: *Json) void {
        while (j.i < j.s.len) : (j.i += 1) {
            switch (j.s[j.i]) {
                ' ', '\t', '\n', '\r' => {},
                else => return,
            }
        }
    }
    fn peek(j: *Json) Error!u8 {
        j.ws();
        if (j.i >= j.s.len) return error.Malformed;
        return j.s[j.i];
    }
    fn expect(j: *Json, c: u8) Error!void {
        if (try j.peek() != c) return error.Malformed;
        j.i += 1;
    }
    fn literal(j: *Json, word: []const u8) Error!void {
        if (!std.mem.startsWith(u8, j.s[j.i..], word)) return error.Malformed;
        j.i += word.len;
    }

    fn hex4(j: *Json) Error!u21 {
        if (j.s.len - j.i < 4) return error.Malformed;
        const v = std.fmt.parseInt(u16, j.s[j.i .. j.i + 4], 16) catch return error.Malformed;
        if (j.s[j.i] == '+' or j.s[j.i] == '-') return error.Malformed;
        j.i += 4;
        return v;
    }

    /// The string at j.i, unescaped into `dest` (null: checked only); it must be UTF-8.
    fn string(j: *Json, dest: ?[]u8) Error![]const u8 {
        try j.expect('"');
        var n: usize = 0;
        const put = struct {
            fn f(d: ?[]u8, k: *usize, bytes: []const u8) Error!void {
                if (d) |buf| {
                    if (bytes.len > buf.len - k.*) return error.TooLarge;
                    @memcpy(buf[k.* .. k.* + bytes.len], bytes);
                }
                k.* += bytes.len;
            }
        }.f;
        const start = j.i;
        while (j.i < j.s.len) {
            const c = j.s[j.i];
            if (c == '"') {
                j.i += 1;
                const text = if (dest) |d| d[0..n] else j.s[start .. j.i - 1];
                if (!std.unicode.utf8ValidateSlice(text)) return error.Malformed;
                return text;
            }
            if (c < 0x20) return error.Malformed;
            if (c != '\\') {
                try put(dest, &n, j.s[j.i .. j.i + 1]);
                j.i += 1;
                continue;
            }
            if (j.i + 1 >= j.s.len) return error.Malformed;
            const e = j.s[j.i + 1];
            j.i += 2;
            switch (e) {
                '"', '\\', '/' => try put(dest, &n, &.{e}),
                'b' => try put(dest, &n, "\x08"),
                'f' => try put(dest, &n, "\x0c"),
                'n' => try put(dest, &n, "\n"),
                'r' => try put(dest, &n, "\r"),
                't' => try put(dest, &n, "\t"),
                'u' => {
                    var cp: u21 = try j.hex4();
                    if (cp >= 0xd800 and cp < 0xdc00 and j.s.len - j.i >= 6 and j.s[j.i] == '\\' and j.s[j.i + 1] == 'u') {
                        const save = j.i;
                        j.i += 2;
                        const lo = try j.hex4();
                        if (lo >= 0xdc00 and lo < 0xe000) {
                            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        } else j.i = save;
                    }
                    if (cp >= 0xd800 and cp < 0xe000) return error.Malformed; // a lone surrogate
                    var utf: [4]u8 = undefined;
                    const len = std.unicode.utf8Encode(cp, &utf) catch return error.Malformed;
                    try put(dest, &n, utf[0..len]);
                },
                else => return error.Malformed,
            }
        }
        return error.Malformed;
    }

    /// The number at j.i, checked against the JSON grammar.
    fn number(j: *Json) Error![]const u8 {
        const start = j.i;
        if (j.i < j.s.len and j.s[j.i] == '-') j.i += 1;
        const first = j.i;
        const int_digits = j.digits();
        if (int_digits == 0 or (int_digits > 1 and j.s[first] == '0')) return error.Malformed;
        if (j.i < j.s.len and j.s[j.i] == '.') {
            j.i += 1;
            if (j.digits() == 0) return error.Malformed;
        }
        if (j.i < j.s.len and (j.s[j.i] == 'e' or j.s[j.i] == 'E')) {
            j.i += 1;
            if (j.i < j.s.len and (j.s[j.i] == '+' or j.s[j.i] == '-')) j.i += 1;
            if (j.digits() == 0) return error.Malformed;
        }
        return j.s[start..j.i];
    }
    fn digits(j: *Json) usize {
        const start = j.i;
        while (j.i < j.s.len and j.s[j.i] >= '0' and j.s[j.i] <= '9') j.i += 1;
        return j.i - start;
    }

    /// Reads over one value. Containers one level past max_depth are allowed here so that a
    /// "$" object for a scalar there is read; what they are is decided when written.
    fn skip(j: *Json, depth: u32) Error!void {
        switch (try j.peek()) {
            '"' => _ = try j.string(null),
            't' => try j.literal("true"),
            'f' => try j.literal("false"),
            'n' => try j.literal("null"),
            '[', '{' => |open| {
                if (depth > max_depth + 1) return error.TooDeep;
                j.i += 1;
                const close: u8 = if (open == '[') ']' else '}';
                if (try j.peek() == close) {
                    j.i += 1;
                    return;
                }
                while (true) {
                    if (open == '{') {
                        if (try j.peek() != '"') return error.Malformed;
                        _ = try j.string(null);
                        try j.expect(':');
                    }
                    try j.skip(depth + 1);
                    const c = try j.peek();
                    j.i += 1;
                    if (c == close) return;
                    if (c != ',') return error.Malformed;
                }
            },
            else => _ = try j.number(),
        }
    }
};

fn isFloatText(text: []const u8) bool {
    for (text) |c| {
        if (c == '.' or c == 'e' or c == 'E') return true;
    }
    return false;
}

/// An integer's text as a magnitude: small when it fits u64, else big-endian bytes in
/// b64_buf's tail (which no caller uses at the same time).
const Mag = struct { negative: bool, small: ?u64, big: []const u8 };

fn magnitude(text: []const u8, minus_one: bool) Error!Mag {
    const negative = text[0] == '-';
    const ds = if (negative) text[1..] else text;
    var v: u64 = 0;
    var fits = true;
    for (ds) |c| {
        const m = @mulWithOverflow(v, 10);
        const a = @addWithOverflow(m[0], c - '0');
        if (m[1] != 0 or a[1] != 0) {
            fits = false;
            break;
        }
        v = a[0];
    }
    if (fits) {
        if (v == 0) return .{ .negative = false, .small = 0, .big = &.{} }; // "-0" too
        return .{ .negative = negative, .small = if (minus_one and negative) v - 1 else v, .big = &.{} };
    }
    // base 2^32 limbs, little-endian: limbs = limbs * 10 + digit
    var n: usize = 1;
    limbs[0] = 0;
    for (ds) |c| {
        var carry: u64 = c - '0';
        for (limbs[0..n]) |*l| {
            const x = @as(u64, l.*) * 10 + carry;
            l.* = @truncate(x);
            carry = x >> 32;
        }
        if (carry != 0) {
            if (n == limbs.len) return error.TooLarge;
            limbs[n] = @intCast(carry);
            n += 1;
        }
    }
    if (minus_one and negative) { // CBOR stores -1 - value
        var k: usize = 0;
        while (limbs[k] == 0) : (k += 1) limbs[k] = 0xffff_ffff;
        limbs[k] -= 1;
    }
    while (n > 1 and limbs[n - 1] == 0) n -= 1;
    if (n <= 2) {
        const small = @as(u64, limbs[0]) | (@as(u64, if (n == 2) limbs[1] else 0) << 32);
        return .{ .negative = negative, .small = small, .big = &.{} };
    }
    const out = b64_buf[b64_buf.len - 4 * n ..];
    var k: usize = 0;
    while (k < n) : (k += 1) std.mem.writeInt(u32, out[4 * (n - 1 - k) ..][0..4], limbs[k], .big);
    var lead: usize = 0;
    while (out[lead] == 0) lead += 1;
    return .{ .negative = negative, .small = null, .big = out[lead..] };
}

fn parseFloat(text: []const u8) Error!f64 {
    return std.fmt.parseFloat(f64, text) catch error.Malformed;
}

fn base64Decode(text: []const u8) Error![]const u8 {
    const dec = std.base64.standard.Decoder;
    const n = dec.calcSizeForSlice(text) catch return error.Malformed;
    if (n > b64_buf.len / 2) return error.TooLarge;
    dec.decode(b64_buf[0..n], text) catch return error.Malformed;
    return b64_buf[0..n];
}

const Format = enum { cbor, msgpack };

/// JSON to one binary format; `F` picks the writer.
fn Encoder(comptime F: Format) type {
    return struct {
        const Self = @This();
        j: Json,
        o: *Out,

        fn head(e: *Self, major: u8, n: u64) void {
            const m = major << 5;
            if (n < 24) {
                e.o.byte(m | @as(u8, @intCast(n)));
            } else if (n <= 0xff) {
                e.o.byte(m | 24);
                e.o.byte(@intCast(n));
            } else if (n <= 0xffff) {
                e.o.byte(m | 25);
                e.o.be(u16, @intCast(n));
            } else if (n <= 0xffff_ffff) {
                e.o.byte(m | 26);
                e.o.be(u32, @intCast(n));
            } else {
                e.o.byte(m | 27);
                e.o.be(u64, n);
            }
        }

        /// MessagePack's length-prefixed families: fix (when under `fix_max`), 8, 16, 32.
        fn mpHeadOut(e: *Self, fix: ?u8, fix_max: u64, c8: ?u8, c16: u8, n: u64) Error!void {
            if (fix != null and n < fix_max) {
                e.o.byte(fix.? | @as(u8, @intCast(n)));
            } else if (c8 != null and n <= 0xff) {
                e.o.byte(c8.?);
                e.o.byte(@intCast(n));
            } else if (n <= 0xffff) {
                e.o.byte(c16);
                e.o.be(u16, @intCast(n));
            } else if (n <= 0xffff_ffff) {
                e.o.byte(c16 + 1);
                e.o.be(u32, @intCast(n));
            } else return error.TooLarge;
        }

        fn array(e: *Self, n: u64) Error!void {
            switch (F) {
                .cbor => e.head(4, n),
                .msgpack => try e.mpHeadOut(0x90, 16, null, 0xdc, n),
            }
        }
        fn map(e: *Self, n: u64) Error!void {
            switch (F) {
                .cbor => e.head(5, n),
                .msgpack => try e.mpHeadOut(0x80, 16, null, 0xde, n),
            }
        }
        fn text(e: *Self, s: []const u8) Error!void {
            switch (F) {
                .cbor => e.head(3, s.len),
                .msgpack => try e.mpHeadOut(0xa0, 32, 0xd9, 0xda, s.len),
            }
            e.o.bytes(s);
        }
        fn bytes(e: *Self, s: []const u8) Error!void {
            switch (F) {
                .cbor => e.head(2, s.len),
                .msgpack => try e.mpHeadOut(null, 0, 0xc4, 0xc5, s.len),
            }
            e.o.bytes(s);
        }
        fn float(e: *Self, v: f64) void {
            switch (F) {
                .cbor => {
                    // the smallest width that holds v exactly (RFC 8949 4.2.2)
                    if (std.math.isNan(v)) return e.o.bytes("\xf9\x7e\x00");
                    const h: f16 = @floatCast(v);
                    if (@as(f64, h) == v) {
                        e.o.byte(0xf9);
                        return e.o.be(u16, @bitCast(h));
                    }
                    const s: f32 = @floatCast(v);
                    if (@as(f64, s) == v) {
                        e.o.byte(0xfa);
                        return e.o.be(u32, @bitCast(s));
                    }
                    e.o.byte(0xfb);
                    e.o.be(u64, @bitCast(v));
                },
                .msgpack => {
                    e.o.byte(0xcb);
                    e.o.be(u64, @bitCast(if (std.math.isNan(v)) std.math.nan(f64) else v));
                },
            }
        }
        fn integer(e: *Self, numtext: []const u8) Error!void {
            switch (F) {
                .cbor => {
                    const m = try magnitude(numtext, true);
                    if (m.small) |v| return e.head(if (m.negative) 1 else 0, v);
                    e.head(6, if (m.negative) 3 else 2);
                    e.head(2, m.big.len);
                    e.o.bytes(m.big);
                },
                .msgpack => {
                    const m = try magnitude(numtext, false);
                    const v = m.small orelse return error.OutOfRange;
                    if (!m.negative) {
                        if (v < 128) return e.o.byte(@intCast(v));
                        if (v <= 0xff) return e.o.bytes(&.{ 0xcc, @intCast(v) });
                        if (v <= 0xffff) {
                            e.o.byte(0xcd);
                            return e.o.be(u16, @intCast(v));
                        }
                        if (v <= 0xffff_ffff) {
                            e.o.byte(0xce);
                            return e.o.be(u32, @intCast(v));
                        }
                        e.o.byte(0xcf);
                        return e.o.be(u64, v);
                    }
                    if (v > 1 << 63) return error.OutOfRange;
                    const s: i64 = if (v == 1 << 63) std.math.minInt(i64) else -@as(i64, @intCast(v));
                    if (s >= -32) return e.o.byte(@bitCast(@as(i8, @intCast(s))));
                    if (s >= -128) return e.o.bytes(&.{ 0xd0, @bitCast(@as(i8, @intCast(s))) });
                    if (s >= -32768) {
                        e.o.byte(0xd1);
                        return e.o.be(i16, @intCast(s));
                    }
                    if (s >= -2147483648) {
                        e.o.byte(0xd2);
                        return e.o.be(i32, @intCast(s));
                    }
                    e.o.byte(0xd3);
                    e.o.be(i64, s);
                },
            }
        }

        fn value(e: *Self, depth: u32) Error!void {
            const j = &e.j;
            switch (try j.peek()) {
                '"' => try e.text(try j.string(&str_buf)),
                't' => {
                    try j.literal("true");
                    e.o.byte(if (F == .cbor) 0xf5 else 0xc3);
                },
                'f' => {
                    try j.literal("false");
                    e.o.byte(if (F == .cbor) 0xf4 else 0xc2);
                },
                'n' => {
                    try j.literal("null");
                    e.o.byte(if (F == .cbor) 0xf6 else 0xc0);
                },
                '[' => {
                    if (depth >= max_depth) return error.TooDeep;
                    const start = j.i;
                    try j.skip(depth);
                    const n = countElements(j.s[start..j.i], depth);
                    j.i = start + 1;
                    try e.array(n);
                    var k: u64 = 0;
                    while (k < n) : (k += 1) {
                        if (k > 0) try j.expect(',');
                        try e.value(depth + 1);
                    }
                    try j.expect(']');
                },
                '{' => try e.object(depth),
                else => {
                    const t = try j.number();
                    if (isFloatText(t)) e.float(try parseFloat(t)) else try e.integer(t);
                },
            }
        }

        /// The members of an object: its count, and its first two keys when they are short.
        const Keys = struct { n: u64 = 0, k0: [12]u8 = undefined, l0: usize = 99, k1: [12]u8 = undefined, l1: usize = 99 };

        fn is(buf: []const u8, len: usize, name: []const u8) bool {
            return len == name.len and std.mem.eql(u8, buf[0..len], name);
        }

        fn object(e: *Self, depth: u32) Error!void {
            const j = &e.j;
            if (depth > max_depth) return error.TooDeep;
            const start = j.i;
            j.i += 1;
            var keys = Keys{};
            if (try j.peek() == '}') j.i += 1 else while (true) {
                const key = try j.string(&str_buf);
                if (keys.n < 2 and key.len <= 12) {
                    const slot = if (keys.n == 0) &keys.k0 else &keys.k1;
                    @memcpy(slot[0..key.len], key);
                    if (keys.n == 0) keys.l0 = key.len else keys.l1 = key.len;
                }
                keys.n += 1;
                try j.expect(':');
                try j.skip(depth + 1);
                const c = try j.peek();
                j.i += 1;
                if (c == '}') break;
                if (c != ',') return error.Malformed;
            }
            const end = j.i;
            j.i = start + 1;
            if (keys.n == 1 or keys.n == 2) {
                if (try e.special(&keys, depth)) {
                    try j.expect('}');
                    if (j.i != end) return error.Malformed;
                    return;
                }
                j.i = start + 1;
            }
            if (depth >= max_depth) return error.TooDeep;
            try e.map(keys.n);
            var k: u64 = 0;
            while (k < keys.n) : (k += 1) {
                if (k > 0) try j.expect(',');
                try e.text(try j.string(&str_buf));
                try j.expect(':');
                try e.value(depth + 1);
            }
            try j.expect('}');
        }

        /// A "$" object: writes its value and returns true, leaving j before the '}'; false when
        /// the keys are no "$" form. A "$" form with a bad value is Malformed.
        fn special(e: *Self, keys: *const Keys, depth: u32) Error!bool {
            const j = &e.j;
            const one = keys.n == 1;
            const k0 = keys.k0[0..];
            const k1 = keys.k1[0..];
            const l0 = keys.l0;
            const Form = enum { float, bytes, str, undef, simple, map, ext, tag };
            const singles = [_]struct { []const u8, Form }{
                .{ "$float", .float },     .{ "$bytes", .bytes },   .{ "$str_b64", .str },
                .{ "$undefined", .undef }, .{ "$simple", .simple }, .{ "$map", .map },
            };
            var found: ?Form = null;
            if (one) {
                for (singles) |entry| {
                    if (is(k0, l0, entry[0])) found = entry[1];
                }
            } else if (is(k0, l0, "$ext") and is(k1, keys.l1, "data")) {
                found = .ext;
            } else if (is(k0, l0, "$tag") and is(k1, keys.l1, "value")) {
                found = .tag;
            }
            const kind = found orelse return false;
            _ = try j.string(null);
            try j.expect(':');
            switch (kind) {
                .float => {
                    if (try j.peek() != '"') return error.Malformed;
                    const s = try j.string(&str_buf);
                    const inf = std.math.inf(f64);
                    if (std.mem.eql(u8, s, "NaN")) {
                        e.float(std.math.nan(f64));
                    } else if (std.mem.eql(u8, s, "Infinity")) {
                        e.float(inf);
                    } else if (std.mem.eql(u8, s, "-Infinity")) {
                        e.float(-inf);
                    } else return error.Malformed;
                },
                .bytes, .str => {
                    if (try j.peek() != '"') return error.Malformed;
                    const data = try base64Decode(try j.string(&str_buf));
                    if (kind == .bytes) try e.bytes(data) else try e.text(data);
                },
                .undef => {
                    if (try j.peek() != 't') return error.Malformed;
                    try j.literal("true");
                    if (F == .msgpack) return error.NoEquivalent;
                    e.o.byte(0xf7);
                },
                .simple => {
                    const v = try smallInt(j, 0, 255);
                    if (F == .msgpack) return error.NoEquivalent;
                    if (v >= 24 and v < 32) return error.NoEquivalent; // reserved, RFC 8949 3.3
                    e.head(7, @intCast(v));
                },
                .ext => {
                    const t = try smallInt(j, -128, 127);
                    try j.expect(',');
                    _ = try j.string(null);
                    try j.expect(':');
                    if (try j.peek() != '"') return error.Malformed;
                    const data = try base64Decode(try j.string(&str_buf));
                    if (F == .cbor) return error.NoEquivalent;
                    const n = data.len;
                    const fix: ?u8 = switch (n) {
                        1 => 0xd4,
                        2 => 0xd5,
                        4 => 0xd6,
                        8 => 0xd7,
                        16 => 0xd8,
                        else => null,
                    };
                    if (fix) |c| e.o.byte(c) else try e.mpHeadOut(null, 0, 0xc7, 0xc8, n);
                    e.o.byte(@bitCast(@as(i8, @intCast(t))));
                    e.o.bytes(data);
                },
                .tag => {
                    if (try j.peek() == '-') return error.Malformed;
                    const t = try j.number();
                    if (isFloatText(t)) return error.Malformed;
                    const v = std.fmt.parseInt(u64, t, 10) catch return error.Malformed;
                    try j.expect(',');
                    _ = try j.string(null);
                    try j.expect(':');
                    if (F == .msgpack) return error.NoEquivalent;
                    if (depth >= max_depth) return error.TooDeep;
                    e.head(6, v);
                    try e.value(depth + 1);
                },
                .map => {
                    if (try j.peek() != '[') return error.Malformed;
                    if (depth >= max_depth) return error.TooDeep;
                    const start = j.i;
                    try j.skip(depth);
                    const n = countElements(j.s[start..j.i], depth);
                    j.i = start + 1;
                    try e.map(n);
                    var k: u64 = 0;
                    while (k < n) : (k += 1) {
                        if (k > 0) try j.expect(',');
                        try j.expect('[');
                        try e.value(depth + 1);
                        try j.expect(',');
                        try e.value(depth + 1);
                        try j.expect(']');
                    }
                    try j.expect(']');
                },
            }
            return true;
        }
    };
}

fn smallInt(j: *Json, lo: i64, hi: i64) Error!i64 {
    _ = try j.peek();
    const t = try j.number();
    if (isFloatText(t)) return error.Malformed;
    const v = std.fmt.parseInt(i64, t, 10) catch return error.Malformed;
    if (v < lo or v > hi) return error.Malformed;
    return v;
}

/// The number of elements of a checked JSON array's text.
fn countElements(text: []const u8, depth: u32) u64 {
    var j = Json{ .s = text, .i = 1 };
    if ((j.peek() catch return 0) == ']') return 0;
    var n: u64 = 0;
    while (true) {
        j.skip(depth + 1) catch return n;
        n += 1;
        const c = j.peek() catch return n;
        j.i += 1;
        if (c != ',') return n;
    }
}

fn fromJson(comptime F: Format, o: *Out, text: []const u8) Error!void {
    var e = Encoder(F){ .j = .{ .s = text }, .o = o };
    try e.value(0);
    e.j.ws();
    if (e.j.i != text.len) return error.Malformed;
    if (o.full) return error.TooLarge;
}

/// JSON text, as cborToJson writes it, to one CBOR data item.
pub fn jsonToCbor(o: *Out, text: []const u8) Error!void {
    return fromJson(.cbor, o, text);
}

/// JSON text, as msgpackToJson writes it, to one MessagePack value.
pub fn jsonToMsgpack(o: *Out, text: []const u8) Error!void {
    return fromJson(.msgpack, o, text);
}

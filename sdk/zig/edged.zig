//! edged.zig: the Zig SDK for edged filters (filter ABI v1, docs/filter-abi.md).
//!
//! A filter's root file declares its callbacks as public functions and hands itself to
//! `exportFilter`, which defines the module's exports at compile time:
//!
//!     const edged = @import("edged");
//!     pub fn onMessage(topic: []const u8, payload: []const u8) i32 { ... }
//!     comptime { edged.exportFilter(@This()); }
//!
//! Optional: `pub fn init() i32` (the params, read with `param`), `pub fn onTick(now_ms: i64)
//! void` (exports edged_on_tick), and `pub fn saveState(w: *edged.Writer) u32` with
//! `pub fn loadState(format: u32, r: *edged.Reader) i32` (the three state exports). A
//! callback that is not declared is not exported either.
//!
//! MQTT 5 properties are opt-in: `pub const edged_properties = true;` in the root file
//! exports edged_properties and gives every output record its third length (see "properties"
//! below). Without it nothing of that is compiled in.
//!
//! Every routine gives the same bytes as its counterpart in the C SDK (sdk/c/edged.h). No
//! allocator, no libc, no WASI import: the input and output areas are static arrays, and
//! topic and payload are slices of the input area, valid only during the call.

const std = @import("std");

/// Result codes of a message call.
pub const drop: i32 = 0;
pub const forward: i32 = 1;
/// The call emitted: returned by the SDK, not by onMessage.
pub const emitted: i32 = 2;
/// The input is refused: what `reject` returns.
pub const rejected: i32 = 3;

pub const Level = enum(i32) { debug = 0, info = 1, warn = 2, err = 3 };

/// Returned by edged_init when the params are malformed or exceed params_cap or
/// max_params. Negative codes belong to the SDK; `init` reports its failures with positive
/// ones.
pub const init_bad_params: i32 = -1;

pub const input_cap: u32 = 64 * 1024;
pub const output_cap: u32 = 64 * 1024;
/// Params live in the input area only during edged_init; the next message overwrites them,
/// so the SDK keeps its own copy of this size.
pub const params_cap: u32 = 4096;
pub const max_params = 32;
/// The largest state blob, saved or loaded; the node's budgets.max_state caps it too.
pub const state_cap: u32 = 64 * 1024;
/// With properties: the input's properties area (a message with more is dropped by the
/// host, input_too_large), and the most property bytes one emitted message may set.
pub const props_cap: u32 = 4096;
pub const props_out_cap: u32 = 1024;

/// Whether the filter opted in to MQTT 5 properties (`pub const edged_properties = true;` in
/// its root file).
pub const with_properties: bool = blk: {
    const root = @import("root");
    break :blk @hasDecl(root, "edged_properties") and root.edged_properties;
};
/// Bytes before an output record's topic: two lengths, or three with properties.
const record_head: u32 = if (with_properties) 12 else 8;

// ---- host import and static state ------------------------------------------------------

extern "edged" fn log(level: i32, ptr: [*]const u8, len: u32) void;

var in_area: [input_cap]u8 align(8) = undefined;
var out_area: [output_cap]u8 align(8) = undefined;
/// The ABI's buffer descriptor: in_ptr, in_cap, out_ptr, out_cap.
var desc: [4]u32 = undefined;

var used: u32 = 0; // mirrors the `used` word of the output area
var did_emit: bool = false;

var pstore: [params_cap]u8 = undefined;
var pkeys: [max_params][]const u8 = undefined;
var pvals: [max_params][]const u8 = undefined;
var pcount: usize = 0;

// ---- logging ----------------------------------------------------------------------------

/// One line to the node's log. Each call crosses into the host (~9 µs): fine in init and
/// ticks, keep it off the per-message path or behind a once-only flag.
pub fn logText(level: Level, msg: []const u8) void {
    log(@backingInt(level), msg.ptr, @intCast(msg.len));
}

// ---- strings ------------------------------------------------------------------------------

pub fn eql(a: []const u8, b: []const u8) bool {
    return std.mem.eql(u8, a, b);
}

/// FNV-1a, 32 bits: enough to spread topics over a small per-topic table.
pub fn hash(s: []const u8) u32 {
    var h: u32 = 2166136261;
    for (s) |c| {
        h ^= c;
        h *%= 16777619;
    }
    return h;
}

// ---- output -------------------------------------------------------------------------------

fn putU32(p: []u8, v: u32) void {
    p[0] = @truncate(v);
    p[1] = @truncate(v >> 8);
    p[2] = @truncate(v >> 16);
    p[3] = @truncate(v >> 24);
}

/// Whether the host would accept t as an emitted topic: 1..65535 bytes without '+', '#' or
/// NUL (UTF-8 validity is not checked). Vet a topic param in init with it.
pub fn topicValid(t: []const u8) bool {
    if (t.len == 0 or t.len > 65535) return false;
    for (t) |c| {
        if (c == '+' or c == '#' or c == 0) return false;
    }
    return true;
}

pub const EmitError = error{
    /// does not fit in what is left of the output area
    Full,
    /// the host would refuse the topic
    BadTopic,
};

/// Appends one message to the output area; on an error nothing was written. With
/// properties, the message carries those set since the last emit, which it then forgets (on
/// an error they stay set).
pub fn emit(topic: []const u8, payload: []const u8) EmitError!void {
    // The host drops the whole call's output if one topic is invalid; refusing it here
    // keeps the other records of the call alive.
    if (!topicValid(topic)) return error.BadTopic;
    const props: []const u8 = if (with_properties) props_out[0..props_out_len] else &.{};
    // Compared piecewise so that no sum can wrap.
    const room: u32 = output_cap - 4 - used;
    const h = record_head;
    if (room < h or topic.len > room - h or payload.len > room - h - topic.len or
        props.len > room - h - topic.len - payload.len) return error.Full;
    const tl: u32 = @intCast(topic.len);
    const pl: u32 = @intCast(payload.len);
    const xl: u32 = @intCast(props.len);
    const rec = out_area[4 + used ..];
    putU32(rec[0..4], tl);
    putU32(rec[4..8], pl);
    if (with_properties) putU32(rec[8..12], xl);
    @memcpy(rec[h .. h + tl], topic);
    @memcpy(rec[h + tl .. h + tl + pl], payload);
    if (with_properties) {
        @memcpy(rec[h + tl + pl .. h + tl + pl + xl], props);
        props_out_len = 0;
    }
    used += h + tl + pl + xl;
    putU32(out_area[0..4], used);
    did_emit = true;
}

/// Refuses the input: it is dead-lettered with `reason` (the host keeps at most 1 KiB) and
/// what was emitted during the call still goes on. Use it last: `return
/// edged.reject(reason);`. It returns `rejected`, or `drop` when the reason does not fit in
/// what is left of the output area (the input is then dropped without a dead letter).
pub fn reject(reason: []const u8) i32 {
    const room: u32 = output_cap - 4 - used;
    const h = record_head;
    if (room < h or reason.len > room - h) return drop;
    const rl: u32 = @intCast(reason.len);
    const rec = out_area[4 + used ..];
    putU32(rec[0..4], 0);
    putU32(rec[4..8], rl);
    if (with_properties) putU32(rec[8..12], 0);
    @memcpy(rec[h .. h + rl], reason);
    used += h + rl;
    putU32(out_area[0..4], used);
    return rejected;
}

fn resetOutput() void {
    used = 0;
    did_emit = false;
    if (with_properties) props_out_len = 0;
    putU32(out_area[0..4], 0);
}

// ---- MQTT 5 properties (docs/filter-abi.md, "Properties") ---------------------------------

/// MQTT 5 property identifiers, as the ABI's entries use them.
pub const prop_payload_format: u32 = 1;
pub const prop_message_expiry: u32 = 2;
pub const prop_content_type: u32 = 3;
pub const prop_response_topic: u32 = 8;
pub const prop_correlation_data: u32 = 9;
pub const prop_user: u32 = 38;

/// One property entry: `a` is the value (a user property's name, with `b` its value);
/// integer properties are 4 little-endian bytes in `a`.
pub const Prop = struct { id: u32, a: []const u8, b: []const u8 };

/// The input's properties, written by the host before each message: `used`, then entries.
var props_in: [props_cap]u8 align(4) = undefined;
var props_desc: [2]u32 = undefined; // props_ptr, props_cap
/// What the next emit sets on its message.
var props_out: [props_out_cap]u8 = undefined;
var props_out_len: u32 = 0;

fn needProperties() void {
    if (!with_properties)
        @compileError("properties: declare `pub const edged_properties = true;` in the root file");
}

fn getU32(p: []const u8) u32 {
    return std.mem.readInt(u32, p[0..4], .little);
}

/// The input's properties in order: `var it = edged.properties(); while (it.next()) |p| ...`.
pub const PropIterator = struct {
    pos: u32 = 0,

    /// The next property, or null at the end (or at a malformed entry, which the host
    /// never writes).
    pub fn next(it: *PropIterator) ?Prop {
        const used_in = getU32(props_in[0..4]);
        if (used_in > props_cap - 4) return null;
        const at = it.pos;
        if (at >= used_in or used_in - at < 12) return null;
        const e = props_in[4 + at ..];
        const a = getU32(e[4..8]);
        const b = getU32(e[8..12]);
        if (a > used_in - at - 12 or b > used_in - at - 12 - a) return null;
        it.pos = at + 12 + a + b;
        return .{ .id = getU32(e[0..4]), .a = e[12 .. 12 + a], .b = e[12 + a .. 12 + a + b] };
    }
};

pub fn properties() PropIterator {
    comptime needProperties();
    return .{};
}

/// The input's property `id` (not a user property), or null.
pub fn prop(id: u32) ?[]const u8 {
    var it = properties();
    while (it.next()) |p| {
        if (p.id == id) return p.a;
    }
    return null;
}

/// The value of the input's first user property called `name`, or null.
pub fn userProperty(name: []const u8) ?[]const u8 {
    var it = properties();
    while (it.next()) |p| {
        if (p.id == prop_user and eql(p.a, name)) return p.b;
    }
    return null;
}

pub const SetError = error{
    /// props_out_cap is full; nothing was set
    Full,
};

/// Sets a property on the next emitted message (emit takes them all and starts afresh).
/// What is not set comes from the input as the output rule says.
pub fn setProp(id: u32, a: []const u8, b: []const u8) SetError!void {
    comptime needProperties();
    const room = props_out_cap - props_out_len;
    if (room < 12 or a.len > room - 12 or b.len > room - 12 - a.len) return error.Full;
    const al: u32 = @intCast(a.len);
    const bl: u32 = @intCast(b.len);
    const e = props_out[props_out_len..];
    putU32(e[0..4], id);
    putU32(e[4..8], al);
    putU32(e[8..12], bl);
    @memcpy(e[12 .. 12 + al], a);
    @memcpy(e[12 + al .. 12 + al + bl], b);
    props_out_len += 12 + al + bl;
}

pub fn setUserProperty(name: []const u8, value: []const u8) SetError!void {
    return setProp(prop_user, name, value);
}

pub fn setContentType(value: []const u8) SetError!void {
    return setProp(prop_content_type, value, &.{});
}

pub fn setCorrelationData(value: []const u8) SetError!void {
    return setProp(prop_correlation_data, value, &.{});
}

/// 0 or 1 (1: the payload is UTF-8 text).
pub fn setPayloadFormat(indicator: u32) SetError!void {
    var v: [4]u8 = undefined;
    putU32(&v, indicator);
    return setProp(prop_payload_format, &v, &.{});
}

// ---- params -------------------------------------------------------------------------------

/// The value of param `key`, or null when it was not given. The slice lives as long as the
/// instance.
pub fn param(key: []const u8) ?[]const u8 {
    for (0..pcount) |i| {
        if (eql(pkeys[i], key)) return pvals[i];
    }
    return null;
}

/// The param as a number; dflt when it is absent or not a JSON number. Use
/// paramNumberStrict when a typo in the config must not go unnoticed.
pub fn paramNumber(key: []const u8, dflt: f64) f64 {
    const s = param(key) orelse return dflt;
    return parseNumber(s) orelse dflt;
}

/// The param as a number, dflt when it is absent, or null when it is present but not a
/// JSON number.
pub fn paramNumberStrict(key: []const u8, dflt: f64) ?f64 {
    const s = param(key) orelse return dflt;
    return parseNumber(s);
}

// ---- JSON numbers ---------------------------------------------------------------------------

const pow10 = [23]f64{
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

fn isDigit(s: []const u8, i: usize) bool {
    return i < s.len and s[i] >= '0' and s[i] <= '9';
}

/// s as one JSON number as a whole (no spaces, no leading '+', no leading zeros, no bare
/// '.'), or null for anything else, including values beyond the f64 range. The C SDK's
/// arithmetic, so the same text gives the same bits: exact when the digits form an integer
/// below 2^53 and the decimal exponent is within ±22, otherwise within a few units in the
/// last place. Digits past the 19th significant one are ignored.
pub fn parseNumber(s: []const u8) ?f64 {
    var mant: u64 = 0;
    var sig: u32 = 0; // significant digits kept in mant
    var exp10: i32 = 0;
    var neg = false;
    var i: usize = 0;
    if (s.len == 0) return null;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.len) return null;
    if (s[i] == '0') {
        i += 1;
    } else if (s[i] >= '1' and s[i] <= '9') {
        while (isDigit(s, i)) : (i += 1) {
            if (sig < 19) {
                mant = mant * 10 + (s[i] - '0');
                sig += 1;
            } else {
                exp10 += 1;
            }
        }
    } else {
        return null;
    }
    if (i < s.len and s[i] == '.') {
        i += 1;
        if (!isDigit(s, i)) return null;
        while (isDigit(s, i)) : (i += 1) {
            if (sig < 19) {
                mant = mant * 10 + (s[i] - '0');
                exp10 -= 1;
                if (mant != 0) sig += 1; // leading zeros of 0.000x carry no precision
            }
        }
    }
    if (i < s.len and (s[i] == 'e' or s[i] == 'E')) {
        var eneg = false;
        var e: i32 = 0;
        i += 1;
        if (i < s.len and (s[i] == '+' or s[i] == '-')) {
            eneg = s[i] == '-';
            i += 1;
        }
        if (!isDigit(s, i)) return null;
        while (isDigit(s, i)) : (i += 1) {
            // saturate: the result is 0 or infinite anyway
            if (e < 100000) e = e * 10 + (s[i] - '0');
        }
        exp10 += if (eneg) -e else e;
    }
    if (i != s.len) return null;

    var v: f64 = @floatFromInt(mant);
    if (mant != 0) {
        if (exp10 > 400) return null;
        if (exp10 < -400) {
            v = 0;
        } else if (exp10 >= 0) {
            while (exp10 > 22) : (exp10 -= 22) v *= 1e22;
            v *= pow10[@intCast(exp10)];
        } else {
            while (exp10 < -22) : (exp10 += 22) v /= 1e22;
            v /= pow10[@intCast(-exp10)];
        }
        if (std.math.isInf(v)) return null;
    }
    return if (neg) -v else v;
}

// ---- JSON scanning ------------------------------------------------------------------------

fn skipWs(s: []const u8, start: usize) usize {
    var i = start;
    while (i < s.len and (s[i] == ' ' or s[i] == '\t' or s[i] == '\n' or s[i] == '\r')) i += 1;
    return i;
}

/// i at the opening quote; the index after the closing quote, or null.
fn skipString(s: []const u8, start: usize) ?usize {
    var i = start + 1;
    while (i < s.len) : (i += 1) {
        if (s[i] == '\\') {
            i += 1;
            if (i == s.len) return null;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return null;
}

/// i at '{' or '['. Bracket kinds are tracked in a 64-bit stack so that "{]" is refused;
/// deeper nesting is refused too rather than guessed at.
fn skipNested(s: []const u8, start: usize) ?usize {
    var kinds: u64 = 0; // bit set = '{' at that depth
    var depth: u32 = 0;
    var i = start;
    while (i < s.len) {
        const c = s[i];
        if (c == '"') {
            i = skipString(s, i) orelse return null;
            continue;
        }
        if (c == '{' or c == '[') {
            if (depth == 64) return null;
            const bit = @as(u64, 1) << @intCast(depth);
            if (c == '{') kinds |= bit else kinds &= ~bit;
            depth += 1;
        } else if (c == '}' or c == ']') {
            if (depth == 0) return null;
            depth -= 1;
            const is_obj = (kinds >> @intCast(depth)) & 1 == 1;
            if (is_obj != (c == '}')) return null;
            if (depth == 0) return i + 1;
        }
        i += 1;
    }
    return null;
}

fn isDelim(c: u8) bool {
    return c == ',' or c == '}' or c == ']' or c == ' ' or c == '\t' or c == '\n' or c == '\r';
}

/// Scalar tokens run to the next delimiter; validity is judged separately and only for the
/// value that is returned.
fn skipValue(s: []const u8, start: usize) ?usize {
    if (start == s.len) return null;
    if (s[start] == '"') return skipString(s, start);
    if (s[start] == '{' or s[start] == '[') return skipNested(s, start);
    var i = start;
    while (i < s.len and !isDelim(s[i])) i += 1;
    return if (i == start) null else i;
}

fn scalarOk(v: []const u8) bool {
    return eql(v, "true") or eql(v, "false") or eql(v, "null") or parseNumber(v) != null;
}

pub const FieldError = error{
    /// the object has no such key
    Missing,
    /// not an object, or malformed before the key is reached
    Malformed,
};

/// The value of the first top-level `key` of the JSON object in `json`, exactly as written:
/// a number, a string with its quotes, true/false/null, or a whole nested object or array.
///
/// A scanner, not a validator, with the C SDK's rules: it stops at the first match; the
/// value is checked to be a complete token, not what is inside it; keys are compared byte
/// for byte with their text between the quotes, so a key written with escapes does not
/// match.
pub fn jsonField(json: []const u8, key: []const u8) FieldError![]const u8 {
    var i = skipWs(json, 0);
    if (i == json.len or json[i] != '{') return error.Malformed;
    i = skipWs(json, i + 1);
    if (i < json.len and json[i] == '}') return error.Missing;
    while (true) {
        if (i == json.len or json[i] != '"') return error.Malformed;
        const kend = skipString(json, i) orelse return error.Malformed;
        const k = json[i + 1 .. kend - 1];
        i = skipWs(json, kend);
        if (i == json.len or json[i] != ':') return error.Malformed;
        i = skipWs(json, i + 1);
        const vend = skipValue(json, i) orelse return error.Malformed;
        if (eql(k, key)) {
            const v = json[i..vend];
            const c = json[i];
            if (c != '"' and c != '{' and c != '[' and !scalarOk(v)) return error.Malformed;
            return v;
        }
        i = skipWs(json, vend);
        if (i == json.len) return error.Malformed;
        if (json[i] == '}') return error.Missing;
        if (json[i] != ',') return error.Malformed;
        i = skipWs(json, i + 1);
    }
}

// ---- string builder -----------------------------------------------------------------------

pub const fixed_max_decimals = 20;
/// Buf.fixed refuses magnitudes at or above this, so that no exponent is ever needed.
pub const fixed_limit: f64 = 1e15;

/// Append-only builder over storage the caller owns. Every append is all or nothing: a
/// failed one leaves the content untouched and sets `failed`, and so do all after it, so a
/// payload can be built with unchecked appends and tested once before it is emitted.
pub const Buf = struct {
    storage: []u8,
    len: usize = 0,
    failed: bool = false,

    pub fn init(storage: []u8) Buf {
        return .{ .storage = storage };
    }

    pub fn reset(b: *Buf) void {
        b.len = 0;
        b.failed = false;
    }

    pub fn slice(b: *const Buf) []const u8 {
        return b.storage[0..b.len];
    }

    pub fn append(b: *Buf, data: []const u8) void {
        if (b.failed or data.len > b.storage.len - b.len) {
            b.failed = true;
            return;
        }
        @memcpy(b.storage[b.len .. b.len + data.len], data);
        b.len += data.len;
    }

    pub fn byte(b: *Buf, c: u8) void {
        b.append(&[1]u8{c});
    }

    pub fn int(b: *Buf, v: i64) void {
        var tmp: [20]u8 = undefined;
        var n: usize = tmp.len;
        // The magnitude in unsigned arithmetic, so the smallest i64 has one.
        var m: u64 = if (v < 0) 0 -% @as(u64, @bitCast(v)) else @intCast(v);
        while (true) {
            n -= 1;
            tmp[n] = @intCast('0' + m % 10);
            m /= 10;
            if (m == 0) break;
        }
        if (v < 0) {
            n -= 1;
            tmp[n] = '-';
        }
        b.append(tmp[n..]);
    }

    /// v with exactly `decimals` digits after the point (none and no point for 0), without
    /// an exponent. The digits are those of v's exact binary value, rounded half away from
    /// zero: 0.125 gives "0.13", while 2.675 (stored as 2.67499999...) gives "2.67"; a
    /// result that rounds to zero prints without a sign. Refused (failed set): |v| >= 1e15,
    /// NaN, infinities, decimals over 20.
    pub fn fixed(b: *Buf, v: f64, decimals: u32) void {
        var tmp: [1 + 16 + 1 + fixed_max_decimals]u8 = undefined;
        var dig: [fixed_max_decimals]u8 = undefined;
        var limb = [4]u64{ 0, 0, 0, 0 }; // the fraction as 0.128 fixed point, 32 bits per limb
        if (decimals > fixed_max_decimals or !(v > -fixed_limit and v < fixed_limit)) {
            b.failed = true;
            return;
        }
        const neg = v < 0;
        const a = if (neg) -v else v;
        var ip: u64 = @intFromFloat(a);
        // Below 2^-75 every printable digit is 0 and the remainder is far from a half;
        // from there up, the fraction's lowest bit is at least 2^-127, so 128 bits hold it
        // exactly and every digit and the rounding are exact.
        if (a >= 0x1p-75) {
            const frac = a - @as(f64, @floatFromInt(ip)); // removing an integer part is exact
            const x = frac * 0x1p64;
            const hi: u64 = @intFromFloat(x);
            const lo: u64 = @intFromFloat((x - @as(f64, @floatFromInt(hi))) * 0x1p64);
            limb[0] = lo & 0xffffffff;
            limb[1] = lo >> 32;
            limb[2] = hi & 0xffffffff;
            limb[3] = hi >> 32;
        }
        for (0..decimals) |i| {
            var carry: u64 = 0;
            for (0..4) |k| {
                const t = limb[k] * 10 + carry;
                limb[k] = t & 0xffffffff;
                carry = t >> 32;
            }
            dig[i] = @intCast(carry);
        }
        if (limb[3] >> 31 != 0) { // what is left is at least one half
            var i: usize = decimals;
            while (i > 0 and dig[i - 1] == 9) : (i -= 1) dig[i - 1] = 0;
            if (i > 0) dig[i - 1] += 1 else ip += 1;
        }
        var nonzero = ip != 0;
        for (dig[0..decimals]) |d| {
            if (d != 0) nonzero = true;
        }
        var n: usize = 0;
        if (neg and nonzero) {
            tmp[n] = '-';
            n += 1;
        }
        var rev: [16]u8 = undefined;
        var r: usize = 0;
        while (true) {
            rev[r] = @intCast('0' + ip % 10);
            r += 1;
            ip /= 10;
            if (ip == 0) break;
        }
        while (r > 0) {
            r -= 1;
            tmp[n] = rev[r];
            n += 1;
        }
        if (decimals > 0) {
            tmp[n] = '.';
            n += 1;
            for (dig[0..decimals]) |d| {
                tmp[n] = '0' + d;
                n += 1;
            }
        }
        b.append(tmp[0..n]);
    }

    /// s as a JSON string, quotes included. Bytes >= 0x80 pass through, so the result is
    /// valid JSON whenever s is valid UTF-8 (MQTT topics are). All or nothing.
    pub fn jsonString(b: *Buf, s: []const u8) void {
        const hex = "0123456789abcdef";
        const start = b.len;
        b.byte('"');
        for (s) |c| {
            switch (c) {
                '"', '\\' => {
                    b.byte('\\');
                    b.byte(c);
                },
                '\n' => b.append("\\n"),
                '\r' => b.append("\\r"),
                '\t' => b.append("\\t"),
                0...8, 11, 12, 14...0x1f => b.append(&[6]u8{ '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] }),
                else => b.byte(c),
            }
        }
        b.byte('"');
        // Keep the all-or-nothing promise of the other appends.
        if (b.failed and b.len > start) b.len = start;
    }
};

// ---- state blobs --------------------------------------------------------------------------

/// What edged_state_load returns when loadState accepted the blob but did not read it
/// cleanly: a read ran past its end, or bytes were left unread. Both mean the layout is not
/// the one the format number promised, so the state is refused.
pub const state_truncated: i32 = -1;
pub const state_trailing: i32 = -2;

/// Builds a state blob: every value little-endian, byte strings with a u32 length before
/// them (the layout of every SDK). Like Buf, a failed put sets `failed` and refuses the
/// rest.
pub const Writer = struct {
    buf: Buf,

    pub fn putRaw(w: *Writer, data: []const u8) void {
        w.buf.append(data);
    }
    pub fn putU8(w: *Writer, v: u8) void {
        w.buf.byte(v);
    }
    pub fn putU32(w: *Writer, v: u32) void {
        var t: [4]u8 = undefined;
        std.mem.writeInt(u32, &t, v, .little);
        w.buf.append(&t);
    }
    pub fn putU64(w: *Writer, v: u64) void {
        var t: [8]u8 = undefined;
        std.mem.writeInt(u64, &t, v, .little);
        w.buf.append(&t);
    }
    pub fn putF64(w: *Writer, v: f64) void {
        w.putU64(@bitCast(v));
    }
    /// len(s) as a u32, then s; all or nothing.
    pub fn putBytes(w: *Writer, s: []const u8) void {
        if (w.buf.failed or s.len > w.buf.storage.len - w.buf.len or
            w.buf.storage.len - w.buf.len - s.len < 4)
        {
            w.buf.failed = true;
            return;
        }
        w.putU32(@intCast(s.len));
        w.buf.append(s);
    }
    pub fn failed(w: *const Writer) bool {
        return w.buf.failed;
    }
};

/// Reads values from a state blob in the Writer's layout. Reading past the end gives null
/// and sets `failed`, so a truncated blob can never be half-understood as a whole one.
pub const Reader = struct {
    blob: []const u8,
    pos: usize = 0,
    failed: bool = false,

    /// The next n bytes (a slice of the blob, which the next load or save overwrites: copy
    /// what you keep).
    pub fn getRaw(r: *Reader, n: usize) ?[]const u8 {
        if (r.failed or n > r.blob.len - r.pos) {
            r.failed = true;
            return null;
        }
        const s = r.blob[r.pos .. r.pos + n];
        r.pos += n;
        return s;
    }
    pub fn getU8(r: *Reader) ?u8 {
        const s = r.getRaw(1) orelse return null;
        return s[0];
    }
    pub fn getU32(r: *Reader) ?u32 {
        const s = r.getRaw(4) orelse return null;
        return std.mem.readInt(u32, s[0..4], .little);
    }
    pub fn getU64(r: *Reader) ?u64 {
        const s = r.getRaw(8) orelse return null;
        return std.mem.readInt(u64, s[0..8], .little);
    }
    pub fn getF64(r: *Reader) ?f64 {
        const v = r.getU64() orelse return null;
        return @bitCast(v);
    }
    /// A u32 length and that many bytes.
    pub fn getBytes(r: *Reader) ?[]const u8 {
        const at = r.pos;
        const n = r.getU32() orelse return null;
        if (n > r.blob.len - r.pos) {
            r.pos = at;
            r.failed = true;
            return null;
        }
        return r.getRaw(n);
    }
    /// Every byte was read and no read failed.
    pub fn done(r: *const Reader) bool {
        return !r.failed and r.pos == r.blob.len;
    }
};

var state_area: [state_cap]u8 align(8) = undefined;
var state_desc: [3]u32 = undefined; // ptr, len, format

fn addr(p: *const anyopaque) i32 {
    return @bitCast(@as(u32, @intCast(@intFromPtr(p))));
}

// ---- ABI entry points ---------------------------------------------------------------------

fn badParams(why: []const u8) i32 {
    pcount = 0;
    logText(.err, why);
    return init_bad_params;
}

fn parseParams(params_len: u32) i32 {
    pcount = 0;
    if (params_len > input_cap) return badParams("edged: params_len exceeds the input area");
    if (params_len > params_cap) return badParams("edged: params exceed EDGED_PARAMS_CAP");
    const n: usize = params_len;
    @memcpy(pstore[0..n], in_area[0..n]);
    var pos: usize = 0;
    while (pos < n) {
        const k = pos;
        while (pos < n and pstore[pos] != 0) pos += 1;
        if (pos == n) return badParams("edged: params: key without NUL");
        pos += 1;
        const v = pos;
        while (pos < n and pstore[pos] != 0) pos += 1;
        if (pos == n) return badParams("edged: params: value without NUL");
        if (pcount == max_params) return badParams("edged: more params than EDGED_MAX_PARAMS");
        pkeys[pcount] = pstore[k .. v - 1];
        pvals[pcount] = pstore[v..pos];
        pcount += 1;
        pos += 1;
    }
    return 0;
}

/// Defines the module's exports from the public functions of F (the filter's root file,
/// `@This()`): call it from a `comptime` block.
pub fn exportFilter(comptime F: type) void {
    if (@hasDecl(F, "saveState") != @hasDecl(F, "loadState"))
        @compileError("a filter with state declares both saveState and loadState");
    const S = struct {
        fn abiVersion() callconv(.c) i32 {
            return 1;
        }
        fn buffers() callconv(.c) i32 {
            desc = .{ @intCast(@intFromPtr(&in_area)), input_cap, @intCast(@intFromPtr(&out_area)), output_cap };
            return addr(&desc);
        }
        // Exported even without F.init: a module without edged_init may not be given
        // params at all, and every SDK filter should accept them.
        fn initExport(params_len: u32) callconv(.c) i32 {
            const code = parseParams(params_len);
            if (code != 0) return code;
            return if (@hasDecl(F, "init")) F.init() else 0;
        }
        // A call that emitted anything returns `emitted` (unless onMessage returns
        // `rejected`) and the input is not forwarded; otherwise onMessage's code goes to the
        // host unchanged.
        fn onMessage(topic_len: u32, payload_len: u32) callconv(.c) i32 {
            // The host promises the message fits; if it does not, a trap is the loudest
            // way to say so.
            if (topic_len > input_cap or payload_len > input_cap - topic_len) @trap();
            resetOutput();
            const r = F.onMessage(in_area[0..topic_len], in_area[topic_len .. topic_len + payload_len]);
            return if (did_emit and r != rejected) emitted else r;
        }
        fn onTick(now_ms: i64) callconv(.c) i32 {
            resetOutput();
            F.onTick(now_ms);
            return if (did_emit) emitted else 0;
        }
        // A state that does not fit is not saved at all: the trap makes the host keep the
        // last good one, where a truncated blob would lose data quietly.
        fn stateSave() callconv(.c) i32 {
            var w = Writer{ .buf = Buf.init(&state_area) };
            const format: u32 = F.saveState(&w);
            if (w.failed()) {
                logText(.err, "edged: the state does not fit EDGED_STATE_CAP");
                @trap();
            }
            state_desc = .{ @intCast(@intFromPtr(&state_area)), @intCast(w.buf.len), format };
            return addr(&state_desc);
        }
        fn propertiesExport() callconv(.c) i32 {
            props_desc = .{ @intCast(@intFromPtr(&props_in)), props_cap };
            return addr(&props_desc);
        }
        fn stateBuffer(len: u32) callconv(.c) i32 {
            return if (len > state_cap) -1 else addr(&state_area);
        }
        fn stateLoad(format: u32, len: u32) callconv(.c) i32 {
            if (len > state_cap) @trap();
            var r = Reader{ .blob = state_area[0..len] };
            const code: i32 = F.loadState(format, &r);
            if (code != 0) return code;
            if (r.failed) return state_truncated;
            return if (r.pos == r.blob.len) 0 else state_trailing;
        }
    };
    @export(&S.abiVersion, .{ .name = "edged_abi_version" });
    @export(&S.buffers, .{ .name = "edged_buffers" });
    @export(&S.initExport, .{ .name = "edged_init" });
    @export(&S.onMessage, .{ .name = "edged_on_message" });
    if (with_properties) @export(&S.propertiesExport, .{ .name = "edged_properties" });
    if (@hasDecl(F, "onTick")) @export(&S.onTick, .{ .name = "edged_on_tick" });
    if (@hasDecl(F, "saveState")) {
        @export(&S.stateSave, .{ .name = "edged_state_save" });
        @export(&S.stateBuffer, .{ .name = "edged_state_buffer" });
        @export(&S.stateLoad, .{ .name = "edged_state_load" });
    }
}

//! average: replaces a stream of readings with one summary per tick.
//!
//! params: field (default "value"), suffix (default "/avg"), decimals (default 2, integer
//! 0..20). Every message is dropped; its numeric `field` is added to the window of its
//! topic. On each tick, every topic with readings (in the order topics were first seen)
//! gets one message on <topic><suffix>:
//!   {"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
//! and its window starts over. When the output area is full the remaining topics keep
//! their windows for the next tick.
//!
//! Limits: 64 topics of at most 200 bytes each (others are dropped with one warning);
//! readings of magnitude 1e15 or more are ignored, since they could not be printed without
//! an exponent.
//!
//! State, format 1 (the C example's, byte for byte): the number of topics (u32), then per
//! topic in first-seen order its text (u32 length, bytes), count (u64), sum, min and max
//! (f64; 0 for an empty window). The params are not part of it.
const edged = @import("edged");

const max_topics = 64;
const max_topic_len = 200;
const max_suffix_len = 200;

const Window = struct {
    hash: u32 = 0,
    len: usize = 0,
    topic: [max_topic_len]u8 = undefined,
    count: i64 = 0,
    sum: f64 = 0,
    min: f64 = 0,
    max: f64 = 0,
};

var windows: [max_topics]Window = undefined; // index order = first-seen order
var n_windows: usize = 0;
var warned_topics = false;
var warned_range = false;

var field: []const u8 = "value";
var suffix: []const u8 = "/avg";
var decimals: u32 = 2;

pub fn init() i32 {
    if (edged.param("field")) |f| field = f;
    if (edged.param("suffix")) |s| suffix = s;
    // An empty suffix is allowed (same topic out); anything else must be topic text, or
    // every summary would be refused at tick time.
    if (suffix.len > max_suffix_len or (suffix.len > 0 and !edged.topicValid(suffix))) {
        edged.logText(.err, "average: param 'suffix' must be topic text of at most 200 bytes");
        return 1;
    }
    const d = edged.paramNumberStrict("decimals", 2) orelse -1;
    if (!(d >= 0 and d <= edged.fixed_max_decimals) or d != @trunc(d)) {
        edged.logText(.err, "average: param 'decimals' must be an integer 0..20");
        return 2;
    }
    decimals = @intFromFloat(d);
    return 0;
}

fn findOrAdd(topic: []const u8) ?*Window {
    const h = edged.hash(topic);
    for (windows[0..n_windows]) |*w| {
        if (w.hash == h and w.len == topic.len and edged.eql(w.topic[0..w.len], topic)) return w;
    }
    if (n_windows == max_topics or topic.len > max_topic_len) {
        if (!warned_topics) {
            warned_topics = true;
            edged.logText(.warn, "average: more than 64 topics or a topic over 200 bytes; its readings are dropped");
        }
        return null;
    }
    const w = &windows[n_windows];
    n_windows += 1;
    w.* = .{ .hash = h, .len = topic.len };
    @memcpy(w.topic[0..topic.len], topic);
    return w;
}

pub fn onMessage(topic: []const u8, payload: []const u8) i32 {
    const raw = edged.jsonField(payload, field) catch return edged.drop;
    const v = edged.parseNumber(raw) orelse return edged.drop;
    if (!(v > -edged.fixed_limit and v < edged.fixed_limit)) {
        if (!warned_range) {
            warned_range = true;
            edged.logText(.warn, "average: ignoring readings of magnitude 1e15 or more");
        }
        return edged.drop;
    }
    const w = findOrAdd(topic) orelse return edged.drop;
    if (w.count == 0) {
        w.sum = 0;
        w.min = v;
        w.max = v;
    }
    w.count += 1;
    w.sum += v;
    if (v < w.min) w.min = v;
    if (v > w.max) w.max = v;
    return edged.drop;
}

var tbuf: [max_topic_len + max_suffix_len]u8 = undefined;
var pbuf: [256]u8 = undefined;

pub fn onTick(now_ms: i64) void {
    for (windows[0..n_windows]) |*w| {
        if (w.count == 0) continue;
        var avg = w.sum / @as(f64, @floatFromInt(w.count));
        // Rounding in the sum can land a hair outside [min, max]; the true mean cannot,
        // and clamping keeps it printable.
        if (avg < w.min) avg = w.min;
        if (avg > w.max) avg = w.max;

        var t = edged.Buf.init(&tbuf);
        t.append(w.topic[0..w.len]);
        t.append(suffix);

        var p = edged.Buf.init(&pbuf);
        p.append("{\"avg\":");
        p.fixed(avg, decimals);
        p.append(",\"min\":");
        p.fixed(w.min, decimals);
        p.append(",\"max\":");
        p.fixed(w.max, decimals);
        p.append(",\"count\":");
        p.int(w.count);
        p.append(",\"ts\":");
        p.int(now_ms);
        p.byte('}');

        // Both buffers are sized for the worst case, so only a full output area stops the
        // loop; the windows not yet sent wait for the next tick rather than being lost.
        edged.emit(t.slice(), p.slice()) catch |e| switch (e) {
            error.Full => break,
            error.BadTopic => {},
        };
        w.count = 0;
    }
}

pub fn saveState(s: *edged.Writer) u32 {
    s.putU32(@intCast(n_windows));
    for (windows[0..n_windows]) |*w| {
        s.putBytes(w.topic[0..w.len]);
        s.putU64(@bitCast(w.count));
        // An emptied window keeps its place in the order, not its old figures.
        const empty = w.count == 0;
        s.putF64(if (empty) 0 else w.sum);
        s.putF64(if (empty) 0 else w.min);
        s.putF64(if (empty) 0 else w.max);
    }
    return 1;
}

/// Refused: 1 an unknown format, 2 more topics or a longer topic than this build keeps, 3
/// a topic twice. A short or long blob is refused by the SDK.
pub fn loadState(format: u32, r: *edged.Reader) i32 {
    if (format != 1) return 1;
    const n = r.getU32() orelse return edged.state_truncated;
    if (n > max_topics) return 2;
    for (0..n) |_| {
        const topic = r.getBytes() orelse return edged.state_truncated;
        const count = r.getU64() orelse return edged.state_truncated;
        const sum = r.getF64() orelse return edged.state_truncated;
        const lo = r.getF64() orelse return edged.state_truncated;
        const hi = r.getF64() orelse return edged.state_truncated;
        if (topic.len > max_topic_len or count > @as(u64, @intCast(std.math.maxInt(i64)))) return 2;
        const known = n_windows;
        const w = findOrAdd(topic) orelse return 2;
        if (n_windows == known) return 3;
        w.count = @intCast(count);
        w.sum = sum;
        w.min = lo;
        w.max = hi;
    }
    return 0;
}

const std = @import("std");

comptime {
    edged.exportFilter(@This());
}

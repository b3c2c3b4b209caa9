//! threshold: turns readings above a limit into one alert message.
//!
//! params: field (default "value"), limit (required), topic (default "alert")
//! A JSON object whose `field` is a number strictly greater than `limit` becomes one
//! message on `topic`:
//!   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
//! Everything else is dropped. The same filter as the C example, byte for byte.
const edged = @import("edged");

var field: []const u8 = "value";
var limit_text: []const u8 = ""; // echoed as written in the config
var limit: f64 = 0;
var alert_topic: []const u8 = "alert";
var scratch: [edged.output_cap]u8 = undefined;

pub fn init() i32 {
    if (edged.param("field")) |f| field = f;
    const text = edged.param("limit");
    const value = if (text) |t| edged.parseNumber(t) else null;
    if (value == null) {
        edged.logText(.err, "threshold: param 'limit' is required and must be a number");
        return 1;
    }
    limit_text = text.?;
    limit = value.?;
    if (edged.param("topic")) |t| alert_topic = t;
    // Checked here because a bad topic would otherwise fail every alert.
    if (!edged.topicValid(alert_topic)) {
        edged.logText(.err, "threshold: param 'topic' is not a valid topic");
        return 2;
    }
    return 0;
}

pub fn onMessage(topic: []const u8, payload: []const u8) i32 {
    const raw = edged.jsonField(payload, field) catch return edged.drop;
    const v = edged.parseNumber(raw) orelse return edged.drop;
    if (!(v > limit)) return edged.drop;

    var b = edged.Buf.init(&scratch);
    b.append("{\"topic\":");
    b.jsonString(topic);
    b.append(",\"field\":");
    b.jsonString(field);
    b.append(",\"value\":");
    b.append(raw);
    b.append(",\"limit\":");
    b.append(limit_text);
    b.byte('}');
    // Larger than the output area: an alert cannot be shortened without lying, so the
    // reading is dropped.
    if (b.failed) return edged.drop;
    edged.emit(alert_topic, b.slice()) catch {};
    return edged.drop;
}

comptime {
    edged.exportFilter(@This());
}

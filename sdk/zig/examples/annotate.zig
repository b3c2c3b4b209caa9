//! annotate: sets MQTT 5 properties on each message it passes on, and refuses the ones that
//! lack a user property it requires.
//!
//! params (all optional):
//!   content_type   content type to set (e.g. application/json)
//!   property       name of a user property to add, with
//!   value          its value
//!   require        name of a user property every input must carry (e.g. traceparent); an
//!                  input without it is refused (REJECT) with the reason, and lands in the
//!                  dead letters
//! Topic and payload go on unchanged; what the filter does not set comes from the input as
//! the output rule says (docs/properties.md). The same filter as the C example.
const edged = @import("edged");

/// The opt-in: exports edged_properties, and every output record carries properties.
pub const edged_properties = true;

var content_type: ?[]const u8 = null;
var property: ?[]const u8 = null;
var value: []const u8 = "";
var require: ?[]const u8 = null;
var reason: [160]u8 = undefined;

pub fn init() i32 {
    content_type = edged.param("content_type");
    property = edged.param("property");
    const v = edged.param("value");
    require = edged.param("require");
    if ((property != null) != (v != null)) {
        edged.logText(.err, "annotate: params 'property' and 'value' go together");
        return 1;
    }
    value = v orelse "";
    if (require) |r| {
        if (r.len > 100) {
            edged.logText(.err, "annotate: param 'require' is over 100 bytes");
            return 2;
        }
    }
    return 0;
}

pub fn onMessage(topic: []const u8, payload: []const u8) i32 {
    if (require) |name| {
        if (edged.userProperty(name) == null) {
            var why = edged.Buf.init(&reason);
            why.append("missing user property ");
            why.append(name);
            return edged.reject(why.slice());
        }
    }
    if (content_type) |t| edged.setContentType(t) catch {};
    if (property) |p| edged.setUserProperty(p, value) catch {};
    edged.emit(topic, payload) catch {};
    return edged.emitted;
}

comptime {
    edged.exportFilter(@This());
}

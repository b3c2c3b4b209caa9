//! {{name}}: an edged filter in Zig. Forwards every message unchanged.
//!
//! The Zig SDK is edged.zig (copied next to this file); its doc comments list the API.
//! Start from here:
//!   - `pub fn init() i32`: runs once with the params (edged.param,
//!     edged.paramNumberStrict); a non-zero result refuses the module.
//!   - `onMessage` runs once per message and returns edged.forward or edged.drop, or
//!     publishes new messages with edged.emit (edged.jsonField and edged.parseNumber read
//!     JSON payloads without allocating).
//!   - `pub fn onTick(now_ms: i64) void` for a periodic summary.
//!   - `pub fn saveState(w: *edged.Writer) u32` and
//!     `pub fn loadState(format: u32, r: *edged.Reader) i32` to keep state across reloads.
const edged = @import("edged");

pub fn onMessage(topic: []const u8, payload: []const u8) i32 {
    _ = topic;
    _ = payload;
    return edged.forward;
}

comptime {
    edged.exportFilter(@This());
}

//! cbor_json: CBOR payloads to JSON and back, by the mapping of docs/binary-payloads.md.
//!
//! params: direction: "to_json" (default), a CBOR payload becomes its JSON text;
//! "from_json", JSON text (as to_json writes it) becomes CBOR.
//! The output goes to the input's topic. A payload that does not convert (malformed, nested
//! deeper than 32) is dropped with a
//! warning in the node's log.
const edged = @import("edged");
const binary = @import("binary");

var to_json = true;
var out_buf: [edged.output_cap - 4096]u8 = undefined;

pub fn init() i32 {
    if (edged.param("direction")) |d| {
        if (edged.eql(d, "from_json")) {
            to_json = false;
        } else if (!edged.eql(d, "to_json")) {
            edged.logText(.err, "cbor_json: param 'direction' must be to_json or from_json");
            return 1;
        }
    }
    return 0;
}

pub fn onMessage(topic: []const u8, payload: []const u8) i32 {
    var out = binary.Out.init(&out_buf);
    const done = if (to_json) binary.cborToJson(&out, payload) else binary.jsonToCbor(&out, payload);
    done catch |err| {
        edged.logText(.warn, switch (err) {
            error.Malformed => "cbor_json: message dropped: malformed payload",
            error.TooDeep => "cbor_json: message dropped: nested deeper than 32",
            error.OutOfRange => "cbor_json: message dropped: integer out of range for MessagePack",
            error.NoEquivalent => "cbor_json: message dropped: value has no equivalent in CBOR",
            error.TooLarge => "cbor_json: message dropped: output too large",
        });
        return edged.drop;
    };
    edged.emit(topic, out.slice()) catch {
        edged.logText(.warn, "cbor_json: message dropped: output too large");
    };
    return edged.drop;
}

comptime {
    edged.exportFilter(@This());
}

/*
 * msgpack_json: MessagePack payloads to JSON, or JSON to MessagePack.
 *
 * params: direction  to_json (default) or from_json
 *         topic      the output topic (default: the input topic)
 *
 * The mapping (64-bit integers, float32/64, bin, ext, maps with other keys
 * than text) is docs/binary-payloads.md. A payload that is not one
 * well-formed MessagePack object (or JSON document), or is nested deeper
 * than 32 levels, is refused: edged dead-letters it with the reason. From
 * JSON, an integer beyond int64/uint64 and the CBOR-only objects ($tag,
 * $undefined, $simple) are refused the same way. The reader and writer are
 * the C SDK's edged_binary.h.
 */
#define BINARY_CBOR 0
#include "binary_json.h"

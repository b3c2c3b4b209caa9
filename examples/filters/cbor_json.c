/*
 * cbor_json: CBOR (RFC 8949) payloads to JSON, or JSON to CBOR.
 *
 * params: direction  to_json (default) or from_json
 *         topic      the output topic (default: the input topic)
 *
 * The mapping (integers of any size, floats, byte strings, tags, simple
 * values, maps with other keys than text) is docs/binary-payloads.md.
 * A payload that is not one well-formed CBOR item (or JSON document), or is
 * nested deeper than 32 levels, is refused: edged dead-letters it with the
 * reason. The reader and writer are the C SDK's edged_binary.h.
 */
#define BINARY_CBOR 1
#include "binary_json.h"

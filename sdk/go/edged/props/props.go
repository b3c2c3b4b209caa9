// Package props gives a filter the MQTT 5 properties of its input and lets it set properties
// on what it emits (docs/properties.md). Importing it is the opt-in: it exports
// edged_properties, so the host writes each message's properties into this package's area
// before the call, and every output record of the module (edged.Emit, edged.Reject) carries
// the third length the ABI then asks for (docs/filter-abi.md, "Properties"). A filter that
// does not import it is called exactly as before.
//
// Nothing here allocates: the input's properties are slices of a static area, valid only
// during the call, and the properties set for the next Emit are copied into another.
package props

import (
	"iter"
	"unsafe"

	"edgedsdk/edged"
)

// MQTT 5 property identifiers, as the ABI's entries use them.
const (
	PayloadFormat   = 1  // a: u32, 4 bytes little-endian (0 bytes, 1 UTF-8)
	MessageExpiry   = 2  // a: u32 seconds, 4 bytes little-endian
	ContentType     = 3  // a: UTF-8
	ResponseTopic   = 8  // a: UTF-8
	CorrelationData = 9  // a: bytes
	User            = 38 // a: name, b: value, both UTF-8
)

// Sizes of the two areas, as in the C SDK: the input's properties (a message with more is
// dropped by the host, input_too_large), and the most property bytes one emitted message
// may set.
const (
	Cap    = 4096
	OutCap = 1024
)

// Prop is one property entry: A is the value (a user property's name, with B its value);
// integer properties are 4 little-endian bytes in A.
type Prop struct {
	ID   uint32
	A, B []byte
}

var (
	in      [Cap]byte
	desc    [2]uint32 // props_ptr, props_cap
	outArea [OutCap]byte
	pending = outArea[:0:OutCap]
)

func init() { edged.UseProperties(&pending) }

func getU32(p []byte) uint32 {
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
}

func putU32(p []byte, v uint32) {
	p[0] = byte(v)
	p[1] = byte(v >> 8)
	p[2] = byte(v >> 16)
	p[3] = byte(v >> 24)
}

// Next is the input's property at *pos (start at 0), and advances *pos past it; false at the
// end (or at a malformed entry, which the host never writes).
func Next(pos *uint32) (Prop, bool) {
	used := getU32(in[:])
	if used > Cap-4 {
		return Prop{}, false
	}
	at := *pos
	if at >= used || used-at < 12 {
		return Prop{}, false
	}
	e := in[4+at:]
	a, b := getU32(e[4:]), getU32(e[8:])
	if a > used-at-12 || b > used-at-12-a {
		return Prop{}, false
	}
	*pos = at + 12 + a + b
	return Prop{ID: getU32(e), A: e[12 : 12+a : 12+a], B: e[12+a : 12+a+b : 12+a+b]}, true
}

// All is every property of the input, in order: `for p := range props.All() { ... }`.
func All() iter.Seq[Prop] {
	return func(yield func(Prop) bool) {
		var pos uint32
		for {
			p, ok := Next(&pos)
			if !ok || !yield(p) {
				return
			}
		}
	}
}

// Get is the input's property id (not a user property) and whether it has one.
func Get(id uint32) ([]byte, bool) {
	var pos uint32
	for {
		p, ok := Next(&pos)
		if !ok {
			return nil, false
		}
		if p.ID == id {
			return p.A, true
		}
	}
}

// UserProperty is the value of the input's first user property called name.
func UserProperty(name []byte) ([]byte, bool) {
	var pos uint32
	for {
		p, ok := Next(&pos)
		if !ok {
			return nil, false
		}
		if p.ID == User && string(p.A) == string(name) {
			return p.B, true
		}
	}
}

// Set sets a property on the next emitted message (edged.Emit takes them all and starts
// afresh). What is not set comes from the input as the output rule says. 0, or -1 when
// OutCap is full (nothing set).
func Set(id uint32, a, b []byte) int {
	room := uint32(OutCap - len(pending))
	if room < 12 || uint64(len(a)) > uint64(room-12) || uint64(len(b)) > uint64(room-12-uint32(len(a))) {
		return -1
	}
	n := len(pending)
	e := pending[n : n+12+len(a)+len(b)]
	putU32(e, id)
	putU32(e[4:], uint32(len(a)))
	putU32(e[8:], uint32(len(b)))
	copy(e[12:], a)
	copy(e[12+len(a):], b)
	pending = pending[:n+len(e)]
	return 0
}

// SetUserProperty adds a user property to the next emitted message.
func SetUserProperty(name, value []byte) int { return Set(User, name, value) }

// SetContentType sets the next emitted message's content type.
func SetContentType(value []byte) int { return Set(ContentType, value, nil) }

// SetCorrelationData sets the next emitted message's correlation data.
func SetCorrelationData(value []byte) int { return Set(CorrelationData, value, nil) }

// SetPayloadFormat sets the next emitted message's payload format indicator: 0 or 1 (1:
// the payload is UTF-8 text).
func SetPayloadFormat(indicator uint32) int {
	var v [4]byte
	putU32(v[:], indicator)
	return Set(PayloadFormat, v[:], nil)
}

//go:wasmexport edged_properties
func properties() int32 {
	desc[0] = uint32(uintptr(unsafe.Pointer(&in[0])))
	desc[1] = Cap
	return int32(uintptr(unsafe.Pointer(&desc[0])))
}

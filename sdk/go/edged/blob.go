package edged

import "math"

// What edged_state_load returns when the filter's load function accepted the blob but did
// not read it cleanly: a read ran past its end, or bytes were left unread. Both mean the
// layout is not the one the format number promised, so the state is refused.
const (
	StateTruncated = -1
	StateTrailing  = -2
)

// Writer builds a state blob: every value little-endian, byte strings with a u32 length
// before them (the layout of every SDK, so one format reads the same in any language).
// Like Buf, a failed put sets Failed and refuses the rest.
type Writer struct {
	b      []byte
	Failed bool
}

// NewWriter is a Writer over storage; it never grows past len(storage).
func NewWriter(storage []byte) Writer { return Writer{b: storage[:0:len(storage)]} }

// Bytes is the blob so far.
func (w *Writer) Bytes() []byte { return w.b }

// Raw appends data as it is: 0, or -1 when it does not fit.
func (w *Writer) Raw(data []byte) int {
	if w.Failed || len(data) > cap(w.b)-len(w.b) {
		w.Failed = true
		return -1
	}
	w.b = append(w.b, data...)
	return 0
}

// U8 appends one byte.
func (w *Writer) U8(v uint8) int { return w.Raw([]byte{v}) }

// U32 appends v, little-endian.
func (w *Writer) U32(v uint32) int {
	return w.Raw([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

// U64 appends v, little-endian.
func (w *Writer) U64(v uint64) int {
	var t [8]byte
	for i := range t {
		t[i] = byte(v >> (8 * i))
	}
	return w.Raw(t[:])
}

// F64 appends the bits of v, little-endian.
func (w *Writer) F64(v float64) int { return w.U64(math.Float64bits(v)) }

// Bytes32 appends len(s) as a u32, then s; all or nothing.
func (w *Writer) Bytes32(s []byte) int {
	if w.Failed || uint64(len(s))+4 > uint64(cap(w.b)-len(w.b)) {
		w.Failed = true
		return -1
	}
	w.U32(uint32(len(s)))
	return w.Raw(s)
}

// Reader takes values from a state blob in the Writer's layout. Reading past the end fails,
// leaves the value zero and sets Failed, so a truncated blob can never be half-understood
// as a whole one.
type Reader struct {
	b      []byte
	pos    int
	Failed bool
}

// NewReader reads blob from its start.
func NewReader(blob []byte) Reader { return Reader{b: blob} }

// Raw is the next n bytes (a slice of the blob, which the next load or save overwrites:
// copy what you keep), or nil and false past the end.
func (r *Reader) Raw(n int) ([]byte, bool) {
	if r.Failed || n < 0 || n > len(r.b)-r.pos {
		r.Failed = true
		return nil, false
	}
	s := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return s, true
}

// U8 reads one byte.
func (r *Reader) U8() (uint8, bool) {
	s, ok := r.Raw(1)
	if !ok {
		return 0, false
	}
	return s[0], true
}

// U32 reads a little-endian u32.
func (r *Reader) U32() (uint32, bool) {
	s, ok := r.Raw(4)
	if !ok {
		return 0, false
	}
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24, true
}

// U64 reads a little-endian u64.
func (r *Reader) U64() (uint64, bool) {
	s, ok := r.Raw(8)
	if !ok {
		return 0, false
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	return v, true
}

// F64 reads a float64 from its little-endian bits.
func (r *Reader) F64() (float64, bool) {
	v, ok := r.U64()
	return math.Float64frombits(v), ok
}

// Bytes32 reads a u32 length and that many bytes (a slice of the blob: copy what you keep).
func (r *Reader) Bytes32() ([]byte, bool) {
	at := r.pos
	n, ok := r.U32()
	if !ok {
		return nil, false
	}
	if uint64(n) > uint64(len(r.b)-r.pos) {
		r.pos = at
		r.Failed = true
		return nil, false
	}
	return r.Raw(int(n))
}

// Done reports whether every byte was read and no read failed.
func (r *Reader) Done() bool { return !r.Failed && r.pos == len(r.b) }

// Remaining is the number of bytes not read yet.
func (r *Reader) Remaining() int { return len(r.b) - r.pos }

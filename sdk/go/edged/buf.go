package edged

// FixedMaxDecimals is the most decimals Buf.Fixed prints.
const FixedMaxDecimals = 20

// FixedLimit: Buf.Fixed refuses magnitudes at or above it, so that no exponent is ever
// needed.
const FixedLimit = 1e15

// Buf is an append-only builder over storage the caller owns (make it once, at the top
// level or in Init, not per message). A failed append leaves the content untouched and sets
// Failed, so a payload can be built with unchecked appends and tested once before it is
// emitted.
type Buf struct {
	b      []byte
	Failed bool
}

// NewBuf is a Buf over storage; it never grows past len(storage).
func NewBuf(storage []byte) Buf { return Buf{b: storage[:0:len(storage)]} }

// Reset empties the buffer and clears Failed.
func (b *Buf) Reset() {
	b.b = b.b[:0]
	b.Failed = false
}

// Bytes is what was appended so far.
func (b *Buf) Bytes() []byte { return b.b }

// Len is the number of bytes appended so far.
func (b *Buf) Len() int { return len(b.b) }

// Append adds data: 0 appended, -1 refused (and Failed set). After a failure further
// appends are refused too, so a half-built payload can never look complete.
func (b *Buf) Append(data []byte) int {
	if b.Failed || len(data) > cap(b.b)-len(b.b) {
		b.Failed = true
		return -1
	}
	b.b = append(b.b, data...)
	return 0
}

// String appends the bytes of s, as Append.
func (b *Buf) String(s string) int {
	if b.Failed || len(s) > cap(b.b)-len(b.b) {
		b.Failed = true
		return -1
	}
	b.b = append(b.b, s...)
	return 0
}

// Byte appends c, as Append.
func (b *Buf) Byte(c byte) int {
	if b.Failed || len(b.b) == cap(b.b) {
		b.Failed = true
		return -1
	}
	b.b = append(b.b, c)
	return 0
}

// Int appends v in decimal, as Append.
func (b *Buf) Int(v int64) int {
	var tmp [20]byte
	n := len(tmp)
	m := uint64(v)
	if v < 0 {
		m = -m // in unsigned arithmetic, so the smallest int64 has a magnitude
	}
	for {
		n--
		tmp[n] = byte('0' + m%10)
		m /= 10
		if m == 0 {
			break
		}
	}
	if v < 0 {
		n--
		tmp[n] = '-'
	}
	return b.Append(tmp[n:])
}

// Fixed appends v with exactly decimals digits after the point (none and no point for
// 0), without an exponent. The digits are those of v's exact binary value, rounded half
// away from zero: 0.125 gives "0.13", while 2.675 (stored as 2.67499999...) gives "2.67";
// a result that rounds to zero prints without a sign. That is the C SDK's edged_buf_fixed;
// strconv.FormatFloat(v, 'f', n, 64) differs on exact ties (it rounds half to even) and on
// the sign of zero. Refused (-1): |v| >= 1e15, NaN, infinities, decimals outside 0..20.
func (b *Buf) Fixed(v float64, decimals int) int {
	var tmp [1 + 16 + 1 + FixedMaxDecimals]byte
	var dig [FixedMaxDecimals]byte
	var limb [4]uint64 // the fraction as 0.128 fixed point, 32 bits per limb
	if decimals < 0 || decimals > FixedMaxDecimals || !(v > -FixedLimit && v < FixedLimit) {
		b.Failed = true
		return -1
	}
	neg := v < 0
	a := v
	if neg {
		a = -v
	}
	ip := uint64(a)
	// Below 2^-75 every printable digit is 0 and the remainder is far from a half; from
	// there up, the fraction's lowest bit is at least 2^-127, so 128 bits hold it exactly
	// and every digit and the rounding are exact.
	if a >= 0x1p-75 {
		frac := a - float64(ip) // removing an integer part is exact
		x := frac * 0x1p64
		hi := uint64(x)
		lo := uint64((x - float64(hi)) * 0x1p64)
		limb[0] = lo & 0xffffffff
		limb[1] = lo >> 32
		limb[2] = hi & 0xffffffff
		limb[3] = hi >> 32
	}
	for i := 0; i < decimals; i++ {
		var carry uint64
		for k := 0; k < 4; k++ {
			t := limb[k]*10 + carry
			limb[k] = t & 0xffffffff
			carry = t >> 32
		}
		dig[i] = byte(carry)
	}
	if limb[3]>>31 != 0 { // what is left is at least one half
		i := decimals - 1
		for i >= 0 && dig[i] == 9 {
			dig[i] = 0
			i--
		}
		if i >= 0 {
			dig[i]++
		} else {
			ip++
		}
	}
	nonzero := ip != 0
	for i := 0; i < decimals; i++ {
		if dig[i] != 0 {
			nonzero = true
		}
	}
	n := 0
	if neg && nonzero {
		tmp[n] = '-'
		n++
	}
	var rev [16]byte
	r := 0
	for {
		rev[r] = byte('0' + ip%10)
		r++
		ip /= 10
		if ip == 0 {
			break
		}
	}
	for r > 0 {
		r--
		tmp[n] = rev[r]
		n++
	}
	if decimals > 0 {
		tmp[n] = '.'
		n++
		for i := 0; i < decimals; i++ {
			tmp[n] = '0' + dig[i]
			n++
		}
	}
	return b.Append(tmp[:n])
}

// JSONString appends s as a JSON string, quotes included. Bytes >= 0x80 pass through, so
// the result is valid JSON whenever s is valid UTF-8 (MQTT topics are). All or nothing.
func (b *Buf) JSONString(s []byte) int {
	const hex = "0123456789abcdef"
	start := len(b.b)
	b.Byte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.Byte('\\')
			b.Byte(c)
		case c == '\n':
			b.String(`\n`)
		case c == '\r':
			b.String(`\r`)
		case c == '\t':
			b.String(`\t`)
		case c < 0x20:
			b.Append([]byte{'\\', 'u', '0', '0', hex[c>>4], hex[c&15]})
		default:
			b.Byte(c)
		}
	}
	b.Byte('"')
	if b.Failed {
		// Keep the all-or-nothing promise of the other appends.
		if len(b.b) > start {
			b.b = b.b[:start]
		}
		return -1
	}
	return 0
}

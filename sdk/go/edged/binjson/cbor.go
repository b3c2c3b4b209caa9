package binjson

import (
	"math"
	"math/big"
)

// CBORToJSON writes the one CBOR data item in p (RFC 8949) as JSON. Trailing bytes, a
// truncated or ill-formed item, or nesting deeper than MaxDepth are refused.
func CBORToJSON(w *Writer, p []byte) error {
	r := cborReader{p: p}
	if err := r.item(w, 0); err != nil {
		return err
	}
	if r.i != len(p) {
		return ErrMalformed
	}
	return nil
}

type cborReader struct {
	p   []byte
	i   int
	tmp []byte // chunks of an indefinite-length string, joined
}

const indefinite = 31

// head reads an initial byte and its argument; ai 31 (indefinite) gives arg 0.
func (r *cborReader) head() (major byte, ai byte, arg uint64, err error) {
	if r.i >= len(r.p) {
		return 0, 0, 0, ErrMalformed
	}
	b := r.p[r.i]
	r.i++
	major, ai = b>>5, b&31
	switch {
	case ai < 24:
		return major, ai, uint64(ai), nil
	case ai <= 27:
		n := 1 << (ai - 24)
		if len(r.p)-r.i < n {
			return 0, 0, 0, ErrMalformed
		}
		for _, c := range r.p[r.i : r.i+n] {
			arg = arg<<8 | uint64(c)
		}
		r.i += n
		return major, ai, arg, nil
	case ai == indefinite && (major >= 2 && major <= 5 || major == 7):
		return major, ai, 0, nil
	}
	return 0, 0, 0, ErrMalformed
}

// str reads the content of a byte or text string whose head was read; an indefinite one is
// joined from its chunks, which must be definite strings of the same major type.
func (r *cborReader) str(major, ai byte, n uint64) ([]byte, error) {
	if ai != indefinite {
		if n > uint64(len(r.p)-r.i) {
			return nil, ErrMalformed
		}
		s := r.p[r.i : r.i+int(n)]
		r.i += int(n)
		return s, nil
	}
	r.tmp = r.tmp[:0]
	for {
		if r.i < len(r.p) && r.p[r.i] == 0xff {
			r.i++
			return r.tmp, nil
		}
		m, cai, cn, err := r.head()
		if err != nil || m != major || cai == indefinite || cn > uint64(len(r.p)-r.i) {
			return nil, ErrMalformed
		}
		r.tmp = append(r.tmp, r.p[r.i:r.i+int(cn)]...)
		r.i += int(cn)
	}
}

// more reports whether a container has another element: counted down for a definite one,
// up to the 0xff break for an indefinite one.
func (r *cborReader) more(ai byte, left *uint64) (bool, error) {
	if ai == indefinite {
		if r.i >= len(r.p) {
			return false, ErrMalformed
		}
		if r.p[r.i] == 0xff {
			r.i++
			return false, nil
		}
		return true, nil
	}
	if *left == 0 {
		return false, nil
	}
	*left--
	return true, nil
}

func (r *cborReader) item(w *Writer, depth int) error {
	major, ai, arg, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case 0:
		w.Uint(arg)
	case 1:
		if arg < 1<<63 {
			w.Int(-1 - int64(arg))
		} else {
			w.Byte('-')
			w.B = new(big.Int).Add(new(big.Int).SetUint64(arg), big.NewInt(1)).Append(w.B, 10)
		}
	case 2, 3:
		s, err := r.str(major, ai, arg)
		if err != nil {
			return err
		}
		if major == 2 {
			w.Bytes(s)
		} else {
			w.Text(s)
		}
	case 4:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		w.Byte('[')
		for k := 0; ; k++ {
			ok, err := r.more(ai, &arg)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if k > 0 {
				w.Byte(',')
			}
			if err := r.item(w, depth+1); err != nil {
				return err
			}
		}
		w.Byte(']')
	case 5:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		return r.mapping(w, ai, arg, depth)
	case 6:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		if arg == 2 || arg == 3 {
			return r.bignum(w, arg == 3)
		}
		w.TagStart(arg)
		if err := r.item(w, depth+1); err != nil {
			return err
		}
		w.Byte('}')
	case 7:
		return r.simple(w, ai, arg)
	}
	return nil
}

func (r *cborReader) simple(w *Writer, ai byte, arg uint64) error {
	switch {
	case ai == 20:
		w.Bool(false)
	case ai == 21:
		w.Bool(true)
	case ai == 22:
		w.Null()
	case ai == 23:
		w.Undefined()
	case ai < 20:
		w.Simple(arg)
	case ai == 24:
		if arg < 32 { // RFC 8949 3.3: simple values below 32 in two bytes are ill-formed
			return ErrMalformed
		}
		w.Simple(arg)
	case ai == 25:
		w.Float(half(uint16(arg)))
	case ai == 26:
		w.Float(float64(math.Float32frombits(uint32(arg))))
	case ai == 27:
		w.Float(math.Float64frombits(arg))
	default: // a lone break
		return ErrMalformed
	}
	return nil
}

// half widens an IEEE 754 binary16 value.
func half(h uint16) float64 {
	exp := int(h>>10) & 31
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

func (r *cborReader) bignum(w *Writer, negative bool) error {
	major, ai, arg, err := r.head()
	if err != nil || major != 2 {
		return ErrMalformed
	}
	s, err := r.str(major, ai, arg)
	if err != nil {
		return err
	}
	v := new(big.Int).SetBytes(s)
	if negative {
		v.Add(v, big.NewInt(1)).Neg(v)
	}
	w.BigInt(v)
	return nil
}

// mapping writes a map as an object when every key is a UTF-8 text string, else as
// {"$map": [[k, v], ...]}. The keys are looked at first (skipping values), then written.
func (r *cborReader) mapping(w *Writer, ai byte, n uint64, depth int) error {
	start, left := r.i, n
	textKeys := true
	for {
		ok, err := r.more(ai, &left)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if textKeys {
			key := r.i
			m, kai, karg, err := r.head()
			if err != nil {
				return err
			}
			if m != 3 {
				textKeys = false
			} else if s, err := r.str(m, kai, karg); err != nil {
				return err
			} else if !validUTF8(s) {
				textKeys = false
			}
			r.i = key
		}
		if err := r.skip(depth + 1); err != nil {
			return err
		}
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	r.i, left = start, n
	if textKeys {
		w.Byte('{')
	} else {
		w.Raw(`{"$map":[`)
	}
	for k := 0; ; k++ {
		ok, _ := r.more(ai, &left)
		if !ok {
			break
		}
		if k > 0 {
			w.Byte(',')
		}
		if !textKeys {
			w.Byte('[')
		}
		if err := r.item(w, depth+1); err != nil {
			return err
		}
		if textKeys {
			w.Byte(':')
		} else {
			w.Byte(',')
		}
		if err := r.item(w, depth+1); err != nil {
			return err
		}
		if !textKeys {
			w.Byte(']')
		}
	}
	if textKeys {
		w.Byte('}')
	} else {
		w.Raw("]}")
	}
	return nil
}

// skip reads over one item without writing it; ill-formed input is caught here or when the
// item is written.
func (r *cborReader) skip(depth int) error {
	major, ai, arg, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case 2, 3:
		_, err = r.str(major, ai, arg)
		return err
	case 4, 5, 6:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		if major == 6 {
			return r.skip(depth + 1)
		}
		if major == 5 && ai != indefinite {
			if arg > uint64(len(r.p)) {
				return ErrMalformed
			}
			arg *= 2
		}
		for k := 0; ; k++ {
			ok, err := r.more(ai, &arg)
			if err != nil {
				return err
			}
			if !ok {
				if major == 5 && k%2 == 1 { // an indefinite map with a key but no value
					return ErrMalformed
				}
				return nil
			}
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
	case 7:
		if ai == indefinite || ai == 24 && arg < 32 {
			return ErrMalformed
		}
	}
	return nil
}

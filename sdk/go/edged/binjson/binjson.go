// Package binjson is the JSON side of the binary payload mapping (docs/binary-payloads.md),
// shared by the CBOR and MessagePack examples: a JSON writer that spells every binary value the
// way all SDKs do, a reader of such JSON into an ordered tree (Node) for the way back, and a
// CBOR reader that walks a payload straight into JSON.
//
// Standard library only, so package edged stays free of dependencies; the examples bring the
// CBOR and MessagePack libraries.
package binjson

import (
	"encoding/base64"
	"errors"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays, maps and CBOR tags may nest; deeper payloads are refused.
const MaxDepth = 32

// Errors a conversion reports; the examples log them at warning and drop the message.
var (
	ErrMalformed = errors.New("malformed payload")
	ErrTooDeep   = errors.New("nested deeper than 32")
	ErrRange     = errors.New("integer out of range for MessagePack")
	ErrNoSuch    = errors.New("value has no equivalent in this format")
)

// Writer appends JSON to a byte slice it owns (reused across messages).
type Writer struct{ B []byte }

func (w *Writer) Reset()            { w.B = w.B[:0] }
func (w *Writer) Raw(s string)      { w.B = append(w.B, s...) }
func (w *Writer) Byte(c byte)       { w.B = append(w.B, c) }
func (w *Writer) Int(v int64)       { w.B = strconv.AppendInt(w.B, v, 10) }
func (w *Writer) Uint(v uint64)     { w.B = strconv.AppendUint(w.B, v, 10) }
func (w *Writer) BigInt(v *big.Int) { w.B = v.Append(w.B, 10) }
func (w *Writer) Null()             { w.Raw("null") }
func (w *Writer) Undefined()        { w.Raw(`{"$undefined":true}`) }
func (w *Writer) Simple(n uint64)   { w.Raw(`{"$simple":`); w.Uint(n); w.Byte('}') }
func (w *Writer) TagStart(n uint64) { w.Raw(`{"$tag":`); w.Uint(n); w.Raw(`,"value":`) }
func (w *Writer) Bool(v bool) {
	if v {
		w.Raw("true")
	} else {
		w.Raw("false")
	}
}

// Float writes the shortest text that reads back to v, laid out as Python's repr (and every
// SDK) does: plain from 1e-4 up to 1e16 ("0.0001", "21.5", "1.0"), else with an exponent of at
// least two digits ("1e+16", "1.5e-05"). NaN and the infinities become {"$float": ...}.
func (w *Writer) Float(v float64) {
	switch {
	case math.IsNaN(v):
		w.Raw(`{"$float":"NaN"}`)
	case math.IsInf(v, 1):
		w.Raw(`{"$float":"Infinity"}`)
	case math.IsInf(v, -1):
		w.Raw(`{"$float":"-Infinity"}`)
	default:
		var tmp [32]byte
		sci := strconv.AppendFloat(tmp[:0], v, 'e', -1, 64) // -d.ddde±dd
		neg := sci[0] == '-'
		if neg {
			sci = sci[1:]
		}
		e := 0
		for e < len(sci) && sci[e] != 'e' {
			e++
		}
		exp, _ := strconv.Atoi(string(sci[e+1:]))
		var digits [24]byte
		n := 0
		for _, c := range sci[:e] {
			if c != '.' {
				digits[n] = c
				n++
			}
		}
		for n > 1 && digits[n-1] == '0' {
			n--
		}
		w.B = AppendFloatDigits(w.B, neg, digits[:n], exp)
	}
}

// AppendFloatDigits lays out a float given its sign, significant digits (no leading or trailing
// zeros, except a lone "0") and the decimal exponent of the first digit, as Float does.
func AppendFloatDigits(b []byte, neg bool, digits []byte, exp int) []byte {
	if neg {
		b = append(b, '-')
	}
	n := len(digits)
	switch {
	case exp >= 0 && exp < 16:
		if n > exp+1 {
			b = append(b, digits[:exp+1]...)
			b = append(b, '.')
			b = append(b, digits[exp+1:]...)
		} else {
			b = append(b, digits...)
			for k := n; k < exp+1; k++ {
				b = append(b, '0')
			}
			b = append(b, '.', '0')
		}
	case exp < 0 && exp >= -4:
		b = append(b, '0', '.')
		for k := 0; k < -exp-1; k++ {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if n > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if exp < 0 {
			b = append(b, '-')
			exp = -exp
		} else {
			b = append(b, '+')
		}
		if exp < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(exp), 10)
	}
	return b
}

// Base64 writes a JSON string of standard, padded base64.
func (w *Writer) Base64(p []byte) {
	w.Byte('"')
	w.B = base64.StdEncoding.AppendEncode(w.B, p)
	w.Byte('"')
}

// Bytes writes a byte string: {"$bytes": "<base64>"}.
func (w *Writer) Bytes(p []byte) { w.Raw(`{"$bytes":`); w.Base64(p); w.Byte('}') }

// Ext writes a MessagePack extension: {"$ext": type, "data": "<base64>"}.
func (w *Writer) Ext(typ int8, p []byte) {
	w.Raw(`{"$ext":`)
	w.Int(int64(typ))
	w.Raw(`,"data":`)
	w.Base64(p)
	w.Byte('}')
}

// Text writes a text string: a JSON string when p is UTF-8, else {"$str_b64": "<base64>"}.
func (w *Writer) Text(p []byte) {
	if !utf8.Valid(p) {
		w.Raw(`{"$str_b64":`)
		w.Base64(p)
		w.Byte('}')
		return
	}
	w.String(p)
}

const hexDigits = "0123456789abcdef"

// String writes p, valid UTF-8, as a JSON string: '"', '\\' and control characters escaped
// (\n, \r, \t, \b, \f, else \u00XX), everything else as it is.
func (w *Writer) String(p []byte) {
	w.Byte('"')
	for _, c := range p {
		switch {
		case c == '"' || c == '\\':
			w.B = append(w.B, '\\', c)
		case c == '\n':
			w.Raw(`\n`)
		case c == '\r':
			w.Raw(`\r`)
		case c == '\t':
			w.Raw(`\t`)
		case c == '\b':
			w.Raw(`\b`)
		case c == '\f':
			w.Raw(`\f`)
		case c < 0x20:
			w.B = append(w.B, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			w.B = append(w.B, c)
		}
	}
	w.Byte('"')
}

// Kind is the type of a Node.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Int // Big holds the value
	Float
	Text // Str holds the bytes (perhaps not UTF-8, from "$str_b64")
	Bytes
	Array
	Map
	Tag // Num is the tag number, Items[0] the content
	Undefined
	Simple // Num
	Ext    // Num is the type (-128..127), Str the data
)

// Node is one value read from JSON, in the order it was written.
type Node struct {
	Kind  Kind
	Bool  bool
	Big   *big.Int
	Float float64
	Str   []byte
	Num   int64
	Items []Node // Array: the elements; Map: key, value, key, value...; Tag: the content
}

// Parse reads one JSON document (RFC 8259) into a tree, undoing the mapping's "$" objects.
// Objects keep their members in the order written.
func Parse(doc []byte) (Node, error) {
	p := parser{s: doc}
	p.ws()
	n, err := p.value(0)
	if err != nil {
		return Node{}, err
	}
	p.ws()
	if p.i != len(p.s) {
		return Node{}, ErrMalformed
	}
	return n, nil
}

type parser struct {
	s []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) lit(word string) bool {
	if len(p.s)-p.i >= len(word) && string(p.s[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *parser) value(depth int) (Node, error) {
	if p.i >= len(p.s) {
		return Node{}, ErrMalformed
	}
	switch c := p.s[p.i]; {
	case c == 'n' && p.lit("null"):
		return Node{Kind: Null}, nil
	case c == 't' && p.lit("true"):
		return Node{Kind: Bool, Bool: true}, nil
	case c == 'f' && p.lit("false"):
		return Node{Kind: Bool}, nil
	case c == '"':
		s, err := p.str()
		return Node{Kind: Text, Str: s}, err
	case c == '[':
		if depth >= MaxDepth {
			return Node{}, ErrTooDeep
		}
		p.i++
		n := Node{Kind: Array}
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return n, nil
		}
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return Node{}, err
			}
			n.Items = append(n.Items, v)
			p.ws()
			if p.i >= len(p.s) {
				return Node{}, ErrMalformed
			}
			p.i++
			if p.s[p.i-1] == ']' {
				return n, nil
			}
			if p.s[p.i-1] != ',' {
				return Node{}, ErrMalformed
			}
		}
	case c == '{':
		// a "$" object for a scalar ({"$float": "NaN"}) is no level of its own, so an object
		// one level deeper is read, and refused below unless it is one of those
		if depth > MaxDepth {
			return Node{}, ErrTooDeep
		}
		p.i++
		n := Node{Kind: Map}
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			if depth >= MaxDepth {
				return Node{}, ErrTooDeep
			}
			return n, nil
		}
		for {
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return Node{}, ErrMalformed
			}
			k, err := p.str()
			if err != nil {
				return Node{}, err
			}
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return Node{}, ErrMalformed
			}
			p.i++
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return Node{}, err
			}
			n.Items = append(n.Items, Node{Kind: Text, Str: k}, v)
			p.ws()
			if p.i >= len(p.s) {
				return Node{}, ErrMalformed
			}
			p.i++
			if p.s[p.i-1] == '}' {
				n, err := special(n)
				if err == nil && depth >= MaxDepth && (n.Kind == Map || n.Kind == Tag) {
					return Node{}, ErrTooDeep
				}
				return n, err
			}
			if p.s[p.i-1] != ',' {
				return Node{}, ErrMalformed
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if c == '-' {
			p.i++
		}
		digits := func() int {
			k := p.i
			for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
				p.i++
			}
			return p.i - k
		}
		first := p.i
		if n := digits(); n == 0 || n > 1 && p.s[first] == '0' {
			return Node{}, ErrMalformed
		}
		if p.i < len(p.s) && p.s[p.i] == '.' {
			p.i++
			if digits() == 0 {
				return Node{}, ErrMalformed
			}
		}
		if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
			p.i++
			if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
				p.i++
			}
			if digits() == 0 {
				return Node{}, ErrMalformed
			}
		}
		return number(p.s[start:p.i])
	}
	return Node{}, ErrMalformed
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// str reads a JSON string at p.i into a new slice, escapes undone.
func (p *parser) str() ([]byte, error) {
	p.i++ // the quote
	var out []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return nil, ErrMalformed
			}
			return out, nil
		case c < 0x20:
			return nil, ErrMalformed
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			break
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'n':
			out = append(out, 10)
		case 'r':
			out = append(out, 13)
		case 't':
			out = append(out, 9)
		case 'u':
			r, ok := hex4(p.s[p.i:])
			if !ok {
				return nil, ErrMalformed
			}
			p.i += 4
			if r >= 0xd800 && r < 0xdc00 && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
				if lo, ok := hex4(p.s[p.i+2:]); ok && lo >= 0xdc00 && lo < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
					p.i += 6
				}
			}
			if r >= 0xd800 && r < 0xe000 { // a lone surrogate has no UTF-8 form
				return nil, ErrMalformed
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, ErrMalformed
		}
	}
	return nil, ErrMalformed
}

func number(text []byte) (Node, error) {
	for len(text) > 0 && (text[len(text)-1] == ' ' || text[len(text)-1] == '\n' ||
		text[len(text)-1] == '\t' || text[len(text)-1] == '\r') {
		text = text[:len(text)-1]
	}
	for _, c := range text {
		if c == '.' || c == 'e' || c == 'E' {
			f, err := strconv.ParseFloat(string(text), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return Node{}, ErrMalformed
			}
			return Node{Kind: Float, Float: f}, nil
		}
	}
	v, ok := new(big.Int).SetString(string(text), 10)
	if !ok {
		return Node{}, ErrMalformed
	}
	return Node{Kind: Int, Big: v}, nil
}

// special turns an object that spells a binary value ("$bytes", "$float", ...) into that
// value; any other object is a map with text keys.
func special(n Node) (Node, error) {
	it := n.Items
	key := func(i int, k string) bool { return string(it[2*i].Str) == k }
	val := func(i int) *Node { return &it[2*i+1] }
	pairs := len(it) / 2
	b64 := func(i int) ([]byte, bool) {
		v := val(i)
		if v.Kind != Text {
			return nil, false
		}
		out, err := base64.StdEncoding.DecodeString(string(v.Str))
		return out, err == nil
	}
	integer := func(i int, lo, hi int64) (int64, bool) {
		v := val(i)
		if v.Kind != Int || !v.Big.IsInt64() {
			return 0, false
		}
		x := v.Big.Int64()
		return x, x >= lo && x <= hi
	}
	switch {
	case pairs == 1 && key(0, "$float"):
		if val(0).Kind == Text {
			switch string(val(0).Str) {
			case "NaN":
				return Node{Kind: Float, Float: math.NaN()}, nil
			case "Infinity":
				return Node{Kind: Float, Float: math.Inf(1)}, nil
			case "-Infinity":
				return Node{Kind: Float, Float: math.Inf(-1)}, nil
			}
		}
	case pairs == 1 && key(0, "$bytes"):
		if b, ok := b64(0); ok {
			return Node{Kind: Bytes, Str: b}, nil
		}
	case pairs == 1 && key(0, "$str_b64"):
		if b, ok := b64(0); ok {
			return Node{Kind: Text, Str: b}, nil
		}
	case pairs == 1 && key(0, "$undefined"):
		if val(0).Kind == Bool && val(0).Bool {
			return Node{Kind: Undefined}, nil
		}
	case pairs == 1 && key(0, "$simple"):
		if v, ok := integer(0, 0, 255); ok {
			return Node{Kind: Simple, Num: v}, nil
		}
	case pairs == 2 && key(0, "$ext") && key(1, "data"):
		v, ok := integer(0, -128, 127)
		if b, ok2 := b64(1); ok && ok2 {
			return Node{Kind: Ext, Num: v, Str: b}, nil
		}
	case pairs == 2 && key(0, "$tag") && key(1, "value"):
		if t := val(0); t.Kind == Int && t.Big.IsUint64() {
			return Node{Kind: Tag, Num: int64(t.Big.Uint64()), Items: []Node{*val(1)}}, nil
		}
	case pairs == 1 && key(0, "$map"):
		if val(0).Kind != Array {
			break
		}
		m := Node{Kind: Map}
		for _, pair := range val(0).Items {
			if pair.Kind != Array || len(pair.Items) != 2 {
				return Node{}, ErrMalformed
			}
			m.Items = append(m.Items, pair.Items...)
		}
		return m, nil
	default:
		return n, nil
	}
	return Node{}, ErrMalformed // a "$" object that does not spell its value
}

func validUTF8(p []byte) bool { return utf8.Valid(p) }

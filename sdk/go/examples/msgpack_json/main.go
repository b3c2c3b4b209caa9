// msgpack_json: MessagePack payloads to JSON and back, by the mapping of
// docs/binary-payloads.md.
//
// params: direction — "to_json" (default): a MessagePack payload becomes its JSON text;
// "from_json": JSON text (as to_json writes it) becomes MessagePack.
// The output goes to the input's topic. A payload that does not convert (malformed, nested
// deeper than 32, an integer outside int64/uint64) is dropped with a warning in the node's log.
//
// Both directions go through github.com/vmihailenco/msgpack/v5's Decoder and Encoder one
// value at a time, so map keys keep their order.
package main

import (
	"bytes"
	"io"
	"math"
	"unicode/utf8"

	"edgedsdk/edged"
	"edgedsdk/edged/binjson"

	"github.com/vmihailenco/msgpack/v5"
)

var (
	toJSON = true
	w      binjson.Writer
	rd     bytes.Reader
	dec    = msgpack.NewDecoder(&rd)
	out    bytes.Buffer
	enc    = msgpack.NewEncoder(&out)
	data   []byte // an extension's bytes
)

func initFilter() int {
	if d, ok := edged.Param("direction"); ok {
		switch string(d) {
		case "to_json":
		case "from_json":
			toJSON = false
		default:
			edged.Log(edged.Error, "msgpack_json: param 'direction' must be to_json or from_json")
			return 1
		}
	}
	enc.UseCompactInts(true)
	w.B = make([]byte, 0, 4096)
	out.Grow(4096)
	return 0
}

func onMessage(topic, payload []byte) int {
	var err error
	var result []byte
	if toJSON {
		w.Reset()
		rd.Reset(payload)
		dec.Reset(&rd)
		if err = item(0); err == nil && rd.Len() != 0 {
			err = binjson.ErrMalformed // bytes after the value
		}
		result = w.B
	} else {
		var n binjson.Node
		if n, err = binjson.Parse(payload); err == nil {
			out.Reset()
			enc.Reset(&out)
			enc.UseCompactInts(true)
			err = encode(&n)
			result = out.Bytes()
		}
	}
	if err != nil {
		edged.Log(edged.Warn, "msgpack_json: message dropped: "+err.Error())
		return edged.Drop
	}
	if edged.Emit(topic, result) != 0 {
		edged.Log(edged.Warn, "msgpack_json: message dropped: output too large")
	}
	return edged.Drop
}

func malformed(err error) error {
	if err != nil {
		return binjson.ErrMalformed
	}
	return nil
}

func isStr(c byte) bool { return c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb }

// item writes the next value as JSON.
func item(depth int) error {
	c, err := dec.PeekCode()
	if err != nil {
		return binjson.ErrMalformed
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c >= 0xd0 && c <= 0xd3 || c >= 0xcc && c <= 0xce:
		v, err := dec.DecodeInt64()
		w.Int(v)
		return malformed(err)
	case c == 0xcf:
		v, err := dec.DecodeUint64()
		w.Uint(v)
		return malformed(err)
	case c == 0xc0:
		w.Null()
		return malformed(dec.DecodeNil())
	case c == 0xc2 || c == 0xc3:
		v, err := dec.DecodeBool()
		w.Bool(v)
		return malformed(err)
	case c == 0xca:
		v, err := dec.DecodeFloat32()
		w.Float(float64(v))
		return malformed(err)
	case c == 0xcb:
		v, err := dec.DecodeFloat64()
		w.Float(v)
		return malformed(err)
	case isStr(c):
		s, err := dec.DecodeString()
		w.Text([]byte(s))
		return malformed(err)
	case c >= 0xc4 && c <= 0xc6:
		b, err := dec.DecodeBytes()
		w.Bytes(b)
		return malformed(err)
	case c >= 0xd4 && c <= 0xd8 || c >= 0xc7 && c <= 0xc9:
		typ, n, err := dec.DecodeExtHeader()
		if err != nil || n > rd.Len() {
			return binjson.ErrMalformed
		}
		data = append(data[:0], make([]byte, n)...)
		if dec.ReadFull(data) != nil {
			return binjson.ErrMalformed
		}
		w.Ext(typ, data)
		return nil
	case c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd:
		if depth >= binjson.MaxDepth {
			return binjson.ErrTooDeep
		}
		n, err := dec.DecodeArrayLen()
		if err != nil || n > rd.Len() {
			return binjson.ErrMalformed
		}
		w.Byte('[')
		for k := 0; k < n; k++ {
			if k > 0 {
				w.Byte(',')
			}
			if err := item(depth + 1); err != nil {
				return err
			}
		}
		w.Byte(']')
		return nil
	case c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf:
		if depth >= binjson.MaxDepth {
			return binjson.ErrTooDeep
		}
		n, err := dec.DecodeMapLen()
		if err != nil || n > rd.Len() {
			return binjson.ErrMalformed
		}
		return mapping(n, depth)
	}
	return binjson.ErrMalformed // 0xc1, never used
}

// mapping writes a map as an object when every key is a UTF-8 string, else as
// {"$map": [[k, v], ...]}: the keys are looked at first, then the reader goes back.
func mapping(n, depth int) error {
	start := rd.Size() - int64(rd.Len())
	textKeys := true
	for k := 0; k < n && textKeys; k++ {
		c, err := dec.PeekCode()
		if err != nil {
			return binjson.ErrMalformed
		}
		if !isStr(c) {
			textKeys = false
		} else if s, err := dec.DecodeString(); err != nil {
			return binjson.ErrMalformed
		} else if !utf8.ValidString(s) {
			textKeys = false
		} else if dec.Skip() != nil {
			return binjson.ErrMalformed
		}
	}
	if _, err := rd.Seek(start, io.SeekStart); err != nil {
		return binjson.ErrMalformed
	}
	dec.Reset(&rd)
	if textKeys {
		w.Byte('{')
	} else {
		w.Raw(`{"$map":[`)
	}
	for k := 0; k < n; k++ {
		if k > 0 {
			w.Byte(',')
		}
		if !textKeys {
			w.Byte('[')
		}
		if err := item(depth + 1); err != nil {
			return err
		}
		if textKeys {
			w.Byte(':')
		} else {
			w.Byte(',')
		}
		if err := item(depth + 1); err != nil {
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

func encode(n *binjson.Node) error {
	switch n.Kind {
	case binjson.Null:
		return enc.EncodeNil()
	case binjson.Bool:
		return enc.EncodeBool(n.Bool)
	case binjson.Int:
		switch {
		case n.Big.IsInt64():
			return enc.EncodeInt(n.Big.Int64())
		case n.Big.IsUint64():
			return enc.EncodeUint(n.Big.Uint64())
		}
		return binjson.ErrRange
	case binjson.Float:
		if n.Float != n.Float {
			// math.NaN() has a payload bit set; write the quiet NaN every SDK writes
			return enc.EncodeFloat64(math.Float64frombits(0x7ff8000000000000))
		}
		return enc.EncodeFloat64(n.Float)
	case binjson.Text:
		return enc.EncodeString(string(n.Str))
	case binjson.Bytes:
		return enc.EncodeBytes(n.Str)
	case binjson.Ext:
		if err := enc.EncodeExtHeader(int8(n.Num), len(n.Str)); err != nil {
			return err
		}
		_, err := out.Write(n.Str)
		return err
	case binjson.Array:
		if err := enc.EncodeArrayLen(len(n.Items)); err != nil {
			return err
		}
	case binjson.Map:
		if err := enc.EncodeMapLen(len(n.Items) / 2); err != nil {
			return err
		}
	default: // CBOR's tags, undefined and simple values
		return binjson.ErrNoSuch
	}
	for i := range n.Items {
		if err := encode(&n.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

func init() {
	edged.Init(initFilter)
	edged.Handle(onMessage)
}

func main() {}

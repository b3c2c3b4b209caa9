// cbor_json: CBOR payloads to JSON and back, by the mapping of docs/binary-payloads.md.
//
// params: direction — "to_json" (default): a CBOR payload becomes its JSON text;
// "from_json": JSON text (as to_json writes it) becomes CBOR.
// The output goes to the input's topic. A payload that does not convert (malformed, nested
// deeper than 32) is dropped with a warning in the node's log.
//
// CBOR is written with github.com/fxamacker/cbor/v2 (shortest floats, bignums for integers
// beyond 64 bits); it is read with binjson's own reader, because the library decodes maps into
// Go maps, which lose the key order the mapping keeps.
package main

import (
	"bytes"
	"math/big"

	"edgedsdk/edged"
	"edgedsdk/edged/binjson"

	"github.com/fxamacker/cbor/v2"
)

var (
	toJSON = true
	w      binjson.Writer
	enc    cbor.EncMode
	out    bytes.Buffer
)

func initFilter() int {
	if d, ok := edged.Param("direction"); ok {
		switch string(d) {
		case "to_json":
		case "from_json":
			toJSON = false
		default:
			edged.Log(edged.Error, "cbor_json: param 'direction' must be to_json or from_json")
			return 1
		}
	}
	var err error
	enc, err = cbor.EncOptions{
		ShortestFloat: cbor.ShortestFloat16,
		NaNConvert:    cbor.NaNConvert7e00,
		InfConvert:    cbor.InfConvertFloat16,
		BigIntConvert: cbor.BigIntConvertShortest,
	}.EncMode()
	if err != nil {
		return 2
	}
	w.B = make([]byte, 0, 4096)
	out.Grow(4096)
	return 0
}

func onMessage(topic, payload []byte) int {
	var err error
	var result []byte
	if toJSON {
		w.Reset()
		err = binjson.CBORToJSON(&w, payload)
		result = w.B
	} else {
		var n binjson.Node
		if n, err = binjson.Parse(payload); err == nil {
			out.Reset()
			err = encode(&n)
			result = out.Bytes()
		}
	}
	if err != nil {
		edged.Log(edged.Warn, "cbor_json: message dropped: "+err.Error())
		return edged.Drop
	}
	if edged.Emit(topic, result) != 0 {
		edged.Log(edged.Warn, "cbor_json: message dropped: output too large")
	}
	return edged.Drop
}

// head writes a CBOR initial byte with its argument in the shortest form.
func head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		out.WriteByte(m | byte(n))
	case n <= 0xff:
		out.Write([]byte{m | 24, byte(n)})
	case n <= 0xffff:
		out.Write([]byte{m | 25, byte(n >> 8), byte(n)})
	case n <= 0xffffffff:
		out.Write([]byte{m | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	default:
		out.WriteByte(m | 27)
		for s := 56; s >= 0; s -= 8 {
			out.WriteByte(byte(n >> s))
		}
	}
}

func scalar(v any) error {
	p, err := enc.Marshal(v)
	if err == nil {
		out.Write(p)
	}
	return err
}

func encode(n *binjson.Node) error {
	switch n.Kind {
	case binjson.Null:
		out.WriteByte(0xf6)
	case binjson.Undefined:
		out.WriteByte(0xf7)
	case binjson.Bool:
		return scalar(n.Bool)
	case binjson.Int:
		return scalar((*big.Int)(n.Big))
	case binjson.Float:
		return scalar(n.Float)
	case binjson.Text:
		// the library writes a Go string's bytes as they are, so "$str_b64" round-trips
		return scalar(string(n.Str))
	case binjson.Bytes:
		return scalar(n.Str)
	case binjson.Simple:
		if n.Num >= 24 && n.Num < 32 {
			return binjson.ErrNoSuch // reserved, RFC 8949 3.3
		}
		return scalar(cbor.SimpleValue(n.Num))
	case binjson.Tag:
		head(6, uint64(n.Num))
		return encode(&n.Items[0])
	case binjson.Array:
		head(4, uint64(len(n.Items)))
		for i := range n.Items {
			if err := encode(&n.Items[i]); err != nil {
				return err
			}
		}
	case binjson.Map:
		head(5, uint64(len(n.Items)/2))
		for i := range n.Items {
			if err := encode(&n.Items[i]); err != nil {
				return err
			}
		}
	default: // a MessagePack extension
		return binjson.ErrNoSuch
	}
	return nil
}

func init() {
	edged.Init(initFilter)
	edged.Handle(onMessage)
}

func main() {}

// threshold: turns readings above a limit into one alert message.
//
// params: field (default "value"), limit (required), topic (default "alert")
// A JSON object whose `field` is a number strictly greater than `limit` becomes one message
// on `topic`:
//
//	{"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
//
// Everything else is dropped. The same filter as the C example, byte for byte.
package main

import "edgedsdk/edged"

var (
	field      = "value"
	fieldBytes = []byte("value") // the same, kept so that no message converts it
	limitText  []byte            // echoed as written in the config
	limit      float64
	alertTopic = []byte("alert")
	scratch    [edged.OutputCap]byte
)

func initFilter() int {
	if f, ok := edged.Param("field"); ok {
		field, fieldBytes = string(f), f
	}
	text, ok := edged.Param("limit")
	if ok {
		limit, ok = edged.ParseNumber(text)
	}
	if !ok {
		edged.Log(edged.Error, "threshold: param 'limit' is required and must be a number")
		return 1
	}
	limitText = text
	if t, ok := edged.Param("topic"); ok {
		alertTopic = t
	}
	// Checked here because a bad topic would otherwise fail every alert.
	if !edged.TopicValid(alertTopic) {
		edged.Log(edged.Error, "threshold: param 'topic' is not a valid topic")
		return 2
	}
	return 0
}

func onMessage(topic, payload []byte) int {
	raw, code := edged.JSONField(payload, field)
	if code != 0 {
		return edged.Drop
	}
	if v, ok := edged.ParseNumber(raw); !ok || !(v > limit) {
		return edged.Drop
	}
	b := edged.NewBuf(scratch[:])
	b.String(`{"topic":`)
	b.JSONString(topic)
	b.String(`,"field":`)
	b.JSONString(fieldBytes)
	b.String(`,"value":`)
	b.Append(raw)
	b.String(`,"limit":`)
	b.Append(limitText)
	b.Byte('}')
	if b.Failed {
		// Larger than the output area: an alert cannot be shortened without lying, so the
		// reading is dropped.
		return edged.Drop
	}
	edged.Emit(alertTopic, b.Bytes())
	return edged.Drop
}

func init() {
	edged.Init(initFilter)
	edged.Handle(onMessage)
}

func main() {}

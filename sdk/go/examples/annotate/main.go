// annotate: sets MQTT 5 properties on each message it passes on, and refuses the ones that
// lack a user property it requires.
//
// params (all optional):
//
//	content_type   content type to set (e.g. application/json)
//	property       name of a user property to add, with
//	value          its value
//	require        name of a user property every input must carry (e.g. traceparent); an
//	               input without it is refused (REJECT) with the reason, and lands in the
//	               dead letters
//
// Topic and payload go on unchanged; what the filter does not set comes from the input as
// the output rule says (docs/properties.md). The same filter as the C example.
package main

import (
	"edgedsdk/edged"
	"edgedsdk/edged/props"
)

var (
	contentType, property, value, require   []byte
	hasContentType, hasProperty, hasRequire bool
	reason                                  [160]byte
)

func initFilter() int {
	contentType, hasContentType = edged.Param("content_type")
	var hasValue bool
	property, hasProperty = edged.Param("property")
	value, hasValue = edged.Param("value")
	require, hasRequire = edged.Param("require")
	if hasProperty != hasValue {
		edged.Log(edged.Error, "annotate: params 'property' and 'value' go together")
		return 1
	}
	if hasRequire && len(require) > 100 {
		edged.Log(edged.Error, "annotate: param 'require' is over 100 bytes")
		return 2
	}
	return 0
}

func onMessage(topic, payload []byte) int {
	if hasRequire {
		if _, ok := props.UserProperty(require); !ok {
			why := edged.NewBuf(reason[:])
			why.String("missing user property ")
			why.Append(require)
			return edged.Reject(why.Bytes())
		}
	}
	if hasContentType {
		props.SetContentType(contentType)
	}
	if hasProperty {
		props.SetUserProperty(property, value)
	}
	edged.Emit(topic, payload)
	return edged.Emitted
}

func init() {
	edged.Init(initFilter)
	edged.Handle(onMessage)
}

func main() {} // never called: edged calls the exports

// {{name}}: an edged filter in Go. Forwards every message unchanged.
//
// The Go SDK is the module in ./sdk (package edgedsdk/edged, copied from edged's sdk/go);
// its README lists the API. Start from here:
//
//   - edged.Init(f): f runs once with the params (edged.Param, edged.ParamNumberStrict);
//     a non-zero result refuses the module.
//   - edged.Handle(f): f runs once per message and returns edged.Forward or edged.Drop, or
//     publishes new messages with edged.Emit (edged.JSONField and edged.ParseNumber read
//     JSON payloads without allocating).
//   - package edgedsdk/edged/tick: tick.Handle(f) for a periodic summary.
//   - package edgedsdk/edged/state: state.Handle(save, load) to keep state across reloads.
package main

import "edgedsdk/edged"

func onMessage(topic, payload []byte) int {
	return edged.Forward
}

func init() {
	edged.Handle(onMessage)
}

// main is never called: the module is a reactor, and edged calls its exports.
func main() {}

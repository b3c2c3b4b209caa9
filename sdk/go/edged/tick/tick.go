// Package tick adds the edged_on_tick export to a filter: importing it is what makes the
// module take ticks, so a filter without ticks does not export one (a node refuses
// tick_interval for such a module instead of calling a tick that does nothing).
package tick

import "edgedsdk/edged"

var onTick func(nowMs int64)

// Handle sets the function called every tick_interval seconds, between messages. nowMs is
// the wall-clock time in milliseconds since the Unix epoch. It emits with edged.Emit; the
// tick returns edged.Emitted when it did, else nothing.
func Handle(f func(nowMs int64)) { onTick = f }

//go:wasmexport edged_on_tick
func onTickExport(nowMs int64) (result int32) {
	defer func() {
		if r := recover(); r != nil {
			result = edged.Recovered(r)
		}
	}()
	edged.ResetOutput()
	if onTick != nil {
		onTick(nowMs)
	}
	if edged.HasEmitted() {
		return edged.Emitted
	}
	return 0
}

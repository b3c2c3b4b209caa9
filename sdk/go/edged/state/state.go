// Package state adds the three state exports to a filter (docs/filter-abi.md, "State"), so
// its state survives a reload, a swap, a rollback and a restart of the node. Importing it
// is what exports them; a filter without state does not.
package state

import (
	"unsafe"

	"edgedsdk/edged"
)

// Cap is the largest blob saved or loaded; the node's budgets.max_state (default 256 KiB)
// caps it too.
const Cap = 64 * 1024

// outside is an address no linear memory of a wasm32 module reaches with 12 bytes.
const outside = -1

var (
	// One buffer serves both ways: a save is written here and the host copies it out before
	// the next call; a load is written here by the host and read by the load function, on a
	// fresh instance, before any message.
	blob [Cap]byte
	desc [3]uint32 // ptr, len, format

	save func(w *edged.Writer) uint32
	load func(format uint32, r *edged.Reader) int
)

// Handle sets the two halves. save writes the state with w and returns its format number
// (the filter's own: a layout change gets a new one). load reads a blob of that format with
// r into a fresh instance, after Init and before any message, and returns 0 to take it or
// any other code to refuse it (the node then starts the filter fresh); a load that reads
// past the blob's end or leaves bytes unread is refused too (edged.StateTruncated,
// edged.StateTrailing). save must not change what the filter does next.
func Handle(saveFunc func(w *edged.Writer) uint32, loadFunc func(format uint32, r *edged.Reader) int) {
	save, load = saveFunc, loadFunc
}

//go:wasmexport edged_state_save
func saveExport() (at int32) {
	// A save that panics or does not fit is not saved at all: the address past the end of
	// memory is a violation (reason state), and the host keeps the last good state, where a
	// truncated blob would lose data quietly.
	defer func() {
		if r := recover(); r != nil {
			edged.Recovered(r)
			at = outside
		}
	}()
	w := edged.NewWriter(blob[:])
	format := uint32(0)
	if save != nil {
		format = save(&w)
	}
	if w.Failed {
		edged.Log(edged.Error, "edged: the state does not fit EDGED_STATE_CAP")
		return outside
	}
	desc[0] = uint32(uintptr(unsafe.Pointer(&blob[0])))
	desc[1] = uint32(len(w.Bytes()))
	desc[2] = format
	return int32(uint32(uintptr(unsafe.Pointer(&desc[0]))))
}

//go:wasmexport edged_state_buffer
func bufferExport(n uint32) int32 {
	if n > Cap {
		return -1
	}
	return int32(uint32(uintptr(unsafe.Pointer(&blob[0]))))
}

//go:wasmexport edged_state_load
func loadExport(format, n uint32) (result int32) {
	defer func() {
		if r := recover(); r != nil {
			result = edged.Recovered(r)
		}
	}()
	if n > Cap {
		return edged.StateTruncated // the host wrote more than edged_state_buffer took
	}
	if load == nil {
		if n == 0 {
			return 0
		}
		return edged.StateTrailing
	}
	r := edged.NewReader(blob[:n])
	if code := load(format, &r); code != 0 {
		return int32(code)
	}
	if r.Failed {
		return edged.StateTruncated
	}
	if !r.Done() {
		return edged.StateTrailing
	}
	return 0
}

// Package edged is the Go SDK for edged filters (filter ABI v1, docs/filter-abi.md).
//
// A filter is a main package built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o NAME.wasm .
//
// It registers its callbacks from an init function: Handle for messages, Init for the
// params; package edged/tick adds the periodic tick and package edged/state the state
// exports. Every routine gives the same bytes as its counterpart in the C SDK
// (sdk/c/edged.h), so a filter ported from C emits the same output.
//
// The input and output areas are static arrays: topic and payload are slices of the input
// area, valid only during the call. Nothing here allocates on the message path.
package edged

import "unsafe"

// Result codes of a message call.
const (
	Drop     = 0
	Forward  = 1
	Emitted  = 2 // the call emitted; returned by the SDK, not by a Handle function
	Rejected = 3 // the input is refused: what edged.Reject returns
)

// Log levels.
const (
	Debug = 0
	Info  = 1
	Warn  = 2
	Error = 3
)

// InitBadParams is what edged_init returns when the params are malformed or exceed
// ParamsCap or MaxParams. Negative codes belong to the SDK; an Init callback reports its
// own failures with positive ones.
const InitBadParams = -1

// Sizes of the static areas, as in the C SDK.
const (
	InputCap  = 64 * 1024
	OutputCap = 64 * 1024
	ParamsCap = 4096
	MaxParams = 32
)

var (
	in   [InputCap]byte
	out  [OutputCap]byte
	desc [4]uint32 // the ABI's buffer descriptor: in_ptr, in_cap, out_ptr, out_cap

	used    uint32 // mirrors the `used` word of the output area
	emitted bool   // set by a successful Emit

	// Set by package props: records then have a third length, and the next Emit carries
	// the properties in *pending (and empties it).
	pending *[]byte

	pstore [ParamsCap]byte
	pkeys  [MaxParams][]byte
	pvals  [MaxParams][]byte
	pcount int

	onMessage = func(topic, payload []byte) int { return Forward }
	onInit    func() int
)

// Handle sets the function called once per message. It returns Drop or Forward, or calls
// Emit: a call that emitted anything returns Emitted and the input is not forwarded. Any other
// code goes to the host unchanged (a bad_result there). Without Handle, every message is
// forwarded.
func Handle(f func(topic, payload []byte) int) { onMessage = f }

// Init sets the function called once with the params (read them with Param); a non-zero
// result refuses the module, and the host shows the code.
func Init(f func() int) { onInit = f }

//go:wasmimport edged log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

// Log sends one line to the node's log. Each call crosses into the host (~9 µs): fine in
// Init and ticks, keep it off the per-message path or behind a once-only flag.
func Log(level int, msg string) {
	if len(msg) == 0 {
		hostLog(int32(level), nil, 0)
		return
	}
	hostLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// LogBytes is Log for text held in a byte slice.
func LogBytes(level int, msg []byte) {
	if len(msg) == 0 {
		hostLog(int32(level), nil, 0)
		return
	}
	hostLog(int32(level), unsafe.Pointer(&msg[0]), uint32(len(msg)))
}

// addr is where p lies in linear memory: wasm32 addresses fit 32 bits.
func addr(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

func putU32(p []byte, v uint32) {
	p[0] = byte(v)
	p[1] = byte(v >> 8)
	p[2] = byte(v >> 16)
	p[3] = byte(v >> 24)
}

// TopicValid reports whether the host would accept t as an emitted topic: 1..65535 bytes
// without '+', '#' or NUL (UTF-8 validity is not checked). Use it to vet a topic param in
// Init instead of failing every emit later.
func TopicValid(t []byte) bool {
	if len(t) == 0 || len(t) > 65535 {
		return false
	}
	for _, c := range t {
		if c == '+' || c == '#' || c == 0 {
			return false
		}
	}
	return true
}

// Emit appends one message to the output area: 0 appended, -1 it does not fit in what is
// left, -2 the host would refuse the topic. Either way nothing was written on failure. In a
// module that imports package props, the message carries the properties set since the last
// Emit (which it then forgets; on failure they stay set).
func Emit(topic, payload []byte) int {
	// The host drops the whole call's output if one topic is invalid; refusing it here
	// keeps the other records of the call alive.
	if !TopicValid(topic) {
		return -2
	}
	var props []byte
	head := uint32(8)
	if pending != nil {
		props = *pending
		head = 12
	}
	room := uint32(OutputCap - 4 - used)
	tl, pl, xl := uint32(len(topic)), uint32(len(payload)), uint32(len(props))
	if room < head || uint64(tl) > uint64(room-head) || uint64(pl) > uint64(room-head-tl) ||
		uint64(xl) > uint64(room-head-tl-pl) {
		return -1
	}
	rec := out[4+used:]
	putU32(rec, tl)
	putU32(rec[4:], pl)
	if pending != nil {
		putU32(rec[8:], xl)
		copy(rec[head+tl+pl:], props)
		*pending = props[:0]
	}
	copy(rec[head:], topic)
	copy(rec[head+tl:], payload)
	used += head + tl + pl + xl
	putU32(out[:], used)
	emitted = true
	return 0
}

// Reject refuses the input: it is dead-lettered with reason (the host keeps at most 1 KiB)
// and what was emitted during the call still goes on. Use it last, as `return
// edged.Reject(reason)`. It returns Rejected, or Drop when the reason does not fit in what is
// left of the output area (the input is then dropped without a dead letter).
func Reject(reason []byte) int {
	head := uint32(8)
	if pending != nil {
		head = 12
	}
	room := uint32(OutputCap - 4 - used)
	rl := uint32(len(reason))
	if room < head || uint64(rl) > uint64(room-head) {
		return Drop
	}
	rec := out[4+used:]
	putU32(rec, 0)
	putU32(rec[4:], rl)
	if pending != nil {
		putU32(rec[8:], 0)
	}
	copy(rec[head:], reason)
	used += head + rl
	putU32(out[:], used)
	return Rejected
}

// UseProperties is for package props, which calls it from its init: from then on every
// output record has the properties' third length, and Emit takes the properties from
// *props. Filters do not call it.
func UseProperties(props *[]byte) { pending = props }

// ResetOutput empties the output area; the SDK calls it before each message and tick.
func ResetOutput() {
	used = 0
	emitted = false
	if pending != nil {
		*pending = (*pending)[:0]
	}
	putU32(out[:], 0)
}

// HasEmitted reports whether Emit succeeded since the output area was last reset.
func HasEmitted() bool { return emitted }

// Param is the value of the param key and whether it was given. The slice points into
// the SDK's own copy of the params and stays valid for the life of the instance.
func Param(key string) ([]byte, bool) {
	for i := 0; i < pcount; i++ {
		if string(pkeys[i]) == key {
			return pvals[i], true
		}
	}
	return nil, false
}

// ParamNumber is the param as a number; dflt when it is absent or not a JSON number. Use
// ParamNumberStrict when a typo in the config must not go unnoticed.
func ParamNumber(key string, dflt float64) float64 {
	s, ok := Param(key)
	if !ok {
		return dflt
	}
	v, ok := ParseNumber(s)
	if !ok {
		return dflt
	}
	return v
}

// ParamNumberStrict is the param as a number, or dflt when it is absent; ok is false when
// the key is present but its value is not a JSON number.
func ParamNumberStrict(key string, dflt float64) (v float64, ok bool) {
	s, found := Param(key)
	if !found {
		return dflt, true
	}
	return ParseNumber(s)
}

// Hash is FNV-1a, 32 bits: enough to spread topics over a small per-topic table.
func Hash(s []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range s {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// ---- ABI entry points ---------------------------------------------------------------------

//go:wasmexport edged_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport edged_buffers
func buffers() int32 {
	desc[0] = addr(unsafe.Pointer(&in[0]))
	desc[1] = InputCap
	desc[2] = addr(unsafe.Pointer(&out[0]))
	desc[3] = OutputCap
	return int32(addr(unsafe.Pointer(&desc[0])))
}

func badParams(why string) int32 {
	pcount = 0
	Log(Error, why)
	return InitBadParams
}

// Exported even without an Init callback: a module without edged_init may not be given
// params at all, and every SDK filter should accept them.
//
//go:wasmexport edged_init
func initExport(paramsLen uint32) int32 {
	pcount = 0
	if paramsLen > InputCap {
		return badParams("edged: params_len exceeds the input area")
	}
	if paramsLen > ParamsCap {
		return badParams("edged: params exceed EDGED_PARAMS_CAP")
	}
	n := int(paramsLen)
	copy(pstore[:n], in[:n])
	pos := 0
	for pos < n {
		k := pos
		for pos < n && pstore[pos] != 0 {
			pos++
		}
		if pos == n {
			return badParams("edged: params: key without NUL")
		}
		pos++
		v := pos
		for pos < n && pstore[pos] != 0 {
			pos++
		}
		if pos == n {
			return badParams("edged: params: value without NUL")
		}
		if pcount == MaxParams {
			return badParams("edged: more params than EDGED_MAX_PARAMS")
		}
		pkeys[pcount] = pstore[k : v-1 : v-1]
		pvals[pcount] = pstore[v:pos:pos]
		pcount++
		pos++
	}
	if onInit == nil {
		return 0
	}
	return callInit()
}

func callInit() (result int32) {
	defer func() {
		if r := recover(); r != nil {
			result = Recovered(r)
		}
	}()
	return int32(onInit())
}

//go:wasmexport edged_on_message
func onMessageExport(topicLen, payloadLen uint32) (result int32) {
	defer func() {
		if r := recover(); r != nil {
			result = Recovered(r)
		}
	}()
	// The host promises the message fits; if it does not, the slice expression below
	// panics, which ends the call as a violation.
	t, p := uint64(topicLen), uint64(payloadLen)
	ResetOutput()
	topic := in[:t:t]
	payload := in[t : t+p : t+p]
	r := onMessage(topic, payload)
	if emitted && r != Rejected {
		return Emitted
	}
	return int32(r)
}

// Panicked is what a call returns after a panic: a code the host counts as a violation
// (bad_result for a message or a tick, a refusal for init or a state load).
const Panicked = -100

// Recovered logs a panic recovered by an export (package tick and state use it too) and
// returns Panicked. A panic that left Go's runtime would print a traceback and trap, and
// leave the runtime mid-panic: the instance's next panic then exits. Recovering keeps the
// instance sound, and the message is dropped and counted like any violation.
func Recovered(r any) int32 {
	var text string
	switch v := r.(type) {
	case error:
		text = v.Error()
	case string:
		text = v
	default:
		text = "a value that is not an error"
	}
	var b [512]byte
	msg := NewBuf(b[:])
	msg.String("edged: panic: ")
	if len(text) > 480 {
		text = text[:480]
	}
	msg.String(text)
	LogBytes(Error, msg.Bytes())
	return Panicked
}

// average: replaces a stream of readings with one summary per tick.
//
// params: field (default "value"), suffix (default "/avg"), decimals (default 2, integer
// 0..20). Every message is dropped; its numeric `field` is added to the window of its
// topic. On each tick, every topic with readings (in the order topics were first seen) gets
// one message on <topic><suffix>:
//
//	{"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
//
// and its window starts over. When the output area is full the remaining topics keep their
// windows for the next tick.
//
// Limits: 64 topics of at most 200 bytes each (others are dropped with one warning);
// readings of magnitude 1e15 or more are ignored, since they could not be printed without
// an exponent.
//
// State, format 1 (the C example's, byte for byte): the number of topics (u32), then per
// topic in first-seen order its text (u32 length, bytes), count (u64), sum, min and max
// (f64; 0 for an empty window). The params are not part of it.
package main

import (
	"edgedsdk/edged"
	"edgedsdk/edged/state"
	"edgedsdk/edged/tick"
)

const (
	maxTopics   = 64
	maxTopicLen = 200
	maxSuffix   = 200
)

type window struct {
	hash          uint32
	len           int
	topic         [maxTopicLen]byte
	count         int64
	sum, min, max float64
}

var (
	windows      [maxTopics]window // index order = first-seen order
	nWindows     int
	warnedTopics bool
	warnedRange  bool

	field    = "value"
	suffix   = []byte("/avg")
	decimals = 2

	tbuf [maxTopicLen + maxSuffix]byte
	pbuf [256]byte
)

func initFilter() int {
	if f, ok := edged.Param("field"); ok {
		field = string(f)
	}
	if s, ok := edged.Param("suffix"); ok {
		suffix = s
	}
	// An empty suffix is allowed (same topic out); anything else must be topic text, or
	// every summary would be refused at tick time.
	if len(suffix) > maxSuffix || (len(suffix) > 0 && !edged.TopicValid(suffix)) {
		edged.Log(edged.Error, "average: param 'suffix' must be topic text of at most 200 bytes")
		return 1
	}
	d, ok := edged.ParamNumberStrict("decimals", 2)
	if !ok || !(d >= 0 && d <= edged.FixedMaxDecimals) || d != float64(int(d)) {
		edged.Log(edged.Error, "average: param 'decimals' must be an integer 0..20")
		return 2
	}
	decimals = int(d)
	return 0
}

func findOrAdd(topic []byte) *window {
	h := edged.Hash(topic)
	for i := 0; i < nWindows; i++ {
		w := &windows[i]
		if w.hash == h && w.len == len(topic) && string(w.topic[:w.len]) == string(topic) {
			return w
		}
	}
	if nWindows == maxTopics || len(topic) > maxTopicLen {
		if !warnedTopics {
			warnedTopics = true
			edged.Log(edged.Warn, "average: more than 64 topics or a topic over 200 bytes; its readings are dropped")
		}
		return nil
	}
	w := &windows[nWindows]
	nWindows++
	w.hash = h
	w.len = copy(w.topic[:], topic)
	return w
}

func onMessage(topic, payload []byte) int {
	raw, code := edged.JSONField(payload, field)
	if code != 0 {
		return edged.Drop
	}
	v, ok := edged.ParseNumber(raw)
	if !ok {
		return edged.Drop
	}
	if !(v > -edged.FixedLimit && v < edged.FixedLimit) {
		if !warnedRange {
			warnedRange = true
			edged.Log(edged.Warn, "average: ignoring readings of magnitude 1e15 or more")
		}
		return edged.Drop
	}
	w := findOrAdd(topic)
	if w == nil {
		return edged.Drop
	}
	if w.count == 0 {
		w.sum = 0
		w.min, w.max = v, v
	}
	w.count++
	w.sum += v
	if v < w.min {
		w.min = v
	}
	if v > w.max {
		w.max = v
	}
	return edged.Drop
}

func onTick(nowMs int64) {
	for i := 0; i < nWindows; i++ {
		w := &windows[i]
		if w.count == 0 {
			continue
		}
		avg := w.sum / float64(w.count)
		// Rounding in the sum can land a hair outside [min, max]; the true mean cannot,
		// and clamping keeps it printable.
		if avg < w.min {
			avg = w.min
		}
		if avg > w.max {
			avg = w.max
		}
		t := edged.NewBuf(tbuf[:])
		t.Append(w.topic[:w.len])
		t.Append(suffix)

		p := edged.NewBuf(pbuf[:])
		p.String(`{"avg":`)
		p.Fixed(avg, decimals)
		p.String(`,"min":`)
		p.Fixed(w.min, decimals)
		p.String(`,"max":`)
		p.Fixed(w.max, decimals)
		p.String(`,"count":`)
		p.Int(w.count)
		p.String(`,"ts":`)
		p.Int(nowMs)
		p.Byte('}')

		// Both buffers are sized for the worst case, so only a full output area stops the
		// loop; the windows not yet sent wait for the next tick rather than being lost.
		if edged.Emit(t.Bytes(), p.Bytes()) == -1 {
			break
		}
		w.count = 0
	}
}

func save(s *edged.Writer) uint32 {
	s.U32(uint32(nWindows))
	for i := 0; i < nWindows; i++ {
		w := &windows[i]
		s.Bytes32(w.topic[:w.len])
		s.U64(uint64(w.count))
		// An emptied window keeps its place in the order, not its old figures.
		if w.count == 0 {
			s.F64(0)
			s.F64(0)
			s.F64(0)
		} else {
			s.F64(w.sum)
			s.F64(w.min)
			s.F64(w.max)
		}
	}
	return 1
}

// load refuses: 1 an unknown format, 2 more topics or a longer topic than this build
// keeps, 3 a topic twice. A short or long blob is refused by the SDK.
func load(format uint32, r *edged.Reader) int {
	if format != 1 {
		return 1
	}
	n, ok := r.U32()
	if !ok {
		return edged.StateTruncated
	}
	if n > maxTopics {
		return 2
	}
	for i := uint32(0); i < n; i++ {
		topic, _ := r.Bytes32()
		count, _ := r.U64()
		sum, _ := r.F64()
		lo, _ := r.F64()
		hi, _ := r.F64()
		if r.Failed {
			return edged.StateTruncated
		}
		if len(topic) > maxTopicLen || count > 1<<63-1 {
			return 2
		}
		known := nWindows
		w := findOrAdd(topic)
		if nWindows == known {
			return 3
		}
		w.count = int64(count)
		w.sum, w.min, w.max = sum, lo, hi
	}
	return 0
}

func init() {
	edged.Init(initFilter)
	edged.Handle(onMessage)
	tick.Handle(onTick)
	state.Handle(save, load)
}

func main() {}

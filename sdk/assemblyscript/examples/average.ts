// average: replaces a stream of readings with one summary per tick.
//
// params: field (default "value"), suffix (default "/avg"), decimals (default 2, 0..20)
// Every message is dropped; its numeric `field` is added to the window of its topic. On each
// tick, every topic with readings (in the order topics were first seen) gets one message on
// <topic><suffix>:
//   {"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
// and its window starts over. When the output area is full the remaining topics keep their
// windows for the next tick. Same behaviour as examples/filters/average.c.
//
// Limits: 64 topics of at most 200 bytes each (others are dropped with one warning); readings
// of magnitude 1e15 or more are ignored, since they could not be printed without an exponent.
//
// State, format 1, the same blob as average.c: the number of topics (u32), then per topic in
// first-seen order its text (u32 length, bytes), count (u64), sum, min and max (f64; 0 for an
// empty window).
import {
  Buf, DROP, FIXED_LIMIT, LOG_ERROR, LOG_WARN, Str, emitBuf, filter, hash, jsonField, log, param,
  paramNumberStrict, parseNumber, topicValid,
} from "../assembly/edged";
import { STATE_TRUNCATED, StateReader, StateWriter, stateful } from "../assembly/state";
export {
  edged_abi_version, edged_buffers, edged_init, edged_on_message, edged_on_tick,
} from "../assembly/edged";
export { edged_state_buffer, edged_state_load, edged_state_save } from "../assembly/state";

const MAX_TOPICS = 64;
const MAX_TOPIC_LEN: u32 = 200;
const MAX_SUFFIX_LEN: u32 = 200;

@final
class Window {
  hash: u32 = 0;
  topic: Buf = new Buf(MAX_TOPIC_LEN);
  count: i64 = 0;
  sum: f64 = 0;
  min: f64 = 0;
  max: f64 = 0;
}

// All allocated at start: nothing is allocated per message or tick.
const windows = new StaticArray<Window>(MAX_TOPICS); // index order = first-seen order
for (let i = 0; i < MAX_TOPICS; i++) windows[i] = new Window();
let nWindows = 0;
let warnedTopics = false;
let warnedRange = false;

let field = Str.from("value");
let suffix = Str.from("/avg");
let decimals: i32 = 2;

const raw = new Str();
const known = new Str();
const t = new Buf(MAX_TOPIC_LEN + MAX_SUFFIX_LEN);
const p = new Buf(256);
const tView = new Str();
const T_AVG = Str.from("{\"avg\":");
const T_MIN = Str.from(",\"min\":");
const T_MAX = Str.from(",\"max\":");
const T_COUNT = Str.from(",\"count\":");
const T_TS = Str.from(",\"ts\":");

function init(): i32 {
  const f = param("field");
  if (f !== null) field = f;
  const s = param("suffix");
  if (s !== null) suffix = s;
  // An empty suffix is allowed (same topic out); anything else must be topic text, or every
  // summary would be refused at tick time.
  if (suffix.len > MAX_SUFFIX_LEN || (suffix.len != 0 && !topicValid(suffix))) {
    log(LOG_ERROR, "average: param 'suffix' must be topic text of at most 200 bytes");
    return 1;
  }
  const d = paramNumberStrict("decimals", 2);
  if (!(d >= 0 && d <= 20) || d != <f64><i32>d) {
    log(LOG_ERROR, "average: param 'decimals' must be an integer 0..20");
    return 2;
  }
  decimals = <i32>d;
  return 0;
}

function findOrAdd(topic: Str): Window | null {
  const h = hash(topic);
  for (let i = 0; i < nWindows; i++) {
    const w = unchecked(windows[i]);
    if (w.hash == h && w.topic.view(known).equals(topic)) return w;
  }
  if (nWindows == MAX_TOPICS || topic.len > MAX_TOPIC_LEN) {
    if (!warnedTopics) {
      warnedTopics = true;
      log(LOG_WARN, "average: more than 64 topics or a topic over 200 bytes; its readings are dropped");
    }
    return null;
  }
  const w = unchecked(windows[nWindows++]);
  w.hash = h;
  w.topic.reset().str(topic);
  return w;
}

function onMessage(topic: Str, payload: Str): i32 {
  if (jsonField(payload, field, raw) != 0) return DROP;
  const v = parseNumber(raw);
  if (isNaN(v)) return DROP;
  if (!(v > -FIXED_LIMIT && v < FIXED_LIMIT)) {
    if (!warnedRange) {
      warnedRange = true;
      log(LOG_WARN, "average: ignoring readings of magnitude 1e15 or more");
    }
    return DROP;
  }
  const w = findOrAdd(topic);
  if (w === null) return DROP;
  if (w.count == 0) {
    w.sum = 0;
    w.min = v;
    w.max = v;
  }
  w.count++;
  w.sum += v;
  if (v < w.min) w.min = v;
  if (v > w.max) w.max = v;
  return DROP;
}

function onTick(nowMs: i64): void {
  for (let i = 0; i < nWindows; i++) {
    const w = unchecked(windows[i]);
    if (w.count == 0) continue;
    let avg = w.sum / <f64>w.count;
    // Rounding in the sum can land a hair outside [min, max]; the true mean cannot, and
    // clamping keeps it printable.
    if (avg < w.min) avg = w.min;
    if (avg > w.max) avg = w.max;

    t.reset().str(w.topic.view(known)).str(suffix);
    p.reset();
    p.str(T_AVG).fixed(avg, decimals);
    p.str(T_MIN).fixed(w.min, decimals);
    p.str(T_MAX).fixed(w.max, decimals);
    p.str(T_COUNT).int(w.count);
    p.str(T_TS).int(nowMs);
    p.char(0x7d);

    // Both buffers are sized for the worst case, so only a full output area stops the loop;
    // the windows not yet sent wait for the next tick rather than being lost.
    if (emitBuf(t.view(tView), p) == -1) break;
    w.count = 0;
  }
}

function save(s: StateWriter): u32 {
  s.u32(<u32>nWindows);
  for (let i = 0; i < nWindows; i++) {
    const w = unchecked(windows[i]);
    // An emptied window keeps its place in the order, not its old figures.
    const empty = w.count == 0;
    s.bytes(w.topic.view(known)).u64(<u64>w.count);
    s.f64(empty ? 0 : w.sum).f64(empty ? 0 : w.min).f64(empty ? 0 : w.max);
  }
  return 1;
}

const loaded = new Str();

// Refused: 1 an unknown format, 2 more topics or a longer topic than this build keeps, 3 a
// topic twice. A short or long blob is refused by the SDK.
function load(format: u32, r: StateReader): i32 {
  if (format != 1) return 1;
  const n = r.u32();
  if (r.failed) return STATE_TRUNCATED;
  if (n > <u32>MAX_TOPICS) return 2;
  for (let i: u32 = 0; i < n; i++) {
    r.bytes(loaded);
    const count = r.u64();
    const sum = r.f64();
    const min = r.f64();
    const max = r.f64();
    if (r.failed) return STATE_TRUNCATED;
    if (loaded.len > MAX_TOPIC_LEN || count > <u64>i64.MAX_VALUE) return 2;
    const before = nWindows;
    const w = findOrAdd(loaded);
    if (w === null) return 2;
    if (nWindows == before) return 3;
    w.count = <i64>count;
    w.sum = sum;
    w.min = min;
    w.max = max;
  }
  return 0;
}

filter(onMessage, init, onTick);
stateful(save, load);

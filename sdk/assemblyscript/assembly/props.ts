// MQTT 5 properties for AssemblyScript filters (docs/properties.md; the ABI's "Properties"
// section in docs/filter-abi.md).
//
// The opt-in is this file: a filter imports `filter`, `emit` and the rest from here instead of
// from ./edged, and its entry file re-exports `edged_properties` and this file's
// `edged_on_message` (and `edged_on_tick` when it ticks):
//
//   import { Str, param } from "./edged";
//   import { emit, filter, setContentType, userProperty } from "./props";
//   export { edged_abi_version, edged_buffers, edged_init } from "./edged";
//   export { edged_on_message, edged_properties } from "./props";
//
// The host then writes each message's properties into this file's area before the call, and
// every record the module writes has the third length (props_len). A filter that does not
// import this file is built exactly as before. Nothing here allocates per message.

import {
  Buf, DROP, Str, edged_on_message as baseOnMessage, edged_on_tick as baseOnTick,
  filter as baseFilter, outputAdvance, outputNext, outputRoom, topicValid,
} from "./edged";

/** The input is refused: what reject() returns. */
export const REJECT: i32 = 3;

/** MQTT 5 property identifiers, as the ABI's entries use them. */
export const PROP_PAYLOAD_FORMAT: u32 = 1;
export const PROP_MESSAGE_EXPIRY: u32 = 2;
export const PROP_CONTENT_TYPE: u32 = 3;
export const PROP_RESPONSE_TOPIC: u32 = 8;
export const PROP_CORRELATION_DATA: u32 = 9;
export const PROP_USER: u32 = 38;

/** The input's properties area (a message with more is dropped by the host,
 * input_too_large), and the most property bytes one emitted message may set. */
export const PROPS_CAP: u32 = 4096;
export const PROPS_OUT_CAP: u32 = 1024;

const PROPS_IN: usize = memory.data(<i32>PROPS_CAP, 4);
const PROPS_DESC: usize = memory.data(8, 4);
const PROPS_OUT: usize = memory.data(<i32>PROPS_OUT_CAP);
let pendingLen: u32 = 0; // bytes of PROPS_OUT the next emit sets

/** The input's properties, one at a time: allocate it once, then per message
 *  `it.reset(); while (it.next()) { ... it.id, it.a, it.b ... }`. `a` is the value (a user
 * property's name, with `b` its value); integer properties are 4 little-endian bytes in `a`. */
@final
export class PropIter {
  pos: u32 = 0;
  id: u32 = 0;
  a: Str = new Str();
  b: Str = new Str();

  /** Back to the first property. */
  reset(): PropIter {
    this.pos = 0;
    return this;
  }

  /** Moves to the next property: false at the end (or at a malformed entry, which the host
   * never writes). */
  next(): bool {
    const used = load<u32>(PROPS_IN);
    if (used > PROPS_CAP - 4) return false;
    const at = this.pos;
    if (at >= used || used - at < 12) return false;
    const e = PROPS_IN + 4 + at;
    const a = load<u32>(e, 4);
    const b = load<u32>(e, 8);
    if (a > used - at - 12 || b > used - at - 12 - a) return false;
    this.id = load<u32>(e);
    this.a.set(e + 12, a);
    this.b.set(e + 12 + a, b);
    this.pos = at + 12 + a + b;
    return true;
  }
}

const SCAN = new PropIter();

/** The input's property `id` (not a user property): true and `value` pointed at it, or
 * false with `value` untouched. */
export function getProp(id: u32, value: Str): bool {
  SCAN.reset();
  while (SCAN.next()) {
    if (SCAN.id == id) {
      value.set(SCAN.a.ptr, SCAN.a.len);
      return true;
    }
  }
  return false;
}

/** The value of the input's first user property called `name`: true and `value` set, or
 * false. */
export function userProperty(name: Str, value: Str): bool {
  SCAN.reset();
  while (SCAN.next()) {
    if (SCAN.id == PROP_USER && SCAN.a.equals(name)) {
      value.set(SCAN.b.ptr, SCAN.b.len);
      return true;
    }
  }
  return false;
}

/** Sets a property on the next emitted message (emit takes them all and starts afresh). What
 * is not set comes from the input as the output rule says. 0, or -1 when PROPS_OUT_CAP is
 * full (nothing set). */
export function setProp(id: u32, a: Str, b: Str): i32 {
  const room = PROPS_OUT_CAP - pendingLen;
  if (room < 12 || a.len > room - 12 || b.len > room - 12 - a.len) return -1;
  const e = PROPS_OUT + pendingLen;
  store<u32>(e, id);
  store<u32>(e, a.len, 4);
  store<u32>(e, b.len, 8);
  memory.copy(e + 12, a.ptr, a.len);
  memory.copy(e + 12 + a.len, b.ptr, b.len);
  pendingLen += 12 + a.len + b.len;
  return 0;
}

const NONE = new Str();
const FORMAT = new Str(memory.data(4), 4);

export function setUserProperty(name: Str, value: Str): i32 {
  return setProp(PROP_USER, name, value);
}

export function setContentType(value: Str): i32 {
  return setProp(PROP_CONTENT_TYPE, value, NONE);
}

export function setCorrelationData(value: Str): i32 {
  return setProp(PROP_CORRELATION_DATA, value, NONE);
}

/** 0 or 1 (1: the payload is UTF-8 text). */
export function setPayloadFormat(indicator: u32): i32 {
  store<u32>(FORMAT.ptr, indicator);
  return setProp(PROP_PAYLOAD_FORMAT, FORMAT, NONE);
}

/** ./edged's emit() for a module with properties: the record carries the properties set since
 * the last emit, which it then forgets. 0; -1 it does not fit in what is left (the properties
 * stay set); -2 the host would refuse the topic. */
export function emit(topic: Str, payload: Str): i32 {
  return emitBytes(topic, payload.ptr, payload.len);
}

/** emit() with a Buf's content as the payload; -1 also when the Buf has failed. */
export function emitBuf(topic: Str, payload: Buf): i32 {
  if (payload.failed) return -1;
  return emitBytes(topic, payload.ptr, payload.len);
}

function emitBytes(topic: Str, ptr: usize, len: u32): i32 {
  if (!topicValid(topic)) return -2;
  // Compared piecewise so that no sum can wrap.
  const room = outputRoom();
  const props = pendingLen;
  if (room < 12 || topic.len > room - 12 || len > room - 12 - topic.len ||
    props > room - 12 - topic.len - len) return -1;
  const rec = outputNext();
  store<u32>(rec, topic.len);
  store<u32>(rec, len, 4);
  store<u32>(rec, props, 8);
  memory.copy(rec + 12, topic.ptr, topic.len);
  memory.copy(rec + 12 + topic.len, ptr, len);
  memory.copy(rec + 12 + topic.len + len, PROPS_OUT, props);
  outputAdvance(12 + topic.len + len + props, true);
  pendingLen = 0;
  return 0;
}

/** Refuses the input: it is dead-lettered with `reason` (the host keeps at most 1 KiB) and
 * what was emitted during the call still goes on. Use it last: `return reject(reason);`. It
 * returns REJECT, or DROP when the reason does not fit in what is left of the output area
 * (the input is then dropped without a dead letter). */
export function reject(reason: Str): i32 {
  return rejectBytes(reason.ptr, reason.len);
}

/** reject() with a Buf's content as the reason. */
export function rejectBuf(reason: Buf): i32 {
  return rejectBytes(reason.ptr, reason.len);
}

function rejectBytes(ptr: usize, len: u32): i32 {
  const room = outputRoom();
  if (room < 12 || len > room - 12) return DROP;
  const rec = outputNext();
  store<u32>(rec, 0);
  store<u32>(rec, len, 4);
  store<u32>(rec, 0, 8);
  memory.copy(rec + 12, ptr, len);
  outputAdvance(12 + len, false);
  return REJECT;
}

// ---- registration and ABI entry points ------------------------------------------------------

let onMessage: ((topic: Str, payload: Str) => i32) | null = null;
let result: i32 = DROP; // what onMessage returned, for REJECT after an emit

function message(topic: Str, payload: Str): i32 {
  const f = onMessage;
  result = f === null ? DROP : f(topic, payload);
  return result;
}

/** ./edged's filter() for a module with properties: if emit() succeeded during a call, the
 * call returns EMIT, unless `message` returns REJECT (reject()), which keeps the emitted
 * records too. */
export function filter(
  message_: (topic: Str, payload: Str) => i32,
  init: (() => i32) | null = null,
  tick: ((nowMs: i64) => void) | null = null,
): void {
  onMessage = message_;
  baseFilter(message, init, tick);
}

export function edged_properties(): i32 {
  store<u32>(PROPS_DESC, <u32>PROPS_IN);
  store<u32>(PROPS_DESC, PROPS_CAP, 4);
  return <i32>PROPS_DESC;
}

export function edged_on_message(topicLen: u32, payloadLen: u32): i32 {
  pendingLen = 0;
  result = DROP;
  const r = baseOnMessage(topicLen, payloadLen);
  return result == REJECT ? REJECT : r;
}

export function edged_on_tick(nowMs: i64): i32 {
  pendingLen = 0;
  return baseOnTick(nowMs);
}

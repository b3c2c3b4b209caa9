// threshold: turns readings above a limit into one alert message.
//
// params: field (default "value"), limit (required), topic (default "alert")
// A JSON object whose `field` is a number strictly greater than `limit` becomes one message on
// `topic`:
//   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
// Everything else is dropped. Same behaviour as examples/filters/threshold.c.
import {
  Buf, DROP, LOG_ERROR, OUTPUT_CAP, Str, emitBuf, filter, jsonField, log, param, parseNumber,
  topicValid,
} from "../assembly/edged";
export { edged_abi_version, edged_buffers, edged_init, edged_on_message } from "../assembly/edged";

let field = Str.from("value");
let limitText = new Str(); // echoed as written in the config
let limit: f64 = 0;
let alertTopic = Str.from("alert");

// Allocated once: nothing is allocated per message.
const raw = new Str();
const out = new Buf(OUTPUT_CAP);
const T_TOPIC = Str.from("{\"topic\":");
const T_FIELD = Str.from(",\"field\":");
const T_VALUE = Str.from(",\"value\":");
const T_LIMIT = Str.from(",\"limit\":");

function init(): i32 {
  const f = param("field");
  if (f !== null) field = f;
  const l = param("limit");
  if (l === null || isNaN(parseNumber(l))) {
    log(LOG_ERROR, "threshold: param 'limit' is required and must be a number");
    return 1;
  }
  limitText = l;
  limit = parseNumber(l);
  const t = param("topic");
  if (t !== null) alertTopic = t;
  // Checked here because a bad topic would otherwise fail every alert.
  if (!topicValid(alertTopic)) {
    log(LOG_ERROR, "threshold: param 'topic' is not a valid topic");
    return 2;
  }
  return 0;
}

function onMessage(topic: Str, payload: Str): i32 {
  if (jsonField(payload, field, raw) != 0) return DROP;
  const v = parseNumber(raw);
  if (isNaN(v) || !(v > limit)) return DROP;
  out.reset();
  out.str(T_TOPIC).jsonString(topic);
  out.str(T_FIELD).jsonString(field);
  out.str(T_VALUE).str(raw);
  out.str(T_LIMIT).str(limitText);
  out.char(0x7d);
  // An alert that does not fit cannot be shortened without lying: the reading is dropped.
  emitBuf(alertTopic, out);
  return DROP;
}

filter(onMessage, init);

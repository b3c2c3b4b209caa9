// {{name}}: forwards readings at or above a minimum and drops everything else.
//
// params: field (default "value"), min (default 0)
// A JSON object whose `field` is a number >= `min` goes on unchanged; anything else (smaller
// readings, other fields, payloads that are not JSON) is dropped.
//
// The SDK is assembly/edged.ts: emit() publishes new messages, a tick callback (and exporting
// edged_on_tick) adds periodic summaries. Allocate at the top level or in init, never per
// message: the stub runtime never frees.
import {
  DROP, FORWARD, LOG_ERROR, Str, filter, jsonField, log, param, paramNumberStrict, parseNumber,
} from "./edged";
export { edged_abi_version, edged_buffers, edged_init, edged_on_message } from "./edged";

let field = Str.from("value");
let min: f64 = 0;
const raw = new Str();

// Called once with the params; a non-zero result refuses the module.
function init(): i32 {
  const f = param("field");
  if (f !== null) field = f;
  min = paramNumberStrict("min", 0);
  if (isNaN(min)) {
    log(LOG_ERROR, "{{name}}: param 'min' must be a number");
    return 1;
  }
  return 0;
}

// Called once per message: FORWARD, DROP, or emit() new messages.
function onMessage(topic: Str, payload: Str): i32 {
  if (jsonField(payload, field, raw) != 0) return DROP;
  const v = parseNumber(raw);
  return !isNaN(v) && v >= min ? FORWARD : DROP;
}

filter(onMessage, init);

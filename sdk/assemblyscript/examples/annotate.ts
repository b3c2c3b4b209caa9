// annotate: sets MQTT 5 properties on each message it passes on, and refuses the ones that
// lack a user property it requires.
//
// params (all optional):
//   content_type   content type to set (e.g. application/json)
//   property       name of a user property to add, with
//   value          its value
//   require        name of a user property every input must carry (e.g. traceparent); an
//                  input without it is refused (REJECT) with the reason, and lands in the
//                  dead letters
// Topic and payload go on unchanged; what the filter does not set comes from the input as the
// output rule says (docs/properties.md). Same behaviour as examples/filters/annotate.c.
import { Buf, EMIT, LOG_ERROR, Str, log, param } from "../assembly/edged";
import {
  emit, filter, rejectBuf, setContentType, setUserProperty, userProperty,
} from "../assembly/props";
export { edged_abi_version, edged_buffers, edged_init } from "../assembly/edged";
export { edged_on_message, edged_properties } from "../assembly/props";

let contentType: Str | null = null;
let property: Str | null = null;
let value: Str | null = null;
let require: Str | null = null;

// Allocated once: nothing is allocated per message.
const found = new Str();
const why = new Buf(160);
const MISSING = Str.from("missing user property ");

function init(): i32 {
  contentType = param("content_type");
  property = param("property");
  value = param("value");
  require = param("require");
  if ((property === null) != (value === null)) {
    log(LOG_ERROR, "annotate: params 'property' and 'value' go together");
    return 1;
  }
  const r = require;
  if (r !== null && r.len > 100) {
    log(LOG_ERROR, "annotate: param 'require' is over 100 bytes");
    return 2;
  }
  return 0;
}

function onMessage(topic: Str, payload: Str): i32 {
  const r = require;
  if (r !== null && !userProperty(r, found)) {
    why.reset();
    why.str(MISSING).str(r);
    return rejectBuf(why);
  }
  const t = contentType;
  if (t !== null) setContentType(t);
  const p = property;
  const v = value;
  if (p !== null && v !== null) setUserProperty(p, v);
  emit(topic, payload);
  return EMIT;
}

filter(onMessage, init);

// msgpack_json: MessagePack payloads to JSON and back, by the mapping of docs/binary-payloads.md.
//
// params: direction: "to_json" (default), a MessagePack payload becomes its JSON text;
// "from_json", JSON text (as to_json writes it) becomes MessagePack.
// The output goes to the input's topic. A payload that does not convert (malformed, nested
// deeper than 32, an integer outside int64/uint64) is dropped with a warning
// in the node's log.
import {
  Buf, DROP, LOG_ERROR, LOG_WARN, Str, emit, filter, log, logStr, param,
} from "../assembly/edged";
import { OK, TOO_LARGE, errorText, msgpackToJson, jsonToMsgpack, result } from "../assembly/binary";
export { edged_abi_version, edged_buffers, edged_init, edged_on_message } from "../assembly/edged";

let toJson = true;
const out = new Str();
const FROM_JSON = Str.from("from_json");
const TO_JSON = Str.from("to_json");
const line = new Buf(128);
const lineView = new Str();
const PREFIX = Str.from("msgpack_json: ");

function init(): i32 {
  const d = param("direction");
  if (d !== null) {
    if (d.equals(FROM_JSON)) {
      toJson = false;
    } else if (!d.equals(TO_JSON)) {
      log(LOG_ERROR, "msgpack_json: param 'direction' must be to_json or from_json");
      return 1;
    }
  }
  return 0;
}

function warn(code: i32): void {
  line.reset().str(PREFIX).str(errorText(code));
  logStr(LOG_WARN, line.view(lineView));
}

function onMessage(topic: Str, payload: Str): i32 {
  const code = toJson ? msgpackToJson(payload) : jsonToMsgpack(payload);
  if (code != OK) {
    warn(code);
    return DROP;
  }
  if (emit(topic, result(out)) != 0) warn(TOO_LARGE);
  return DROP;
}

filter(onMessage, init);

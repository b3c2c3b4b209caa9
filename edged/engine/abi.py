"""The filter ABI, version 1, as the host sees it (the contract is docs/filter-abi.md).

Everything here is pure Python on bytes, so every engine shares one reading of the contract.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from edged.config import ParamValue
from edged.config.model import CAPABILITIES as CAPABILITIES
from edged.errors import FilterCallError
from edged.mqtt import properties as mqttprops
from edged.mqtt.properties import Properties

ABI_VERSION = 1

DROP = 0
FORWARD = 1
EMIT = 2
#: the input is dead-lettered with the filter's reason; other records go on (see the ABI doc)
REJECT = 3
#: the most of a REJECT's reason text kept (the rest is cut)
MAX_REASON_BYTES = 1024

EXPORT_VERSION = "edged_abi_version"
EXPORT_BUFFERS = "edged_buffers"
EXPORT_MESSAGE = "edged_on_message"
EXPORT_INIT = "edged_init"
EXPORT_TICK = "edged_on_tick"
#: the state exports (docs/filter-abi.md, "State"): all three, or none
EXPORT_STATE_SAVE = "edged_state_save"
EXPORT_STATE_BUFFER = "edged_state_buffer"
EXPORT_STATE_LOAD = "edged_state_load"
STATE_EXPORTS = (EXPORT_STATE_SAVE, EXPORT_STATE_BUFFER, EXPORT_STATE_LOAD)
#: the properties export (docs/filter-abi.md, "Properties"): the module reads and sets MQTT 5
#: properties, and its output records carry them
EXPORT_PROPERTIES = "edged_properties"
#: what `edged_state_buffer` returns when it cannot take a blob that large
NO_STATE_BUFFER = 0xFFFFFFFF

IMPORT_MODULE = "edged"
IMPORT_LOG = "log"

LOG_LEVELS = ("debug", "info", "warning", "error")

#: WASI preview 1 (docs/filter-abi.md, "WASI"): what a module may import from it, and the
#: capability each function needs. A function needing none gives nothing away: with no
#: arguments, no environment, no files and no sockets granted, it answers from nothing.
WASI_MODULE = "wasi_snapshot_preview1"
WASI_NEEDS: dict[str, str] = {
    "clock_time_get": "clock",
    "clock_res_get": "clock",
    "random_get": "random",
    "fd_write": "log",  # stdout and stderr become the filter's log lines
}

#: export name -> (param types, result types), written as wasm value type names
REQUIRED_FUNCS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    EXPORT_VERSION: ((), ("i32",)),
    EXPORT_BUFFERS: ((), ("i32",)),
    EXPORT_MESSAGE: (("i32", "i32"), ("i32",)),
}
OPTIONAL_FUNCS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    EXPORT_INIT: (("i32",), ("i32",)),
    EXPORT_TICK: (("i64",), ("i32",)),
    EXPORT_STATE_SAVE: ((), ("i32",)),
    EXPORT_STATE_BUFFER: (("i32",), ("i32",)),
    EXPORT_STATE_LOAD: (("i32", "i32"), ("i32",)),
    EXPORT_PROPERTIES: ((), ("i32",)),
}
ALLOWED_IMPORTS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    (IMPORT_MODULE, IMPORT_LOG): (("i32", "i32", "i32"), ()),
}

MAX_TOPIC_BYTES = 65535
_U32X2 = struct.Struct("<II")
_U32X3 = struct.Struct("<III")
_U32X4 = struct.Struct("<IIII")
_BAD_TOPIC_BYTES = (b"+", b"#", b"\x00")


def unpack_descriptor(raw: bytes) -> tuple[int, int, int, int]:
    """`(in_ptr, in_cap, out_ptr, out_cap)` from the 16 bytes `edged_buffers()` points at."""
    in_ptr, in_cap, out_ptr, out_cap = _U32X4.unpack(raw)
    return in_ptr, in_cap, out_ptr, out_cap


def descriptor_error(desc: tuple[int, int, int, int], memory_size: int) -> str | None:
    """Why a buffer descriptor cannot be used, or None when it can."""
    in_ptr, in_cap, out_ptr, out_cap = desc
    if in_cap == 0:
        return "edged_buffers: the input area is empty"
    if out_cap < 4:
        return "edged_buffers: the output area is smaller than its 4-byte header"
    if in_ptr + in_cap > memory_size or out_ptr + out_cap > memory_size:
        return (
            f"edged_buffers: an area lies outside linear memory ({memory_size} bytes): "
            f"input {in_ptr}+{in_cap}, output {out_ptr}+{out_cap}"
        )
    if in_ptr < out_ptr + out_cap and out_ptr < in_ptr + in_cap:
        return "edged_buffers: the input and output areas overlap"
    return None


def unpack_state_descriptor(raw: bytes) -> tuple[int, int, int]:
    """`(ptr, len, format)` from the 12 bytes `edged_state_save()` points at."""
    ptr, length, fmt = _U32X3.unpack(raw)
    return ptr, length, fmt


_IOVEC = struct.Struct("<II")
_SUB_HEAD = struct.Struct("<QB")  # a subscription's userdata and tag
_EVENT = struct.Struct("<QHBxxxxxQH6x")  # userdata, errno, type, fd nbytes, fd flags: 32 bytes
_WASI_EBADF = 8


def unpack_iovec(table: bytes, index: int) -> tuple[int, int]:
    """`(ptr, len)` of the `index`th WASI iovec in `table`."""
    ptr, length = _IOVEC.unpack_from(table, 8 * index)
    return ptr, length


def poll_answers(subscriptions: bytes, count: int) -> bytes:
    """WASI `poll_oneoff`'s events for `count` subscriptions, all at once and without waiting:
    a clock has gone off, a file descriptor is not there (edged grants none)."""
    out = bytearray()
    for index in range(count):
        userdata, tag = _SUB_HEAD.unpack_from(subscriptions, 48 * index)
        errno = 0 if tag == 0 else _WASI_EBADF
        out += _EVENT.pack(userdata, errno, tag, 0, 0)
    return bytes(out)


def encode_params(params: Mapping[str, ParamValue]) -> bytes:
    """Parameters as ``key NUL value NUL`` pairs; values as text (see the ABI doc)."""
    out = bytearray()
    for key, value in params.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out += key.encode() + b"\0" + text.encode() + b"\0"
    return bytes(out)


def split_reason(records: list[tuple[bytes, bytes]]) -> tuple[str, list[tuple[bytes, bytes]]]:
    """A REJECT's reason text (the payload of its one record with an empty topic) and the
    records that go on. Parsed with `parse_records(area, reject=True)`."""
    reasons = [payload for topic, payload in records if not topic]
    if len(reasons) > 1:
        raise FilterCallError(
            "bad_output", f"REJECT with {len(reasons)} reason records; one at most"
        )
    text = reasons[0][:MAX_REASON_BYTES].decode(errors="replace") if reasons else ""
    return text or "rejected by the filter", [r for r in records if r[0]]


def parse_records(area: bytes, *, reject: bool = False) -> list[tuple[bytes, bytes]]:
    """Split the output area's records (everything after the `used` header). With `reject`, a
    record with an empty topic (a REJECT's reason) is allowed.

    Raises FilterCallError('bad_output') on any record that breaks the ABI, so a malformed emit
    is dropped whole instead of publishing half of it.
    """
    records: list[tuple[bytes, bytes]] = []
    pos, end = 0, len(area)
    while pos < end:
        if end - pos < 8:
            raise FilterCallError("bad_output", f"truncated record header at byte {pos}")
        topic_len, payload_len = _U32X2.unpack_from(area, pos)
        pos += 8
        if (topic_len == 0 and not reject) or topic_len > MAX_TOPIC_BYTES:
            raise FilterCallError("bad_output", f"record topic length {topic_len} out of 1..65535")
        if pos + topic_len + payload_len > end:
            raise FilterCallError("bad_output", f"record at byte {pos - 8} runs past `used`")
        topic = area[pos : pos + topic_len]
        pos += topic_len
        records.append((topic, area[pos : pos + payload_len]))
        pos += payload_len
        _check_topic(topic)
    return records


# -- properties (docs/filter-abi.md, "Properties") -------------------------------------------

_ENTRY = struct.Struct("<III")
_INTEGER_PROPS = (mqttprops.PAYLOAD_FORMAT, mqttprops.MESSAGE_EXPIRY)
_TEXT_PROPS = (mqttprops.CONTENT_TYPE, mqttprops.RESPONSE_TOPIC)


def unpack_properties_descriptor(raw: bytes) -> tuple[int, int]:
    """`(ptr, cap)` of the properties area, from the 8 bytes `edged_properties()` points at."""
    ptr, cap = _U32X2.unpack(raw)
    return ptr, cap


def encode_properties(props: Properties | None) -> bytes:
    """The properties area's content for one message: `used`, then one entry per property
    (`id`, `a_len`, `b_len`, `a`, `b`; a user property's name is `a`, its value `b`)."""
    body = bytearray()
    if props is not None:
        entry = _ENTRY.pack
        if props.payload_format is not None:
            body += entry(mqttprops.PAYLOAD_FORMAT, 4, 0) + props.payload_format.to_bytes(
                4, "little"
            )
        if props.expiry is not None:
            body += entry(mqttprops.MESSAGE_EXPIRY, 4, 0) + props.expiry.to_bytes(4, "little")
        for ident, text in (
            (mqttprops.CONTENT_TYPE, props.content_type),
            (mqttprops.RESPONSE_TOPIC, props.response_topic),
        ):
            if text is not None:
                raw = text.encode()
                body += entry(ident, len(raw), 0) + raw
        if props.correlation is not None:
            body += entry(mqttprops.CORRELATION_DATA, len(props.correlation), 0) + props.correlation
        for key, value in props.user:
            k, v = key.encode(), value.encode()
            body += entry(mqttprops.USER_PROPERTY, len(k), len(v)) + k + v
    return len(body).to_bytes(4, "little") + bytes(body)


def parse_properties(data: bytes) -> Properties | None:
    """The properties one output record sets (entries as `encode_properties` writes them);
    None when it sets none. Raises FilterCallError('bad_output') on entries that break the
    ABI or that MQTT could not carry."""
    if not data:
        return None
    fields: dict[str, object] = {}
    user: list[tuple[str, str]] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 12:
            raise FilterCallError("bad_output", f"truncated property entry at byte {pos}")
        ident, a_len, b_len = _ENTRY.unpack_from(data, pos)
        pos += 12
        if pos + a_len + b_len > end:
            raise FilterCallError("bad_output", f"property entry {ident} runs past its record")
        a, b = data[pos : pos + a_len], data[pos + a_len : pos + a_len + b_len]
        pos += a_len + b_len
        if a_len > 65535 or b_len > 65535:
            raise FilterCallError("bad_output", f"property {ident} is over 65,535 bytes")
        if ident in _INTEGER_PROPS:
            if a_len != 4 or b_len:
                raise FilterCallError("bad_output", f"property {ident} takes a 4-byte integer")
            value = int.from_bytes(a, "little")
            if ident == mqttprops.PAYLOAD_FORMAT:
                if value > 1:
                    raise FilterCallError("bad_output", f"payload format indicator {value}")
                fields["payload_format"] = value
            else:
                fields["expiry"] = value
        elif ident in _TEXT_PROPS or ident == mqttprops.USER_PROPERTY:
            try:
                text = a.decode()
                second = b.decode()
            except UnicodeDecodeError:
                raise FilterCallError("bad_output", f"property {ident} is not UTF-8") from None
            if ident == mqttprops.USER_PROPERTY:
                user.append((text, second))
            elif b_len:
                raise FilterCallError("bad_output", f"property {ident} takes one value")
            else:
                fields["content_type" if ident == mqttprops.CONTENT_TYPE else "response_topic"] = (
                    text
                )
        elif ident == mqttprops.CORRELATION_DATA:
            if b_len:
                raise FilterCallError("bad_output", f"property {ident} takes one value")
            fields["correlation"] = bytes(a)
        else:
            raise FilterCallError("bad_output", f"property {ident} cannot be set by a filter")
    return Properties(
        payload_format=fields.get("payload_format"),  # type: ignore[arg-type]
        expiry=fields.get("expiry"),  # type: ignore[arg-type]
        content_type=fields.get("content_type"),  # type: ignore[arg-type]
        response_topic=fields.get("response_topic"),  # type: ignore[arg-type]
        correlation=fields.get("correlation"),  # type: ignore[arg-type]
        user=tuple(user),
    )


def parse_records_with_properties(
    area: bytes, *, reject: bool = False
) -> list[tuple[bytes, bytes, bytes]]:
    """Split the output area of a module with `edged_properties`: each record is `topic_len`,
    `payload_len`, `props_len`, then the three. Checked as `parse_records` checks its own."""
    records: list[tuple[bytes, bytes, bytes]] = []
    pos, end = 0, len(area)
    while pos < end:
        if end - pos < 12:
            raise FilterCallError("bad_output", f"truncated record header at byte {pos}")
        topic_len, payload_len, props_len = _U32X3.unpack_from(area, pos)
        pos += 12
        if (topic_len == 0 and not reject) or topic_len > MAX_TOPIC_BYTES:
            raise FilterCallError("bad_output", f"record topic length {topic_len} out of 1..65535")
        if pos + topic_len + payload_len + props_len > end:
            raise FilterCallError("bad_output", f"record at byte {pos - 12} runs past `used`")
        topic = area[pos : pos + topic_len]
        pos += topic_len
        payload = area[pos : pos + payload_len]
        pos += payload_len
        records.append((topic, payload, area[pos : pos + props_len]))
        pos += props_len
        _check_topic(topic)
    return records


def _check_topic(topic: bytes) -> None:
    for bad in _BAD_TOPIC_BYTES:
        if bad in topic:
            raise FilterCallError("bad_output", f"emitted topic {topic!r} contains {bad!r}")
    try:
        topic.decode()
    except UnicodeDecodeError:
        raise FilterCallError("bad_output", f"emitted topic {topic!r} is not UTF-8") from None

"""The filter ABI, version 1, as the host sees it (the contract is docs/filter-abi.md).

Everything here is pure Python on bytes, so every engine shares one reading of the contract.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from edged.config import ParamValue
from edged.config.model import CAPABILITIES as CAPABILITIES
from edged.errors import FilterCallError

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
        for bad in _BAD_TOPIC_BYTES:
            if bad in topic:
                raise FilterCallError("bad_output", f"emitted topic {topic!r} contains {bad!r}")
        try:
            topic.decode()
        except UnicodeDecodeError:
            raise FilterCallError("bad_output", f"emitted topic {topic!r} is not UTF-8") from None
    return records

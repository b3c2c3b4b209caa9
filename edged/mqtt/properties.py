"""A message's MQTT 5 properties as edged carries them: read from an input, shown to the filters
that ask, set by them on what they emit, and written on the outputs.

Only the properties that describe the message itself are kept (MQTT 5 §3.3.2.3): payload format
indicator, message expiry interval, content type, response topic, correlation data and user
properties. Topic aliases and subscription identifiers belong to one connection and are never
carried. Under MQTT 3.1.1 no message has properties.

Which of them an output gets is the output rule's `properties:` (docs/properties.md): `pass`
carries the input's user properties, content type, correlation data and response topic (W3C
trace context, `traceparent` and `tracestate`, are user properties, so a trace crosses the
gateway), with what the filters set on top; `drop` keeps only what the filters set. The payload
format indicator and the message expiry describe the input's payload and its age, so they are
carried only when a filter sets them.

Pure Python on bytes; built only for messages that have properties, so a message without any
costs nothing here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import TypeVar

_T = TypeVar("_T")

PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
TOPIC_ALIAS = 0x23
USER_PROPERTY = 0x26

#: W3C Trace Context's version 00 `traceparent`: version-traceid-parentid-flags
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_NO_TRACE = "0" * 32


class PropertiesError(ValueError):
    """Bytes that are not a property list edged can read."""


class Properties:
    """One message's properties (None: not present). Immutable once built.

    `own` is the part the filters set along the chain (None when they set nothing): the output
    rule `properties: drop` publishes only that.
    """

    __slots__ = (
        "_as_is",
        "_wire",
        "content_type",
        "correlation",
        "expiry",
        "own",
        "payload_format",
        "response_topic",
        "user",
    )

    def __init__(
        self,
        *,
        payload_format: int | None = None,
        expiry: int | None = None,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        user: tuple[tuple[str, str], ...] = (),
        own: Properties | None = None,
        wire: bytes | None = None,
        unread: bool | None = None,
    ) -> None:
        """`wire`: these properties as a PUBLISH carried them, when known (kept, not encoded
        again). `unread` (see `received`): the fields are left to be read from `wire`."""
        self.own = own
        self._wire = wire
        if unread is not None:
            self._as_is = unread
            return
        self.payload_format = payload_format
        self.expiry = expiry
        self.content_type = content_type
        self.response_topic = response_topic
        self.correlation = correlation
        self.user = user
        #: `wire` is what `properties: pass` sends (nothing in it that is not carried)
        self._as_is = wire is not None and payload_format is None and expiry is None

    @classmethod
    def received(cls, wire: bytes, as_is: bool) -> Properties:
        """The properties of a received PUBLISH, kept as its bytes and read only when a field
        is asked for: a message that only passes through the gateway is never decoded.
        `as_is`: nothing in `wire` that `properties: pass` would not carry."""
        return cls(wire=wire, unread=as_is)

    def __getattr__(self, name: str) -> object:
        # Only called for a slot not set yet: the fields of `received` properties.
        if name not in _FIELDS:
            raise AttributeError(name)
        fields = _parse(self._wire or b"", strict=False)
        for field_name, value in zip(_FIELDS, fields, strict=True):
            object.__setattr__(self, field_name, value)
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        return f"Properties({self.to_json()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Properties):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self.wire())

    # -- what goes out ---------------------------------------------------------------------

    def wire(self) -> bytes:
        """The properties as a PUBLISH carries them (without the length in front)."""
        if self._wire is None:
            out = bytearray()
            if self.payload_format is not None:
                out += bytes((PAYLOAD_FORMAT, self.payload_format))
            if self.expiry is not None:
                out += bytes((MESSAGE_EXPIRY,)) + self.expiry.to_bytes(4, "big")
            if self.content_type is not None:
                out += bytes((CONTENT_TYPE,)) + _utf8(self.content_type)
            if self.response_topic is not None:
                out += bytes((RESPONSE_TOPIC,)) + _utf8(self.response_topic)
            if self.correlation is not None:
                out += bytes((CORRELATION_DATA,)) + _binary(self.correlation)
            for key, value in self.user:
                out += bytes((USER_PROPERTY,)) + _utf8(key) + _utf8(value)
            self._wire = bytes(out)
        return self._wire

    def for_output(self, passing: bool) -> bytes:
        """What an output rule publishes: `passing` (`properties: pass`) the carried ones with
        the filters' on top, else only the filters'."""
        own = self.own
        if not passing:
            return own.wire() if own is not None else b""
        if own is None and self._as_is:
            return self.wire()  # all of them are carried: as they came
        carried = Properties(
            content_type=self.content_type,
            response_topic=self.response_topic,
            correlation=self.correlation,
            user=self.user,
        )
        if own is not None:
            carried = carried.overlay(own)
        return carried.wire()

    def overlay(self, top: Properties) -> Properties:
        """These properties with `top`'s set over them: each property `top` sets replaces this
        one's; `top`'s user properties replace those of the same names here. `own` gathers
        what was set, for `properties: drop`."""
        names = {key for key, _ in top.user}
        merged_own = top if self.own is None else self.own.overlay(top)
        return Properties(
            payload_format=_first(top.payload_format, self.payload_format),
            expiry=_first(top.expiry, self.expiry),
            content_type=_first(top.content_type, self.content_type),
            response_topic=_first(top.response_topic, self.response_topic),
            correlation=_first(top.correlation, self.correlation),
            user=tuple(kv for kv in self.user if kv[0] not in names) + top.user,
            own=merged_own,
        )

    # -- reading ---------------------------------------------------------------------------

    def user_value(self, key: str) -> str | None:
        for name, value in self.user:
            if name == key:
                return value
        return None

    def trace_id(self) -> str | None:
        """The W3C trace id of `traceparent`, when it has a valid one."""
        parent = self.user_value("traceparent")
        if parent is None:
            return None
        found = _TRACEPARENT.match(parent.strip().lower())
        if found is None or found.group(1) == _NO_TRACE:
            return None
        return found.group(1)

    def to_json(self) -> dict[str, object]:
        """As `edged filter run` prints them and dead letters carry them."""
        out: dict[str, object] = {}
        if self.payload_format is not None:
            out["payload_format"] = self.payload_format
        if self.expiry is not None:
            out["message_expiry"] = self.expiry
        if self.content_type is not None:
            out["content_type"] = self.content_type
        if self.response_topic is not None:
            out["response_topic"] = self.response_topic
        if self.correlation is not None:
            out["correlation_data_b64"] = base64.b64encode(self.correlation).decode()
        if self.user:
            out["user_properties"] = [[k, v] for k, v in self.user]
        return out


_JSON_KEYS = frozenset(
    {
        "payload_format",
        "message_expiry",
        "content_type",
        "response_topic",
        "correlation_data",
        "correlation_data_b64",
        "user_properties",
    }
)


def from_json(record: Mapping[str, object]) -> Properties:
    """The `properties` object of a JSON line (`to_json`'s shape; `correlation_data` as text is
    taken too). Raises PropertiesError naming the key that is wrong."""
    unknown = sorted(set(record) - _JSON_KEYS)
    if unknown:
        raise PropertiesError(f"properties: unknown key {unknown[0]!r}")

    def integer(key: str, bits: int) -> int | None:
        value = record.get(key)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value < (1 << bits):
            raise PropertiesError(f"properties.{key}: an integer 0..{(1 << bits) - 1}")
        return value

    def text(key: str) -> str | None:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise PropertiesError(f"properties.{key}: a string")
        return value

    correlation: bytes | None = None
    if "correlation_data_b64" in record:
        try:
            correlation = base64.b64decode(str(record["correlation_data_b64"]), validate=True)
        except ValueError:
            raise PropertiesError("properties.correlation_data_b64: not base64") from None
    elif (plain := text("correlation_data")) is not None:
        correlation = plain.encode()
    pairs = record.get("user_properties", [])
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise PropertiesError('properties.user_properties: a list of ["name", "value"] pairs')
    payload_format = integer("payload_format", 1)
    return Properties(
        payload_format=payload_format,
        expiry=integer("message_expiry", 32),
        content_type=text("content_type"),
        response_topic=text("response_topic"),
        correlation=correlation,
        user=tuple((k, v) for k, v in pairs),
    )


_FIELDS = ("payload_format", "expiry", "content_type", "response_topic", "correlation", "user")
_TEXT_OR_BINARY = frozenset({CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA})


def decode(
    data: bytes | bytearray, pos: int, end: int
) -> tuple[Properties | None, tuple[int, ...]]:
    """A PUBLISH's property list `data[pos:end]`: the message's properties (None when it has
    none but subscription identifiers) and the subscription identifiers.

    Only the boundaries are read here (the fields when first asked for): measured with a
    traceparent and two more user properties, reading them all cost a quarter of a
    pass-through's time in the daemon. Raises PropertiesError on what edged does not read
    itself (a topic alias, whose topic only the connection knows, or a property no PUBLISH may
    have) or on malformed bytes."""
    idents: list[int] = []
    ident_spans: list[tuple[int, int]] = []  # where the subscription identifiers are
    start = pos
    as_is = True
    others = False
    try:
        while pos < end:
            ident = data[pos]
            if ident == SUBSCRIPTION_ID:
                value, after = read_varint(data, pos + 1)
                ident_spans.append((pos, after))
                idents.append(value)
                pos = after
                continue
            others = True
            if ident == USER_PROPERTY:
                second = pos + 3 + ((data[pos + 1] << 8) | data[pos + 2])
                pos = second + 2 + ((data[second] << 8) | data[second + 1])
            elif ident in _TEXT_OR_BINARY:
                pos += 3 + ((data[pos + 1] << 8) | data[pos + 2])
            elif ident == PAYLOAD_FORMAT:
                pos += 2
                as_is = False
            elif ident == MESSAGE_EXPIRY:
                pos += 5
                as_is = False
            else:
                raise PropertiesError(f"property 0x{ident:02x} is not read here")
    except IndexError:
        raise PropertiesError("truncated property list") from None
    if pos != end:
        raise PropertiesError("property list runs past its length")
    if not others:
        return None, tuple(idents)
    if not ident_spans:
        wire = bytes(data[start:end])
    else:
        # The bytes as they came, without the identifiers: what `wire` would write, in the
        # sender's order, and what `properties: pass` sends on without encoding anything again.
        kept, at = [], start
        for span_start, span_end in ident_spans:
            kept.append(data[at:span_start])
            at = span_end
        kept.append(data[at:end])
        wire = b"".join(kept)
    return Properties.received(wire, as_is), tuple(idents)


def _parse(data: bytes, *, strict: bool) -> tuple[object, ...]:
    """The fields of a property list without subscription identifiers, in `_FIELDS` order.
    Not `strict`: a string that is not UTF-8 is read with replacement characters (the bytes
    themselves still go on as they came)."""
    payload_format = expiry = None
    content_type = response_topic = None
    correlation: bytes | None = None
    user: list[tuple[str, str]] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            ident = data[pos]
            pos += 1
            if ident == USER_PROPERTY:
                key, pos = _read_utf8(data, pos, strict)
                value_text, pos = _read_utf8(data, pos, strict)
                user.append((key, value_text))
            elif ident == PAYLOAD_FORMAT:
                payload_format = data[pos]
                pos += 1
            elif ident == MESSAGE_EXPIRY:
                expiry = int.from_bytes(data[pos : pos + 4], "big")
                pos += 4
            elif ident == CONTENT_TYPE:
                content_type, pos = _read_utf8(data, pos, strict)
            elif ident == RESPONSE_TOPIC:
                response_topic, pos = _read_utf8(data, pos, strict)
            elif ident == CORRELATION_DATA:
                length = (data[pos] << 8) | data[pos + 1]
                correlation = bytes(data[pos + 2 : pos + 2 + length])
                pos += 2 + length
            else:
                raise PropertiesError(f"property 0x{ident:02x} is not read here")
    except IndexError:
        raise PropertiesError("truncated property list") from None
    return payload_format, expiry, content_type, response_topic, correlation, tuple(user)


def from_wire(data: bytes) -> Properties | None:
    """Properties as `Properties.wire` wrote them (what the outbox keeps)."""
    if not data:
        return None
    fields = _parse(data, strict=True)
    props = Properties(wire=data, **dict(zip(_FIELDS, fields, strict=True)))  # type: ignore[arg-type]
    return props if props.wire() else None


def _first(a: _T | None, b: _T | None) -> _T | None:
    return a if a is not None else b


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _binary(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _read_utf8(data: bytes | bytearray, pos: int, strict: bool = True) -> tuple[str, int]:
    length = (data[pos] << 8) | data[pos + 1]
    end = pos + 2 + length
    if end > len(data):
        raise IndexError(end)
    raw = bytes(data[pos + 2 : end])
    if not strict:
        return raw.decode(errors="replace"), end
    try:
        return raw.decode(), end
    except UnicodeDecodeError:
        raise PropertiesError("a property string is not UTF-8") from None


def read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """MQTT's variable byte integer at `pos`: `(value, the position after it)`."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise PropertiesError("variable byte integer longer than 4 bytes")

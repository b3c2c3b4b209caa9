"""The PUBLISH packet, both ways: what edged reads from a broker and what it writes to one.

Pure functions on bytes (MQTT 3.1.1 §3.3, MQTT 5 §3.3), kept apart from the paho subclass that
uses them (`edged.mqtt._paho`), so they are tested on their own and shared by every reader.
"""

from __future__ import annotations

from edged.mqtt.message import Message
from edged.mqtt.properties import PropertiesError
from edged.mqtt.properties import decode as decode_properties

PUBLISH = 0x30


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def encode(
    topic: bytes,
    payload: bytes,
    qos: int,
    mid: int,
    retain: bool,
    v5: bool,
    properties: bytes = b"",
    dup: bool = False,
) -> bytes:
    """One PUBLISH packet; `properties` (MQTT 5 only, as `Properties.wire` gives them) are
    left out under 3.1.1, which has none."""
    props = remaining_length(len(properties)) + properties if v5 else b""
    size = 2 + len(topic) + len(payload) + len(props) + (2 if qos else 0)
    return b"".join(
        (
            bytes((PUBLISH | dup << 3 | qos << 1 | retain,)),
            remaining_length(size),
            len(topic).to_bytes(2, "big"),
            topic,
            mid.to_bytes(2, "big") if qos else b"",
            props,
            payload,
        )
    )


def decode(header: int, packet: bytes | bytearray, v5: bool, source: int = 0) -> Message | None:
    """The message in a PUBLISH (`packet` is everything after the fixed header), or None when
    edged does not read it itself (a topic alias, a property no PUBLISH has, a malformed
    packet): paho's own decoder then looks at it. Raises IndexError on a truncated packet."""
    pos = 2 + ((packet[0] << 8) | packet[1])
    if pos > len(packet):
        return None
    topic = bytes(packet[2:pos])
    qos = (header & 0x06) >> 1
    mid = 0
    if qos:
        mid = (packet[pos] << 8) | packet[pos + 1]
        pos += 2
    idents: tuple[int, ...] = ()
    props = None
    if v5:
        length, shift = 0, 0
        while True:
            byte = packet[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80 or shift > 21:
                break
        end = pos + length
        if end > len(packet):
            return None
        if length:
            only = _only_idents(packet, pos, end)
            if only is not None:
                idents = only
            else:
                try:
                    props, idents = decode_properties(packet, pos, end)
                except PropertiesError:
                    return None
        pos = end
    if not topic:
        return None  # a topic alias: only the connection knows its topic
    return Message(
        topic,
        bytes(packet[pos:]),
        qos,
        mid,
        bool(header & 0x01),
        bool(header & 0x08),
        idents,
        source,
        props,
    )


def _only_idents(packet: bytes | bytearray, pos: int, end: int) -> tuple[int, ...] | None:
    """The subscription identifiers in `packet[pos:end]` when nothing else is there (every
    delivery to edged's own subscriptions), read in one pass without building anything else;
    None when there is more (or something malformed): `decode_properties` reads that."""
    found: list[int] = []
    while pos < end:
        if packet[pos] != 0x0B:
            return None
        value, shift = 0, 0
        for _ in range(4):
            pos += 1
            if pos >= end:
                return None
            byte = packet[pos]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            return None
        pos += 1
        found.append(value)
    return tuple(found)

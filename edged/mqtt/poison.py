"""Outputs a broker will never take, found before they stall a link.

A broker that is sent a packet over its limit does not refuse the message: it closes the
connection (mosquitto, AWS IoT Core, Azure IoT Hub alike). An output kept for a retry would then
be sent first after every reconnect, and the link would never carry anything else. Two ways out:

- **Announced.** An MQTT 5 broker says its Maximum Packet Size in CONNACK (§3.2.2.3.6). A
  publish whose packet would be larger is refused before it is sent or stored (`packet_size`).
- **Not announced** (MQTT 3.1.1, an undeclared limit, an ACL that disconnects). Which publish
  the broker choked on cannot be read off one disconnect: with a window of publishes in flight,
  the broker's PUBACKs for the ones just before the culprit are lost too (it closes with the rest
  of the big packet unread, the kernel sends a reset, and the reset discards what the client had
  not read yet: measured with mosquitto's `max_packet_size`, the first unacknowledged publish was
  1 to 9 places before the oversized one over 5 runs). So after a disconnect with publishes in
  flight, the next connection sends one publish at a time (`careful`) for as many
  acknowledgements as were in flight; a disconnect then has exactly one publish in flight. The
  same publish in flight at `STRIKES` such disconnects is poison: from then on it is refused
  like one over an announced limit. A poison output costs `STRIKES + 1` reconnects.
"""

from __future__ import annotations

import hashlib

#: disconnects, each with this same publish alone in flight, that make it poison. One could be
#: a coincidence (a broker restart with a publish in flight); two in a row are not.
STRIKES = 2
# Publishes with strikes, and poison, remembered at most: a few distinct ones are the real case;
# the bound keeps a flapping connection from growing the tables.
_REMEMBER = 64

Key = bytes


def packet_size(topic: int, payload: int, qos: int, v5: bool, properties: int = 0) -> int:
    """The whole PUBLISH packet's size in bytes (what Maximum Packet Size counts) for a topic
    and payload of these lengths: fixed header, topic, packet id, properties, payload."""
    rest = 2 + topic + (2 if qos else 0) + payload
    if v5:
        rest += properties + _varint_size(properties)
    return 1 + _varint_size(rest) + rest


def _varint_size(n: int) -> int:
    size = 1
    while n >= 128:
        n >>= 7
        size += 1
    return size


def key_of(topic: str, payload: bytes) -> Key:
    """What tells one publish from another across reconnects, replays and redeliveries (which
    make the same output again with a new message id)."""
    digest = hashlib.blake2b(payload, digest_size=16)
    digest.update(topic.encode())
    return digest.digest()


class PoisonWatch:
    """The strikes and poison of one link: `careful` while the next acknowledgements are to
    come one at a time, `dropped` at each disconnect, `is_poison` before each publish."""

    def __init__(self) -> None:
        self._strikes: dict[Key, int] = {}
        self._poison: dict[Key, None] = {}  # ordered, oldest first
        self.careful = 0  # acknowledgements still to receive one publish at a time
        #: anything known to be poison: a plain attribute, read on every publish before hashing
        self.known = False

    def __bool__(self) -> bool:
        return self.known

    def acked(self) -> None:
        if self.careful:
            self.careful -= 1

    def dropped(self, in_flight: list[tuple[str, bytes]]) -> Key | None:
        """The connection went with these publishes sent and unacknowledged, oldest first.
        Returns the key of a publish that became poison now, if one did."""
        if not in_flight:
            return None
        if self.careful and len(in_flight) == 1:
            key = key_of(*in_flight[0])
            strikes = self._strikes.pop(key, 0) + 1
            if strikes >= STRIKES:
                self._add_poison(key)
                return key
            if len(self._strikes) >= _REMEMBER:
                self._strikes.clear()
            self._strikes[key] = strikes
            return None
        self.careful = max(self.careful, len(in_flight))
        return None

    def is_poison(self, topic: str, payload: bytes) -> bool:
        return self.known and key_of(topic, payload) in self._poison

    def _add_poison(self, key: Key) -> None:
        if len(self._poison) >= _REMEMBER:
            del self._poison[next(iter(self._poison))]
        self._poison[key] = None
        self.known = True

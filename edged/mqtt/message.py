"""What the daemon's core sees of MQTT: edged's own types, never a paho one.

`Message` is one PUBLISH as it arrived; `TopicSubscription` is one topic filter the daemon
subscribes to. The one file that talks to paho's internals (`edged.mqtt._paho`) builds the
messages; the router, the intake and the daemon's loop only read them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from edged.mqtt.properties import Properties
from edged.topics import SHARE_PREFIX


class Message:
    """One received PUBLISH.

    `topic` is the raw UTF-8 bytes as received (the filters want bytes, and decoding every topic
    would cost a call per message); `mid` is 0 at QoS 0; `subscription_ids` are the MQTT 5
    subscription identifiers the broker matched (empty under 3.1.1); `source` numbers the broker
    link it came over (0 for the first), whose connection alone can acknowledge it;
    `properties` are its MQTT 5 properties (`edged.mqtt.properties`), None when it has none.

    A plain class with slots rather than a dataclass: one is built per message, and a
    hand-written `__init__` is the cheapest way to make one.
    """

    __slots__ = (
        "dup",
        "mid",
        "payload",
        "properties",
        "qos",
        "retain",
        "source",
        "subscription_ids",
        "topic",
    )

    def __init__(
        self,
        topic: bytes,
        payload: bytes,
        qos: int = 0,
        mid: int = 0,
        retain: bool = False,
        dup: bool = False,
        subscription_ids: tuple[int, ...] = (),
        source: int = 0,
        properties: Properties | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.mid = mid
        self.retain = retain
        self.dup = dup
        self.subscription_ids = subscription_ids
        self.source = source
        self.properties = properties

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, payload={len(self.payload)} bytes, qos={self.qos}, "
            f"mid={self.mid}, subscription_ids={self.subscription_ids}, source={self.source})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in Message.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


@dataclass(frozen=True, slots=True)
class TopicSubscription:
    """One distinct topic filter on one broker; `ident` is its MQTT 5 subscription identifier
    (unique across the brokers, so a delivery's identifiers say which filters it matched)."""

    topic: str
    qos: int
    ident: int
    broker: str = "default"

    @property
    def shared(self) -> bool:
        return self.topic.startswith(SHARE_PREFIX)


def payload_fields(payload: bytes) -> dict[str, str]:
    """A payload as JSON can carry it: `payload` when it is UTF-8 text, else `payload_b64`.

    One shape for every JSON record that carries a message: dead letters, and what the filter
    tools print and compare."""
    try:
        return {"payload": payload.decode()}
    except UnicodeDecodeError:
        return {"payload_b64": base64.b64encode(payload).decode()}


@dataclass(frozen=True, slots=True)
class Unacked:
    """An outgoing QoS 1/2 publish the broker had not acknowledged when the connection went."""

    mid: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    sent: bool = True  # written to the broker (not held back by the send window)
    properties: bytes = b""  # MQTT 5, as `Properties.wire` writes them

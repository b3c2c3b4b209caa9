"""The short-lived MQTT client of the CLI commands: connect, subscribe, publish, read, leave.

`edged module`, `edged stats` and `edged demo` talk to the broker through this class; the
daemon has its own long-lived connection (edged/mqtt/link.py). Both are built by
`make_client`, so credentials and TLS apply the same way to each.

Every way a session can fail to reach the broker or have it take a request is a BrokerError,
which the CLI exits with 69 (EX_UNAVAILABLE). A session's client id is `edged-<purpose>-<random>`,
never the node's own, which would push the running daemon off the broker.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho

from edged.config.model import BrokerConfig
from edged.errors import BrokerError
from edged.mqtt.connect import make_client


@dataclass(frozen=True, slots=True)
class Received:
    """One message the session received on a subscription."""

    topic: str
    payload: bytes
    retain: bool


class Session:
    """One connection, for a `with` block; what arrives waits in `messages`, in arrival order.

    `timeout` bounds each wait for the broker: the connection's acknowledgement, a
    subscription's, a QoS 1 publish's.
    """

    def __init__(self, broker: BrokerConfig, purpose: str, timeout: float = 10.0) -> None:
        self.broker = broker
        self.timeout = timeout
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._subacks: queue.Queue[tuple[int, list[Any]]] = queue.Queue()
        self._topics: list[tuple[str, int]] = []
        self.client = make_client(paho.Client, broker, f"edged-{purpose}-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self._subacks.put((mid, codes))
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            Received(m.topic, bytes(m.payload), bool(m.retain))
        )

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            for topic, qos in self._topics:  # again after a reconnect
                client.subscribe(topic, qos)
        self._connected.set()

    def __enter__(self) -> Session:
        b = self.broker
        try:
            self.client.connect(b.host, b.port, keepalive=b.keepalive)
        except OSError as exc:
            raise BrokerError(f"cannot connect to {b.host}:{b.port}: {exc}") from None
        self.client.loop_start()
        try:
            if not self._connected.wait(self.timeout):
                raise BrokerError(f"no answer from the broker at {b.host}:{b.port}")
            if self._refused is not None:
                raise BrokerError(f"the broker at {b.host}:{b.port} refused us: {self._refused}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()  # first, so that the network thread ends at once
        self.client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the broker to confirm, so nothing published after is missed."""
        self._topics.append((topic, qos))
        _, mid = self.client.subscribe(topic, qos)
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, codes = self._subacks.get(timeout=left)
            except queue.Empty:
                break
            if got == mid:
                if any(code.is_failure for code in codes):
                    raise BrokerError(f"the broker refused the subscription to {topic}")
                return
        raise BrokerError(f"the broker did not confirm the subscription to {topic}")

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has it (QoS 1) or it is written out (QoS 0)."""
        info = self.client.publish(topic, payload, qos, retain)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"cannot publish to {topic}: {exc}") from None
        if not info.is_published():
            raise BrokerError(f"the broker did not take the message on {topic}")

    def next(self, timeout: float) -> Received | None:
        """The next message to arrive within `timeout` seconds, or None."""
        try:
            return self.messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

"""A test-side MQTT client that records what arrives, in order."""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.mqtt.mosquitto import PrivateBroker


class Client:
    """A test-side MQTT client that records what arrives, in order."""

    def __init__(
        self,
        broker: PrivateBroker,
        *,
        v5: bool = True,
        persistent: bool = False,
        inflight: int = 20,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """With `persistent`, the broker keeps this client's session across a lost connection
        and its own restart, so nothing published meanwhile is missed (paho reconnects).
        `inflight` is how many of its own QoS 1/2 publishes may await the broker's ack.
        With `ca_file` it connects over TLS, checking the broker's certificate against that
        CA, and shows `cert_file`/`key_file` if given; `username`/`password` log it in."""
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._subacks: queue.Queue[int] = queue.Queue()
        # what became of each connection attempt: the CONNACK's reason code (0: accepted), or
        # -1 for a connection that went before any CONNACK (a TLS handshake refused)
        self.connacks: queue.Queue[int] = queue.Queue()
        self._acked = False
        self.paho = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else not persistent,
        )
        self.paho.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.paho.on_subscribe = lambda _c, _u, mid, *_: self._subacks.put(mid)
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        if ca_file is not None:
            self.paho.tls_set(
                ca_certs=str(ca_file),
                certfile=None if cert_file is None else str(cert_file),
                keyfile=None if key_file is None else str(key_file),
            )
        if username is not None:
            self.paho.username_pw_set(username, password)
        self.paho.reconnect_delay_set(0.1, 1)
        self.paho.max_inflight_messages_set(inflight)
        properties = None
        if v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.paho.connect(
            broker.host,
            broker.port,
            clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.paho.loop_start()

    def _on_connect(
        self, _c: object, _u: object, _flags: object, reason: object, *_: object
    ) -> None:
        self._acked = True
        value = getattr(reason, "value", reason)  # a paho ReasonCode
        self.connacks.put(value if isinstance(value, int) else -1)

    def _on_disconnect(self, *_: object) -> None:
        if not self._acked:
            self.connacks.put(-1)
        self._acked = False

    def connack(self, timeout: float = 5.0) -> int:
        """The outcome of the next connection attempt: the CONNACK's reason code (0 when the
        broker accepted it), -1 when the connection ended before any CONNACK."""
        return self.connacks.get(timeout=timeout)

    def subscribe(self, pattern: str, qos: int = 1) -> None:
        _, mid = self.paho.subscribe(pattern, qos)
        while self._subacks.get(timeout=5) != mid:
            pass

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos, retain).wait_for_publish(5)

    def collect(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        """Exactly the next `count` messages; fails if fewer arrive in time."""
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(got)} of {count} messages: {got}")
            try:
                topic, payload, _ = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            got.append((topic, payload))
        return got

    def quiet(self, seconds: float = 0.5) -> list[tuple[str, bytes]]:
        """Whatever else arrives within `seconds`: for asserting that nothing more came."""
        extra: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload, _ = self.messages.get(timeout=left)
            except queue.Empty:
                break
            extra.append((topic, payload))
        return extra

    def close(self) -> None:
        self.paho.loop_stop()
        self.paho.disconnect()

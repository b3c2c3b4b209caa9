"""The daemon's one connection to the broker, on paho's public API and `edged.mqtt._paho`.

paho's network loop is driven by the daemon's own loop, not by `loop_forever` or `loop_start`:
network, filters, ticks and publishes all run on one thread. A second thread for the network was
tried and measured: every ctypes call into wasmtime releases the GIL, and the busy network thread
then held it for up to a switch interval, which cut throughput to ~800 msgs/s. So the daemon reads
whatever the broker has sent (`drain`) into its bounded intake queue, processes a time slice of
it, and goes back to reading; QoS 1/2 messages are acknowledged only once processed
(`manual_ack`), so a crash mid-message gets them redelivered rather than lost.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence

import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged.config.model import BrokerConfig
from edged.mqtt._paho import Client
from edged.mqtt.connect import make_client
from edged.mqtt.message import Message, TopicSubscription

log = structlog.get_logger("edged.mqtt")


class BrokerLink:
    """Connect, keep connected, resubscribe, publish, and announce online/offline."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        client_id: str,
        status_topic: str,
        status: dict[str, object],
        subscriptions: Sequence[TopicSubscription],
        on_message: Callable[[Message], None],
        on_ready: Callable[[], None] | None = None,
        max_queued_publishes: int = 10_000,
    ) -> None:
        self._broker = broker
        self._status_topic = status_topic
        self._status = status
        self._subscriptions = tuple(subscriptions)
        self._on_ready = on_ready
        self.v5 = broker.mqtt_version == "5"
        self.connected = False
        self.ready = False
        self.connects = 0
        self._pending_subacks: set[int] = set()
        self._unsubacks: set[int] = set()
        self._retry_at = 0.0
        self._delay = broker.reconnect_min_delay
        self._ever_connected = False

        self.client = client = make_client(
            Client,
            broker,
            client_id,
            clean_session=None if self.v5 else True,
            manual_ack=True,
        )
        # paho's outgoing queue is bounded too, so a long broker outage cannot eat the gateway's
        # memory; a publish past it is refused and counted by the caller as `publish_failed`.
        client.max_queued_messages_set(max_queued_publishes)
        self._max_queued = max_queued_publishes
        client.will_set(status_topic, self._status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_unsubscribe = lambda _c, _u, mid, *_: self._unsubacks.add(mid)
        client.on_received = on_message

    # -- lifecycle -----------------------------------------------------------------------

    def step(self, timeout: float) -> None:
        """Run the network for at most `timeout` seconds; (re)connect when it is time to."""
        if not self.connected and self.client.socket() is None:
            now = time.monotonic()
            if now < self._retry_at:
                time.sleep(min(timeout, self._retry_at - now))
                return
            self._try_connect()
            return
        rc = self.client.loop(timeout)
        # A drop after CONNACK reaches `_disconnected`; this catches one before it, without
        # backing off twice for the same failure.
        if (
            rc != paho.MQTT_ERR_SUCCESS
            and not self.connected
            and time.monotonic() >= self._retry_at
        ):
            self._lost(f"network loop: {paho.error_string(rc)}")

    def service(self) -> None:
        """Write what is queued and keep the connection alive, without reading anything."""
        if self.client.socket() is None:
            self.step(0)
            return
        if self.client.want_write():
            self.client.loop_write()
        self.client.loop_misc()

    @property
    def backlogged(self) -> bool:
        """paho's queue of unacknowledged QoS 1/2 publishes is full; reading acks will help."""
        return self.client.unacked_publishes() >= self._max_queued

    def drain(self, limit: int) -> int:
        """Read up to `limit` packets that have already arrived, without waiting for more."""
        client = self.client
        sock = client.socket()
        count = 0
        while count < limit and sock is not None:
            if not client.buffered():
                pending = getattr(sock, "pending", None)
                if not (pending and pending()) and not select.select([sock], [], [], 0)[0]:
                    break
            if client.loop_read() != paho.MQTT_ERR_SUCCESS:
                break  # the drop reaches `_disconnected`, or the next step() reconnects
            count += 1
            sock = client.socket()
        return count

    @contextlib.contextmanager
    def batched_writes(self) -> Iterator[None]:
        """Publishes inside the block are queued and written together afterwards: a slice of
        filtered messages costs one write call, not one per output."""
        with self.client.deferred_writes():
            yield

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def close(self, timeout: float = 2.0) -> None:
        """Say offline (the will only covers crashes), flush what is queued, and disconnect."""
        if self.connected:
            info = self.client.publish(
                self._status_topic, self._status_payload("offline"), qos=1, retain=True
            )
            deadline = time.monotonic() + timeout
            while not info.is_published() and self.connected and time.monotonic() < deadline:
                self.client.loop(0.05)
            self.connected = False  # what follows is our own goodbye, not a lost broker
            self.client.disconnect()
            self.client.loop(0.05)
        self.connected = False

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Queue one publish; False when paho refuses it (not connected at QoS 0, queue full)."""
        if qos == 0:
            return self.client.publish_qos0(topic.encode(), payload, retain)
        return self.client.publish(topic, payload, qos, retain).rc == paho.MQTT_ERR_SUCCESS

    def replace_subscriptions(self, subscriptions: Sequence[TopicSubscription]) -> None:
        """Switch to a new set of subscriptions without a gap.

        Subscribing to a filter again replaces the old subscription in place (MQTT 3.1.1 §3.8.4,
        MQTT 5 §3.8.4), so the new set is subscribed first and only the dropped filters are
        unsubscribed afterwards.
        """
        old = {s.topic for s in self._subscriptions}
        self._subscriptions = tuple(subscriptions)
        if not self.connected:
            return  # the next connect subscribes the new set
        self._subscribe_all(announce=False)
        gone = sorted(old - {s.topic for s in self._subscriptions})
        if gone:
            self.client.unsubscribe(gone)

    def unsubscribe_all(self) -> int | None:
        """Stop the broker sending us more; returns the UNSUBSCRIBE's message id, or None.

        The broker sends what it had already queued for us before the UNSUBACK, so reading until
        `unsubscribed(mid)` takes in every message published before the shutdown began.
        """
        topics = [s.topic for s in self._subscriptions]
        if not topics or not self.connected:
            return None
        rc, mid = self.client.unsubscribe(topics)
        return mid if rc == paho.MQTT_ERR_SUCCESS else None

    def unsubscribed(self, mid: int) -> bool:
        return mid in self._unsubacks

    def publish_status(self, **fields: object) -> None:
        self._status.update(fields)
        if self.connected:
            self.client.publish(
                self._status_topic, self._status_payload("online"), qos=1, retain=True
            )

    # -- paho callbacks and reconnection -------------------------------------------------

    def _try_connect(self) -> None:
        b = self._broker
        try:
            self.client.connect(b.host, b.port, keepalive=b.keepalive)
        except (OSError, ssl.SSLError, socket.gaierror) as exc:
            self._lost(f"cannot connect to {b.host}:{b.port}: {exc}")

    def _lost(self, why: str) -> None:
        self.connected = False
        self.ready = False
        jitter = random.uniform(0.8, 1.2)
        wait = min(self._delay, self._broker.reconnect_max_delay) * jitter
        self._retry_at = time.monotonic() + wait
        log.warning("broker_unreachable", reason=why, retry_in_s=round(wait, 1))
        self._delay = min(self._delay * 2, self._broker.reconnect_max_delay)

    def _connected(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: object,
    ) -> None:
        if reason.is_failure:
            log.error("broker_refused", reason=str(reason), host=self._broker.host)
            client.disconnect()
            self._lost(f"broker refused the connection: {reason}")
            return
        self.connected = True
        self.connects += 1
        self._delay = self._broker.reconnect_min_delay
        log.info(
            "broker_connected",
            host=self._broker.host,
            port=self._broker.port,
            reconnect=self._ever_connected,
        )
        self._ever_connected = True
        self._subscribe_all()

    def _subscribe_all(self, announce: bool = True) -> None:
        self._pending_subacks.clear()
        if not self._subscriptions and announce:
            self._become_ready()
        for sub in self._subscriptions:
            if self.v5:
                props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                props.SubscriptionIdentifier = sub.ident
                # noLocal: our own outputs never come back to us, so a pipeline whose output
                # matches its own subscription cannot feed itself forever.
                opts = SubscribeOptions(qos=sub.qos, noLocal=True)
                _, mid = self.client.subscribe(sub.topic, options=opts, properties=props)
            else:
                _, mid = self.client.subscribe(sub.topic, qos=sub.qos)
            if mid is not None:
                self._pending_subacks.add(mid)

    def _subscribed(
        self, _c: paho.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        for code in codes:
            if code.is_failure:
                log.error("subscribe_refused", reason=str(code))
        self._pending_subacks.discard(mid)
        if not self._pending_subacks and not self.ready:
            self._become_ready()

    def _become_ready(self) -> None:
        self.ready = True
        self.client.publish(self._status_topic, self._status_payload("online"), qos=1, retain=True)
        if self._on_ready is not None:
            self._on_ready()

    def _disconnected(
        self, _c: paho.Client, _u: object, _flags: object, reason: ReasonCode, _p: object
    ) -> None:
        if self.connected:
            self._lost(f"disconnected: {reason}")

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"state": state, **self._status}, separators=(",", ":")).encode()

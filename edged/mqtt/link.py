"""The daemon's one connection to the broker, on paho's network thread.

paho reads and writes on its own thread (`loop_start`), reconnecting with capped backoff, so the
broker is read at full speed even while a filter is busy; received messages go straight into the
daemon's bounded intake queue. Filters run on the daemon's thread, which publishes through paho
(thread-safe: it only queues the packet and wakes the network thread) and acknowledges QoS 1/2
messages itself once they are processed (`manual_ack`), so a crash mid-message gets the message
redelivered rather than lost.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged.config import BrokerConfig

log = structlog.get_logger("edged.mqtt")


@dataclass(frozen=True, slots=True)
class TopicSubscription:
    """One distinct topic filter; `ident` is its MQTT 5 subscription identifier."""

    topic: str
    qos: int
    ident: int


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
        on_message: Callable[[paho.MQTTMessage], None],
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

        self.client = client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else True,
            manual_ack=True,
        )
        # paho's outgoing queue is bounded too, so a long broker outage cannot eat the gateway's
        # memory; a publish past it is refused and counted by the caller as `publish_failed`.
        client.max_queued_messages_set(max_queued_publishes)
        client.reconnect_delay_set(broker.reconnect_min_delay, broker.reconnect_max_delay)  # type: ignore[arg-type]
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls is not None:
            tls = broker.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.will_set(status_topic, self._status_payload("offline"), qos=1, retain=True)
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_message = lambda _c, _u, msg: on_message(msg)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the network thread; it connects, and keeps reconnecting, by itself."""
        b = self._broker
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive)
        self.client.loop_start()

    def close(self, timeout: float = 2.0) -> None:
        """Say offline (the will only covers crashes), flush what is queued, and disconnect."""
        if self.connected:
            info = self.client.publish(
                self._status_topic, self._status_payload("offline"), qos=1, retain=True
            )
            deadline = time.monotonic() + timeout
            while not info.is_published() and self.connected and time.monotonic() < deadline:
                time.sleep(0.01)
        self.connected = False
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Queue one publish; False when paho refuses it (not connected at QoS 0, queue full)."""
        return self.client.publish(topic, payload, qos, retain).rc == paho.MQTT_ERR_SUCCESS

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def publish_status(self, **fields: object) -> None:
        self._status.update(fields)
        if self.connected:
            self.client.publish(
                self._status_topic, self._status_payload("online"), qos=1, retain=True
            )

    # -- paho callbacks, on the network thread --------------------------------------------

    def _connect_failed(self, _c: paho.Client, _u: object) -> None:
        b = self._broker
        log.warning("broker_unreachable", reason=f"cannot connect to {b.host}:{b.port}")

    def _connected(
        self,
        client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: object,
    ) -> None:
        if reason.is_failure:
            # paho keeps retrying with backoff; bad credentials are worth an error each time.
            log.error("broker_refused", reason=str(reason), host=self._broker.host)
            return
        self.connected = True
        self.connects += 1
        log.info(
            "broker_connected",
            host=self._broker.host,
            port=self._broker.port,
            reconnect=self.connects > 1,
        )
        self._subscribe_all()

    def _subscribe_all(self) -> None:
        self._pending_subacks.clear()
        if not self._subscriptions:
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
        was_connected, self.connected, self.ready = self.connected, False, False
        if was_connected:
            log.warning("broker_unreachable", reason=f"disconnected: {reason}")

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"state": state, **self._status}, separators=(",", ":")).encode()

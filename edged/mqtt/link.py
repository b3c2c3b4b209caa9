"""The daemon's one connection to the broker, on paho's public API and `edged.mqtt._paho`.

paho's network loop is driven by the daemon's own loop, not by `loop_forever` or `loop_start`:
network, filters, ticks and publishes all run on one thread. A second thread for the network was
tried and measured: every ctypes call into wasmtime releases the GIL, and the busy network thread
then held it for up to a switch interval, which cut throughput to ~800 msgs/s. So the daemon reads
whatever the broker has sent (`drain`) into its bounded intake queue, processes a time slice of
it, and goes back to reading; QoS 1/2 messages are acknowledged only once their outputs are
safe (`manual_ack`, `edged.mqtt.acks`), so a crash mid-message gets them redelivered rather than
lost.

The session is persistent unless `broker.session_expiry` is 0: the broker keeps edged's
subscriptions and queues what arrives while edged is away (restarting, or the connection down),
and sends again every input edged had not acknowledged. Outputs that no such redelivery would
make again (ticks' outputs, QoS 0 inputs' outputs, everything with a clean session) go to the
outbox (`edged.mqtt.outbox`) when the connection drops, and are replayed after it is back.

There is one link per configured broker, each with its own connection, will and status,
subscriptions, window and outbox. A link numbers its outputs by paho's message id plus its own
base (`index << 16`), so the ids of several links never meet in the daemon's `AckWindow`. A
connection attempt (a DNS lookup, a TCP connect to a host that does not answer, a TLS
handshake: up to paho's 5 s connect timeout) runs on a short-lived thread of its own, so an
unreachable cloud broker never holds up the loop that serves the local one.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged.config.model import BrokerConfig
from edged.errors import CredentialsError, OutputRefused
from edged.mqtt._paho import Client, paho_properties
from edged.mqtt.acks import next_token
from edged.mqtt.connect import apply_credentials, make_client
from edged.mqtt.credentials import files_digest, load_credentials
from edged.mqtt.message import Message, TopicSubscription, Unacked
from edged.mqtt.outbox import Outbox
from edged.mqtt.poison import STRIKES, PoisonWatch, packet_size

log = structlog.get_logger("edged.mqtt")

# Outputs kept for the outbox are written together: at least this many, or after this long.
_SPILL_BATCH = 250
_SPILL_DELAY = 0.25
# ... or after this long when inputs wait for the commit (an output for a link that is down, or
# queued behind a replay): their broker sends no more than its Receive Maximum (100 by default)
# until they are acknowledged, so this bounds that link's rate to 100 / 0.02 s = 5,000 msgs/s
# while keeping the commits (each an fsync) to 50 a second.
_SPILL_DELAY_AWAITED = 0.02
# A write the outbox's disk refused (full, read-only, I/O error) is tried again after this long,
# doubling up to the longest: each try is one failed transaction, cheap, but never in a loop.
_STORE_RETRY_MIN = 0.5
_STORE_RETRY_MAX = 8.0
#: outputs held in memory while the outbox cannot be written, past which the daemon reads its
#: brokers slowly: their inputs stay unacknowledged, and an MQTT 5 broker sends no more than its
#: Receive Maximum of them anyway, but an MQTT 3.1.1 broker may have no such bound
HOLD_MAX = 10_000

#: what refused outputs are handed to: `(refusal, topic, payload, qos)`
Refused = Callable[[OutputRefused, str, bytes, int], None]


class _Kept:
    """One output for the outbox, not yet committed; `token` is what an input waits for
    (0: nothing does)."""

    __slots__ = ("payload", "properties", "qos", "retain", "token", "topic")

    def __init__(
        self, topic: str, payload: bytes, qos: int, retain: bool, token: int, properties: bytes
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.token = token
        self.properties = properties


class BrokerLink:
    """Connect, keep connected, resubscribe, publish, and announce online/offline."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        index: int = 0,
        client_id: str,
        status_topic: str,
        status: dict[str, object],
        subscriptions: Sequence[TopicSubscription],
        on_message: Callable[[Message], None],
        on_ready: Callable[[], None] | None = None,
        on_acked: Callable[[int], None] | None = None,
        on_lost: Callable[[list[Unacked]], None] | None = None,
        on_refused: Refused | None = None,
        outbox: Outbox | None = None,
        max_queued_publishes: int = 10_000,
    ) -> None:
        self._broker = broker
        self.name = broker.name
        self.index = index
        self.key_base = index << 16  # paho's message ids are 1..65535
        self.persistent = broker.session_expiry > 0
        self.outbox = outbox
        self._on_acked = on_acked
        self._on_lost = on_lost
        self._on_refused = on_refused
        #: outgoing mid of a replayed outbox entry -> its sequence number
        self._replaying: dict[int, int] = {}
        self._replay_cursor = 0
        self._replayed: list[int] = []  # acknowledged, to delete from the outbox
        self._undeleted: set[int] = set()  # replayed and acknowledged, deletion failed
        self._spill: list[_Kept] = []  # for the outbox, not yet written
        self._spill_since = 0.0
        self._spill_awaited = 0  # of those, outputs inputs wait for
        self._store_at = 0.0  # not before: the last write failed
        self._store_delay = _STORE_RETRY_MIN
        #: the largest packet the broker takes (MQTT 5 CONNACK Maximum Packet Size), and the
        #: outputs it would never take: kept across reconnects, a broker says it again
        self.max_packet: int | None = None
        self._poison = PoisonWatch()
        self._window = 0  # the broker's Receive Maximum (0: none)
        self.over_packet_size = 0  # outputs over max_packet, dead-lettered
        self.poison_outputs = 0  # outputs found to be poison, dead-lettered
        self._health = "online"
        self.refused_by_broker = 0  # MQTT 5 PUBACKs with a failure reason code
        self.session_lost = 0  # reconnects where the broker had forgotten the session
        self.reconnects = 0
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
        self._connecting: threading.Thread | None = None
        self._connect_error: str | None = None
        # A connection is open and CONNECT sent, with no CONNACK yet. A broker that refuses
        # the client certificate under TLS 1.3 does so after the client's side of the
        # handshake completed (the alert arrives on the first read), and a broker may close
        # before its CONNACK: either way the attempt failed and must wait its backoff.
        # Without this, a close first seen by `drain` (the daemon reads before it steps)
        # went unnoticed and the next `step` reconnected at once: measured at ~27 TLS
        # attempts a second against a broker refusing the certificate, 1,631 in 60 s.
        self._attempting = False
        #: why the link is down, from its last failed attempt or drop; None while it is up or
        #: has not tried yet
        self.down: str | None = None
        # publishes per second the broker takes (limits.max_publish_rate): a token bucket
        # holding at most one second's worth
        self._rate = broker.limits.max_publish_rate
        self._tokens = self._rate or 0.0
        self._tokens_at = time.monotonic()
        self.rate_limited = 0  # QoS 0 outputs over the rate, dropped (QoS 1/2 wait in the outbox)

        # The password and TLS files are read for each connection attempt (see _connect).
        self._credentials_error: CredentialsError | None = None
        #: the digest of the credential files the current (or last) connection was made with
        self._credentials_digest: str | None = None
        self._recheck_credentials = False  # asked while an attempt was under way
        self.client = client = make_client(
            Client,
            broker,
            client_id,
            credentials=False,
            # MQTT 3.1.1 keeps the session with clean_session false; MQTT 5 decides per connect
            # (clean_start) and by the Session Expiry Interval, see _try_connect.
            clean_session=None if self.v5 else not self.persistent,
            manual_ack=True,
        )
        # The outgoing window is the broker's to set (its Receive Maximum, see _connected);
        # until it says, and when it sets none, only max_queued_publishes bounds it. paho walks
        # its whole window on every acknowledgement, so a window is never set larger than needed.
        client.max_inflight_messages_set(0)
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
        client.on_acked = self._acked
        client.source = index

    # -- lifecycle -----------------------------------------------------------------------

    def step(self, timeout: float) -> None:
        """Run the network for at most `timeout` seconds; (re)connect when it is time to."""
        if self._connecting is not None:
            self._connecting.join(timeout)
            if self._connecting.is_alive():
                return
            self._connect_finished()
            return
        if self._recheck_credentials and not self._attempting:
            self.refresh_credentials()
        if not self.connected and self.client.socket() is None:
            now = time.monotonic()
            if now < self._retry_at:
                time.sleep(max(0.0, min(timeout, self._retry_at - now)))
                return
            self._try_connect()
            return
        rc = self.client.loop(timeout)
        # A drop reaches `_disconnected`, before CONNACK as after it; this catches an error of
        # paho's loop that closed nothing, once per attempt.
        if rc != paho.MQTT_ERR_SUCCESS and self._attempting:
            self._lost(f"network loop before CONNACK: {paho.error_string(rc)}")

    def service(self) -> None:
        """Write what is queued and keep the connection alive, without reading anything."""
        if self._connecting is not None or self.client.socket() is None:
            self.step(0)
            return
        if self.client.want_write():
            self.client.loop_write()
        self.client.loop_misc()

    @property
    def backlogged(self) -> bool:
        """paho's queue of unacknowledged QoS 1/2 publishes is full; reading acks will help."""
        return self.client.unacked_publishes() >= self._max_queued

    def socket(self) -> socket.socket | None:
        """The connection's socket while one is open and ours to use (not mid-connect)."""
        if self._connecting is not None:
            return None
        sock = self.client.socket()
        return sock if isinstance(sock, socket.socket) else None

    def wants_write(self) -> bool:
        return self._connecting is None and self.client.want_write()

    def readable_now(self) -> bool:
        """Data already read and buffered (by us, or decrypted by TLS), which select cannot
        see."""
        if self._connecting is not None:
            return False
        if self.client.buffered():
            return True
        pending = getattr(self.client.socket(), "pending", None)
        return bool(pending and pending())

    def next_event(self, now: float) -> float:
        """Seconds until this link needs the loop without any packet arriving: a reconnect
        attempt, a connect under way, or outputs waiting to be written to the outbox."""
        wait = 60.0
        if self._connecting is not None:
            wait = 0.02
        elif not self.connected and self.client.socket() is None:
            wait = max(0.0, self._retry_at - now)
        if self._spill:
            delay = _SPILL_DELAY_AWAITED if self._spill_awaited else _SPILL_DELAY
            at = max(self._spill_since + delay, self._store_at)
            wait = min(wait, max(0.0, at - now))
        return wait

    def drain(self, limit: int) -> int:
        """Read up to `limit` packets that have already arrived, without waiting for more."""
        if self._connecting is not None:
            return 0
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
        filtered messages costs one write call, not one per output. Mid-connect the client is
        the connect thread's (and nothing is published on it): it is left alone."""
        if self._connecting is not None:
            yield
            return
        with self.client.deferred_writes():
            yield

    def ack(self, mid: int, qos: int) -> None:
        if self._connecting is None:
            self.client.ack(mid, qos)

    def close(self, timeout: float = 2.0) -> None:
        """Say offline (the will only covers crashes), flush what is queued, and disconnect.

        Disconnecting normally keeps a persistent session: the broker queues for the next start.
        """
        if self._connecting is not None:
            self._connecting.join(timeout)
            if not self._connecting.is_alive():
                self._connect_finished()
        if self.connected:
            info = self.client.publish(
                self._status_topic, self._status_payload("offline"), qos=1, retain=True
            )
            deadline = time.monotonic() + timeout
            while not info.is_published() and self.connected and time.monotonic() < deadline:
                self.client.loop(0.05)
            if self.connected:
                self._take_unacked(dropped=False)  # what the broker has not acknowledged yet
            self.connected = False  # what follows is our own goodbye, not a lost broker
            self.client.disconnect()
            self.client.loop(0.05)
        self.connected = False
        self.flush_outbox(now=True)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        awaited: bool = False,
        properties: bytes = b"",
    ) -> int | None:
        """Send one publish. Returns the id an input made it waits for (`awaited`): the
        message id plus `key_base` while the broker's acknowledgement is awaited (QoS 1/2),
        a negative stand-in while it waits for the outbox's commit; 0 when nothing is to be
        awaited (QoS 0 written, or kept for the outbox with no input waiting); None when it
        was refused (QoS 0 and not connected or over the rate, or paho's queue full).
        `properties` (MQTT 5, as `Properties.wire` writes them) go with it under MQTT 5 and
        are left out under 3.1.1, which has none."""
        # A token of the rate is taken only for a publish that goes out now: one kept for the
        # outbox takes its token when it is replayed.
        if self.max_packet is not None or self._poison.known:
            refused = self.refusal(topic, payload, qos, properties)
            if refused is not None:
                raise refused
        if qos == 0:
            if not self.connected:  # mid-connect the connect thread owns the client
                return None
            if self._rate is not None and not self._take_token():
                self.rate_limited += 1
                return None
            sent = self.client.publish_qos0(topic.encode(), payload, retain, properties)
            return 0 if sent else None
        outbox = self.outbox
        if outbox is not None and (not self.connected or outbox.entries or self._spill):
            # Away, or a replay under way (this output goes behind the older ones, in order).
            return self._keep(topic, payload, qos, retain, awaited, properties)
        if self._rate is not None and not self._take_token():
            return self._keep(topic, payload, qos, retain, awaited, properties)  # at the rate
        if qos == 1:
            mid = self.client.publish_qos1(topic.encode(), payload, retain, properties)
            return None if mid is None else mid + self.key_base
        info = self.client.publish(
            topic, payload, qos, retain, properties=self._paho_properties(properties)
        )
        return info.mid + self.key_base if info.rc == paho.MQTT_ERR_SUCCESS else None

    def _paho_properties(self, properties: bytes) -> Any:
        """paho's own form of encoded properties, for the publishes paho writes itself (QoS 2
        and replays); None under 3.1.1 or when there are none."""
        return paho_properties(properties) if properties and self.v5 else None

    def _keep(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        awaited: bool,
        properties: bytes = b"",
    ) -> int | None:
        """Keep an output for the outbox; the input it came from waits for the commit (a
        stand-in id, negative)."""
        if self.outbox is None:
            return None
        token = next_token() if awaited else 0
        self.keep_for_outbox(topic, payload, qos, retain, token, properties)
        return token

    def _refill(self) -> float:
        """The publishes the rate allows now (at most one second's worth)."""
        rate = self._rate or 0.0
        now = time.monotonic()
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        return self._tokens

    def _take_token(self) -> bool:
        """One publish within the broker's rate; False when this one would exceed it."""
        if self._refill() < 1.0:
            return False
        self._tokens -= 1.0
        return True

    # -- the outbox ------------------------------------------------------------------------

    def refusal(
        self, topic: str, payload: bytes, qos: int, properties: bytes = b""
    ) -> OutputRefused | None:
        """Why the broker would never take this publish (counted), or None."""
        limit = self.max_packet
        poison = self._poison
        # A packet is at most 10 bytes besides its topic (<= 4 bytes a character), payload and
        # properties.
        if not poison.known and (
            limit is None or len(payload) + len(properties) + 4 * len(topic) + 10 <= limit
        ):
            return None
        size = packet_size(
            len(topic.encode()), len(payload), qos, self.v5, len(properties) if self.v5 else 0
        )
        if limit is not None and size > limit:
            self.over_packet_size += 1
            return OutputRefused(
                self.name,
                "broker_limit",
                f"a packet of {size} bytes is over the Maximum Packet Size of broker "
                f"{self.name!r} ({limit} bytes, from its CONNACK)",
            )
        if poison.is_poison(topic, payload):
            self.poison_outputs += 1
            return OutputRefused(
                self.name,
                "poison_output",
                f"broker {self.name!r} closed the connection each time this publish (a packet "
                f"of {size} bytes) was the one in flight, {STRIKES} times",
            )
        return None

    def keep_for_outbox(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        token: int = 0,
        properties: bytes = b"",
    ) -> bool:
        """Store this publish in the outbox with the next `flush_outbox()`, which releases
        `token` once it is committed. False when the broker would never take it: it is handed
        to `on_refused` instead, and `token` is the caller's to release."""
        if self.max_packet is not None or self._poison.known:
            refused = self.refusal(topic, payload, qos, properties)
            if refused is not None:
                if self._on_refused is not None:
                    self._on_refused(refused, topic, payload, qos)
                return False
        if not self._spill:
            self._spill_since = time.monotonic()
        self._spill.append(_Kept(topic, payload, qos, retain, token, properties))
        if token:
            self._spill_awaited += 1
        return True

    def flush_outbox(self, *, now: bool = False) -> int:
        """Write what was kept for the outbox (in one transaction) once there is enough of it or
        it has waited long enough, or at once with `now`; delete what the broker acknowledged
        after a replay. Returns the entries stored.

        Each commit costs whole pages, twice (the WAL, then the checkpoint): measured on 64-byte
        payloads, 1,142 bytes written per entry in commits of 20, 312 in commits of 250. A
        kill -9 can cost what waits here, at most `_SPILL_DELAY`'s worth."""
        outbox = self.outbox
        if outbox is None:
            return 0
        stored = 0
        spill = self._spill
        clock = time.monotonic()
        if (
            spill
            and clock >= self._store_at
            and (
                now
                or len(spill) >= _SPILL_BATCH
                or clock - self._spill_since
                >= (_SPILL_DELAY_AWAITED if self._spill_awaited else _SPILL_DELAY)
            )
        ):
            stored = outbox.put(
                [(k.topic, k.payload, k.qos, k.retain, k.properties) for k in spill],
                sent_through=self._replay_cursor if self._replaying else 0,
            )
            if outbox.problem is None:
                self._spill = []
                self._spill_awaited = 0
                self._store_delay = _STORE_RETRY_MIN
                if self._on_acked is not None:
                    # Stored, or refused and counted by the outbox's bounds: either way nothing
                    # more will come of them, and their inputs are released.
                    for kept in spill:
                        if kept.token:
                            self._on_acked(kept.token)
            else:
                self._store_failed(clock)
        if self._replayed and clock >= self._store_at:
            done, self._replayed = self._replayed, []
            if outbox.delete(done):
                self._undeleted.difference_update(done)
            else:
                # Still in the file, and sent: kept out of every replay until the deletion goes
                # through, so a full disk never sends an entry twice.
                self._replayed = done
                self._undeleted.update(done)
                self._store_failed(clock)
        return stored

    def _store_failed(self, clock: float) -> None:
        """The outbox's disk refused a write. An output an input waits for stays here, and its
        input unacknowledged: its broker keeps the input, and the daemon reads more slowly
        (`holding`). What no input stands behind (a tick's output, a QoS 0 input's) is lost,
        counted as `unstored`."""
        outbox = self.outbox
        assert outbox is not None
        held = [kept for kept in self._spill if kept.token]
        lost = len(self._spill) - len(held)
        if lost:
            outbox.counters.unstored += lost
            log.error(
                "outputs_unstored",
                broker=self.name,
                entries=lost,
                reason=outbox.problem,
                held_for_their_inputs=len(held),
            )
        self._spill = held
        self._spill_awaited = len(held)
        self._store_at = clock + self._store_delay
        self._store_delay = min(self._store_delay * 2, _STORE_RETRY_MAX)

    @property
    def write_failing(self) -> str | None:
        """Why the outbox cannot be written (full disk, read-only, I/O error), while it cannot."""
        return None if self.outbox is None else self.outbox.problem

    @property
    def holding(self) -> bool:
        """So many outputs wait in memory for an outbox that cannot be written that reading
        more inputs must slow down."""
        return len(self._spill) >= HOLD_MAX and self.write_failing is not None

    def replay(self, batch: int = 200) -> int:
        """Send up to `batch` more outbox entries, oldest first, while connected and the
        outgoing window has room (so live outputs keep flowing); how many were sent."""
        outbox = self.outbox
        if outbox is None or not outbox.entries or not self.ready:
            return 0
        room = self._max_queued // 2 - self.client.unacked_publishes()
        if self._rate is not None:
            room = min(room, int(self._refill()))
        if room <= 0:
            return 0
        if outbox.entries <= len(self._undeleted):
            return 0  # only what was delivered and could not be deleted yet
        sent = 0
        for entry in outbox.oldest(min(batch, room), after=self._replay_cursor):
            if entry.seq in self._undeleted:
                self._replay_cursor = entry.seq
                continue
            if self.max_packet is not None or self._poison.known:
                refused = self.refusal(entry.topic, entry.payload, entry.qos, entry.properties)
                if refused is not None:
                    self._replay_cursor = entry.seq
                    self._replayed.append(entry.seq)  # out of the outbox: dead-lettered
                    if self._on_refused is not None:
                        self._on_refused(refused, entry.topic, entry.payload, entry.qos)
                    continue
            if self._rate is not None and not self._take_token():
                break
            info = self.client.publish(
                entry.topic,
                entry.payload,
                entry.qos,
                entry.retain,
                properties=self._paho_properties(entry.properties),
            )
            if info.rc != paho.MQTT_ERR_SUCCESS:
                break
            self._replaying[info.mid] = entry.seq
            self._replay_cursor = entry.seq
            sent += 1
        return sent

    @property
    def replay_pending(self) -> bool:
        return self.outbox is not None and self.outbox.entries > len(self._undeleted)

    def _acked(self, mid: int, refused: bool) -> None:
        if refused:
            self.refused_by_broker += 1
        poison = self._poison
        if poison.careful:
            poison.acked()
            if not poison.careful:
                self.client.set_send_window(self._window)  # the suspects went through
        seq = self._replaying.pop(mid, None)
        if seq is not None:
            self._replayed.append(seq)
        elif self._on_acked is not None:
            self._on_acked(mid + self.key_base)

    def _take_unacked(self, dropped: bool = True) -> None:
        """The connection went: hand every unacknowledged output to the daemon (which keeps in
        the outbox what no redelivery would make again) and forget the replays under way: their
        entries are still in the outbox and go again after the reconnect. When the broker
        `dropped` it, what was in flight may be poison (`edged.mqtt.poison`)."""
        unacked = self.client.take_unacked()
        if dropped:
            found = self._poison.dropped([(u.topic, u.payload) for u in unacked if u.sent])
            if found is not None:
                log.warning(
                    "poison_output_found",
                    broker=self.name,
                    strikes=STRIKES,
                    hint="the broker disconnects whenever it is sent: it will be dead-lettered",
                )
        replaying, self._replaying = self._replaying, {}
        self._replay_cursor = 0
        base = self.key_base
        mine = [  # the status is said anew on connect; replays are in the outbox already
            replace(u, mid=u.mid + base)
            for u in unacked
            if u.topic != self._status_topic and u.mid not in replaying
        ]
        if self._on_lost is not None:
            self._on_lost(mine)

    def replace_subscriptions(self, subscriptions: Sequence[TopicSubscription]) -> None:
        """Switch to a new set of subscriptions without a gap.

        Subscribing to a filter again replaces the old subscription in place (MQTT 3.1.1 §3.8.4,
        MQTT 5 §3.8.4), so the new set is subscribed first and only the dropped filters are
        unsubscribed afterwards.
        """
        before = self._subscriptions
        old = {s.topic for s in before}
        self._subscriptions = tuple(subscriptions)
        if not self.connected:
            return  # the next connect subscribes the new set
        if self.v5:
            # Every filter has a new identifier after a reload, so each is subscribed again;
            # with a persistent session that resends no retained message (retain handling 1).
            self._subscribe_all(announce=False)
        else:
            # No identifiers: a filter with the same QoS stays as it is, and subscribing it
            # again would only have the broker resend its retained messages.
            kept = {(s.topic, s.qos) for s in before}
            self._subscribe_all(
                announce=False, only=[s for s in subscriptions if (s.topic, s.qos) not in kept]
            )
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
                self._status_topic, self._status_payload(self._health), qos=1, retain=True
            )

    def set_health(self, state: str, reason: str | None = None, **fields: object) -> None:
        """`online`, or `degraded` with the reason (said in the retained status), with any
        other status `fields`."""
        if (state, reason) == (self._health, self._status.get("reason")) and all(
            self._status.get(k) == v for k, v in fields.items()
        ):
            return
        self._health = state
        if reason is None:
            self._status.pop("reason", None)
        else:
            self._status["reason"] = reason
        self.publish_status(**fields)

    # -- paho callbacks and reconnection -------------------------------------------------

    def _try_connect(self) -> None:
        """Start a connection attempt on its own thread; `step` takes up its outcome."""
        self._connect_error = None
        self._connecting = threading.Thread(
            target=self._connect, name=f"edged-connect-{self.name}", daemon=True
        )
        self._connecting.start()

    def _connect_finished(self) -> None:
        self._connecting = None
        error = self._credentials_error
        if error is not None:
            self._credentials_error = None
            self._log_credentials_error(error)
        if self._connect_error is not None:
            self._lost(self._connect_error)
        else:
            self._attempting = True  # until CONNACK, or the connection's end

    def _connect(self) -> None:
        """Open the connection and send CONNECT (paho blocks for all of it). Runs on the
        connect thread while the loop leaves this link's client alone."""
        b = self._broker
        # Read for every attempt, so a certificate or password renewed in its files is used
        # from the next reconnect on, without a restart or a reload.
        try:
            credentials = load_credentials(b)
        except CredentialsError as exc:
            self._credentials_error = exc
            self._connect_error = f"credentials: {exc}"
            return
        apply_credentials(self.client, b, credentials)
        self._credentials_digest = credentials.digest
        self.client.read_error = None
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self.persistent:
                properties.SessionExpiryInterval = b.session_expiry
            # How many QoS 1/2 messages the broker may send before edged acknowledges one:
            # acknowledgements wait for outputs, so a small window would idle the broker.
            properties.ReceiveMaximum = b.inflight
        try:
            rc = self.client.connect(
                b.host,
                b.port,
                keepalive=b.keepalive,
                clean_start=not self.persistent if self.v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )
        except (OSError, ssl.SSLError, socket.gaierror, ValueError) as exc:
            self._connect_error = f"cannot connect to {b.host}:{b.port}: {exc}"
            return
        sock = self.client.socket()
        if sock is None:
            # Writing CONNECT failed and paho closed the connection, returning rather than
            # raising: a broker that refused the certificate can have closed it already
            # (measured: 2 of ~10 attempts against a revoking mosquitto).
            why = self.client.read_error or paho.error_string(rc)
            self._connect_error = f"connection closed before CONNACK: {why}"
            return
        # Nagle's algorithm held edged's small PUBACKs and publishes back behind the broker's
        # delayed ACKs: with HiveMQ CE (which, unlike mosquitto, sets no TCP_NODELAY of its
        # own) a QoS 1 flood ran at 733 msgs/s, edged idle ~140 ms between windows; with it
        # set here a 10,000-message flood took 2.2 s instead of ~14 s.
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _lost(self, why: str, *, at_once: bool = False) -> None:
        was_connected = self.connected
        self.connected = False
        self.ready = False
        self._attempting = False
        self.down = why
        if was_connected:
            self._take_unacked(dropped=not at_once)
        if at_once:  # our own choice (new credentials), not a failure: no backoff
            self._retry_at = time.monotonic()
            return
        jitter = random.uniform(0.8, 1.2)
        wait = min(self._delay, self._broker.reconnect_max_delay) * jitter
        self._retry_at = time.monotonic() + wait
        log.warning("broker_unreachable", broker=self.name, reason=why, retry_in_s=round(wait, 1))
        self._delay = min(self._delay * 2, self._broker.reconnect_max_delay)

    def refresh_credentials(self) -> bool:
        """On a reload: reconnect when the password or TLS files changed since the current
        connection was made (a renewed certificate, a new password); True when it does.

        New files that do not load (a key that does not match its certificate, a bad PEM, an
        unreadable file) are logged as `broker_credentials_invalid` and the connection is kept;
        a link that is down tries the new files at once rather than after its backoff. The
        reconnect is the same as after any drop: unacknowledged outputs go to the daemon
        (`on_lost`), and with a persistent session the broker sends unacknowledged inputs again.
        """
        if self._connecting is not None or self._attempting:
            self._recheck_credentials = True  # once this attempt has its outcome
            return False
        self._recheck_credentials = False
        if files_digest(self._broker) == self._credentials_digest:
            return False
        try:
            load_credentials(self._broker)
        except CredentialsError as exc:
            keeping = "the current connection" if self.connected else "trying with backoff"
            self._log_credentials_error(exc, keeping=keeping)
            return False
        was_connected = self.connected
        log.info(
            "broker_credentials_changed",
            broker=self.name,
            action="reconnecting" if was_connected else "trying them now",
        )
        self._delay = self._broker.reconnect_min_delay
        if was_connected:
            self._lost("reconnecting with changed credentials", at_once=True)
            self.client.disconnect()  # a normal disconnect: the session stays, no will
        else:
            self._retry_at = time.monotonic()
        return True

    def _log_credentials_error(self, exc: CredentialsError, **fields: object) -> None:
        log.error(
            "broker_credentials_invalid",
            broker=self.name,
            key=exc.key,
            file=str(exc.path),
            reason=exc.reason,
            **fields,
        )

    def _connected(
        self,
        client: paho.Client,
        _userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._attempting = False
        if reason.is_failure:
            log.error(
                "broker_refused", broker=self.name, reason=str(reason), host=self._broker.host
            )
            client.disconnect()
            self._lost(f"broker refused the connection: {reason}")
            return
        self.connected = True
        self.down = None
        self.connects += 1
        self._delay = self._broker.reconnect_min_delay
        window = getattr(props, "ReceiveMaximum", 0) if self.v5 else 0
        self._window = window if 0 < window < self._max_queued else 0
        # After a disconnect with publishes in flight, one at a time until as many went through
        # (edged.mqtt.poison).
        self.client.set_send_window(1 if self._poison.careful else self._window)
        if self.v5:
            announced = getattr(props, "MaximumPacketSize", None)
            if announced != self.max_packet:
                log.info("broker_max_packet_size", broker=self.name, bytes=announced)
            self.max_packet = None if announced is None else int(announced)
        session = bool(flags.session_present)
        log.info(
            "broker_connected",
            broker=self.name,
            host=self._broker.host,
            port=self._broker.port,
            reconnect=self._ever_connected,
            session_present=session,
        )
        if self._ever_connected:
            self.reconnects += 1
            if self.persistent and not session:
                # The broker restarted without persistence, or the session expired: what it
                # had queued for edged, and the inputs edged had not acknowledged, are gone.
                self.session_lost += 1
                log.warning(
                    "broker_session_lost",
                    broker=self.name,
                    host=self._broker.host,
                    hint="mosquitto keeps sessions across its restart only with persistence true",
                )
        self._ever_connected = True
        self._subscribe_all()

    def _subscribe_all(
        self, announce: bool = True, only: Sequence[TopicSubscription] | None = None
    ) -> None:
        self._pending_subacks.clear()
        if not self._subscriptions and announce:
            self._become_ready()
        for sub in self._subscriptions if only is None else only:
            if self.v5:
                props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                props.SubscriptionIdentifier = sub.ident
                # noLocal: our own outputs never come back to us, so a pipeline whose output
                # matches its own subscription cannot feed itself forever. With a persistent
                # session, retained messages come only with a new subscription, not again
                # with every reconnect and restart.
                # A shared subscription must not set it (MQTT 5 §3.8.3.1: a protocol error).
                opts = SubscribeOptions(
                    qos=sub.qos,
                    noLocal=not sub.shared,
                    retainHandling=(
                        SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                        if self.persistent
                        else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
                    ),
                )
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
                log.error("subscribe_refused", broker=self.name, reason=str(code))
        self._pending_subacks.discard(mid)
        if not self._pending_subacks and not self.ready:
            self._become_ready()

    def _become_ready(self) -> None:
        self.ready = True
        self.client.publish(
            self._status_topic, self._status_payload(self._health), qos=1, retain=True
        )
        if self._on_ready is not None:
            self._on_ready()

    def _disconnected(
        self, _c: paho.Client, _u: object, _flags: object, reason: ReasonCode, _p: object
    ) -> None:
        if self.connected:
            self._lost(f"disconnected: {reason}")
        elif self._attempting:
            self._lost(f"connection closed before CONNACK: {self.client.read_error or reason}")

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"state": state, **self._status}, separators=(",", ":")).encode()

    def snapshot(self) -> dict[str, object]:
        """The link's figures, for the metrics topic and `edged stats`."""
        return {
            "connected": self.connected,
            "down": self.down,
            "reconnects": self.reconnects,
            "session_lost": self.session_lost,
            "unacked_outputs": self.client.unacked_publishes(),
            "refused_by_broker": self.refused_by_broker,
            "rate_limited": self.rate_limited,
            "max_packet_size": self.max_packet,
            "over_packet_size": self.over_packet_size,
            "poison_outputs": self.poison_outputs,
            "outbox_write_failing": self.write_failing,
            "outbox": None if self.outbox is None else self.outbox.snapshot(),
        }

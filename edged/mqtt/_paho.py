"""The one file that touches paho's private names: a faster paho client for the daemon.

Everything else in edged sees paho only through `edged.mqtt.link` (the daemon's connection),
`edged.mqtt.connect` and `edged.mqtt.session` (public paho API), and receives edged's own
`Message` (`edged.mqtt.message`). paho's major version is pinned (pyproject.toml) and every
private name used here is marked `# paho private:` with what it is for; the tests run the daemon
through a real broker and compare this client's decoding and encoding with paho's own.

Reading: paho reads each packet with three or more `recv` calls (the command byte, each byte of
the length, then the body), and the daemon asked `select` before every packet. Here one `recv`
takes up to 64 KiB and paho's reads are served from that buffer.

For every incoming PUBLISH under MQTT 5, paho builds a full `Properties` object (its constructor
fills two dicts of some thirty entries each) and decodes each property with a search by name;
every message also gets an `MQTTMessageInfo` with its own `threading.Condition`, and is matched
against the trie of per-topic callbacks. Profiled under a flood of 64-byte messages, that was about
a third of the daemon's CPU. Here a PUBLISH at QoS 0 or 1 is decoded straight into a `Message` by
edged's own codec (`edged.mqtt.publish`, properties included); QoS 2 and a topic alias take
paho's own path and are then converted.
"""

from __future__ import annotations

import contextlib
import select
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import MessageState, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.mqtt import publish as codec
from edged.mqtt.message import Message, Unacked
from edged.mqtt.properties import PropertiesError, read_varint
from edged.mqtt.properties import decode as decode_properties

#: re-exported for the benchmarks' packet builders
remaining_length = codec.remaining_length

_READ_SIZE = 65536
_SUCCESS = paho.MQTT_ERR_SUCCESS
_PUBLISH = 0x30
_PUBACK = 0x40
_PUBCOMP = 0x70
#: what the daemon gets for each received PUBLISH
Receiver = Callable[[Message], None]
#: told of each outgoing QoS 1/2 publish the broker acknowledged: `(mid, refused)`, where
#: `refused` is an MQTT 5 reason code of failure (the broker took the packet but not the message)
Acked = Callable[[int, bool], None]


class _SentInfo(MQTTMessageInfo):
    """Stands in for the `MQTTMessageInfo` paho builds per QoS 0 publish: nobody waits on it."""

    def _set_as_published(self) -> None:
        pass


_SENT_INFO = _SentInfo(0)
_QUEUED = MessageState.MQTT_MS_QUEUED
_WAIT_FOR_PUBACK = MessageState.MQTT_MS_WAIT_FOR_PUBACK
_WAIT_FOR_PUBREC = MessageState.MQTT_MS_WAIT_FOR_PUBREC


class _Outgoing:
    """One QoS 1 publish of ours in paho's table of unacknowledged publishes: the fields paho
    reads of an `MQTTMessage` there (to send it later, to resend it after a reconnect, to
    finish it on its PUBACK), without the `MQTTMessageInfo` and `threading.Condition` paho
    builds for every publish."""

    __slots__ = (
        "dup",
        "mid",
        "payload",
        "properties",
        "retain",
        "state",
        "timestamp",
        "topic_bytes",
    )
    qos = 1
    info = _SENT_INFO

    def __init__(
        self,
        mid: int,
        topic: bytes,
        payload: bytes,
        retain: bool,
        state: MessageState,
        properties: bytes = b"",
    ) -> None:
        self.mid = mid
        self.properties = _WireProperties(properties) if properties else None
        self.topic_bytes = topic
        self.payload = payload
        self.retain = retain
        self.state = state
        self.dup = False
        self.timestamp = 0.0

    @property
    def topic(self) -> str:
        return self.topic_bytes.decode()


def from_paho(message: MQTTMessage, source: int = 0) -> Message:
    """edged's Message for one that paho decoded itself (QoS 2, a topic alias)."""
    props = None
    idents: tuple[int, ...] | list[int] | None = None
    if message.properties is not None:
        # paho's own form of them, packed back to bytes and read as every other PUBLISH's
        packed = _packed(message.properties)
        try:
            props, idents = decode_properties(packed, 0, len(packed))
        except PropertiesError:  # a topic alias: not carried (it names only that connection)
            props, idents = None, getattr(message.properties, "SubscriptionIdentifier", None)
    return Message(
        message._topic,  # paho private: the topic's raw bytes; `.topic` decodes them
        bytes(message.payload),
        message.qos,
        message.mid,
        bool(message.retain),
        bool(message.dup),
        tuple(idents) if idents else (),
        source,
        props,
    )


def paho_properties(wire: bytes) -> Properties:
    """paho's `Properties` of a PUBLISH for properties as `Properties.wire` writes them."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.unpack(codec.remaining_length(len(wire)) + wire)  # type: ignore[no-untyped-call]
    return props


class _WireProperties:
    """Properties already encoded (`Properties.wire`), in the shape paho packs them from when
    it writes a publish of ours again (after a reconnect)."""

    __slots__ = ("wire",)

    def __init__(self, wire: bytes) -> None:
        self.wire = wire

    def pack(self) -> bytes:
        return codec.remaining_length(len(self.wire)) + self.wire


class Client(paho.Client):
    """paho's client, reading in bulk and handing each PUBLISH to `on_received` as a Message.

    Set `on_received` instead of paho's `on_message`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._v5 = self._protocol == paho.MQTTv5  # paho private: the protocol chosen
        self._topic_callbacks = False
        self._rbuf = b""
        self._rpos = 0
        self.on_received: Receiver | None = None
        self.on_acked: Acked | None = None
        self.source = 0  # what the Messages it builds say in `source`
        # message ids of QoS 1/2 publishes held back by the send window, oldest first
        self._held_back: deque[int] = deque()
        self.on_message = self._converted
        #: why the last read or write failed (a TLS alert such as "sslv3 alert certificate
        #: revoked", or a reset), which paho only logs; the link clears it for each connection
        self.read_error: str | None = None

    def _converted(self, _client: paho.Client, _userdata: object, message: MQTTMessage) -> None:
        if self.on_received is not None:
            self.on_received(from_paho(message, self.source))

    # -- what the link asks of paho beyond its public API ---------------------------------

    def unacked_publishes(self) -> int:
        """Outgoing QoS 1/2 publishes the broker has not acknowledged yet."""
        return len(self._out_messages)  # paho private: its table of those publishes

    def set_send_window(self, size: int) -> None:
        """At most `size` outgoing QoS 1/2 publishes unacknowledged at once (0: no limit), as the
        broker asked in its CONNACK (MQTT 5 Receive Maximum; mosquitto announces its
        max_inflight_messages, 20 by default). paho's setter refuses once connected, and paho
        does not read the broker's Receive Maximum at all; it must be set here, in on_connect,
        before paho sends again what it holds."""
        self._max_inflight_messages = size  # paho private: its outgoing window

    def take_unacked(self) -> list[Unacked]:
        """Take every outgoing QoS 1/2 publish not yet acknowledged out of paho, in the order
        they were published, so that paho does not send them again after a reconnect: the
        caller decides what becomes of each (the outbox, or nothing when the input it came from
        will be delivered again)."""
        with self._out_message_mutex:  # paho private: guards the table below
            taken = list(self._out_messages.values())  # paho private: unacknowledged publishes
            self._out_messages.clear()
            self._inflight_messages = 0  # paho private: its count of those in flight
            self._held_back.clear()
        # paho private: its write queue may still hold some of them
        self._out_packet = deque(
            packet
            for packet in self._out_packet
            if not ((packet["command"] & 0xF0) == _PUBLISH and packet["qos"])
        )
        return [
            Unacked(
                m.mid,
                m.topic,
                bytes(m.payload),
                m.qos,
                bool(m.retain),
                m.state != _QUEUED,
                _wire_of(m.properties),
            )
            for m in taken
            if m.qos
        ]

    def _do_on_publish(self, mid: int, reason_code: Any, properties: Any) -> MQTTErrorCode:
        # paho private: called for each PUBACK (QoS 1) or PUBCOMP (QoS 2) of our publishes, with
        # its lock of the table held. paho's own pops the publish and then walks its whole
        # table looking for held-back ones to send: with a window of 100 that walk was most of
        # the cost of an acknowledgement. Here the held-back ones wait in their own queue.
        # (paho's public on_publish, which also fires per QoS 0 write, is not used.)
        msg = self._out_messages.pop(mid)  # paho private: unacknowledged publishes
        msg.info._set_as_published()  # wakes a caller of wait_for_publish (our status)
        on_acked = self.on_acked
        if on_acked is not None:
            on_acked(mid, bool(getattr(reason_code, "is_failure", False)))
        if msg.qos:
            self._inflight_messages -= 1  # paho private: its count of those in flight
            if self._held_back:
                return self._send_held_back()
        return _SUCCESS

    def _send_held_back(self) -> MQTTErrorCode:
        """Send what the window now has room for, oldest first."""
        out = self._out_messages  # paho private: unacknowledged publishes
        window = self._max_inflight_messages  # paho private: its outgoing window
        held = self._held_back
        while held and (window == 0 or self._inflight_messages < window):
            m = out.get(held.popleft())
            if m is None or m.state != _QUEUED:
                continue  # acknowledged or taken meanwhile
            self._inflight_messages += 1
            if isinstance(m, _Outgoing):
                m.state = _WAIT_FOR_PUBACK
                wire = _wire_of(m.properties)
                self._queue_publish(m.mid, m.topic_bytes, m.payload, 1, m.retain, wire)
                continue
            m.state = _WAIT_FOR_PUBACK if m.qos == 1 else _WAIT_FOR_PUBREC
            rc: MQTTErrorCode = self._send_publish(  # paho private: its encoder
                m.mid, m.topic.encode(), m.payload, m.qos, m.retain, m.dup, m.info, m.properties
            )
            if rc != _SUCCESS:
                return rc
        return _SUCCESS

    def publish(self, *args: Any, **kwargs: Any) -> MQTTMessageInfo:
        """paho's publish (the status, replays, QoS 2); one the window holds back is queued
        with ours, so that the acknowledgements that make room send it."""
        info: MQTTMessageInfo = super().publish(*args, **kwargs)
        held = self._out_messages.get(info.mid)  # paho private: unacknowledged publishes
        if held is not None and held.state == _QUEUED:
            self._held_back.append(info.mid)
        return info

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        """Queue the PUBACK (QoS 1) or PUBCOMP (QoS 2) of input `mid`, for the next write.

        paho writes each acknowledgement at once, one system call apiece; acknowledgements
        released by the broker's own acks (edged.mqtt.acks) come in bursts while reading, so here
        they wait for the loop's next write and go out together: measured under a QoS 1 flood,
        the per-ack writes were 7 % of the daemon's samples.
        """
        if self._sock is None or qos not in (1, 2):  # paho private: the connection's socket
            return paho.MQTT_ERR_NO_CONN if self._sock is None else _SUCCESS
        command = _PUBACK if qos == 1 else _PUBCOMP
        self._out_packet.append(  # paho private: its queue of packets to write, in order
            {
                "command": command,
                "mid": mid,
                "qos": 0,
                "pos": 0,
                "to_process": 4,
                "packet": bytes((command, 2, mid >> 8, mid & 0xFF)),
                "info": None,
            }
        )
        return _SUCCESS

    @contextlib.contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """Publishes inside the block are queued and written together afterwards.

        paho writes a publish at once unless it is made from inside one of its callbacks, which
        it tells by this lock; holding it makes a batch of publishes cost one write call.
        """
        with self._in_callback_mutex:  # paho private: the lock its callbacks run under
            yield
        if self.socket() is not None:
            self.loop_write()

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Connect with this TLS context from the next connect on, in place of any earlier one:
        the files it was made from are read again for every attempt (edged.mqtt.credentials),
        and paho's `tls_set_context` refuses to be called a second time."""
        self._ssl = True  # paho private: wrap the socket in TLS when connecting
        self._ssl_context = context  # paho private: the context it wraps it with
        # paho private: paho checks the host name itself only when the context does not
        self._tls_insecure = not context.check_hostname

    # -- buffered reading ------------------------------------------------------------------

    def buffered(self) -> int:
        """Bytes already read from the socket that paho has not taken yet."""
        return len(self._rbuf) - self._rpos

    def _sock_recv(self, bufsize: int) -> bytes:
        # paho private: every read of paho's packet reader goes through this method
        pos = self._rpos
        buf = self._rbuf
        if pos >= len(buf):
            try:
                data: bytes = super()._sock_recv(_READ_SIZE)
            except BlockingIOError:
                raise  # nothing to read yet (paho's own turns TLS's want-read into this)
            except OSError as exc:
                self._note_error(exc)
                raise
            if len(data) <= bufsize:
                return data  # all of it wanted, or b"" for a closed connection
            self._rbuf = buf = data
            pos = 0
        end = min(pos + bufsize, len(buf))
        self._rpos = end
        return buf[pos:end]

    def _sock_send(self, buf: bytes | bytearray) -> int:
        # paho private: every write of paho's goes through this method
        try:
            sent: int = super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as exc:
            self._note_error(exc)
            if isinstance(exc, ssl.SSLError):
                self._read_alert()
            raise
        return sent

    def _read_alert(self) -> None:
        """After a failed TLS write, read what the broker sent before it closed: a broker that
        refused the client certificate sends its alert, then closes, and a CONNECT written after
        the close fails as "EOF occurred in violation of protocol" (measured: 2 to 6 of 8
        attempts against a mosquitto that revoked the certificate) while the alert that says
        why waits unread."""
        sock = self._sock  # paho private: the connection's socket
        try:
            if sock is not None and select.select([sock], [], [], 0)[0]:
                sock.recv(1)
        except ssl.SSLError as exc:
            if exc.reason and "ALERT" in exc.reason:
                self._note_error(exc)
        except (OSError, ValueError):
            pass

    def _note_error(self, exc: OSError) -> None:
        reason = exc.reason if isinstance(exc, ssl.SSLError) else None
        self.read_error = reason.lower().replace("_", " ") if reason else str(exc)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read at most one packet; the daemon's `drain` decides how many it takes.

        paho's own `loop_read` reads as many packets as there are unacknowledged messages, which
        under a QoS 1 load is thousands: more than the intake may have room for.
        """
        if self._sock is None:  # paho private: the connection's socket
            return paho.MQTT_ERR_NO_CONN
        rc = self._packet_read()  # paho private: reads (part of) one packet
        if rc > 0:
            return self._loop_rc_handle(rc)  # paho private: what its own loop_read does then
        return _SUCCESS

    def _sock_close(self) -> None:
        # paho private: called whenever paho closes the connection
        self._rbuf = b""  # what was read belongs to the connection being closed
        self._rpos = 0
        super()._sock_close()

    def loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        """paho's loop; packets already buffered are read first, since select cannot see them."""
        if self._rpos < len(self._rbuf):
            rc = self.loop_read()
            if rc != _SUCCESS:
                return rc
            timeout = 0.0
        return super().loop(timeout)

    # -- PUBLISH ---------------------------------------------------------------------------

    def publish_qos0(
        self, topic: bytes, payload: bytes, retain: bool = False, properties: bytes = b""
    ) -> bool:
        """Queue a QoS 0 PUBLISH with MQTT 5 `properties` (as `Properties.wire` writes them);
        False when not connected (nothing queued).

        The same packet paho's `publish` writes, without what it builds per message for the
        caller to wait on (an `MQTTMessageInfo` holding a `threading.Condition`) and without
        encoding the topic again. Like paho, it writes at once unless called from inside one
        of paho's callbacks (or a batch holding that lock), when the write waits for the loop.
        """
        if self._sock is None:  # paho private: the connection's socket
            return False
        if not topic or b"+" in topic or b"#" in topic:
            raise ValueError(f"cannot publish to {topic!r}")
        self._queue_publish(0, topic, payload, 0, retain, properties)
        return True

    def publish_qos1(
        self, topic: bytes, payload: bytes, retain: bool = False, properties: bytes = b""
    ) -> int | None:
        """Queue a QoS 1 PUBLISH with `properties`; its message id, or None when not
        connected or paho's queue of unacknowledged publishes is full (nothing queued).

        What paho's `publish` does for QoS 1, in paho's own table (so a reconnect, paho's
        acknowledgement handling and `take_unacked` treat it alike), without the per-message
        `MQTTMessage`, `MQTTMessageInfo` and `threading.Condition`. Sent at once while the
        broker's window has room, else held back until an acknowledgement makes room.
        """
        if self._sock is None:  # paho private: the connection's socket
            return None
        if not topic or b"+" in topic or b"#" in topic:
            raise ValueError(f"cannot publish to {topic!r}")
        out = self._out_messages  # paho private: unacknowledged publishes
        limit = self._max_queued_messages  # paho private: the bound of that table
        if limit and len(out) >= limit:
            return None
        mid: int = self._mid_generate()  # paho private: its message id counter
        if mid in out:
            return None  # 65,535 unacknowledged: as paho, refused
        window = self._max_inflight_messages  # paho private: its outgoing window
        if window == 0 or self._inflight_messages < window:
            self._inflight_messages += 1  # paho private: its count of those in flight
            out[mid] = _Outgoing(mid, topic, payload, retain, _WAIT_FOR_PUBACK, properties)  # type: ignore[assignment]
            self._queue_publish(mid, topic, payload, 1, retain, properties)
        else:
            out[mid] = _Outgoing(mid, topic, payload, retain, _QUEUED, properties)  # type: ignore[assignment]
            self._held_back.append(mid)
        return mid

    def _queue_publish(
        self,
        mid: int,
        topic: bytes,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: bytes = b"",
    ) -> None:
        """Append one PUBLISH to paho's write queue; write it at once as paho would (unless
        inside one of its callbacks or a batch)."""
        packet = codec.encode(topic, payload, qos, mid, retain, bool(self._v5), properties)
        self._out_packet.append(  # paho private: its queue of packets to write, in order
            {
                "command": _PUBLISH,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": _SENT_INFO,
            }
        )
        # paho private: the same test as its `_packet_queue`: write at once unless inside one of
        # its callbacks (that lock held) or with its own network thread (`_thread`) running
        mutex = self._in_callback_mutex
        if self._thread is None and mutex.acquire(False):
            mutex.release()
            self.loop_write()
        elif self._sockpairW is not None:
            with contextlib.suppress(BlockingIOError):
                self._sockpairW.send(b"0")  # wakes paho's own network thread, if one runs

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._topic_callbacks = True  # they need paho's matching on every message
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        # paho private: called by paho's packet reader for each PUBLISH in `_in_packet`
        header: int = self._in_packet["command"]
        message = None
        if not header & 0x04 and not self._topic_callbacks:  # QoS 0 or 1
            try:
                message = self._decode(header, self._in_packet["packet"])
            except IndexError:
                message = None  # truncated: paho's decoder reports it as malformed
        if message is None:
            return super()._handle_publish()
        on_received = self.on_received
        if on_received is not None:
            with self._in_callback_mutex:
                try:
                    on_received(message)
                except Exception as err:
                    self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        if message.qos and not self._manual_ack:  # paho private: as its own handler does
            return self._send_puback(message.mid)
        return _SUCCESS

    def _decode(self, header: int, packet: bytearray) -> Message | None:
        """The message in a QoS 0/1 PUBLISH, or None when paho's own decoder must look at it."""
        return codec.decode(header, packet, bool(self._v5), self.source)


def _wire_of(properties: Any) -> bytes:
    """The encoded properties of a publish in paho's table: ours, or paho's own object."""
    if properties is None:
        return b""
    if isinstance(properties, _WireProperties):
        return properties.wire
    return _packed(properties)


def _packed(properties: Any) -> bytes:
    """paho's `Properties` as a PUBLISH carries them, without the length in front."""
    packed: bytes = properties.pack()
    return packed[read_varint(packed, 0)[1] :]

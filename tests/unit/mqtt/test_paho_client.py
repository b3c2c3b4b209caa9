"""edged's paho client (edged/mqtt/_paho.py) decodes every PUBLISH into edged's own Message
exactly as paho itself decodes it, and reads packets from one buffer without losing or delaying
any."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import paho.mqtt.client as paho
import pytest

from edged.mqtt._paho import Client, from_paho, paho_properties
from edged.mqtt.message import Message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _publish(
    topic: bytes,
    payload: bytes,
    *,
    qos: int = 0,
    mid: int = 0,
    retain: bool = False,
    dup: bool = False,
    props: bytes | None = None,
) -> tuple[int, bytearray]:
    """(fixed header byte, everything after the remaining length) of one PUBLISH."""
    header = 0x30 | (dup << 3) | (qos << 1) | retain
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += _varint(len(props)) + props
    return header, bytearray(body + payload)


def _idents(*values: int) -> bytes:
    return b"".join(b"\x0b" + _varint(v) for v in values)


def _receive(client: paho.Client, header: int, body: bytearray) -> tuple[Any, list[Message]]:
    """Hand one PUBLISH to `client`'s packet handler: paho's own (its messages converted to
    edged's Message), or edged's fast one."""
    got: list[Message] = []
    if isinstance(client, Client):
        client.on_received = got.append
    else:
        client.on_message = lambda _c, _u, m: got.append(from_paho(m))
    client._in_packet = {**client._in_packet, "command": header, "packet": bytearray(body)}
    try:
        rc: Any = client._handle_publish()
    except Exception as exc:  # paho's own decoder raises on malformed packets
        rc = type(exc)
    return rc, got


def _pair(v5: bool) -> tuple[paho.Client, Client]:
    kwargs: dict[str, Any] = {
        "protocol": paho.MQTTv5 if v5 else paho.MQTTv311,
        "manual_ack": True,
    }
    return (
        paho.Client(paho.CallbackAPIVersion.VERSION2, **kwargs),
        Client(paho.CallbackAPIVersion.VERSION2, **kwargs),
    )


USER = b"\x26" + struct.pack("!H", 1) + b"k" + struct.pack("!H", 1) + b"v"

CASES = {
    "v5 one identifier": (True, _publish(b"a/b", b"x", props=_idents(3))),
    "v5 multi-byte identifier": (True, _publish(b"a/b", b"{}", props=_idents(300, 70000))),
    "v5 qos 1, flags": (
        True,
        _publish(b"s/t", b"1" * 300, qos=1, mid=513, retain=True, dup=True, props=_idents(1, 2)),
    ),
    "v5 no properties": (True, _publish(b"t", b"", props=b"")),
    "v5 user property too": (True, _publish(b"t", b"p", props=_idents(4) + USER)),
    "v5 user property only": (True, _publish(b"t", b"p", qos=1, mid=9, props=USER)),
    "v3.1.1 qos 0": (False, _publish(b"a", b"payload")),
    "v3.1.1 qos 1": (False, _publish(b"a/b/c", b"payload", qos=1, mid=65535, retain=True)),
}


@pytest.mark.parametrize("case", CASES)
def test_publish_decodes_like_paho(case: str) -> None:
    """Topic bytes, payload, QoS, mid, retain, dup and subscription identifiers all equal."""
    v5, (header, body) = CASES[case]
    reference, fast = _pair(v5)
    want_rc, want = _receive(reference, header, body)
    got_rc, got = _receive(fast, header, body)
    assert got_rc == want_rc
    assert got == want
    assert len(got) == 1


def test_subscription_identifiers_reach_the_message_on_both_paths() -> None:
    """Identifiers alone take the fast path; with a user property too, paho's decoder; either
    way the Message carries every identifier the broker matched, in order."""
    _, fast = _pair(True)
    _, [fast_path] = _receive(fast, *_publish(b"t", b"p", props=_idents(7, 300)))
    _, [without] = _receive(fast, *_publish(b"t", b"p", props=b""))
    _, [slow_path] = _receive(fast, *_publish(b"t", b"p", props=USER + _idents(9)))
    assert fast_path.subscription_ids == (7, 300)
    assert without.subscription_ids == ()
    assert slow_path.subscription_ids == (9,)
    assert slow_path.topic == b"t" and slow_path.payload == b"p"


@pytest.mark.parametrize(
    "body",
    [
        bytearray(b"\x00"),  # not even a topic length
        bytearray(b"\x00\x05ab"),  # topic cut short
        bytearray(b"\x00\x01a\x05\x0b"),  # properties cut short
        bytearray(b"\x00\x01a\x02\x0b\x80"),  # identifier's varint cut short
    ],
)
def test_malformed_publish_fails_like_paho(body: bytearray) -> None:
    reference, fast = _pair(True)
    want_rc, want = _receive(reference, 0x30, body)
    got_rc, got = _receive(fast, 0x30, body)
    assert (got_rc, len(got)) == (want_rc, len(want))


@pytest.mark.parametrize("body", [bytearray(b"\x00\x05ab"), bytearray(b"\x00\x00x")])
def test_malformed_publish_under_311_fails_like_paho(body: bytearray) -> None:
    """A topic cut short, and an empty topic (allowed only with MQTT 5 topic aliases)."""
    reference, fast = _pair(False)
    want_rc, want = _receive(reference, 0x30, body)
    got_rc, got = _receive(fast, 0x30, body)
    assert (got_rc, len(got)) == (want_rc, len(want)) == (want_rc, 0)


def _packet_bytes(header: int, body: bytearray) -> bytes:
    return bytes([header]) + _varint(len(body)) + bytes(body)


def _socket_pair(client: paho.Client) -> socket.socket:
    """Give `client` one end of a socket pair as its connection; returns the broker's end."""
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    return broker


def test_packets_are_read_from_one_buffer_in_order() -> None:
    """Many packets arrive in one recv; a packet split across two arrivals is put together."""
    _, fast = _pair(True)
    broker = _socket_pair(fast)
    got: list[Message] = []
    fast.on_received = got.append
    packets = [_packet_bytes(*_publish(b"t/%d" % i, b"p" * i, props=_idents(1))) for i in range(50)]
    last = _packet_bytes(*_publish(b"t/last", b"x" * 5000, qos=1, mid=7, props=_idents(2)))
    try:
        broker.sendall(b"".join(packets) + last[:100])
        for _ in range(50):
            assert fast.loop_read() == paho.MQTT_ERR_SUCCESS
        assert len(got) == 50 and fast.buffered() == 100
        assert fast.loop_read() == paho.MQTT_ERR_SUCCESS  # half a packet: waits for the rest
        assert len(got) == 50 and fast.buffered() == 0
        broker.sendall(last[100:])
        assert fast.loop_read() == paho.MQTT_ERR_SUCCESS
    finally:
        broker.close()
        fast._sock_close()
    assert [m.topic for m in got] == [b"t/%d" % i for i in range(50)] + [b"t/last"]
    assert [m.payload for m in got[:50]] == [b"p" * i for i in range(50)]
    assert (got[-1].payload, got[-1].mid) == (b"x" * 5000, 7)
    assert fast.buffered() == 0


def test_loop_reads_what_is_buffered_without_waiting() -> None:
    """select cannot see bytes already read from the socket, so loop() must not wait on it."""
    _, fast = _pair(True)
    broker = _socket_pair(fast)
    got: list[Message] = []
    fast.on_received = got.append
    try:
        broker.sendall(
            b"".join(_packet_bytes(*_publish(b"t", b"%d" % i, props=b"")) for i in range(3))
        )
        assert fast.loop_read() == paho.MQTT_ERR_SUCCESS
        assert len(got) == 1 and fast.buffered() > 0
        began = time.monotonic()
        while fast.buffered():
            fast.loop(5.0)
        assert time.monotonic() - began < 1.0
    finally:
        broker.close()
        fast._sock_close()
    assert [m.payload for m in got] == [b"0", b"1", b"2"]


class _NoSend:
    """A socket stand-in: nothing is sent while the test holds paho's callback lock."""

    def send(self, data: bytes) -> int:
        raise AssertionError("nothing should be written")


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("size", [0, 1, 100, 120, 121, 122, 16_380, 16_400, 2_097_200])
def test_qos0_publish_writes_the_packet_paho_writes(v5: bool, retain: bool, size: int) -> None:
    """`publish_qos0` queues byte for byte the PUBLISH paho's own `publish` queues, across
    the one-, two- and three-byte remaining lengths, with and without retain."""
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    client._sock = _NoSend()  # type: ignore[assignment]
    topic, payload = "out/sensor/1", bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with client._in_callback_mutex:  # as inside a callback: queued, not written
        assert client.publish_qos0(topic.encode(), payload, retain)
        client.publish(topic, payload, 0, retain)
    ours, pahos = client._out_packet
    assert ours["packet"] == pahos["packet"]
    assert (ours["command"], ours["qos"], ours["to_process"]) == (
        pahos["command"],
        pahos["qos"],
        pahos["to_process"],
    )
    client._sock = None


def test_qos0_publish_refuses_when_not_connected_and_wildcards() -> None:
    """Without a connection nothing is queued and the caller hears False; a topic with a
    wildcard is refused as paho refuses it."""
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    assert client.publish_qos0(b"a/b", b"x") is False
    assert not client._out_packet
    client._sock = _NoSend()  # type: ignore[assignment]
    for bad in (b"a/+", b"a/#", b""):
        with pytest.raises(ValueError):
            client.publish_qos0(bad, b"x")
    client._sock = None


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("size", [0, 1, 118, 119, 16_380, 2_097_200])
def test_qos1_publish_writes_the_packet_paho_writes(v5: bool, retain: bool, size: int) -> None:
    """`publish_qos1` queues byte for byte the PUBLISH paho's own `publish` queues for the
    same message id, and puts it in paho's table of unacknowledged publishes, where
    `take_unacked` finds it like one of paho's own."""
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    client._sock = _NoSend()  # type: ignore[assignment]
    topic, payload = "out/sensor/1", bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with client._in_callback_mutex:  # as inside a callback: queued, not written
        mid = client.publish_qos1(topic.encode(), payload, retain)
        client._last_mid = 0  # paho's next message id is the same one
        del client._out_messages[mid]
        client.publish(topic, payload, 1, retain)
        assert client.publish_qos1(topic.encode(), payload, retain) == 2
    ours, pahos, _ = client._out_packet
    assert mid == 1
    assert ours["packet"] == pahos["packet"]
    assert (ours["command"], ours["qos"], ours["mid"], ours["to_process"]) == (
        pahos["command"],
        pahos["qos"],
        pahos["mid"],
        pahos["to_process"],
    )
    taken = client.take_unacked()
    assert [(u.mid, u.topic, u.payload, u.qos, u.retain) for u in taken] == [
        (1, topic, payload, 1, retain),
        (2, topic, payload, 1, retain),
    ]
    client._sock = None


def test_the_window_holds_back_publishes_and_acks_send_them_in_order() -> None:
    """With a send window of 2, a third and fourth publish wait (ours and paho's own alike);
    each acknowledgement sends the oldest waiting one, so the broker never has more than 2
    unacknowledged and gets them in publish order."""
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._sock = _NoSend()  # type: ignore[assignment]
    acked: list[int] = []
    client.on_acked = lambda mid, _refused: acked.append(mid)
    client.set_send_window(2)

    def sent() -> list[int]:
        return [p["mid"] for p in client._out_packet]

    with client._in_callback_mutex:
        first = client.publish_qos1(b"t", b"1")
        second = client.publish_qos1(b"t", b"2")
        third = client.publish("t", b"3", 1).mid  # paho's own publish, e.g. the status
        fourth = client.publish_qos1(b"t", b"4")
        assert sent() == [first, second]
        client._do_on_publish(first, None, None)
        assert sent() == [first, second, third]
        client._do_on_publish(second, None, None)
        assert sent() == [first, second, third, fourth]
        client._do_on_publish(third, None, None)
        client._do_on_publish(fourth, None, None)
    assert acked == [first, second, third, fourth]
    assert client.unacked_publishes() == 0 and client._inflight_messages == 0
    client._sock = None


def test_properties_go_with_a_publish_held_back_and_one_taken_unacked() -> None:
    """A QoS 1 publish with properties that waits for room in the window is written with
    them when it goes, byte for byte as paho writes the same publish; `take_unacked` hands
    them over too (for the outbox)."""
    wire = b"\x03\x00\x04text" + b"\x26\x00\x01k\x00\x01v"
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._sock = _NoSend()  # type: ignore[assignment]
    client.set_send_window(1)
    with client._in_callback_mutex:
        first = client.publish_qos1(b"t", b"1")
        second = client.publish_qos1(b"t", b"2", False, wire)
        client._do_on_publish(first, None, None)
        held = client._out_packet[-1]
        client._last_mid = second - 1
        del client._out_messages[second]
        client._inflight_messages -= 1
        client.publish("t", b"2", 1, properties=paho_properties(wire))
    assert held["mid"] == second
    assert held["packet"] == client._out_packet[-1]["packet"]
    client._out_messages[second].properties = paho_properties(wire)
    assert [u.properties for u in client.take_unacked()] == [wire]
    client._sock = None


def test_qos1_publish_refuses_past_the_queue_bound() -> None:
    """paho's bound on unacknowledged publishes holds for ours too: past it, None."""
    client = Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    assert client.publish_qos1(b"a/b", b"x") is None  # not connected
    client._sock = _NoSend()  # type: ignore[assignment]
    client.max_queued_messages_set(2)
    with client._in_callback_mutex:
        assert client.publish_qos1(b"a", b"1") is not None
        assert client.publish_qos1(b"a", b"2") is not None
        assert client.publish_qos1(b"a", b"3") is None
    client._sock = None

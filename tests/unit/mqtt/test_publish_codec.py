"""The PUBLISH codec and the properties edged carries, against paho's own encoder and decoder
(an implementation that is not edged's) and by hand per MQTT 5 §3.3."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from edged.mqtt import publish
from edged.mqtt.properties import Properties, PropertiesError, decode, from_json, from_wire

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FULL = Properties(
    payload_format=1,
    expiry=3600,
    content_type="application/cbor",
    response_topic="reply/here",
    correlation=b"\x00\xffid",
    user=(("traceparent", TRACEPARENT), ("k", "v1"), ("k", "v2"), ("ü", "")),
)


def paho_packed(**values: object) -> bytes:
    props = PahoProperties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    packed: bytes = props.pack()
    return packed


def test_our_encoding_reads_back_in_paho() -> None:
    wire = FULL.wire()
    props = PahoProperties(PacketTypes.PUBLISH)
    props.unpack(publish.remaining_length(len(wire)) + wire)
    assert props.PayloadFormatIndicator == 1
    assert props.MessageExpiryInterval == 3600
    assert props.ContentType == "application/cbor"
    assert props.ResponseTopic == "reply/here"
    assert props.CorrelationData == b"\x00\xffid"
    assert props.UserProperty == list(FULL.user)


def test_pahos_encoding_reads_back_here_with_subscription_identifiers() -> None:
    packed = paho_packed(
        UserProperty=[("a", "1"), ("b", "2")],
        ContentType="text/plain",
        SubscriptionIdentifier=7,
    )
    props, idents = decode(packed, 1, len(packed))
    assert idents == (7,)
    assert props is not None
    assert props.user == (("a", "1"), ("b", "2"))
    assert props.content_type == "text/plain"


def test_received_properties_are_read_only_when_asked_for_and_go_on_as_they_came() -> None:
    """A received list is kept as bytes; its fields are read on first use. A string that is
    not UTF-8 (a broker should have refused it) reads with replacement characters and still
    goes on as it came."""
    raw = bytes([0x26, 0, 1]) + b"k" + bytes([0, 2, 0xFF, 0xFE]) + bytes([0x0B, 5])
    props, idents = decode(raw, 0, len(raw))
    assert idents == (5,)
    assert props is not None
    assert props.for_output(True) == raw[:-2]  # without the subscription identifier
    assert props.user == (("k", "\ufffd\ufffd"),)
    with pytest.raises(PropertiesError):
        from_wire(raw[:-2])  # what edged itself stores is read strictly


def test_only_subscription_identifiers_make_no_properties() -> None:
    packed = paho_packed(SubscriptionIdentifier=300)
    assert decode(packed, 1, len(packed)) == (None, (300,))


@pytest.mark.parametrize(
    "raw",
    [
        bytes([0x23, 0x00, 0x05]),  # a topic alias: only the connection knows its topic
        bytes([0x26, 0x00, 0x05, 0x61]),  # truncated user property
        bytes([0x01, 0x01, 0x99]),  # not a property a PUBLISH has
    ],
)
def test_what_edged_does_not_read_is_refused(raw: bytes) -> None:
    with pytest.raises(PropertiesError):
        decode(raw, 0, len(raw))


@pytest.mark.parametrize("v5", [True, False])
@pytest.mark.parametrize("qos", [0, 1])
def test_a_publish_round_trips(v5: bool, qos: int) -> None:
    packet = publish.encode(b"a/b", b"payload", qos, 42 if qos else 0, True, v5, FULL.wire())
    header, rest = packet[0], packet[1:]
    while rest[0] & 0x80:  # skip the remaining length
        rest = rest[1:]
    message = publish.decode(header, rest[1:], v5, source=2)
    assert message is not None
    assert (message.topic, message.payload, message.qos, message.retain) == (
        b"a/b",
        b"payload",
        qos,
        True,
    )
    assert message.mid == (42 if qos else 0)
    assert message.source == 2
    assert message.properties == (FULL if v5 else None)  # 3.1.1 has no properties


def test_pass_carries_the_message_properties_and_drop_only_what_filters_set() -> None:
    own = Properties(content_type="application/json", user=(("k", "new"), ("stage", "gw")))
    merged = FULL.overlay(own)
    passed = from_wire(merged.for_output(True))
    assert passed is not None
    assert passed.content_type == "application/json"
    assert passed.correlation == b"\x00\xffid"
    assert passed.response_topic == "reply/here"
    assert (passed.payload_format, passed.expiry) == (None, None)  # about the input's payload
    assert passed.user == (("traceparent", TRACEPARENT), ("ü", ""), ("k", "new"), ("stage", "gw"))
    dropped = from_wire(merged.for_output(False))
    assert dropped == own
    assert FULL.for_output(False) == b""


def test_the_trace_id_comes_from_a_valid_traceparent_only() -> None:
    assert FULL.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
    for bad in ("garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", TRACEPARENT[:-1]):
        assert Properties(user=(("traceparent", bad),)).trace_id() is None


def test_json_form_round_trips_and_names_bad_keys() -> None:
    assert from_json(FULL.to_json()) == FULL
    with pytest.raises(PropertiesError, match="user_properties"):
        from_json({"user_properties": [["a"]]})
    with pytest.raises(PropertiesError, match="unknown key 'colour'"):
        from_json({"colour": "red"})

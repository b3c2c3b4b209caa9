"""The broker link without a broker: what it refuses before sending (a packet over the broker's
Maximum Packet Size, a poison output), and what it does with outputs when the outbox's disk
refuses a write (holds the ones inputs wait for, counts the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edged.config.model import BrokerConfig
from edged.errors import OutputRefused
from edged.mqtt._paho import Client
from edged.mqtt.link import BrokerLink
from edged.mqtt.outbox import Outbox
from edged.mqtt.poison import STRIKES, PoisonWatch, key_of, packet_size


class Rig:
    """A link to a broker it never connects to, with an outbox in `tmp_path`, recording which
    outputs were released to their inputs and which were refused."""

    def __init__(self, tmp_path: Path) -> None:
        self.acked: list[int] = []
        self.refused: list[tuple[str, str, bytes]] = []
        self.outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 30)
        self.link = BrokerLink(
            BrokerConfig(name="cloud", host="127.0.0.1", port=1),
            client_id="gw-test",
            status_topic="edged/gw/status",
            status={},
            subscriptions=(),
            on_message=lambda _m: None,
            on_acked=self.acked.append,
            on_refused=lambda r, topic, payload, _q: self.refused.append(
                (r.reason, topic, payload)
            ),
            outbox=self.outbox,
        )

    def break_disk(self) -> None:
        self.outbox._db.execute("PRAGMA query_only=1")  # every write refused, as read-only

    def mend_disk(self) -> None:
        self.outbox._db.execute("PRAGMA query_only=0")
        self.link._store_at = 0.0  # the retry is due


@pytest.mark.parametrize("v5", [True, False])
@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("payload", [0, 100, 117, 118, 16_370, 16_400, 3000, 2_100_000])
def test_packet_size_is_the_size_of_the_packet_edged_writes(
    v5: bool, qos: int, payload: int
) -> None:
    """What the Maximum Packet Size is compared with is the packet itself, on both sides of
    each length-byte boundary."""
    from paho.mqtt.client import MQTTv5, MQTTv311
    from paho.mqtt.enums import CallbackAPIVersion

    client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTv5 if v5 else MQTTv311)
    client._queue_publish(7 if qos else 0, b"a/b/c", b"x" * payload, qos, False)
    written = client._out_packet[-1]["packet"]
    assert packet_size(5, payload, qos, v5) == len(written)


def test_an_output_over_the_announced_packet_size_is_refused_naming_broker_size_and_limit(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.link.max_packet = 2048
    assert rig.link.publish("out/small", b"x" * 100, 1, False, awaited=True) is not None
    with pytest.raises(OutputRefused) as refused:
        rig.link.publish("out/big", b"x" * 3000, 1, False, awaited=True)
    assert refused.value.reason == "broker_limit"
    assert "cloud" in refused.value.detail
    assert "3015 bytes" in refused.value.detail and "2048" in refused.value.detail
    # nor is one stored for later: it goes to on_refused, and the outbox never sees it
    assert rig.link.keep_for_outbox("out/big", b"x" * 3000, 1, False) is False
    assert rig.refused == [("broker_limit", "out/big", b"x" * 3000)]
    rig.link.flush_outbox(now=True)
    assert [e.topic for e in rig.outbox.oldest(10)] == ["out/small"]
    assert rig.link.over_packet_size == 2


def test_one_disconnect_makes_the_next_connection_careful_and_two_alone_make_poison() -> None:
    watch = PoisonWatch()
    window = [(f"t/{i}", b"p%d" % i) for i in range(20)]
    assert watch.dropped(window) is None  # which of 20 choked the broker cannot be told
    assert watch.careful == 20 and not watch
    for _ in range(5):
        watch.acked()
    assert watch.careful == 15
    culprit = window[12]
    for strike in range(1, STRIKES + 1):
        found = watch.dropped([culprit])
        assert (found == key_of(*culprit)) is (strike == STRIKES)
    assert watch and watch.is_poison(*culprit)
    assert not watch.is_poison(*window[11])
    assert watch.careful == 15  # still careful: the acknowledgements have not come yet


def test_a_drop_with_nothing_in_flight_or_a_different_publish_each_time_makes_no_poison() -> None:
    watch = PoisonWatch()
    assert watch.dropped([]) is None
    assert watch.dropped([("a", b"1"), ("b", b"2")]) is None
    for i in range(10):
        assert watch.dropped([(f"t/{i}", b"x")]) is None
    assert not watch


def test_a_poison_output_is_refused_when_made_again_and_when_replayed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for _ in range(STRIKES + 1):
        rig.link._poison.dropped([("out/acl", b"forbidden")])
    with pytest.raises(OutputRefused) as refused:
        rig.link.publish("out/acl", b"forbidden", 1, False, awaited=True)
    assert refused.value.reason == "poison_output"
    assert rig.link.publish("out/acl", b"allowed", 1, False, awaited=True) is not None
    assert rig.link.poison_outputs == 1


def test_outputs_inputs_wait_for_are_held_while_the_disk_refuses_and_stored_after(
    tmp_path: Path,
) -> None:
    """Disk full is backpressure: nothing an input waits for is released (its input stays
    unacknowledged, its broker keeps it) until it is stored; a tick's output, which no input
    stands behind, is lost and counted."""
    rig = Rig(tmp_path)
    link = rig.link
    tokens = [link.publish(f"out/{i}", b"v", 1, False, awaited=True) for i in range(3)]
    assert all(t is not None and t < 0 for t in tokens)
    rig.break_disk()
    with capture_logs() as logs:
        link.publish("out/tick", b"t", 1, False, awaited=False)
        assert link.flush_outbox(now=True) == 0
    assert rig.acked == []
    assert link.write_failing is not None
    assert rig.outbox.counters.unstored == 1
    unstored = [e for e in logs if e["event"] == "outputs_unstored"]
    assert unstored and unstored[0]["entries"] == 1 and unstored[0]["held_for_their_inputs"] == 3
    # the retry waits its backoff: an immediate flush does not touch the disk again
    errors = rig.outbox.counters.write_errors
    link.flush_outbox(now=True)
    assert rig.outbox.counters.write_errors == errors
    later = link.publish("out/3", b"v", 1, False, awaited=True)  # queues behind the held ones
    rig.mend_disk()
    assert link.flush_outbox(now=True) == 4
    assert rig.acked == [*tokens, later]
    assert [e.topic for e in rig.outbox.oldest(10)] == ["out/0", "out/1", "out/2", "out/3"]
    assert link.write_failing is None


def test_a_link_holding_too_much_for_a_failing_disk_asks_for_slow_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edged.mqtt.link as link_module

    monkeypatch.setattr(link_module, "HOLD_MAX", 5)
    rig = Rig(tmp_path)
    rig.break_disk()
    for i in range(4):
        rig.link.publish(f"out/{i}", b"v", 1, False, awaited=True)
    rig.link.flush_outbox(now=True)
    assert not rig.link.holding
    rig.link.publish("out/4", b"v", 1, False, awaited=True)
    assert rig.link.holding
    rig.mend_disk()
    rig.link.flush_outbox(now=True)
    assert not rig.link.holding and len(rig.acked) == 5

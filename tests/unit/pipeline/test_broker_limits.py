"""A broker's limits on outputs: what a broker would drop without a word is dead-lettered instead.

The pipelines forward every message (an inline WAT module) to the broker of their output rule;
the recording publisher shows what was published and to which broker, the dead letters what was
refused and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from structlog.testing import capture_logs

from edged.config import OutputRule
from edged.config.model import LinkLimits
from edged.pipeline import Pipeline, Step
from edged.pipeline.outputs import Destination, OutputRules
from edged.pipeline.pipeline import BROKER_LIMIT
from tests.unit.pipeline.wat_filters import FORWARD, Outbox, inline

#: `cloud/...` emitted topics go to the cloud broker, the rest to the local one
TWO_WAYS = (
    OutputRule(match="cloud/#", topic="up/{topic}", qos=1, broker="cloud"),
    OutputRule(match="#", topic="down/{topic}", qos=0, broker="local"),
)


class Rig:
    """A forwarding pipeline `p1` with its publisher and dead letters on record."""

    def __init__(
        self,
        limits: Mapping[str, LinkLimits],
        rules: Sequence[OutputRule] = TWO_WAYS,
    ) -> None:
        self.outbox = Outbox()
        self.letters: list[dict[str, object]] = []
        self.pipeline = Pipeline(
            "p1",
            [Step("fwd", inline("fwd", FORWARD))],
            OutputRules(rules, node_id="gw-1", pipeline="p1", limits=limits),
            self.outbox,
            dead_letter=self.letters.append,
        )

    def send(self, topic: bytes, *payloads: bytes) -> None:
        for payload in payloads:
            self.pipeline.process(topic, payload)

    @property
    def counts(self) -> dict[str, object]:
        return self.pipeline.counters.snapshot()


def test_an_output_over_max_payload_is_dead_lettered_not_published() -> None:
    """A payload bigger than the cloud broker takes is not sent (the broker would drop it, or
    the connection, silently): it is counted as broker_limit and dead-lettered with the broker,
    its limit and where it was headed."""
    rig = Rig({"cloud": LinkLimits(max_payload=8)})
    with capture_logs() as logs:
        rig.send(b"cloud/t", b"123456789")
    assert rig.outbox.sent == []
    assert rig.counts == {"in": 1, "out": 0, "filtered": 0, "dropped": {"broker_limit": 1}}
    (letter,) = rig.letters
    assert {k: v for k, v in letter.items() if k != "ts"} == {
        "pipeline": "p1",
        "reason": BROKER_LIMIT,
        "detail": "payload of 9 bytes is over broker 'cloud''s max_payload (8 B)",
        "topic": "cloud/t",
        "payload": "123456789",
        "output_topic": "up/cloud/t",
        "broker": "cloud",
    }
    assert "module" not in letter  # not any filter's fault
    (warning,) = [e for e in logs if e["event"] == "output_over_broker_limit"]
    assert (warning["log_level"], warning["broker"], warning["topic"]) == (
        "warning",
        "cloud",
        "up/cloud/t",
    )


def test_the_max_payload_detail_shows_the_size_as_written() -> None:
    """The dead letter's detail gives the limit in the unit the config would use."""
    rig = Rig({"cloud": LinkLimits(max_payload=1024)})
    rig.send(b"cloud/t", b"x" * 1025)
    (letter,) = rig.letters
    assert letter["detail"] == "payload of 1025 bytes is over broker 'cloud''s max_payload (1 KiB)"


def test_a_payload_exactly_at_the_limit_is_published() -> None:
    """max_payload is the largest payload allowed: one of exactly that size goes out."""
    rig = Rig({"cloud": LinkLimits(max_payload=8)})
    rig.send(b"cloud/t", b"12345678", b"", b"123456789")
    assert rig.outbox.payloads == [b"12345678", b""]
    assert rig.counts["dropped"] == {"broker_limit": 1}
    assert [letter["payload"] for letter in rig.letters] == ["123456789"]


@pytest.mark.parametrize(
    ("limits", "detail"),
    [
        (
            LinkLimits(max_topic_bytes=9),
            "topic of 10 bytes is over broker 'cloud''s max_topic_bytes (9)",
        ),
        (
            LinkLimits(max_topic_levels=2),
            "topic of 3 levels is over broker 'cloud''s max_topic_levels (2)",
        ),
    ],
    ids=["bytes", "levels"],
)
def test_an_output_topic_over_the_limits_is_dead_lettered(limits: LinkLimits, detail: str) -> None:
    """The published topic (`up/cloud/t`: 10 bytes, 3 levels) is checked against the broker's
    topic limits: over them, every message to it is refused, an empty payload too."""
    rig = Rig({"cloud": limits})
    rig.send(b"cloud/t", b"", b"x", b"a longer payload")
    assert rig.outbox.sent == []
    assert rig.counts == {"in": 3, "out": 0, "filtered": 0, "dropped": {"broker_limit": 3}}
    assert [(d["detail"], d["output_topic"], d["broker"]) for d in rig.letters] == [
        (detail, "up/cloud/t", "cloud")
    ] * 3


def test_a_topic_at_the_limits_is_published() -> None:
    """A topic of exactly max_topic_bytes and max_topic_levels goes out."""
    rig = Rig({"cloud": LinkLimits(max_topic_bytes=10, max_topic_levels=3)})
    rig.send(b"cloud/t", b"v")
    assert rig.outbox.topics == ["up/cloud/t"]
    assert rig.letters == []


def test_topic_bytes_are_counted_in_utf_8() -> None:
    """max_topic_bytes counts the bytes the broker sees: `up/cloud/é` is 10 characters but 11
    bytes."""
    rig = Rig({"cloud": LinkLimits(max_topic_bytes=10)})
    rig.send("cloud/é".encode(), b"v")
    assert rig.outbox.sent == []
    (letter,) = rig.letters
    assert letter["detail"] == "topic of 11 bytes is over broker 'cloud''s max_topic_bytes (10)"


def test_a_topic_limit_is_reported_before_the_payload_limit() -> None:
    """A message over both limits is dead-lettered once, for its topic."""
    rig = Rig({"cloud": LinkLimits(max_payload=1, max_topic_levels=1)})
    rig.send(b"cloud/t", b"too big")
    (letter,) = rig.letters
    assert letter["detail"] == "topic of 3 levels is over broker 'cloud''s max_topic_levels (1)"
    assert rig.counts["dropped"] == {"broker_limit": 1}


def test_brokers_without_limits_are_unaffected() -> None:
    """Only the broker with limits refuses: the same big payload to the local broker (no limits)
    goes out, and a broker whose limits are all unset refuses nothing."""
    big = b"x" * 100
    rig = Rig({"cloud": LinkLimits(max_payload=8, max_topic_levels=1)})
    rig.send(b"local/t", big)
    assert rig.outbox.sent == [("down/local/t", big, 0, False)]
    assert rig.outbox.brokers == ["local"]
    assert rig.letters == []

    open_rig = Rig({"cloud": LinkLimits(), "local": LinkLimits(max_publish_rate=1.0)})
    open_rig.send(b"cloud/a/b/c/d", big)
    open_rig.send(b"local/t", big)
    assert open_rig.outbox.topics == ["up/cloud/a/b/c/d", "down/local/t"]
    assert open_rig.counts["dropped"] == {}


def test_without_limits_nothing_is_refused() -> None:
    """OutputRules built without limits (the one-broker form without `limits:`) refuse nothing."""
    outputs = OutputRules(TWO_WAYS, node_id="gw-1", pipeline="p1")
    assert outputs.destination(b"cloud/t") == Destination("up/cloud/t", 1, False, "cloud")
    rig = Rig({})
    rig.send(b"cloud/t", b"x" * 4000)
    assert rig.outbox.topics == ["up/cloud/t"]


def test_the_publisher_is_given_the_rules_broker() -> None:
    """Each output reaches the publisher with the broker its rule names, so it goes out over
    that link: cloud-bound topics to `cloud`, the rest to `local`."""
    rig = Rig({})
    rig.send(b"cloud/a", b"1")
    rig.send(b"room/b", b"2")
    rig.send(b"cloud/c", b"3")
    assert rig.outbox.sent == [
        ("up/cloud/a", b"1", 1, False),
        ("down/room/b", b"2", 0, False),
        ("up/cloud/c", b"3", 1, False),
    ]
    assert rig.outbox.brokers == ["cloud", "local", "cloud"]


def test_a_rule_without_a_broker_publishes_to_default() -> None:
    """An output rule that names no broker (the one-broker form) publishes to `default`."""
    rig = Rig({}, rules=(OutputRule(topic="out/{topic}"),))
    rig.send(b"t", b"v")
    assert rig.outbox.brokers == ["default"]


def test_refusals_are_counted_apart_from_what_is_published() -> None:
    """Refused and published outputs of a run add up to what went in, each under its own count."""
    rig = Rig({"cloud": LinkLimits(max_payload=4)})
    rig.send(b"cloud/t", b"1234", b"12345", b"1")
    rig.send(b"local/t", b"123456")
    counters = rig.pipeline.counters
    assert (counters.received, counters.published, dict(counters.dropped)) == (
        4,
        3,
        {"broker_limit": 1},
    )
    assert counters.filtered == 0


def test_a_broker_limit_warning_is_not_hidden_by_a_no_output_rule_warning() -> None:
    """An output refused for its broker's limits is logged even when an unrouted topic was
    logged just before: two different mistakes, each with its own warning."""
    rig = Rig({"cloud": LinkLimits(max_payload=1)}, rules=TWO_WAYS[:1])
    with capture_logs() as logs:
        rig.send(b"room/t", b"x")  # no rule matches: no_output_rule
        rig.send(b"cloud/t", b"too big")
    assert rig.counts["dropped"] == {"broker_limit": 1, "no_output_rule": 1}
    assert [e["event"] for e in logs] == ["no_output_rule", "output_over_broker_limit"]

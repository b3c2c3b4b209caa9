"""The router: what the daemon subscribes to, and which pipelines each received message reaches.

Every pipeline here forwards (an inline WAT module) and publishes to `<pipeline>/<topic>`, so
the shared publisher shows which pipelines a message went through and how often.
"""

from __future__ import annotations

from collections.abc import Sequence

from edged.config import OutputRule, Subscription
from edged.mqtt.message import Message, TopicSubscription
from edged.pipeline import Pipeline, Step
from edged.pipeline.outputs import OutputRules
from edged.pipeline.router import Router
from tests.unit.pipeline.wat_filters import FORWARD, Outbox, inline

BY_PIPELINE = (OutputRule(match="#", topic="{pipeline}/{topic}", qos=0, retain=False),)


def forwarding(name: str, outbox: Outbox) -> Pipeline:
    """A pipeline that publishes every message it is given to `<name>/<topic>`."""
    return Pipeline(
        name,
        [Step("fwd", inline("fwd", FORWARD))],
        OutputRules(BY_PIPELINE, node_id="gw-1", pipeline=name),
        outbox,
    )


def subs(*given: tuple[str, int]) -> list[Subscription]:
    return [Subscription(topic=topic, qos=qos) for topic, qos in given]


class Setup:
    """Pipeline a on `s/+/t` (QoS 0) and `s/#` (QoS 1), b on `s/+/t` (QoS 2) and `x/y`,
    identifiers from 5: `s/+/t` is 5, `s/#` 6, `x/y` 7."""

    def __init__(self) -> None:
        self.outbox = Outbox()
        self.a = forwarding("a", self.outbox)
        self.b = forwarding("b", self.outbox)
        self.router = Router(
            [
                (self.a, subs(("s/+/t", 0), ("s/#", 1))),
                (self.b, subs(("s/+/t", 2), ("x/y", 0))),
            ],
            first_ident=5,
        )

    def deliver(self, topic: bytes, *idents: int, payload: bytes = b"p") -> list[str]:
        """Deliver one message tagged with `idents`: the topics it was published to."""
        self.outbox.sent.clear()
        self.router.deliver(Message(topic, payload, subscription_ids=idents))
        return sorted(self.outbox.topics)

    def received(self) -> tuple[int, int]:
        return self.a.counters.received, self.b.counters.received


def test_one_subscription_per_distinct_filter_at_its_highest_qos() -> None:
    """Each topic filter is subscribed once, at the highest QoS any pipeline asked for, with
    identifiers numbered from first_ident in the order the filters first appear."""
    setup = Setup()
    assert setup.router.subscriptions == (
        TopicSubscription("s/+/t", 2, 5),
        TopicSubscription("s/#", 1, 6),
        TopicSubscription("x/y", 0, 7),
    )
    assert setup.router.next_ident == 8


def test_the_same_filter_twice_in_one_pipeline_is_one_subscription() -> None:
    """A pipeline that lists a filter twice gets it subscribed once and each message once."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router([(a, subs(("k/#", 1), ("k/#", 0)))])
    assert router.subscriptions == (TopicSubscription("k/#", 1, 1),)
    router.deliver(Message(b"k/1", b"v", subscription_ids=(1,)))
    router.deliver(Message(b"k/1", b"v"))
    assert outbox.topics == ["a/k/1", "a/k/1"]


def test_an_identifier_delivers_to_exactly_its_pipelines() -> None:
    """Under MQTT 5 the broker's identifiers decide: a message tagged with `s/#` alone reaches
    only a, though b subscribed to `s/+/t` too (the broker matched only a's filter)."""
    setup = Setup()
    assert setup.deliver(b"s/1/other", 6) == ["a/s/1/other"]
    assert setup.deliver(b"s/1/t", 5) == ["a/s/1/t", "b/s/1/t"]
    assert setup.deliver(b"x/y", 7) == ["b/x/y"]


def test_overlapping_filters_deliver_once_per_pipeline() -> None:
    """One copy tagged with both of a's overlapping filters reaches a once, and b once."""
    setup = Setup()
    assert setup.deliver(b"s/1/t", 5, 6) == ["a/s/1/t", "b/s/1/t"]
    assert setup.deliver(b"s/1/t", 6, 5) == ["a/s/1/t", "b/s/1/t"]
    assert setup.received() == (2, 2)


def test_one_copy_per_subscription_reaches_each_pipeline_once() -> None:
    """mosquitto 2 sends one copy per matching subscription, each with its own identifier;
    pipeline a, subscribed to both `s/+/t` and `s/#`, still processes the message once."""
    setup = Setup()
    setup.router.deliver(Message(b"s/1/t", b"p", subscription_ids=(5,)))
    setup.router.deliver(Message(b"s/1/t", b"p", subscription_ids=(6,)))
    assert setup.received() == (1, 1)
    assert setup.router.unrouted == 0  # the second copy was no one's, but not lost either
    assert setup.deliver(b"s/1/other", 6) == ["a/s/1/other"]  # s/# alone matches: a takes it


def test_without_identifiers_the_topic_is_matched() -> None:
    """Under MQTT 3.1.1 (no identifiers) the topic is matched against every filter, each
    pipeline getting the message once even when several of its filters match."""
    setup = Setup()
    assert setup.deliver(b"s/1/t") == ["a/s/1/t", "b/s/1/t"]
    assert setup.deliver(b"s/1/other") == ["a/s/1/other"]
    assert setup.deliver(b"x/y") == ["b/x/y"]
    assert setup.received() == (2, 2)


def test_an_unknown_identifier_falls_back_to_the_topic() -> None:
    """A delivery tagged with an identifier this router did not give out (one of before a
    reload) is routed by its topic instead of being lost."""
    setup = Setup()
    assert setup.deliver(b"s/1/t", 1) == ["a/s/1/t", "b/s/1/t"]
    assert setup.deliver(b"x/y", 1, 2) == ["b/x/y"]
    assert setup.router.unrouted == 0


def test_a_reload_numbers_after_the_old_identifiers() -> None:
    """A router built on reload from next_ident gives out only new identifiers, so a message
    still tagged by the old subscriptions goes by its topic to the new pipelines."""
    old = Setup()
    outbox = Outbox()
    c = forwarding("c", outbox)
    new = Router([(c, subs(("s/#", 0)))], first_ident=old.router.next_ident)
    assert new.subscriptions == (TopicSubscription("s/#", 0, 8),)
    new.deliver(Message(b"s/1/t", b"p", subscription_ids=(6,)))
    assert outbox.topics == ["c/s/1/t"]


def test_a_message_no_pipeline_wants_is_counted_unrouted() -> None:
    """A message that matches no filter (a retained one for a filter just dropped, say) is
    counted as unrouted and reaches no pipeline."""
    setup = Setup()
    assert setup.deliver(b"elsewhere") == []
    assert setup.deliver(b"elsewhere", 99) == []
    assert setup.deliver(b"$SYS/s/x") == []  # a leading wildcard never matches `$` topics
    assert setup.router.unrouted == 3
    assert setup.received() == (0, 0)


def test_topic_and_payload_reach_the_pipeline_as_received() -> None:
    """The pipeline gets the message's bytes unchanged, non-UTF-8 payload included."""
    setup = Setup()
    setup.deliver("s/é/t".encode(), 5, payload=b"\x00\xff")
    assert sorted(setup.outbox.sent) == [
        ("a/s/é/t", b"\x00\xff", 0, False),
        ("b/s/é/t", b"\x00\xff", 0, False),
    ]


def test_topic_answers_stay_right_past_the_cache_bound() -> None:
    """Under MQTT 3.1.1 a stream of ever new topics (5,000) is routed right each time, and the
    routes remembered per topic stay bounded (at most 4096)."""
    outbox = Outbox()
    even, odd = forwarding("even", outbox), forwarding("odd", outbox)
    router = Router([(even, subs(("e/#", 0))), (odd, subs(("o/#", 0)))])
    topics: Sequence[bytes] = [f"{'eo'[n % 2]}/{n}".encode() for n in range(5000)]
    for topic in topics:
        router.deliver(Message(topic, b""))
    assert (even.counters.received, odd.counters.received) == (2500, 2500)
    assert outbox.topics[:2] == ["even/e/0", "odd/o/1"]
    assert len(router._by_topic) <= 4096
    assert router.unrouted == 0

"""The router with several brokers: each filter is subscribed on its own broker, and a message
reaches only the pipelines that subscribed to it on the broker it came from.

Every pipeline forwards (an inline WAT module) to `<pipeline>/<topic>`, so the shared publisher
shows which pipelines a message went through and how often. Brokers are `local` (source 0) and
`cloud` (source 1).
"""

from __future__ import annotations

from edged.config import Subscription
from edged.mqtt.message import Message, TopicSubscription
from edged.pipeline.router import Router
from tests.unit.pipeline.test_router import forwarding
from tests.unit.pipeline.wat_filters import Outbox

BROKERS = ("local", "cloud")
LOCAL, CLOUD = 0, 1


def sub(topic: str, broker: str, qos: int = 0) -> Subscription:
    return Subscription(topic=topic, qos=qos, broker=broker)


def deliver(
    router: Router, outbox: Outbox, topic: bytes, *idents: int, source: int = LOCAL
) -> list[str]:
    """Deliver one message from broker `source` tagged with `idents`: the topics it was
    published to."""
    outbox.sent.clear()
    router.deliver(Message(topic, b"p", subscription_ids=idents, source=source))
    return sorted(outbox.topics)


def test_each_broker_gets_its_own_subscriptions_with_unique_identifiers() -> None:
    """The same filter on two brokers is two subscriptions, each at the QoS asked for on that
    broker; identifiers never repeat across brokers, and each link subscribes to its own."""
    outbox = Outbox()
    a, b = forwarding("a", outbox), forwarding("b", outbox)
    router = Router(
        [
            (a, [sub("s/#", "local", 1), sub("x/#", "cloud")]),
            (b, [sub("s/#", "cloud", 2), sub("s/#", "local", 0)]),
        ],
        brokers=BROKERS,
    )
    assert router.subscriptions == (
        TopicSubscription("s/#", 1, 1, "local"),
        TopicSubscription("x/#", 0, 2, "cloud"),
        TopicSubscription("s/#", 2, 3, "cloud"),
    )
    assert router.for_broker("local") == [TopicSubscription("s/#", 1, 1, "local")]
    assert router.for_broker("cloud") == [
        TopicSubscription("x/#", 0, 2, "cloud"),
        TopicSubscription("s/#", 2, 3, "cloud"),
    ]
    assert router.for_broker("elsewhere") == []
    assert router.next_ident == 4


def test_the_same_filter_on_two_brokers_goes_by_source() -> None:
    """Pipeline `l` reads `s/#` on the local broker and `c` the same filter on the cloud: a
    message from each broker reaches only its own pipeline, with identifiers (MQTT 5) or
    without (MQTT 3.1.1, matched by topic)."""
    outbox = Outbox()
    local, cloud = forwarding("l", outbox), forwarding("c", outbox)
    router = Router(
        [(local, [sub("s/#", "local")]), (cloud, [sub("s/#", "cloud")])], brokers=BROKERS
    )
    assert deliver(router, outbox, b"s/1", source=LOCAL) == ["l/s/1"]
    assert deliver(router, outbox, b"s/1", source=CLOUD) == ["c/s/1"]
    assert deliver(router, outbox, b"s/1", 1, source=LOCAL) == ["l/s/1"]
    assert deliver(router, outbox, b"s/1", 2, source=CLOUD) == ["c/s/1"]
    assert (local.counters.received, cloud.counters.received) == (2, 2)


def test_a_3_1_1_delivery_reaches_only_the_pipelines_of_its_broker() -> None:
    """A message without identifiers from the cloud broker does not reach a pipeline that
    subscribed to its topic on the local broker only: it is unrouted, not misdelivered."""
    outbox = Outbox()
    a, b = forwarding("a", outbox), forwarding("b", outbox)
    router = Router([(a, [sub("s/#", "local")]), (b, [sub("x/#", "cloud")])], brokers=BROKERS)
    assert deliver(router, outbox, b"s/1", source=CLOUD) == []
    assert deliver(router, outbox, b"x/1", source=LOCAL) == []
    assert router.unrouted == 2
    assert (a.counters.received, b.counters.received) == (0, 0)
    assert deliver(router, outbox, b"s/1", source=LOCAL) == ["a/s/1"]
    assert deliver(router, outbox, b"x/1", source=CLOUD) == ["b/x/1"]


def test_a_delivery_from_a_link_without_filters_is_unrouted() -> None:
    """A message over a link the router has no filters for (a source past its brokers) is
    counted unrouted rather than raising."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router([(a, [sub("s/#", "local")])], brokers=BROKERS)
    assert deliver(router, outbox, b"s/1", source=2) == []
    assert router.unrouted == 1


def test_a_shared_subscription_is_routed_by_its_filter() -> None:
    """`$share/g/sensors/#` is subscribed as written, and a `sensors/a` message the broker
    hands over reaches its pipeline by identifier and, without one, by the filter after the
    group (as the broker matched it)."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router([(a, [sub("$share/g/sensors/#", "local", 1)])], brokers=BROKERS)
    (given,) = router.for_broker("local")
    assert given == TopicSubscription("$share/g/sensors/#", 1, 1, "local")
    assert given.shared
    assert deliver(router, outbox, b"sensors/a", 1) == ["a/sensors/a"]
    assert deliver(router, outbox, b"sensors/a") == ["a/sensors/a"]
    assert deliver(router, outbox, b"other/a") == []
    assert deliver(router, outbox, b"sensors/a", source=CLOUD) == []
    assert a.counters.received == 2


def test_a_shared_and_a_plain_subscription_of_one_filter_deliver_once() -> None:
    """A pipeline on both `$share/g/s/#` and `s/#` of one broker gets two subscriptions; the
    broker's copy for each (or one copy with both identifiers, or one without) reaches it once."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router([(a, [sub("$share/g/s/#", "local"), sub("s/#", "local")])], brokers=BROKERS)
    assert [s.ident for s in router.subscriptions] == [1, 2]
    router.deliver(Message(b"s/1", b"p", subscription_ids=(1,)))
    router.deliver(Message(b"s/1", b"p", subscription_ids=(2,)))
    assert a.counters.received == 1
    assert deliver(router, outbox, b"s/1", 1, 2) == ["a/s/1"]
    assert deliver(router, outbox, b"s/1") == ["a/s/1"]


def test_overlap_dedupe_looks_only_at_the_source_brokers_filters() -> None:
    """Pipeline a reads `s/+/t` on the cloud (identifier 1) and the overlapping `s/#` (2) and
    `s/+/t` (3) on the local broker. A local `s/1/t` sent once per matching subscription reaches
    a once: the cloud's lower identifier, which no local copy carries, must not make a think
    another copy serves it. The cloud's own copy of its own publication reaches a too."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router(
        [(a, [sub("s/+/t", "cloud"), sub("s/#", "local"), sub("s/+/t", "local")])],
        brokers=BROKERS,
    )
    assert [(s.ident, s.broker, s.topic) for s in router.subscriptions] == [
        (1, "cloud", "s/+/t"),
        (2, "local", "s/#"),
        (3, "local", "s/+/t"),
    ]
    router.deliver(Message(b"s/1/t", b"p", subscription_ids=(2,), source=LOCAL))
    router.deliver(Message(b"s/1/t", b"p", subscription_ids=(3,), source=LOCAL))
    assert a.counters.received == 1
    assert deliver(router, outbox, b"s/1/t", 3, 2, source=LOCAL) == ["a/s/1/t"]
    assert deliver(router, outbox, b"s/1/t", source=LOCAL) == ["a/s/1/t"]  # 3.1.1: by topic
    assert deliver(router, outbox, b"s/1/x", 2, source=LOCAL) == ["a/s/1/x"]
    assert deliver(router, outbox, b"s/1/t", 1, source=CLOUD) == ["a/s/1/t"]
    assert a.counters.received == 5
    assert router.unrouted == 0


def test_overlapping_filters_on_each_broker_deliver_once_per_broker() -> None:
    """A pipeline with `s/#` and `s/+/t` on both brokers gets one local and one cloud
    publication of `s/1/t` once each, whichever way each broker sends its copies."""
    outbox = Outbox()
    a = forwarding("a", outbox)
    router = Router(
        [
            (
                a,
                [
                    sub("s/#", "local"),
                    sub("s/+/t", "local"),
                    sub("s/#", "cloud"),
                    sub("s/+/t", "cloud"),
                ],
            )
        ],
        brokers=BROKERS,
    )
    assert [s.ident for s in router.for_broker("cloud")] == [3, 4]
    for ids, source in (((1,), LOCAL), ((2,), LOCAL), ((3,), CLOUD), ((4,), CLOUD)):
        router.deliver(Message(b"s/1/t", b"p", subscription_ids=ids, source=source))
    assert a.counters.received == 2
    assert deliver(router, outbox, b"s/1/t", source=CLOUD) == ["a/s/1/t"]
    assert deliver(router, outbox, b"s/1/t", 4, 3, source=CLOUD) == ["a/s/1/t"]

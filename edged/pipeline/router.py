"""Deliver each received message to the pipelines that subscribed to it, exactly once each.

Every distinct topic filter is subscribed once. Under MQTT 5 each carries a subscription
identifier, and the broker tags a delivery with the identifiers it matched: the delivery goes to
exactly those filters' pipelines, even when a broker sends overlapping subscriptions one copy each.
Under MQTT 3.1.1 the topic is matched here instead (cached per topic); a broker that sends one copy
per overlapping filter then makes the pipelines on both see it twice, as the docs warn.
"""

from __future__ import annotations

from collections.abc import Sequence

from edged.config import Subscription
from edged.mqtt.message import Message, TopicSubscription
from edged.pipeline.pipeline import Pipeline
from edged.topics import topic_matches

_CACHE_LIMIT = 4096


class Router:
    def __init__(
        self, routes: Sequence[tuple[Pipeline, Sequence[Subscription]]], *, first_ident: int = 1
    ) -> None:
        qos: dict[str, int] = {}
        owners: dict[str, list[Pipeline]] = {}
        for pipeline, subs in routes:
            for sub in subs:
                qos[sub.topic] = max(qos.get(sub.topic, 0), sub.qos)
                if pipeline not in owners.setdefault(sub.topic, []):
                    owners[sub.topic].append(pipeline)
        self.subscriptions = tuple(
            TopicSubscription(topic, qos[topic], ident)
            for ident, topic in enumerate(qos, start=first_ident)
        )
        # A reload numbers its subscriptions after the old ones, so a delivery still tagged with
        # an old identifier is never taken for a new filter; it is routed by its topic instead.
        self.next_ident = first_ident + len(self.subscriptions)
        self._by_ident = {s.ident: tuple(owners[s.topic]) for s in self.subscriptions}
        self._owners = {topic: tuple(p) for topic, p in owners.items()}
        self._by_topic: dict[bytes, tuple[Pipeline, ...]] = {}
        self.unrouted = 0

    def deliver(self, message: Message) -> None:
        idents = message.subscription_ids
        topic = message.topic
        pipelines = (self._for_idents(idents) if idents else None) or self._for_topic(topic)
        if not pipelines:
            self.unrouted += 1  # e.g. a retained message for a filter we just unsubscribed
            return
        payload = message.payload
        for pipeline in pipelines:
            pipeline.process(topic, payload)

    def _for_idents(self, idents: Sequence[int]) -> tuple[Pipeline, ...] | None:
        if len(idents) == 1:
            return self._by_ident.get(idents[0])
        seen: dict[Pipeline, None] = {}
        for ident in idents:
            seen.update(dict.fromkeys(self._by_ident.get(ident, ())))
        return tuple(seen) or None

    def _for_topic(self, topic: bytes) -> tuple[Pipeline, ...]:
        try:
            return self._by_topic[topic]
        except KeyError:
            pass
        if len(self._by_topic) >= _CACHE_LIMIT:
            self._by_topic.clear()
        seen: dict[Pipeline, None] = {}
        text = topic.decode(errors="replace")
        for pattern, pipelines in self._owners.items():
            if topic_matches(pattern, text):
                seen.update(dict.fromkeys(pipelines))
        found = self._by_topic[topic] = tuple(seen)
        return found

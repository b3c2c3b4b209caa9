"""Deliver each received message to the pipelines that subscribed to it, exactly once each.

Every distinct topic filter is subscribed once. Under MQTT 5 each carries a subscription
identifier, and the broker tags a delivery with the identifiers it matched: the delivery goes to
exactly those filters' pipelines. Where filters overlap, a broker either sends one copy with every
matching identifier or one copy per subscription with its own (MQTT 5 §3.3.4; mosquitto 2 does
the latter): a pipeline takes a copy only if it carries the lowest identifier of that pipeline's
filters matching the topic, so it sees the message once either way.
Under MQTT 3.1.1 the topic is matched here instead (cached per topic); a broker that sends one copy
per overlapping filter then makes the pipelines on both see it twice, as the docs warn.

With several brokers each filter belongs to one of them, and a message is matched only against
the filters of the broker it came from (`Message.source`). A shared subscription
(`$share/<group>/<filter>`) is matched by its filter without the prefix, as the broker does.
"""

from __future__ import annotations

from collections.abc import Sequence

from edged.config import Subscription
from edged.mqtt.message import Message, TopicSubscription
from edged.pipeline.pipeline import Pipeline
from edged.topics import split_shared, topic_matches

_CACHE_LIMIT = 4096


class Router:
    def __init__(
        self,
        routes: Sequence[tuple[Pipeline, Sequence[Subscription]]],
        *,
        first_ident: int = 1,
        brokers: Sequence[str] = ("default",),
    ) -> None:
        self.brokers = tuple(brokers)
        source_of = {name: index for index, name in enumerate(self.brokers)}
        qos: dict[tuple[str, str], int] = {}
        owners: dict[tuple[str, str], list[Pipeline]] = {}
        for pipeline, subs in routes:
            for sub in subs:
                key = (sub.broker, sub.topic)
                qos[key] = max(qos.get(key, 0), sub.qos)
                if pipeline not in owners.setdefault(key, []):
                    owners[key].append(pipeline)
        self.subscriptions = tuple(
            TopicSubscription(topic, qos[(broker, topic)], ident, broker)
            for ident, (broker, topic) in enumerate(qos, start=first_ident)
        )
        # A reload numbers its subscriptions after the old ones, so a delivery still tagged with
        # an old identifier is never taken for a new filter; it is routed by its topic instead.
        self.next_ident = first_ident + len(self.subscriptions)
        self._by_ident = {s.ident: tuple(owners[(s.broker, s.topic)]) for s in self.subscriptions}
        # per source broker: each filter (as the broker matches it) with its pipelines
        self._owners: list[dict[str, tuple[Pipeline, ...]]] = [{} for _ in self.brokers]
        for (broker, topic), pipelines in owners.items():
            table = self._owners[source_of[broker]]
            pattern = split_shared(topic)[1]
            table[pattern] = tuple(dict.fromkeys((*table.get(pattern, ()), *pipelines)))
        self._by_topic: list[dict[bytes, tuple[Pipeline, ...]]] = [{} for _ in self.brokers]
        # each pipeline's filters on each broker with their identifiers, lowest first
        self._filters: dict[tuple[Pipeline, str], list[tuple[int, str]]] = {}
        for given in self.subscriptions:
            for pipeline in owners[(given.broker, given.topic)]:
                self._filters.setdefault((pipeline, given.broker), []).append(
                    (given.ident, split_shared(given.topic)[1])
                )
        self._broker_of = {s.ident: s.broker for s in self.subscriptions}
        # identifiers some of whose pipelines have other filters on that broker too, which may
        # overlap: only their copies need a look at the topic
        self._overlapping = frozenset(
            s.ident
            for s in self.subscriptions
            if any(len(self._filters[(p, s.broker)]) > 1 for p in owners[(s.broker, s.topic)])
        )
        self._by_copy: dict[tuple[bytes, tuple[int, ...]], tuple[Pipeline, ...]] = {}
        self.unrouted = 0

    def for_broker(self, broker: str) -> list[TopicSubscription]:
        """The subscriptions to make on one broker."""
        return [s for s in self.subscriptions if s.broker == broker]

    def deliver(self, message: Message) -> None:
        idents = message.subscription_ids
        topic = message.topic
        pipelines = self._for_idents(idents, topic) if idents else None
        if pipelines is None:
            pipelines = self._for_topic(topic, message.source)
            if not pipelines:
                self.unrouted += 1  # e.g. a retained message for a filter we just unsubscribed
                return
        payload = message.payload
        props = message.properties
        for pipeline in pipelines:
            pipeline.process(topic, payload, props)

    def _for_idents(self, idents: tuple[int, ...], topic: bytes) -> tuple[Pipeline, ...] | None:
        """The pipelines this copy is for (none: another copy serves them), or None when no
        identifier is ours (then the topic decides)."""
        if len(idents) == 1 and idents[0] not in self._overlapping:
            return self._by_ident.get(idents[0])
        key = (topic, idents)
        try:
            return self._by_copy[key]
        except KeyError:
            pass
        known = [ident for ident in idents if ident in self._by_ident]
        if not known:
            return None
        text = topic.decode(errors="replace")
        chosen: dict[Pipeline, None] = {}
        for ident in known:
            broker = self._broker_of[ident]
            for pipeline in self._by_ident[ident]:
                if pipeline in chosen:
                    continue
                filters = self._filters[(pipeline, broker)]
                matching = [i for i, f in filters if topic_matches(f, text)]
                if (matching[0] if matching else ident) in idents:
                    chosen[pipeline] = None
        if len(self._by_copy) >= _CACHE_LIMIT:
            self._by_copy.clear()
        found = self._by_copy[key] = tuple(chosen)
        return found

    def _for_topic(self, topic: bytes, source: int) -> tuple[Pipeline, ...]:
        if source >= len(self._by_topic):
            return ()  # a link this router has no filters for
        cache = self._by_topic[source]
        try:
            return cache[topic]
        except KeyError:
            pass
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        seen: dict[Pipeline, None] = {}
        text = topic.decode(errors="replace")
        for pattern, pipelines in self._owners[source].items():
            if topic_matches(pattern, text):
                seen.update(dict.fromkeys(pipelines))
        found = cache[topic] = tuple(seen)
        return found

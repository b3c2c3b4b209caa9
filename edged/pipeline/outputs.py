"""Output rules: which published topic, QoS and retain flag an emitted message gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edged.config import OutputRule
from edged.topics import topic_matches

# Sensor topics repeat, so the answer per emitted topic is cached; the bound keeps a filter that
# invents a new topic per message from growing the cache without end.
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Destination:
    topic: str
    qos: int
    retain: bool


class OutputRules:
    """First matching rule wins; a topic no rule matches has no destination (None)."""

    def __init__(self, rules: Sequence[OutputRule], *, node_id: str, pipeline: str) -> None:
        self._rules = tuple(rules)
        self._node_id = node_id
        self._pipeline = pipeline
        self._cache: dict[bytes, Destination | None] = {}

    def destination(self, emitted: bytes) -> Destination | None:
        try:
            return self._cache[emitted]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        found = self._cache[emitted] = self._resolve(emitted.decode())
        return found

    def _resolve(self, topic: str) -> Destination | None:
        for rule in self._rules:
            if topic_matches(rule.match, topic):
                # Plain replacement, not str.format: a template must never reach attributes.
                text = (
                    rule.topic.replace("{topic}", topic)
                    .replace("{node_id}", self._node_id)
                    .replace("{pipeline}", self._pipeline)
                )
                return Destination(text, rule.qos, rule.retain)
        return None

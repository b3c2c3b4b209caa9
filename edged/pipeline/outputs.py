"""Output rules: which published topic, QoS and retain flag an emitted message gets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from edged.config import OutputRule
from edged.topics import topic_matches

_PLACEHOLDER = re.compile(r"\{(topic|node_id|pipeline)\}")
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
        values = {"topic": topic, "node_id": self._node_id, "pipeline": self._pipeline}
        for rule in self._rules:
            if topic_matches(rule.match, topic):
                # One pass of plain replacement, not str.format: a template must never reach
                # attributes, and a placeholder's text inside the emitted topic stays as it is.
                text = _PLACEHOLDER.sub(lambda m: values[m[1]], rule.topic)
                return Destination(text, rule.qos, rule.retain)
        return None

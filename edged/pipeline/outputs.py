"""Output rules: which broker, published topic, QoS and retain flag an emitted message gets.

A broker's limits (`LinkLimits`: payload size, topic length and depth) are checked here, where
the message is still the pipeline's: one that a broker would drop without a word is refused and
dead-lettered instead (`Pipeline._emit`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edged.config import OutputRule
from edged.config.model import LinkLimits
from edged.sizes import format_size
from edged.topics import topic_matches

_PLACEHOLDER = re.compile(r"\{(topic|node_id|pipeline)\}")
# Sensor topics repeat, so the answer per emitted topic is cached; the bound keeps a filter that
# invents a new topic per message from growing the cache without end.
_CACHE_LIMIT = 4096


_NO_LIMIT = sys.maxsize


@dataclass(frozen=True, slots=True)
class Destination:
    topic: str
    qos: int
    retain: bool
    broker: str = "default"
    # The largest payload the broker takes here: one number to compare per message, -1 when
    # it takes nothing at this topic (`refused` says why).
    max_payload: int = _NO_LIMIT
    refused: str | None = None
    #: `properties: pass`: the input's properties go on (else only those the filters set)
    passing: bool = True

    def over_limit(self, payload: bytes) -> str:
        """Why the broker would not take `payload` here."""
        if self.refused is not None:
            return self.refused
        return (
            f"payload of {len(payload)} bytes is over broker {self.broker!r}'s max_payload "
            f"({format_size(self.max_payload)})"
        )


def _topic_refused(topic: str, broker: str, limits: LinkLimits) -> str | None:
    size = len(topic.encode())
    if limits.max_topic_bytes is not None and size > limits.max_topic_bytes:
        return (
            f"topic of {size} bytes is over broker {broker!r}'s max_topic_bytes "
            f"({limits.max_topic_bytes})"
        )
    levels = topic.count("/") + 1
    if limits.max_topic_levels is not None and levels > limits.max_topic_levels:
        return (
            f"topic of {levels} levels is over broker {broker!r}'s max_topic_levels "
            f"({limits.max_topic_levels})"
        )
    return None


class OutputRules:
    """First matching rule wins; a topic no rule matches has no destination (None)."""

    def __init__(
        self,
        rules: Sequence[OutputRule],
        *,
        node_id: str,
        pipeline: str,
        limits: Mapping[str, LinkLimits] | None = None,
    ) -> None:
        self._rules = tuple(rules)
        self._node_id = node_id
        self._pipeline = pipeline
        self._limits = dict(limits or {})
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
                limits = self._limits.get(rule.broker)
                passing = rule.properties == "pass"
                if limits is None:
                    return Destination(text, rule.qos, rule.retain, rule.broker, passing=passing)
                refused = _topic_refused(text, rule.broker, limits)
                max_payload = limits.max_payload if limits.max_payload is not None else _NO_LIMIT
                return Destination(
                    text,
                    rule.qos,
                    rule.retain,
                    rule.broker,
                    -1 if refused is not None else max_payload,
                    refused,
                    passing,
                )
        return None

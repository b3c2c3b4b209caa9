"""Per-pipeline message counters: every message that goes in is accounted for on the way out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class PipelineCounters:
    """`received` messages produce `published` ones; every other fate is a `dropped` reason.

    `filtered` is a filter's own decision to drop (not an error); the error reasons are those of
    `FilterCallError` plus `no_output_rule` and `publish_failed`.
    """

    received: int = 0
    published: int = 0
    filtered: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        return {
            "in": self.received,
            "out": self.published,
            "filtered": self.filtered,
            "dropped": dict(sorted(self.dropped.items())),
        }


@dataclass(slots=True)
class BurstWarning:
    """Log the first event of a burst at once and the rest as one count when it comes round again.

    A filter that traps on every message at 10k msg/s must not write 10k log lines a second.
    """

    interval: float = 10.0
    _next_at: float = 0.0
    suppressed: int = 0

    def should_log(self, now: float) -> bool:
        if now >= self._next_at:
            self._next_at = now + self.interval
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count

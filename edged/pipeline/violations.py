"""What happens when a filter breaks its budgets: one policy for every kind of violation.

The message is dead-lettered and counted, a warning is logged once per burst, and K violations
within T seconds quarantine the filter until a cool-down has passed (see docs/budgets.md).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from edged.mqtt.message import payload_fields
from edged.mqtt.properties import Properties

#: publishes one dead-letter record
DeadLetter = Callable[[dict[str, object]], None]

# Not the filter's fault: dead-lettered and counted, but never a reason to quarantine it.
_NOT_THE_FILTERS_FAULT = frozenset({"input_too_large"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ViolationPolicy:
    quarantine_after: int = 5
    window: float = 10.0
    cooldown: float = 60.0


class Guard:
    """One filter's violation record and quarantine state."""

    __slots__ = ("counts", "out", "quarantines", "reason", "recent", "until")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[float] = deque()
        self.out = False
        self.until = 0.0
        self.quarantines = 0
        self.reason = ""

    def record(self, reason: str, now: float, policy: ViolationPolicy) -> bool:
        """Count one violation; True when it is the one that starts a quarantine."""
        self.counts[reason] += 1
        if reason in _NOT_THE_FILTERS_FAULT or self.out:
            return False
        recent = self.recent
        recent.append(now)
        while recent and recent[0] <= now - policy.window:
            recent.popleft()
        if len(recent) < policy.quarantine_after:
            return False
        recent.clear()
        self.out = True
        self.until = now + policy.cooldown
        self.quarantines += 1
        self.reason = reason
        return True

    def due_for_release(self, now: float) -> bool:
        return self.out and now >= self.until

    def release(self) -> None:
        self.out = False
        self.reason = ""


def dead_letter_record(
    pipeline: str,
    module: str | None,
    reason: str,
    detail: str,
    topic: bytes,
    payload: bytes,
    props: Properties | None = None,
) -> dict[str, object]:
    """One dead letter: the message's topic, payload and MQTT 5 properties (with the W3C
    trace id they carry, if any), and why it was refused (by the filter `module`, or after
    the filters when `module` is None)."""
    record: dict[str, object] = {"pipeline": pipeline}
    if module is not None:
        record["module"] = module
    record["reason"] = reason
    record["detail"] = detail
    record["topic"] = topic.decode(errors="replace")
    record.update(payload_fields(payload))
    if props is not None:
        record["properties"] = props.to_json()
        trace_id = props.trace_id()
        if trace_id is not None:
            record["trace_id"] = trace_id
    record["ts"] = int(time.time() * 1000)
    return record

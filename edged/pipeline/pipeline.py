"""A pipeline: one ordered chain of filter instances between its subscriptions and its outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from edged.engine import Filter, Message, Outcome
from edged.errors import FilterCallError
from edged.pipeline.counters import BurstWarning, PipelineCounters
from edged.pipeline.outputs import OutputRules

#: `(topic, payload, qos, retain) -> accepted`
Publisher = Callable[[str, bytes, int, bool], bool]

log = structlog.get_logger("edged.pipeline")


@dataclass(slots=True)
class Step:
    """One filter of the chain, with what is needed to name it in logs."""

    module: str
    filter: Filter
    tick_interval: float | None = None
    warning: BurstWarning = field(default_factory=BurstWarning)


class Pipeline:
    def __init__(
        self, name: str, steps: Sequence[Step], outputs: OutputRules, publish: Publisher
    ) -> None:
        if not steps:
            raise ValueError("a pipeline needs at least one filter")
        self.name = name
        self.steps = tuple(steps)
        self.counters = PipelineCounters()
        self._outputs = outputs
        self._publish = publish
        self._unrouted = BurstWarning()
        self._failures = 0
        #: per-message debug events cost a call each even when filtered out, so they are opt-in
        self.debug = False

    def process(self, topic: bytes, payload: bytes) -> None:
        """Run one received message through the chain and publish what comes out."""
        counters = self.counters
        counters.received += 1
        first = self.steps[0]
        try:
            out = first.filter.on_message(topic, payload)
        except FilterCallError as exc:
            self._failed(first, exc, topic)
            return
        if len(self.steps) > 1 and out:
            failures = self._failures
            out = self._run_from(1, out)
            if not out and self._failures != failures:
                return  # already counted under the failure's reason
        if self.debug:
            log.debug(
                "message",
                pipeline=self.name,
                topic=topic.decode(errors="replace"),
                size=len(payload),
                emitted=len(out),
            )
        if not out:
            counters.filtered += 1
            return
        for message in out:
            self._emit(message)

    def tick(self, index: int, now_ms: int) -> None:
        """Give filter `index` its tick; what it emits goes through the rest of the chain."""
        step = self.steps[index]
        try:
            out = step.filter.on_tick(now_ms)
        except FilterCallError as exc:
            self._failed(step, exc, b"", during="tick")
            return
        if index + 1 < len(self.steps) and out:
            out = self._run_from(index + 1, out)
        for message in out:
            self._emit(message)

    def _run_from(self, start: int, messages: Outcome) -> Outcome:
        for step in self.steps[start:]:
            produced: list[Message] = []
            for topic, payload in messages:
                try:
                    produced.extend(step.filter.on_message(topic, payload))
                except FilterCallError as exc:
                    self._failed(step, exc, topic)
            messages = produced
            if not messages:
                break
        return messages

    def _emit(self, message: Message) -> None:
        topic, payload = message
        dest = self._outputs.destination(topic)
        if dest is None:
            self.counters.dropped["no_output_rule"] += 1
            if self._unrouted.should_log(time.monotonic()):
                log.warning(
                    "no_output_rule",
                    pipeline=self.name,
                    topic=topic.decode(errors="replace"),
                    suppressed=self._unrouted.take_suppressed(),
                )
            return
        if self._publish(dest.topic, payload, dest.qos, dest.retain):
            self.counters.published += 1
        else:
            self.counters.dropped["publish_failed"] += 1

    def _failed(
        self, step: Step, exc: FilterCallError, topic: bytes, during: str = "message"
    ) -> None:
        self.counters.dropped[exc.reason] += 1
        self._failures += 1
        if step.warning.should_log(time.monotonic()):
            log.warning(
                "filter_failed",
                pipeline=self.name,
                module=step.module,
                topic=topic.decode(errors="replace"),
                reason=exc.reason,
                detail=exc.detail,
                during=during,
                suppressed=step.warning.take_suppressed(),
            )

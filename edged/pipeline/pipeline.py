"""A pipeline: one ordered chain of filter instances between its subscriptions and its outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from edged.engine import Filter, Outcome, PropsRecord, Record, SavedState
from edged.errors import FilterCallError, FilterRejected, ModuleError, OutputRefused
from edged.mqtt.properties import Properties
from edged.pipeline import carry
from edged.pipeline.carry import StateRecord
from edged.pipeline.counters import BurstWarning, PipelineCounters
from edged.pipeline.outputs import Destination, OutputRules
from edged.pipeline.violations import DeadLetter, Guard, ViolationPolicy, dead_letter_record

#: `(topic, payload, qos, retain, broker, properties) -> accepted`, properties as MQTT 5 writes
#: them (b"" for none); raises OutputRefused for an output its broker would never take
Publisher = Callable[[str, bytes, int, bool, str, bytes], bool]

log = structlog.get_logger("edged.pipeline")

_DROPPED: Outcome = ()
#: the drop reason (and dead letter's) of an output its broker's limits refuse
BROKER_LIMIT = "broker_limit"
#: the drop reason (and dead letter's) of an input a filter refused itself (result REJECT)
REJECTED = "rejected"


@dataclass(slots=True)
class Step:
    """One filter of the chain: its instance, how to make a fresh one, and its record."""

    module: str
    filter: Filter
    tick_interval: float | None = None
    #: a fresh instance (new memory, init again) for when a quarantine ends
    renew: Callable[[], Filter] | None = None
    guard: Guard = field(default_factory=Guard)
    warning: BurstWarning = field(default_factory=BurstWarning)
    #: what makes two steps the same filter (module bytes, parameters, budgets, tick
    #: interval): a reload keeps a step whose identity did not change (edged.pipeline.carry)
    identity: Hashable | None = None
    state: StateRecord = field(default_factory=StateRecord)


class Pipeline:
    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        outputs: OutputRules,
        publish: Publisher,
        *,
        policy: ViolationPolicy | None = None,
        on_quarantine: Literal["drop", "skip"] = "drop",
        dead_letter: DeadLetter | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not steps:
            raise ValueError("a pipeline needs at least one filter")
        self.name = name
        self.steps = tuple(steps)
        self.counters = PipelineCounters()
        self._outputs = outputs
        self._publish = publish
        self._policy = policy or ViolationPolicy()
        self._skip_when_out = on_quarantine == "skip"
        self._dead_letter = dead_letter
        self._on_change = on_change
        self._chained = len(self.steps) > 1
        self._props_aware = _props_aware(self.steps)
        #: the properties of the message going through a chain that does not read them
        self._props: Properties | None = None
        self._unrouted = BurstWarning()
        self._over_limit = BurstWarning()
        self._failures = 0
        #: per-message debug events cost a call each even when filtered out, so they are opt-in
        self.debug = False

    # -- messages -------------------------------------------------------------------------

    def process(self, topic: bytes, payload: bytes, props: Properties | None = None) -> None:
        """Run one received message through the chain and publish what comes out."""
        if self._props_aware:
            self._process_props(topic, payload, props)
            return
        # No filter here reads or sets properties: every output carries its input's.
        self._props = props
        counters = self.counters
        counters.received += 1
        failures = self._failures
        out = self._call(self.steps[0], topic, payload)
        if out and self._chained:
            out = self._run_from(1, out)
        if self.debug:
            log.debug(
                "message",
                pipeline=self.name,
                topic=topic.decode(errors="replace"),
                size=len(payload),
                emitted=len(out),
            )
        if not out:
            if self._failures == failures:  # else already counted under its reason
                counters.filtered += 1
            return
        for message in out:
            self._emit(message, props)

    def tick(self, index: int, now_ms: int) -> None:
        """Give filter `index` its tick; what it emits goes through the rest of the chain."""
        step = self.steps[index]
        if step.guard.out:
            return
        if self._props_aware:
            self._tick_props(step, index, now_ms)
            return
        self._props = None
        try:
            out = step.filter.on_tick(now_ms)
        except FilterCallError as exc:
            self._violation(step, exc, b"", b"", during="tick")
            return
        if index + 1 < len(self.steps) and out:
            out = self._run_from(index + 1, out)
        for message in out:
            self._emit(message)

    def _call(self, step: Step, topic: bytes, payload: bytes) -> Outcome:
        if step.guard.out:
            if self._skip_when_out:
                return ((topic, payload),)
            self.counters.dropped["quarantined"] += 1
            self._failures += 1
            return _DROPPED
        try:
            return step.filter.on_message(topic, payload)
        except FilterCallError as exc:
            self._violation(step, exc, topic, payload, props=self._props)
            return _DROPPED
        except FilterRejected as rejected:
            self._rejected(step, rejected, topic, payload, self._props)
            return rejected.records

    def _run_from(self, start: int, messages: Outcome) -> Outcome:
        for step in self.steps[start:]:
            produced: list[Record] = []
            for topic, payload in messages:
                produced.extend(self._call(step, topic, payload))
            messages = produced
            if not messages:
                break
        return messages

    # -- messages with MQTT 5 properties (docs/properties.md) ------------------------------
    #
    # The same chain as above, with each message's properties beside it: taken only by a
    # chain with a filter that reads or sets them. Any other chain runs as above, its outputs
    # carrying the properties of their input: a filter that never reads them costs nothing
    # more (benchmarks/properties.py).

    def _process_props(self, topic: bytes, payload: bytes, props: Properties | None) -> None:
        counters = self.counters
        counters.received += 1
        failures = self._failures
        out = self._run_props(0, [(topic, payload, props)])
        if not out:
            if self._failures == failures:
                counters.filtered += 1
            return
        for message_topic, message_payload, message_props in out:
            self._emit((message_topic, message_payload), message_props)

    def _tick_props(self, step: Step, index: int, now_ms: int) -> None:
        try:
            out = step.filter.on_tick_props(now_ms)
        except FilterCallError as exc:
            self._violation(step, exc, b"", b"", during="tick")
            return
        if index + 1 < len(self.steps) and out:
            out = self._run_props(index + 1, out)
        for topic, payload, props in out:
            self._emit((topic, payload), props)

    def _run_props(self, start: int, messages: list[PropsRecord]) -> list[PropsRecord]:
        for step in self.steps[start:]:
            produced: list[PropsRecord] = []
            for topic, payload, props in messages:
                produced.extend(self._call_props(step, topic, payload, props))
            messages = produced
            if not messages:
                break
        return messages

    def _call_props(
        self, step: Step, topic: bytes, payload: bytes, props: Properties | None
    ) -> list[PropsRecord]:
        if step.guard.out:
            if self._skip_when_out:
                return [(topic, payload, props)]
            self.counters.dropped["quarantined"] += 1
            self._failures += 1
            return []
        try:
            return step.filter.on_message_props(topic, payload, props)
        except FilterCallError as exc:
            self._violation(step, exc, topic, payload, props=props)
            return []
        except FilterRejected as rejected:
            self._rejected(step, rejected, topic, payload, props)
            return [r if len(r) == 3 else (r[0], r[1], props) for r in rejected.records]

    def _emit(self, message: Record, props: Properties | None = None) -> None:
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
        if len(payload) > dest.max_payload:
            self._over_broker_limit(dest, topic, payload, props)
            return
        wire = b"" if props is None else props.for_output(dest.passing)
        try:
            published = self._publish(dest.topic, payload, dest.qos, dest.retain, dest.broker, wire)
        except OutputRefused as refused:
            self._refused(dest, topic, payload, refused.reason, refused.detail, props)
            return
        if published:
            self.counters.published += 1
        else:
            self.counters.dropped["publish_failed"] += 1

    def _over_broker_limit(
        self, dest: Destination, topic: bytes, payload: bytes, props: Properties | None
    ) -> None:
        self._refused(dest, topic, payload, BROKER_LIMIT, dest.over_limit(payload), props)

    def _refused(
        self,
        dest: Destination,
        topic: bytes,
        payload: bytes,
        reason: str,
        detail: str,
        props: Properties | None = None,
    ) -> None:
        """An output its broker would drop without a word, or disconnect on: counted and
        dead-lettered instead (never the filter's fault, so no reason to quarantine it)."""
        self.counters.dropped[reason] += 1
        self._failures += 1
        if self._dead_letter is not None:
            record = dead_letter_record(self.name, None, reason, detail, topic, payload, props)
            record["output_topic"] = dest.topic
            record["broker"] = dest.broker
            self._dead_letter(record)
        if self._over_limit.should_log(time.monotonic()):
            log.warning(
                "output_over_broker_limit",
                pipeline=self.name,
                broker=dest.broker,
                topic=dest.topic,
                detail=detail,
                suppressed=self._over_limit.take_suppressed(),
                **_trace(props),
            )

    # -- violations and quarantine --------------------------------------------------------

    def _rejected(
        self,
        step: Step,
        rejected: FilterRejected,
        topic: bytes,
        payload: bytes,
        props: Properties | None = None,
    ) -> None:
        """An input the filter refused on purpose: dead-lettered with its reason and counted,
        but no violation (the filter did what it was written to do)."""
        self.counters.dropped[REJECTED] += 1
        self._failures += 1
        if self._dead_letter is not None:
            self._dead_letter(
                dead_letter_record(
                    self.name, step.module, REJECTED, rejected.text, topic, payload, props
                )
            )
        if step.warning.should_log(time.monotonic()):
            log.warning(
                "message_rejected",
                pipeline=self.name,
                module=step.module,
                topic=topic.decode(errors="replace"),
                detail=rejected.text,
                suppressed=step.warning.take_suppressed(),
                **_trace(props),
            )

    def _violation(
        self,
        step: Step,
        exc: FilterCallError,
        topic: bytes,
        payload: bytes,
        during: str = "message",
        props: Properties | None = None,
    ) -> None:
        self.counters.dropped[exc.reason] += 1
        self._failures += 1
        if self._dead_letter is not None:
            self._dead_letter(
                dead_letter_record(
                    self.name, step.module, exc.reason, exc.detail, topic, payload, props
                )
            )
        now = time.monotonic()
        if step.warning.should_log(now):
            log.warning(
                "filter_failed",
                pipeline=self.name,
                module=step.module,
                topic=topic.decode(errors="replace"),
                reason=exc.reason,
                detail=exc.detail,
                during=during,
                suppressed=step.warning.take_suppressed(),
                **_trace(props),
            )
        if step.guard.record(exc.reason, now, self._policy):
            log.warning(
                "filter_quarantined",
                pipeline=self.name,
                module=step.module,
                reason=exc.reason,
                violations=self._policy.quarantine_after,
                window_s=self._policy.window,
                cooldown_s=self._policy.cooldown,
                on_quarantine="skip" if self._skip_when_out else "drop",
            )
            if self._on_change is not None:
                self._on_change()

    def replace_step(
        self, index: int, step: Step, *, why: str = "swap", fallback: SavedState | None = None
    ) -> SavedState | None:
        """Swap one filter for another between two messages (a deploy or a rollback): `step`,
        just made, takes the old one's state (saved now), or `fallback` when it refuses that
        (edged.pipeline.carry). Returns the state the old one had."""
        steps = list(self.steps)
        old = steps[index]
        state = carry.save(old.filter, old.state, pipeline=self.name, module=old.module)
        step.state = old.state
        if state is not None or fallback is not None:
            step.filter = carry.resume(
                step.renew or (lambda: step.filter),
                [state, fallback],
                step.state,
                pipeline=self.name,
                module=step.module,
                why=why,
                instance=step.filter,
            )
        step.filter.stats = old.filter.stats
        steps[index] = step
        self.steps = tuple(steps)
        self._props_aware = _props_aware(self.steps)
        if self._on_change is not None:
            self._on_change()  # a quarantine of the old filter ends with it
        return state

    def release_due(self, now: float) -> None:
        """End quarantines whose cool-down is over, each with a fresh instance of its filter."""
        changed = False
        for step in self.steps:
            if not step.guard.due_for_release(now):
                continue
            if step.renew is not None:
                try:
                    # The last state saved while it served, not what it holds now.
                    fresh = carry.resume(
                        step.renew,
                        [step.state.saved],
                        step.state,
                        pipeline=self.name,
                        module=step.module,
                        why="quarantine release",
                    )
                except ModuleError as exc:
                    step.guard.until = now + self._policy.cooldown
                    log.error(
                        "filter_renew_failed",
                        pipeline=self.name,
                        module=step.module,
                        reason=exc.reason,
                    )
                    continue
                fresh.stats = step.filter.stats
                step.filter = fresh
            step.guard.release()
            changed = True
            log.info("filter_released", pipeline=self.name, module=step.module)
        if changed and self._on_change is not None:
            self._on_change()

    @property
    def quarantined(self) -> list[dict[str, object]]:
        return [
            {"pipeline": self.name, "module": s.module, "index": i, "reason": s.guard.reason}
            for i, s in enumerate(self.steps)
            if s.guard.out
        ]

    def snapshot(self) -> dict[str, object]:
        """Counters plus per-filter figures, for the metrics topic and `edged stats`."""
        filters = []
        for step in self.steps:
            stats = step.filter.stats
            filters.append(
                {
                    "module": step.module,
                    "calls": stats.calls,
                    "violations": dict(sorted(step.guard.counts.items())),
                    "fuel_used": stats.fuel_used,
                    "latency_us": {
                        "p50": stats.percentile_us(0.5),
                        "p99": stats.percentile_us(0.99),
                    },
                    "quarantined": step.guard.out,
                    "quarantines": step.guard.quarantines,
                    **({"state": step.state.snapshot()} if step.filter.has_state else {}),
                }
            )
        return {**self.counters.snapshot(), "filters": filters}


def _props_aware(steps: Sequence[Step]) -> bool:
    """Whether a filter of the chain reads or sets properties (then every message takes the
    path that carries them)."""
    return any(step.filter.wants_properties for step in steps)


def _trace(props: Properties | None) -> dict[str, str]:
    """The W3C trace id of a message, for its log events."""
    trace_id = props.trace_id() if props is not None else None
    return {} if trace_id is None else {"trace_id": trace_id}

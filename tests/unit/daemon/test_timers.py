"""Ticks keep their cadence and never pile up after the loop was busy."""

from __future__ import annotations

import time
from pathlib import Path

from edged.daemon.timers import next_due, run_due, ticks_of
from edged.engine import WasmtimeEngine
from edged.pipeline import Pipeline, Step
from edged.pipeline.outputs import OutputRules
from tests.helpers.paths import wasm

ENGINE = WasmtimeEngine()


def _average_pipeline(published: list[tuple[str, bytes]], tick_interval: float) -> Pipeline:
    """The example `average` filter, which emits its window on every tick."""
    module = ENGINE.load_file("average", Path(wasm("average")))
    step = Step("average", module.instantiate({}, lambda *_: None), tick_interval)
    outputs = OutputRules((), node_id="n", pipeline="p")

    def publish(
        topic: str, payload: bytes, qos: int, retain: bool, broker: str, properties: bytes = b""
    ) -> bool:
        published.append((topic, payload))
        return True

    return Pipeline("p", [step], outputs, publish)


def test_a_tick_is_due_one_interval_from_now() -> None:
    """Only filters with a tick interval get ticks, first due one interval after the start."""
    pipeline = _average_pipeline([], 2.0)
    (tick,) = ticks_of([pipeline], now=100.0)
    assert (tick.due, tick.index) == (102.0, 0)
    assert next_due([]) == float("inf")


def test_missed_ticks_are_not_caught_up() -> None:
    """A loop busy for ten intervals gives one tick, not ten, and keeps counting from now."""
    pipeline = _average_pipeline([], 1.0)
    ticks = ticks_of([pipeline], now=0.0)
    calls_before = pipeline.steps[0].filter.stats.calls
    now = time.monotonic()
    ticks[0].due = now - 10.0
    assert run_due(ticks, now) == now + 1.0
    assert pipeline.steps[0].filter.stats.calls == calls_before + 1
    assert run_due(ticks, now + 0.5) == now + 1.0  # not due yet: nothing called
    assert pipeline.steps[0].filter.stats.calls == calls_before + 1

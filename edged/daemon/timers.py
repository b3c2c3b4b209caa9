"""When the daemon's loop next has something to do besides messages: ticks and periodic work."""

from __future__ import annotations

import time
from collections.abc import Sequence

from edged.config import Config
from edged.pipeline import Pipeline


class Tick:
    """One filter's `edged_on_tick`, due every `interval` seconds."""

    __slots__ = ("due", "index", "interval", "pipeline")

    def __init__(self, due: float, interval: float, pipeline: Pipeline, index: int) -> None:
        self.due = due
        self.interval = interval
        self.pipeline = pipeline
        self.index = index


def ticks_of(
    pipelines: Sequence[Pipeline], now: float, previous: Sequence[Tick] = ()
) -> list[Tick]:
    """A tick for every filter of `pipelines` that has a tick interval, first due one interval
    from now; a filter that had one in `previous` (kept whole by a reload) keeps its due time."""
    due = {
        id(t.pipeline.steps[t.index]): t.due for t in previous if t.index < len(t.pipeline.steps)
    }
    return [
        Tick(due.get(id(step), now + step.tick_interval), step.tick_interval, pipeline, index)
        for pipeline in pipelines
        for index, step in enumerate(pipeline.steps)
        if step.tick_interval is not None
    ]


def run_due(ticks: Sequence[Tick], now: float) -> float:
    """Give every tick that is due its call; returns when the next one is due."""
    now_ms = int(time.time() * 1000)
    for tick in ticks:
        if now >= tick.due:
            tick.pipeline.tick(tick.index, now_ms)
            # Keep the cadence, but never try to catch up on ticks missed while busy.
            tick.due += tick.interval
            if tick.due <= now:
                tick.due = now + tick.interval
    return next_due(ticks)


def next_due(ticks: Sequence[Tick]) -> float:
    return min((t.due for t in ticks), default=float("inf"))


class Timers:
    """The next time each periodic job of the loop is due (monotonic seconds)."""

    def __init__(self, config: Config, watchdog_every: float | None) -> None:
        now = time.monotonic()
        self.watchdog_every = watchdog_every or float("inf")
        self.next_watchdog = now if watchdog_every else float("inf")
        self.next_tick = float("inf")
        self.next_housekeeping = now + 1.0
        self.next_checkpoint = now + config.state.checkpoint_interval
        self.next_summary = now + config.log.summary_interval
        self.metrics_every = config.metrics.interval
        self.next_metrics = now + self.metrics_every if self.metrics_every else float("inf")

    def next_due(self) -> float:
        return min(
            self.next_tick,
            self.next_housekeeping,
            self.next_checkpoint,
            self.next_summary,
            self.next_metrics,
            self.next_watchdog,
        )

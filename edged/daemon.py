"""The daemon: build pipelines from the config, then run the one loop that drives everything.

One thread does the network, the filters, the ticks and the summaries, in that order of urgency;
see `edged.mqtt.link` for why.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import structlog

import edged
from edged.config import Config
from edged.engine import WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.errors import EdgedError, ModuleError
from edged.mqtt.link import BrokerLink
from edged.pipeline import Pipeline, Publisher, Step
from edged.pipeline.outputs import OutputRules
from edged.pipeline.router import Router
from edged.systemd import Notifier

log = structlog.get_logger("edged.daemon")

# The longest the loop waits for the network before it looks at ticks and signals again.
_MAX_WAIT = 0.25


class SetupError(EdgedError):
    """Modules or pipelines could not be built; `problems` lists each with its config key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} with modules:"
            + "".join(f"\n  - {p}" for p in problems)
        )


def state_dir(config: Config) -> Path:
    """Where compiled modules are kept: the config's, systemd's StateDirectory, or the user's."""
    if config.state_dir is not None:
        return config.state_dir
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    return Path.home() / ".local" / "state" / "edged"


def make_engine(config: Config) -> WasmtimeEngine:
    return WasmtimeEngine(cache_dir=state_dir(config) / "compiled")


def build_pipelines(config: Config, engine: WasmtimeEngine, publish: Publisher) -> list[Pipeline]:
    """Load every module and instantiate every filter, gathering all problems before failing."""
    problems: list[str] = []
    modules: dict[str, WasmtimeModule] = {}
    for name, mod in config.modules.items():
        try:
            modules[name] = engine.load_file(name, mod.file)
        except ModuleError as exc:
            problems.append(f"modules.{name}: {exc.reason}")
    pipelines: list[Pipeline] = []
    for p_index, pc in enumerate(config.pipelines):
        steps: list[Step] = []
        for f_index, fc in enumerate(pc.filters):
            module = modules.get(fc.module)
            if module is None:
                continue  # its load problem is already listed
            where = f"pipelines[{p_index}].filters[{f_index}]"
            if fc.tick_interval is not None and not module.has_tick:
                problems.append(f"{where}.tick_interval: module '{fc.module}' has no edged_on_tick")
                continue
            try:
                instance = module.instantiate(fc.params, _guest_logger(pc.name, fc.module))
            except ModuleError as exc:
                problems.append(f"{where}: module '{fc.module}' {exc.reason}")
                continue
            steps.append(Step(fc.module, instance, fc.tick_interval))
        if len(steps) == len(pc.filters):
            outputs = OutputRules(pc.outputs, node_id=config.node_id, pipeline=pc.name)
            pipelines.append(Pipeline(pc.name, steps, outputs, publish))
    if problems:
        raise SetupError(problems)
    return pipelines


def _guest_logger(pipeline: str, module: str) -> Callable[[str, str], None]:
    bound = log.bind(pipeline=pipeline, module=module)

    def emit(level: str, text: str) -> None:
        getattr(bound, level)("filter_log", text=text)

    return emit


@dataclass(slots=True)
class _Tick:
    due: float
    interval: float
    pipeline: Pipeline
    index: int


class Daemon:
    """Everything `edged run` does, ready to `run()` until `stop()` or SIGTERM."""

    def __init__(self, config: Config, *, on_ready: Callable[[], None] | None = None) -> None:
        self.config = config
        self.engine = make_engine(config)
        if self.engine.cache is not None and not self.engine.cache.usable:
            log.warning("compiled_cache_off", reason=self.engine.cache.problem)
        self.pipelines = build_pipelines(config, self.engine, self._publish)
        for pipeline in self.pipelines:
            pipeline.debug = config.log.level == "debug"
        by_name = {p.name: p for p in self.pipelines}
        self.router = Router([(by_name[pc.name], pc.subscribe) for pc in config.pipelines])
        self._stop = threading.Event()
        self._on_ready = on_ready
        self.notifier = Notifier()
        self.internal_errors = 0
        self.link = BrokerLink(
            config.broker,
            client_id=config.client_id,
            status_topic=config.status_topic,
            status={
                "node_id": config.node_id,
                "version": edged.__version__,
                "pipelines": [p.name for p in self.pipelines],
            },
            subscriptions=self.router.subscriptions,
            on_message=self._deliver,
            on_ready=self._ready,
        )
        now = time.monotonic()
        self._ticks = [
            _Tick(now + step.tick_interval, step.tick_interval, pipeline, index)
            for pipeline in self.pipelines
            for index, step in enumerate(pipeline.steps)
            if step.tick_interval is not None
        ]

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        log.info(
            "starting",
            node_id=self.config.node_id,
            pipelines=len(self.pipelines),
            modules=len(self.config.modules),
            compiled_cache_hits=self.engine.cache_hits,
            broker=f"{self.config.broker.host}:{self.config.broker.port}",
        )
        summary_every = self.config.log.summary_interval
        next_summary = time.monotonic() + summary_every
        next_tick = min((t.due for t in self._ticks), default=float("inf"))
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self.link.step(max(0.0, min(_MAX_WAIT, next_tick - now)))
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = self._run_ticks(now)
                if now >= next_summary:
                    self._summary()
                    next_summary = now + summary_every
        finally:
            self.notifier.notify(STOPPING=1, STATUS="stopping")
            self.link.close()
            self._summary()
            log.info("stopped")

    def _ready(self) -> None:
        log.info("ready", subscriptions=[s.topic for s in self.router.subscriptions])
        # Sent again after each reconnect; systemd takes the first READY and the fresh STATUS.
        broker = self.config.broker
        self.notifier.notify(
            READY=1,
            STATUS=f"{len(self.pipelines)} pipelines, connected to {broker.host}:{broker.port}",
        )
        if self._on_ready is not None:
            self._on_ready()

    def _deliver(self, message: paho.MQTTMessage) -> None:
        try:
            self.router.deliver(message)
        except Exception:
            # A bug of ours must cost one message, never the daemon; it is counted and logged.
            self.internal_errors += 1
            log.exception("internal_error", topic=message.topic)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self.link.publish(topic, payload, qos, retain)

    def _run_ticks(self, now: float) -> float:
        now_ms = int(time.time() * 1000)
        for tick in self._ticks:
            if now >= tick.due:
                tick.pipeline.tick(tick.index, now_ms)
                # Keep the cadence, but never try to catch up on ticks missed while busy.
                tick.due += tick.interval
                if tick.due <= now:
                    tick.due = now + tick.interval
        return min(t.due for t in self._ticks)

    def _summary(self) -> None:
        log.info(
            "summary",
            pipelines={p.name: p.counters.snapshot() for p in self.pipelines},
            unrouted=self.router.unrouted,
            internal_errors=self.internal_errors,
            connected=self.link.connected,
        )

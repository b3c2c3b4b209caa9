"""From a config to running parts: the engine, every module loaded, every pipeline built.

Shared by `edged run` (the daemon, at start and on reload) and `edged check`, so both refuse
exactly the same things with the same messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from edged.config import Config, FilterConfig, ParamValue, PipelineConfig
from edged.engine import WasmtimeEngine
from edged.engine.wasmtime_engine import EngineSettings, WasmtimeModule
from edged.errors import ModuleError, SetupError
from edged.pipeline import Pipeline, Publisher, Step, carry
from edged.pipeline.filterlog import FilterLog
from edged.pipeline.outputs import OutputRules
from edged.pipeline.violations import DeadLetter, ViolationPolicy
from edged.sizes import format_bytes
from edged.statedir import StateDir

log = structlog.get_logger("edged.daemon")


def state_dir(config: Config) -> Path:
    """The state directory's root (its layout: `edged.statedir`)."""
    return StateDir.of(config).root


def make_engine(config: Config) -> WasmtimeEngine:
    settings = EngineSettings(
        wasm_stack=config.engine.wasm_stack, epoch_tick_ms=config.engine.epoch_tick_ms
    )
    return WasmtimeEngine(settings, cache_dir=StateDir.of(config).compiled)


def build_pipelines(
    config: Config,
    engine: WasmtimeEngine,
    publish: Publisher,
    *,
    dead_letter: DeadLetter | None = None,
    on_change: Callable[[], None] | None = None,
    pushed: Mapping[str, Pushed] | None = None,
    previous: Sequence[Pipeline] = (),
) -> list[Pipeline]:
    """Load every module and instantiate every filter, gathering all problems before failing.

    `pushed` holds the modules deployed over MQTT, which stand in for the config's files.
    `previous` are the pipelines running now (a reload): a filter that did not change is
    kept as it is, one that changed takes over its state, and a pipeline of the same name keeps
    its counters (edged.pipeline.carry).
    """
    problems: list[str] = []
    pushed = pushed or {}
    running = {key: step for key, step in step_keys(previous)}
    counters = {p.name: p.counters for p in previous}
    modules: dict[str, WasmtimeModule] = {}
    for name, mod in config.modules.items():
        if name in pushed:
            modules[name] = pushed[name].module
            continue
        try:
            modules[name] = engine.load_file(name, mod.file)
        except ModuleError as exc:
            problems.append(f"modules.{name}: {exc.reason}")
            continue
        if (refused := modules[name].refused_grants(mod.capabilities)) is not None:
            problems.append(f"modules.{name}.capabilities: module '{name}' {refused}")
            del modules[name]
    policy = ViolationPolicy(
        quarantine_after=config.violations.quarantine_after,
        window=config.violations.window,
        cooldown=config.violations.cooldown,
    )
    budget = config.daemon.memory_budget
    committed = 0
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
            budgets = config.modules[fc.module].budgets
            if committed + budgets.memory > budget:
                problems.append(
                    f"{where}: module '{fc.module}' memory budget {format_bytes(budgets.memory)} "
                    f"would bring the total to {format_bytes(committed + budgets.memory)}, over "
                    f"daemon.memory_budget {format_bytes(budget)}"
                )
                continue
            committed += budgets.memory
            entry = pushed.get(fc.module)
            key = step_key(
                pc.name, fc.module, sum(f.module == fc.module for f in pc.filters[:f_index])
            )
            try:
                steps.append(
                    make_step(
                        config,
                        pc,
                        fc,
                        module,
                        entry.params if entry else None,
                        running.get(key),
                        entry.capabilities if entry else None,
                    )
                )
            except ModuleError as exc:
                problems.append(f"{where}: module '{fc.module}' {exc.reason}")
        if len(steps) == len(pc.filters):
            outputs = OutputRules(
                pc.outputs,
                node_id=config.node_id,
                pipeline=pc.name,
                limits={name: b.limits for name, b in config.brokers.items() if b.limits.any},
            )
            pipeline = Pipeline(
                pc.name,
                steps,
                outputs,
                publish,
                policy=policy,
                on_quarantine=pc.on_quarantine,
                dead_letter=dead_letter,
                on_change=on_change,
            )
            if pc.name in counters:
                pipeline.counters = counters[pc.name]
            pipelines.append(pipeline)
    if problems:
        raise SetupError(problems)
    return pipelines


@dataclass(frozen=True, slots=True)
class Pushed:
    """A module deployed over MQTT: its compiled code, and params replacing the config's."""

    module: WasmtimeModule
    params: Mapping[str, ParamValue] | None = None
    #: the WASI capabilities granted to it (its manifest's), instead of the config's
    capabilities: frozenset[str] | None = None


def step_key(pipeline: str, module: str, occurrence: int) -> str:
    """What names one filter across configs and restarts: its pipeline, its module, and which
    use of that module in the pipeline it is (0 for the first)."""
    return f"{pipeline}/{module}/{occurrence}"


def step_keys(pipelines: Iterable[Pipeline]) -> Iterable[tuple[str, Step]]:
    """Every step of `pipelines` with its `step_key`."""
    for pipeline in pipelines:
        seen: dict[str, int] = {}
        for step in pipeline.steps:
            occurrence = seen.get(step.module, 0)
            seen[step.module] = occurrence + 1
            yield step_key(pipeline.name, step.module, occurrence), step


def make_step(
    config: Config,
    pc: PipelineConfig,
    fc: FilterConfig,
    module: WasmtimeModule,
    pushed_params: Mapping[str, ParamValue] | None = None,
    running: Step | None = None,
    capabilities: frozenset[str] | None = None,
) -> Step:
    """One ready filter of a pipeline; raises ModuleError when the module refuses its params.

    `running` is the same filter in the config being replaced: kept whole when nothing about
    it changed, else the new instance takes over its state (edged.pipeline.carry)."""
    params: Mapping[str, ParamValue] = fc.params
    if pushed_params is not None:
        # Pushed params replace the module's; what the pipeline set for itself still wins.
        params = {**pushed_params, **fc.own_params}
    budgets = config.modules[fc.module].budgets
    if capabilities is None:
        capabilities = config.modules[fc.module].capabilities
    identity: Hashable = (
        module.digest, tuple(params.items()), budgets, fc.tick_interval, capabilities
    )  # fmt: skip
    if running is not None and running.identity == identity:
        return running
    renew = functools.partial(
        module.instantiate,
        params,
        FilterLog(pc.name, fc.module),
        budgets,
        capabilities,
    )
    step = Step(fc.module, renew(), fc.tick_interval, renew, identity=identity)
    if running is not None:
        # a changed filter is a swap to itself with new parameters
        state = carry.save(running.filter, running.state, pipeline=pc.name, module=fc.module)
        step.state = running.state
        step.filter = carry.resume(
            renew, [state], step.state, pipeline=pc.name, module=fc.module, why="reload",
            instance=step.filter,
        )  # fmt: skip
        step.filter.stats = running.filter.stats  # its violation record starts anew
        step.warning = running.warning
    return step

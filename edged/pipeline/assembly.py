"""From a config to running parts: the engine, every module loaded, every pipeline built.

Shared by `edged run` (the daemon, at start and on reload) and `edged check`, so both refuse
exactly the same things with the same messages.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from edged.config import Config, FilterConfig, ParamValue, PipelineConfig
from edged.engine import WasmtimeEngine
from edged.engine.wasmtime_engine import EngineSettings, WasmtimeModule
from edged.errors import ModuleError, SetupError
from edged.pipeline import Pipeline, Publisher, Step
from edged.pipeline.outputs import OutputRules
from edged.pipeline.violations import DeadLetter, ViolationPolicy
from edged.sizes import format_bytes

log = structlog.get_logger("edged.daemon")


def state_dir(config: Config) -> Path:
    """Where compiled modules are kept: the config's, systemd's StateDirectory, or the user's."""
    if config.state_dir is not None:
        return config.state_dir
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    return Path.home() / ".local" / "state" / "edged"


def make_engine(config: Config) -> WasmtimeEngine:
    settings = EngineSettings(
        wasm_stack=config.engine.wasm_stack, epoch_tick_ms=config.engine.epoch_tick_ms
    )
    return WasmtimeEngine(settings, cache_dir=state_dir(config) / "compiled")


def build_pipelines(
    config: Config,
    engine: WasmtimeEngine,
    publish: Publisher,
    *,
    dead_letter: DeadLetter | None = None,
    on_change: Callable[[], None] | None = None,
    pushed: Mapping[str, Pushed] | None = None,
) -> list[Pipeline]:
    """Load every module and instantiate every filter, gathering all problems before failing.

    `pushed` holds the modules deployed over MQTT, which stand in for the config's files.
    """
    problems: list[str] = []
    pushed = pushed or {}
    modules: dict[str, WasmtimeModule] = {}
    for name, mod in config.modules.items():
        if name in pushed:
            modules[name] = pushed[name].module
            continue
        try:
            modules[name] = engine.load_file(name, mod.file)
        except ModuleError as exc:
            problems.append(f"modules.{name}: {exc.reason}")
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
            try:
                steps.append(make_step(config, pc, fc, module, entry.params if entry else None))
            except ModuleError as exc:
                problems.append(f"{where}: module '{fc.module}' {exc.reason}")
        if len(steps) == len(pc.filters):
            outputs = OutputRules(
                pc.outputs,
                node_id=config.node_id,
                pipeline=pc.name,
                limits={name: b.limits for name, b in config.brokers.items() if b.limits.any},
            )
            pipelines.append(
                Pipeline(
                    pc.name,
                    steps,
                    outputs,
                    publish,
                    policy=policy,
                    on_quarantine=pc.on_quarantine,
                    dead_letter=dead_letter,
                    on_change=on_change,
                )
            )
    if problems:
        raise SetupError(problems)
    return pipelines


@dataclass(frozen=True, slots=True)
class Pushed:
    """A module deployed over MQTT: its compiled code, and params replacing the config's."""

    module: WasmtimeModule
    params: Mapping[str, ParamValue] | None = None


def make_step(
    config: Config,
    pc: PipelineConfig,
    fc: FilterConfig,
    module: WasmtimeModule,
    pushed_params: Mapping[str, ParamValue] | None = None,
) -> Step:
    """One ready filter of a pipeline; raises ModuleError when the module refuses its params."""
    params: Mapping[str, ParamValue] = fc.params
    if pushed_params is not None:
        # Pushed params replace the module's; what the pipeline set for itself still wins.
        params = {**pushed_params, **fc.own_params}
    renew = functools.partial(
        module.instantiate,
        params,
        _guest_logger(pc.name, fc.module),
        config.modules[fc.module].budgets,
    )
    return Step(fc.module, renew(), fc.tick_interval, renew)


def _guest_logger(pipeline: str, module: str) -> Callable[[str, str], None]:
    bound = log.bind(pipeline=pipeline, module=module)

    def emit(level: str, text: str) -> None:
        getattr(bound, level)("filter_log", text=text)

    return emit

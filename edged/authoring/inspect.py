"""`edged filter inspect`: what a module declares, and whether a node would take it.

The shape (exports, imports, memory) comes from the compiled module; the ABI version and buffer
areas from calling it in a scratch store; the verdict from loading and instantiating it exactly
as a node does, with the node's budgets and params.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import wasmtime

from edged.config import load_config
from edged.config.model import DEFAULT_BUDGETS, Budgets, ParamValue
from edged.engine import WasmtimeEngine, abi
from edged.errors import EdgedError, ModuleError
from edged.sizes import format_size

_PAGE = 65536
#: fuel for the scratch calls to edged_abi_version and edged_buffers (start function included)
_PROBE_FUEL = 10_000_000


@dataclass
class Entity:
    """One export or import: its name, kind and type."""

    name: str
    kind: str  # func, memory, global, table
    type: str


@dataclass
class Report:
    file: str
    size: int
    sha256: str
    exports: list[Entity] = field(default_factory=list)
    imports: list[Entity] = field(default_factory=list)
    memory_initial_pages: int | None = None
    memory_maximum_pages: int | None = None
    abi_version: int | None = None
    buffers: dict[str, int] | None = None
    has_init: bool = False
    has_tick: bool = False
    has_state: bool = False
    has_properties: bool = False
    #: the WASI capabilities its imports need (docs/filter-abi.md, "WASI"), and those granted
    capabilities: list[str] = field(default_factory=list)
    granted: list[str] | None = None  # None: what it needs (no --capability given)
    budgets: dict[str, float | int] = field(default_factory=dict)
    budgets_from: str = "defaults"
    params: dict[str, str] = field(default_factory=dict)
    passes: bool = False
    reason: str | None = None
    logs: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sig(ty: wasmtime.FuncType) -> str:
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results)
    return f"({params}) -> ({results})"


def _limits(limits: Any) -> str:
    top = "no maximum" if limits.max is None else f"max {limits.max}"
    return f"{limits.min}, {top}"


def _describe(ty: Any) -> tuple[str, str]:
    if isinstance(ty, wasmtime.FuncType):
        return "func", _sig(ty)
    if isinstance(ty, wasmtime.MemoryType):
        return "memory", f"pages {_limits(ty.limits)}"
    if isinstance(ty, wasmtime.GlobalType):
        return "global", f"{'mut ' if ty.mutable else ''}{ty.content}"
    if isinstance(ty, wasmtime.TableType):
        return "table", f"{ty.element} {_limits(ty.limits)}"
    return "other", str(ty)


def _probe(engine: WasmtimeEngine, module: wasmtime.Module, report: Report) -> None:
    """Call edged_abi_version and edged_buffers in a scratch store, with a stub log import."""
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(_PROBE_FUEL)
    store.set_epoch_deadline(1000)
    linker = wasmtime.Linker(engine.wasmtime)
    if any(imp.module == abi.WASI_MODULE for imp in module.imports):
        linker.define_wasi()  # nothing granted: no files, no environment, no arguments
        store.set_wasi(wasmtime.WasiConfig())
    for imp in module.imports:
        if isinstance(imp.type, wasmtime.FuncType) and (imp.module, imp.name) == (
            abi.IMPORT_MODULE,
            abi.IMPORT_LOG,
        ):
            linker.define_func(imp.module, imp.name or "", imp.type, lambda *_: None)
    try:
        instance = linker.instantiate(store, module)
        exports = instance.exports(store)
        initialize = exports.get("_initialize")
        if isinstance(initialize, wasmtime.Func):
            initialize(store)  # a reactor's constructors, as the engine runs them
        version = exports.get(abi.EXPORT_VERSION)
        if isinstance(version, wasmtime.Func):
            report.abi_version = int(version(store))
        buffers, memory = exports.get(abi.EXPORT_BUFFERS), exports.get("memory")
        if isinstance(buffers, wasmtime.Func) and isinstance(memory, wasmtime.Memory):
            at = int(buffers(store)) & 0xFFFFFFFF
            if at + 16 <= memory.data_len(store):
                raw = bytes(memory.read(store, at, at + 16))
                in_ptr, in_cap, out_ptr, out_cap = abi.unpack_descriptor(raw)
                report.buffers = {
                    "descriptor": at,
                    "in_ptr": in_ptr,
                    "in_cap": in_cap,
                    "out_ptr": out_ptr,
                    "out_cap": out_cap,
                }
    except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
        report.notes.append(f"could not call it in a scratch store: {str(exc).splitlines()[0]}")


def inspect_module(
    path: Path,
    *,
    budgets: Budgets = DEFAULT_BUDGETS,
    budgets_from: str = "defaults",
    params: dict[str, ParamValue] | None = None,
    capabilities: frozenset[str] | None = None,
) -> Report:
    """Everything `edged filter inspect` shows about the module at `path`."""
    try:
        wasm = path.read_bytes()
    except OSError as exc:
        raise EdgedError(f"cannot read {path}: {exc.strerror}") from None
    params = dict(params or {})
    report = Report(
        file=str(path),
        size=len(wasm),
        sha256=hashlib.sha256(wasm).hexdigest(),
        budgets={k: v for k, v in asdict(budgets).items() if isinstance(v, int | float)},
        budgets_from=budgets_from,
        params={k: str(v) for k, v in params.items()},
    )
    engine = WasmtimeEngine()
    try:
        module = wasmtime.Module(engine.wasmtime, wasm)
    except wasmtime.WasmtimeError as exc:
        report.reason = f"invalid WebAssembly: {str(exc).strip().splitlines()[0]}"
        return report
    for exp in module.exports:
        kind, text = _describe(exp.type)
        report.exports.append(Entity(exp.name, kind, text))
        if isinstance(exp.type, wasmtime.MemoryType) and exp.name == "memory":
            report.memory_initial_pages = exp.type.limits.min
            report.memory_maximum_pages = exp.type.limits.max
    for imp in module.imports:
        kind, text = _describe(imp.type)
        report.imports.append(Entity(f"{imp.module}.{imp.name}", kind, text))
    names = {e.name for e in report.exports}
    report.has_init = abi.EXPORT_INIT in names
    report.has_tick = abi.EXPORT_TICK in names
    # All three or none, or the module is refused below (the verdict says which are missing).
    report.has_state = all(name in names for name in abi.STATE_EXPORTS)
    report.has_properties = abi.EXPORT_PROPERTIES in names
    _probe(engine, module, report)

    if report.memory_initial_pages is not None:
        initial = report.memory_initial_pages * _PAGE
        if initial > budgets.memory:
            report.notes.append(
                f"its initial memory ({format_size(initial)}) exceeds the memory budget "
                f"({format_size(budgets.memory)})"
            )
    if report.buffers and report.buffers["out_cap"] - 4 > budgets.max_emit_bytes + 8 * (
        budgets.max_emits
    ):
        report.notes.append(
            "its output area is larger than one call may emit (max_emit_bytes): a call that "
            "fills it is dropped as emit_too_large"
        )

    logs: list[list[str]] = []
    report.granted = None if capabilities is None else sorted(capabilities)
    try:
        loaded = engine.load(path.name, wasm)
        report.capabilities = sorted(loaded.capabilities_needed)
        granted = loaded.capabilities_needed if capabilities is None else capabilities
        loaded.instantiate(params, lambda level, text: logs.append([level, text]), budgets, granted)
    except ModuleError as exc:
        report.reason = exc.reason
        if exc.reason.startswith("init returned") and not params:
            report.notes.append(
                "init refused no params: give the module's params with --param or --config"
            )
    else:
        report.passes = True
    report.logs = logs
    return report


def budgets_from_config(
    config_path: Path, module: str | None, wasm: Path
) -> tuple[Budgets, str, dict[str, ParamValue]]:
    """The budgets and params a node with this config gives `module` (or the module whose file
    is `wasm`)."""
    config = load_config(config_path)
    if module is None:
        target = wasm.resolve()
        matching = [n for n, m in config.modules.items() if m.file.resolve() == target]
        if len(matching) != 1:
            known = ", ".join(config.modules) or "none"
            raise EdgedError(f"{config_path}: say which module with --module (modules: {known})")
        module = matching[0]
    if module not in config.modules:
        known = ", ".join(config.modules) or "none"
        raise EdgedError(f"{config_path}: no module {module!r} (modules: {known})")
    mod = config.modules[module]
    return mod.budgets, f"{config_path}, module {module}", dict(mod.params)


def render(report: Report, out: TextIO) -> None:
    """The report as aligned text."""

    def row(label: str, text: str) -> None:
        out.write(f"{label:<10}{text}\n")

    row("module", report.file)
    row("size", f"{report.size} bytes, sha256 {report.sha256[:16]}")
    if report.abi_version is None:
        row("abi", "unknown (edged_abi_version could not be called)")
    else:
        verdict = "ok" if report.abi_version == abi.ABI_VERSION else "not spoken by this edged"
        row("abi", f"version {report.abi_version} ({verdict}; edged speaks {abi.ABI_VERSION})")
    if report.memory_initial_pages is None:
        row("memory", "no exported memory")
    else:
        top = report.memory_maximum_pages
        cap = "no maximum" if top is None else f"maximum {top} pages ({format_size(top * _PAGE)})"
        initial = report.memory_initial_pages
        row("memory", f"initial {initial} pages ({format_size(initial * _PAGE)}), {cap}")
    if report.buffers:
        b = report.buffers
        row(
            "buffers",
            f"input {b['in_cap']} bytes at {b['in_ptr']}, output {b['out_cap']} bytes at "
            f"{b['out_ptr']}",
        )
    row("init", "yes: takes params" if report.has_init else "no: takes no params")
    row("tick", "yes: can be given a tick_interval" if report.has_tick else "no")
    row("state", "save/load exports (stateful)" if report.has_state else "none")
    row(
        "props",
        "reads and sets MQTT 5 properties"
        if report.has_properties
        else "not read (outputs carry their input's)",
    )
    needs = ", ".join(report.capabilities) or "none"
    if report.granted is not None:
        needs += f" (granted: {', '.join(report.granted) or 'none'})"
    row("wasi", f"needs {needs}" if report.capabilities else "no capability needed")
    width = max((len(e.name) for e in report.exports + report.imports), default=0)
    for label, entities in (("exports", report.exports), ("imports", report.imports)):
        if not entities:
            row(label, "none")
        for i, e in enumerate(entities):
            row(label if i == 0 else "", f"{e.name:<{width}}  {e.kind:<6}  {e.type}")
    limits = report.budgets
    row(
        "budgets",
        f"{report.budgets_from}: memory {format_size(int(limits['memory']))}, "
        f"fuel {limits['fuel']}, deadline {limits['deadline_ms']:g} ms, "
        f"{limits['max_emits']} emits, {limits['max_emit_bytes']} emit bytes, "
        f"state {format_size(int(limits['max_state']))}",
    )
    if report.params:
        row("params", ", ".join(f"{k}={v}" for k, v in report.params.items()))
    for level, text in report.logs:
        row("log", f"[{level}] {text}")
    for note in report.notes:
        row("note", note)
    row("verdict", "PASS: a node would load it" if report.passes else f"FAIL: {report.reason}")


def render_json(report: Report, out: TextIO) -> None:
    out.write(json.dumps(asdict(report), indent=2) + "\n")

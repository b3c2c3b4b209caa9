"""The wasmtime engine: verify a module against the ABI, compile it (or take it from the cache).

Setup goes through wasmtime's public API; only the per-message call (in `wasmtime_filter`) takes
the raw path, whose reach into wasmtime-py's internals is all in `_raw`.
"""

from __future__ import annotations

import hashlib
import platform
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from edged.config import DEFAULT_BUDGETS, Budgets, ParamValue
from edged.engine import abi
from edged.engine.base import LogSink
from edged.engine.cache import CompiledCache
from edged.engine.wasmtime_filter import WasmtimeFilter
from edged.errors import ModuleError


def _wasmtime_version() -> str:
    """The installed wasmtime's version (part of the compiled cache's key), as
    importlib.metadata.version("wasmtime") gives it: the Version of the dist-info's METADATA."""
    # Read directly from the one dist-info beside the imported package: importlib.metadata
    # (with zipfile, csv and importlib.resources) costs ~0.8 MiB of RSS.
    found = list(Path(wasmtime.__file__).parent.parent.glob("wasmtime-*.dist-info/METADATA"))
    if len(found) == 1:
        try:
            headers = found[0].read_text(encoding="utf-8").partition("\n\n")[0]
        except (OSError, UnicodeDecodeError):
            headers = ""
        for line in headers.splitlines():
            name, colon, value = line.partition(":")
            if colon and name.lower() == "version" and value.strip():
                return value.strip()
    # imported here: only an unusual install (a zip, an egg) needs it
    import importlib.metadata

    return importlib.metadata.version("wasmtime")


WASMTIME_VERSION = _wasmtime_version()


# Address space each linear memory reserves up front, and its guard. wasmtime's defaults (4 GiB
# plus 2 GiB of guard per memory) let a 64-bit Raspberry Pi kernel, whose user address space is
# 39 bits (512 GiB), hold only ~80 instances; with these it holds thousands. The price is an
# explicit bounds check per memory access, and a copy when a memory outgrows its reservation.
MEMORY_RESERVATION = 1024 * 1024
MEMORY_GUARD = 64 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSettings:
    """Engine-wide settings; any that shape the compiled code are part of the cache key."""

    #: Wasm stack per call, so runaway recursion traps instead of crashing the process
    wasm_stack: int = 512 * 1024
    #: how often the ticker advances the epoch: the resolution of every call's deadline
    epoch_tick_ms: float = 10.0

    def fingerprint(self) -> str:
        return (
            f"wasmtime={WASMTIME_VERSION};machine={platform.machine()};fuel=1;epoch=1;"
            f"stack={self.wasm_stack};reserve={MEMORY_RESERVATION};guard={MEMORY_GUARD}"
        )


class EpochTicker:
    """One thread advancing the engine's epoch, which is what ends a call past its deadline.

    The thread holds the engine itself, so the engine is freed only after the thread has let go
    of it: wasmtime-py frees an engine in `__del__` with the GIL released, and a ticker that
    could still reach it then (through a weak reference, which still answers during `__del__`)
    advanced a freed engine and crashed the process. The thread holds this object only weakly
    and ends once nothing else does (the engine and every filter instance hold it), or on
    `stop()`, within one tick; so short-lived engines (tests, `edged filter run`) leave no
    thread behind.
    """

    def __init__(self, engine: wasmtime.Engine, interval_s: float) -> None:
        #: epochs advanced so far; trails the engine's own count by at most the one under way
        self.ticks = 0
        self._stop = threading.Event()
        weakref.finalize(self, self._stop.set)
        threading.Thread(
            target=_tick,
            args=(weakref.ref(self), engine, self._stop, interval_s),
            name="edged-epoch",
            daemon=True,
        ).start()

    def stop(self) -> None:
        self._stop.set()


def _tick(
    ref: weakref.ref[EpochTicker],
    engine: wasmtime.Engine,
    stop: threading.Event,
    interval_s: float,
) -> None:
    while not stop.wait(interval_s):
        engine.increment_epoch()  # thread-safe in wasmtime; ctypes drops the GIL around it
        ticker = ref()
        if ticker is None:
            return
        ticker.ticks += 1
        del ticker


def _signature(ty: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def _describe(sig: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    params, results = sig
    return f"({', '.join(params)}) -> ({', '.join(results)})"


class WasmtimeModule:
    """A compiled module that passed the ABI checks that need no instance."""

    def __init__(
        self, engine: WasmtimeEngine, name: str, module: wasmtime.Module, digest: str
    ) -> None:
        self.name = name
        self.digest = digest
        self._engine = engine
        self._module = module
        exports = {e.name for e in module.exports}
        self.has_init = abi.EXPORT_INIT in exports
        self.has_tick = abi.EXPORT_TICK in exports
        self.has_state = abi.EXPORT_STATE_SAVE in exports
        self.has_initialize = "_initialize" in exports
        self._imports_log = any(
            i.module == abi.IMPORT_MODULE and i.name == abi.IMPORT_LOG for i in module.imports
        )
        #: WASI functions imported that need a capability -> that capability
        self.wasi_needs = {
            i.name: abi.WASI_NEEDS[i.name]
            for i in module.imports
            if i.module == abi.WASI_MODULE and i.name in abi.WASI_NEEDS
        }
        self.imports_wasi = any(i.module == abi.WASI_MODULE for i in module.imports)

    @property
    def capabilities_needed(self) -> frozenset[str]:
        return frozenset(self.wasi_needs.values())

    def refused_grants(self, granted: frozenset[str]) -> str | None:
        """Why the module cannot run with only `granted`: its first import of a capability not
        granted, named with the capability it needs; None when it can."""
        for func, capability in sorted(self.wasi_needs.items()):
            if capability not in granted:
                return (
                    f"imports {abi.WASI_MODULE}.{func}, which needs the capability "
                    f"'{capability}' (not granted)"
                )
        return None

    def instantiate(
        self,
        params: Mapping[str, ParamValue],
        log: LogSink,
        budgets: Budgets = DEFAULT_BUDGETS,
        capabilities: frozenset[str] = frozenset(),
    ) -> WasmtimeFilter:
        if params and not self.has_init:
            raise ModuleError(self.name, f"takes no parameters (no {abi.EXPORT_INIT} export)")
        if (refused := self.refused_grants(capabilities)) is not None:
            raise ModuleError(self.name, refused)
        return WasmtimeFilter(
            self._engine.wasmtime,
            self._module,
            name=self.name,
            budgets=budgets,
            epoch_tick_ms=self._engine.settings.epoch_tick_ms,
            ticker=self._engine.ticker,
            params=abi.encode_params(params),
            log=log,
            imports_log=self._imports_log,
            has_init=self.has_init,
            wasi=self.imports_wasi,
            has_initialize=self.has_initialize,
        )


class WasmtimeEngine:
    """Loads filter modules into one shared wasmtime engine."""

    def __init__(
        self, settings: EngineSettings | None = None, *, cache_dir: Path | None = None
    ) -> None:
        self.settings = settings or EngineSettings()
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.max_wasm_stack = self.settings.wasm_stack
        config.memory_reservation = MEMORY_RESERVATION
        config.memory_guard_size = MEMORY_GUARD
        config.memory_reservation_for_growth = MEMORY_RESERVATION
        # Several cores compile in parallel, but a gateway has other work to do; one is enough.
        config.parallel_compilation = False
        self.wasmtime = wasmtime.Engine(config)
        self.ticker = EpochTicker(self.wasmtime, self.settings.epoch_tick_ms / 1000)
        self.cache = CompiledCache(cache_dir, self.settings.fingerprint()) if cache_dir else None
        self.cache_hits = 0

    def close(self) -> None:
        """Stop the epoch ticker: no call of this engine's filters is interrupted after this."""
        self.ticker.stop()

    def load_file(self, name: str, path: Path) -> WasmtimeModule:
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ModuleError(name, f"cannot read {path}: {exc.strerror}") from None
        return self.load(name, wasm)

    def load(self, name: str, wasm: bytes) -> WasmtimeModule:
        digest = hashlib.sha256(wasm).hexdigest()
        if not wasm.startswith(b"\0asm"):
            raise ModuleError(name, "not a WebAssembly binary (no \\0asm header)")
        module = self._compile(name, wasm)
        self._check_shape(name, module)
        return WasmtimeModule(self, name, module, digest)

    def _compile(self, name: str, wasm: bytes) -> wasmtime.Module:
        key = self.cache.key(wasm) if self.cache else ""
        if self.cache and (artifact := self.cache.get(key)) is not None:
            try:
                module = wasmtime.Module.deserialize(self.wasmtime, artifact)
            except wasmtime.WasmtimeError:
                pass  # made by another engine build: compile afresh and overwrite
            else:
                self.cache_hits += 1
                return module
        try:
            module = wasmtime.Module(self.wasmtime, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(name, f"invalid WebAssembly: {_headline(exc)}") from None
        if self.cache:
            self.cache.put(key, bytes(module.serialize()))
        return module

    def _check_shape(self, name: str, module: wasmtime.Module) -> None:
        exports = {e.name: e.type for e in module.exports}
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            raise ModuleError(name, "does not export its linear memory as 'memory'")
        if abi.EXPORT_VERSION not in exports:
            raise ModuleError(
                name,
                f"no {abi.EXPORT_VERSION} export: not an edged filter, or built for no ABI "
                f"version (this edged speaks {abi.ABI_VERSION})",
            )
        wanted = abi.REQUIRED_FUNCS | abi.OPTIONAL_FUNCS
        for export, sig in wanted.items():
            ty = exports.get(export)
            if ty is None:
                if export in abi.REQUIRED_FUNCS:
                    raise ModuleError(name, f"missing required export {export}")
                continue
            if not isinstance(ty, wasmtime.FuncType) or _signature(ty) != sig:
                got = (
                    _describe(_signature(ty))
                    if isinstance(ty, wasmtime.FuncType)
                    else "not a function"
                )
                raise ModuleError(name, f"export {export} must be {_describe(sig)}, found {got}")
        present = [e for e in abi.STATE_EXPORTS if e in exports]
        if present and len(present) != len(abi.STATE_EXPORTS):
            missing = [e for e in abi.STATE_EXPORTS if e not in exports]
            raise ModuleError(
                name,
                f"exports {', '.join(present)} without {', '.join(missing)}: the state exports "
                "go together (all three, or none)",
            )
        for imp in module.imports:
            if imp.module == abi.WASI_MODULE and isinstance(imp.type, wasmtime.FuncType):
                continue  # wasmtime checks each function's type when it links the instance
            want = abi.ALLOWED_IMPORTS.get((imp.module, imp.name or ""))
            ok = want is not None and isinstance(imp.type, wasmtime.FuncType)
            if not ok or _signature(imp.type) != want:  # type: ignore[arg-type]
                raise ModuleError(
                    name,
                    f"imports {imp.module}.{imp.name}, which edged does not provide "
                    f"(filters may import {abi.IMPORT_MODULE}.{abi.IMPORT_LOG} and "
                    f"{abi.WASI_MODULE} functions)",
                )
        if "_start" in exports and "_initialize" not in exports:
            raise ModuleError(
                name,
                "exports _start: a WASI command, which would run main and exit; build it as a "
                "reactor (C: -mexec-model=reactor; Go: -buildmode=c-shared; Rust: a cdylib)",
            )


def _headline(exc: Exception) -> str:
    """The first line: wasmtime's summary of what failed ("failed to parse WebAssembly module"),
    without the causes listed under it. (A failed call wants the opposite, the innermost cause:
    `wasmtime_filter._innermost_cause`.)"""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

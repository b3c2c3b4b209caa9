"""One running filter instance, and the per-message call path.

`wasmtime.Func.__call__` costs ~25 µs (it looks up the type and boxes every value); the raw
`wasmtime_func_call_unchecked` with a reused argument array costs ~1.4 µs. So setup uses the
public API and every call after it goes through prebuilt ctypes objects. This leans on
`wasmtime._bindings`, which is why the wasmtime major version is pinned and
`tests/test_engine.py` exercises this path directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
from time import perf_counter_ns
from typing import Any, NoReturn, Protocol

import wasmtime
from wasmtime import _bindings as raw
from wasmtime import _ffi
from wasmtime import _func as _wasmtime_func

from edged.config import Budgets
from edged.engine import abi
from edged.engine.base import CallStats, LogSink, Message, Outcome
from edged.errors import FilterCallError, ModuleError

_LOG_TEXT_LIMIT = 1024


def _fast(name: str, restype: Any, *argtypes: Any, release_gil: bool = False) -> Any:
    """The C function `name` with a plain integer result, so no pointer object is built per call.

    Short calls keep the GIL (PYFUNCTYPE); only the call into Wasm releases it, so the epoch
    ticker can run while a filter does.
    """
    proto = ctypes.CFUNCTYPE if release_gil else ctypes.PYFUNCTYPE
    address = ctypes.cast(getattr(_ffi.dll, name), ctypes.c_void_p).value
    assert address is not None, name
    return proto(restype, *argtypes)(address)


_Ctx = ctypes.POINTER(raw.wasmtime_context_t)
_call_unchecked = _fast(
    "wasmtime_func_call_unchecked",
    ctypes.c_void_p,
    _Ctx,
    ctypes.POINTER(raw.wasmtime_func_t),
    ctypes.POINTER(raw.wasmtime_val_raw_t),
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.POINTER(raw.wasm_trap_t)),
    release_gil=True,
)
_memory_data = _fast(
    "wasmtime_memory_data", ctypes.c_size_t, _Ctx, ctypes.POINTER(raw.wasmtime_memory_t)
)
_set_fuel = _fast("wasmtime_context_set_fuel", ctypes.c_void_p, _Ctx, ctypes.c_uint64)
_get_fuel = _fast(
    "wasmtime_context_get_fuel", ctypes.c_void_p, _Ctx, ctypes.POINTER(ctypes.c_uint64)
)
_set_deadline = _fast("wasmtime_context_set_epoch_deadline", None, _Ctx, ctypes.c_uint64)
_ErrorPtr = ctypes.POINTER(raw.wasmtime_error_t)
_TrapPtr = ctypes.POINTER(raw.wasm_trap_t)
_DROPPED: Outcome = ()
_PAGE = 65536
_PEEK = 512
_memmove = ctypes.memmove
_string_at = ctypes.string_at


class EpochCount(Protocol):
    """How many epochs the engine's ticker has advanced (`EpochTicker`)."""

    ticks: int


_TRAP_REASONS = {
    wasmtime.TrapCode.OUT_OF_FUEL: "fuel",
    wasmtime.TrapCode.INTERRUPT: "deadline",
    wasmtime.TrapCode.STACK_OVERFLOW: "stack",
}


class WasmtimeFilter:
    """A module instance in its own Store, called once per message on the raw path."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        *,
        name: str,
        budgets: Budgets,
        epoch_tick_ms: float,
        ticker: EpochCount,
        params: bytes,
        log: LogSink,
        imports_log: bool,
        has_init: bool,
    ) -> None:
        self.name = name
        self._log = log
        self.budgets = budgets
        self.stats = CallStats()
        self._fuel = budgets.fuel
        self._fuel_left = ctypes.c_uint64()
        self._fuel_left_ref = ctypes.byref(self._fuel_left)
        # The deadline is counted in ticks of the engine's epoch ticker. It is re-armed only when
        # the ticker has moved since the last call (one C call less per message); two ticks
        # more because the tick under way when the call starts may be nearly over, and the
        # ticker's count may trail the engine's epoch by one.
        self._deadline_ticks = math.ceil(budgets.deadline_ms / epoch_tick_ms) + 2
        self._ticker = ticker
        self._armed_at = -1
        self._max_emits = budgets.max_emits
        self._max_emit_bytes = budgets.max_emit_bytes
        # One Store per instance: instances pile up inside a Store, and a Store must never be
        # shared between threads; a fresh one per instance settles both.
        self._store = store = wasmtime.Store(engine)
        store.set_limits(
            memory_size=budgets.memory,
            table_elements=budgets.table_elements,
            instances=1,
            tables=1,
            memories=1,
        )
        store.set_fuel(self._fuel)
        store.set_epoch_deadline(self._deadline_ticks)
        linker = wasmtime.Linker(engine)
        if imports_log:
            i32 = wasmtime.ValType.i32()
            linker.define_func(
                abi.IMPORT_MODULE,
                abi.IMPORT_LOG,
                wasmtime.FuncType([i32, i32, i32], []),
                self._guest_log,
                access_caller=True,
            )
        try:
            instance = linker.instantiate(store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise ModuleError(name, f"cannot be instantiated: {_first_line(exc)}") from None
        exports = instance.exports(store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory

        self._ctx = store._context()
        self._mem_ref = ctypes.byref(memory._memory)
        self._vals = (raw.wasmtime_val_raw * 2)()
        self._arg0, self._arg1 = self._vals[0], self._vals[1]
        self._trap = _TrapPtr()
        self._trap_ref = ctypes.byref(self._trap)
        self._funcs: dict[str, Any] = {}
        for export in (
            abi.EXPORT_VERSION,
            abi.EXPORT_BUFFERS,
            abi.EXPORT_MESSAGE,
            abi.EXPORT_INIT,
            abi.EXPORT_TICK,
        ):
            func = exports.get(export)
            if isinstance(func, wasmtime.Func):
                self._funcs[export] = ctypes.byref(func._func)
        self._msg_ref = self._funcs[abi.EXPORT_MESSAGE]
        self.has_tick = abi.EXPORT_TICK in self._funcs

        try:
            version = self._call_setup(abi.EXPORT_VERSION)
            if version != abi.ABI_VERSION:
                raise ModuleError(
                    name,
                    f"built for filter ABI {version}; this edged speaks {abi.ABI_VERSION}",
                )
            desc_at = self._call_setup(abi.EXPORT_BUFFERS) & 0xFFFFFFFF
            size = memory.data_len(store)
            if desc_at + 16 > size:
                raise ModuleError(name, f"edged_buffers returned {desc_at}, outside memory")
            desc = abi.unpack_descriptor(bytes(memory.read(store, desc_at, desc_at + 16)))
            if (problem := abi.descriptor_error(desc, size)) is not None:
                raise ModuleError(name, problem)
            self._in_ptr, self._in_cap, self._out_ptr, self._out_cap = desc
            # What a filter emits is usually small: one copy of this much gets `used` and the
            # records together.
            self._peek = min(self._out_cap, _PEEK)
            if has_init:
                if len(params) > self._in_cap:
                    raise ModuleError(
                        name, f"parameters ({len(params)} bytes) exceed its input area"
                    )
                self._write(self._in_ptr, params)
                code = self._call_setup(abi.EXPORT_INIT, len(params))
                if code != 0:
                    raise ModuleError(name, f"init returned {code} (parameters refused)")
        except FilterCallError as exc:
            raise ModuleError(name, f"trapped during setup: {exc.detail}") from None
        self.stats = CallStats()  # the figures are about messages and ticks, not setup

    # -- the per-message path -------------------------------------------------------------

    def on_message(self, topic: bytes, payload: bytes) -> Outcome:
        tlen = len(topic)
        plen = len(payload)
        if tlen + plen > self._in_cap:
            raise FilterCallError(
                "input_too_large",
                f"{tlen + plen} bytes do not fit the filter's {self._in_cap}-byte input area",
            )
        ctx = self._ctx
        at = _memory_data(ctx, self._mem_ref) + self._in_ptr
        _memmove(at, topic, tlen)
        _memmove(at + tlen, payload, plen)
        self._arg0.i32 = tlen
        self._arg1.i32 = plen
        # `_invoke`, written out: this is the one call made for every message.
        fuel = self._fuel
        _set_fuel(ctx, fuel)
        ticks = self._ticker.ticks
        if ticks != self._armed_at:
            _set_deadline(ctx, self._deadline_ticks)
            self._armed_at = ticks
        started = perf_counter_ns()
        err = _call_unchecked(ctx, self._msg_ref, self._vals, 2, self._trap_ref)
        elapsed_us = (perf_counter_ns() - started) >> 10
        stats = self.stats
        stats.calls += 1
        stats.buckets[min(elapsed_us.bit_length(), 39)] += 1
        _get_fuel(ctx, self._fuel_left_ref)
        stats.fuel_used += fuel - self._fuel_left.value
        if err or self._trap:
            self._fail(err)
        code = self._arg0.i32
        if code == abi.FORWARD:
            return ((topic, payload),)
        if code == abi.DROP:
            return _DROPPED
        if code == abi.EMIT:
            return self._emitted()
        raise FilterCallError("bad_result", f"edged_on_message returned {code}")

    def on_tick(self, now_ms: int) -> Outcome:
        self._arg0.i64 = now_ms
        self._invoke(self._funcs[abi.EXPORT_TICK], 1)
        code = self._arg0.i32
        if code == abi.DROP:
            return _DROPPED
        if code == abi.EMIT:
            return self._emitted()
        raise FilterCallError("bad_result", f"edged_on_tick returned {code}")

    # -- the rest -------------------------------------------------------------------------

    def _emitted(self) -> list[Message]:
        base = _memory_data(self._ctx, self._mem_ref) + self._out_ptr
        head = _string_at(base, self._peek)
        used = int.from_bytes(head[:4], "little")
        if used > self._out_cap - 4:
            raise FilterCallError(
                "bad_output", f"used={used} exceeds the {self._out_cap}-byte output area"
            )
        limit = self._max_emit_bytes
        # Checked before copying: a filter may declare a huge output area and fill it.
        if used > limit + 8 * self._max_emits:
            raise FilterCallError("emit_too_large", f"emitted {used} bytes; the budget is {limit}")
        area = head[4 : 4 + used] if used + 4 <= len(head) else _string_at(base + 4, used)
        records = abi.parse_records(area)
        if len(records) > self._max_emits:
            raise FilterCallError(
                "too_many_emits",
                f"emitted {len(records)} messages; the budget is {self._max_emits}",
            )
        size = used - 8 * len(records)  # the records fill `used` exactly: headers and bytes
        if size > limit:
            raise FilterCallError("emit_too_large", f"emitted {size} bytes; the budget is {limit}")
        return records

    def _invoke(self, func_ref: Any, nargs: int) -> None:
        """One guest call inside the budgets: fuel refilled, deadline re-armed, cost recorded."""
        ctx = self._ctx
        _set_fuel(ctx, self._fuel)
        ticks = self._ticker.ticks
        if ticks != self._armed_at:
            _set_deadline(ctx, self._deadline_ticks)
            self._armed_at = ticks
        started = perf_counter_ns()
        err = _call_unchecked(ctx, func_ref, self._vals, nargs, self._trap_ref)
        elapsed_us = (perf_counter_ns() - started) >> 10
        stats = self.stats
        stats.calls += 1
        stats.buckets[min(elapsed_us.bit_length(), 39)] += 1
        _get_fuel(ctx, self._fuel_left_ref)
        stats.fuel_used += self._fuel - self._fuel_left.value
        if err or self._trap:
            self._fail(err)

    def _fail(self, err: Any) -> NoReturn:
        """Turn the raw call's error or trap into a FilterCallError, freeing what wasmtime gave."""
        # A Python host function that raised leaves its exception in wasmtime-py's module
        # global; left there, it would surface from some later, unrelated wasmtime call.
        host_exc, _wasmtime_func.LAST_EXCEPTION = _wasmtime_func.LAST_EXCEPTION, None
        exc: wasmtime.WasmtimeError | wasmtime.Trap
        if self._trap:
            exc = wasmtime.Trap._from_ptr(self._trap)
            # The Trap now owns that pointer object; the next call needs a fresh one.
            self._trap = _TrapPtr()
            self._trap_ref = ctypes.byref(self._trap)
            code = exc.trap_code
            reason = _TRAP_REASONS.get(code, "trap") if code else "trap"
            if (
                reason == "trap"
                and self._memory.data_len(self._store) + _PAGE > self.budgets.memory
            ):
                # memory.grow failed at the cap and the filter gave up: that is the budget's doing.
                reason = "memory"
        else:
            exc = wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, _ErrorPtr))
            reason = "trap"
        if host_exc is not None:
            raise FilterCallError("trap", f"host function failed: {host_exc!r}")
        raise FilterCallError(reason, _first_line(exc))

    def _call_setup(self, export: str, arg: int | None = None) -> int:
        if arg is not None:
            self._arg0.i32 = arg
        self._invoke(self._funcs[export], 2)
        return int(self._arg0.i32)

    def _write(self, at: int, data: bytes) -> None:
        base = _memory_data(self._ctx, self._mem_ref)
        ctypes.memmove(base + at, data, len(data))

    def _guest_log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return
        length = max(0, min(length, _LOG_TEXT_LIMIT))
        start = ptr & 0xFFFFFFFF
        if start + length > memory.data_len(caller):
            text = f"<log text at {start}+{length} lies outside memory>"
        else:
            text = bytes(memory.read(caller, start, start + length)).decode(errors="replace")
        # A broken log sink must not become the filter's failure.
        with contextlib.suppress(Exception):
            self._log(abi.LOG_LEVELS[level] if 0 <= level < len(abi.LOG_LEVELS) else "info", text)


def _first_line(exc: BaseException) -> str:
    """The line that says what went wrong: wasmtime puts the cause last, after the backtrace."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    if not text:
        return type(exc).__name__
    # With several causes wasmtime numbers them ("1: wasm trap: ..."); the number says nothing.
    return re.sub(r"^\d+:\s*", "", text.splitlines()[-1].strip())

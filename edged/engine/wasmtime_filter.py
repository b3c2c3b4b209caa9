"""One running filter instance, and the per-message call path.

Setup uses wasmtime's public API; every call after it goes through `_raw`'s prebuilt ctypes
function objects and a reused argument array. With examples/filters/threshold.wasm on wasmtime
50 (x86_64, two shared cores, best of 40 runs of 20,000 calls):

- `wasmtime.Func.__call__`, which looks up the function's type and boxes every value: ~31 µs;
- `_raw.call_unchecked` alone, arguments already in place: ~1.6 µs;
- that call plus copying topic and payload into linear memory, no budgets: ~3.4 µs;
- `on_message` whole (the copy, fuel refilled and read back, the deadline, timing and counting
  the call, the result): ~7 µs per message.

`benchmarks/budget_cost.py` measures the last two (its raw rows use wasmtime-py's own ctypes
wrappers, as ceiling 2 does, which cost about the same).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
from time import perf_counter_ns
from typing import Any, NoReturn, Protocol

import wasmtime

from edged.config import Budgets
from edged.engine import abi
from edged.engine._raw import (
    TrapPtr,
    args_array,
    call_unchecked,
    context,
    error_at,
    func_ref,
    get_fuel,
    memory_data,
    memory_ref,
    set_epoch_deadline,
    set_fuel,
    take_host_exception,
    trap_from,
)
from edged.engine.base import CallStats, LogSink, Outcome, PropsRecord, Record, SavedState
from edged.errors import FilterCallError, FilterRejected, ModuleError
from edged.mqtt.properties import Properties

_LOG_TEXT_LIMIT = 1024
# Of one WASI fd_write, at most this much is read to become log lines (the rate limit of
# the log sink bounds the lines; this bounds the copying of a multi-megabyte write).
_WRITE_KEPT = 8 * _LOG_TEXT_LIMIT
_EBADF = 8
_EFAULT = 21
_DROPPED: Outcome = ()
_PAGE = 65536
_PEEK = 512
_NO_PROPERTIES = Properties()
_memmove = ctypes.memmove
_string_at = ctypes.string_at


class GuestExit(Exception):
    """A filter called WASI `proc_exit`: the call ends as a violation (reason `exit`)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


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
        wasi: bool = False,
        has_initialize: bool = False,
    ) -> None:
        self.name = name
        self._log = log
        self._wasi_lines: dict[int, bytes] = {}  # per fd, a line written in parts
        self.stats = CallStats()  # counts setup's own calls; replaced below
        self._take_budgets(budgets, epoch_tick_ms, ticker)
        self._store = self._new_store(engine)
        linker = self._linker(engine, imports_log)
        if wasi:
            self._define_wasi(linker)
        instance = self._instantiate(linker, module)
        self._bind_exports(instance)
        try:
            if has_initialize:
                # A reactor's constructors (libc, Go's runtime): once, before anything else.
                func = instance.exports(self._store)["_initialize"]
                assert isinstance(func, wasmtime.Func)
                self._invoke(func_ref(func), 0)
            self._check_abi_version()
            self._take_buffers()
            if has_init:
                self._init(params)
        except FilterCallError as exc:
            raise ModuleError(name, f"trapped during setup: {exc.detail}") from None
        self.stats = CallStats()  # the figures are about messages and ticks, not setup

    # -- setup, in the order __init__ runs it ----------------------------------------------

    def _take_budgets(self, budgets: Budgets, epoch_tick_ms: float, ticker: EpochCount) -> None:
        """Keep what every call checks against: fuel, the deadline in ticks, the emit limits."""
        self.budgets = budgets
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

    def _new_store(self, engine: wasmtime.Engine) -> wasmtime.Store:
        """The instance's own Store, limited to one instance and the memory and table budgets.

        One Store per instance: instances pile up inside a Store, and a Store must never be
        shared between threads; a fresh one per instance settles both.
        """
        store = wasmtime.Store(engine)
        store.set_limits(
            memory_size=self.budgets.memory,
            table_elements=self.budgets.table_elements,
            instances=1,
            tables=1,
            memories=1,
        )
        store.set_fuel(self._fuel)
        store.set_epoch_deadline(self._deadline_ticks)
        return store

    def _linker(self, engine: wasmtime.Engine, imports_log: bool) -> wasmtime.Linker:
        """A linker offering `edged.log` (into this filter's log sink) if the module imports it."""
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
        return linker

    def _define_wasi(self, linker: wasmtime.Linker) -> None:
        """WASI preview 1 with nothing granted (docs/filter-abi.md, "WASI"): no arguments, no
        environment, no files or sockets, stdin empty (wasmtime's own functions on an empty
        WasiConfig), and three of edged's own: `fd_write` to stdout/stderr becomes the
        filter's log lines, `poll_oneoff` answers at once instead of sleeping (a host call is
        neither metered nor interruptible: a 300 ms sleep ran through a 50 ms deadline), and
        `proc_exit` ends the call as a violation instead of the instance. Which capabilities
        the module needs was checked before (`WasmtimeModule.refused_grants`)."""
        linker.define_wasi()
        linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        linker.define_func(
            abi.WASI_MODULE,
            "fd_write",
            wasmtime.FuncType([i32, i32, i32, i32], [i32]),
            self._fd_write,
            access_caller=True,
        )
        linker.define_func(
            abi.WASI_MODULE,
            "poll_oneoff",
            wasmtime.FuncType([i32, i32, i32, i32], [i32]),
            self._poll_oneoff,
            access_caller=True,
        )
        linker.define_func(
            abi.WASI_MODULE, "proc_exit", wasmtime.FuncType([i32], []), self._proc_exit
        )
        # A store without WASI context on a WASI linker aborts the process at the first call.
        self._store.set_wasi(wasmtime.WasiConfig())

    def _fd_write(self, caller: wasmtime.Caller, fd: int, iovs: int, count: int, out: int) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return _EFAULT
        size = memory.data_len(caller)
        iovs &= 0xFFFFFFFF
        count = max(0, min(count, 1024))
        if iovs + 8 * count > size or (out & 0xFFFFFFFF) + 4 > size:
            return _EFAULT
        table = bytes(memory.read(caller, iovs, iovs + 8 * count))
        total = 0
        taken = bytearray()
        for index in range(count):
            ptr, length = abi.unpack_iovec(table, index)
            if ptr + length > size:
                return _EFAULT
            total += length
            # What becomes log lines is bounded; the rest is said written and dropped.
            room = _WRITE_KEPT - len(taken)
            if room > 0 and length:
                taken += memory.read(caller, ptr, ptr + min(length, room))
        memory.write(caller, total.to_bytes(4, "little"), out & 0xFFFFFFFF)
        if fd not in (1, 2):
            return _EBADF
        self._guest_lines(fd, bytes(taken))
        return 0

    def _guest_lines(self, fd: int, data: bytes) -> None:
        """Whole lines written to stdout (info) or stderr (warning) go to the log sink."""
        pending = self._wasi_lines.get(fd, b"") + data
        *lines, rest = pending.split(b"\n")
        self._wasi_lines[fd] = rest[-_LOG_TEXT_LIMIT:]
        level = "info" if fd == 1 else "warning"
        for line in lines:
            with contextlib.suppress(Exception):
                self._log(level, line[:_LOG_TEXT_LIMIT].decode(errors="replace"))

    def _poll_oneoff(
        self, caller: wasmtime.Caller, subs: int, events: int, count: int, out: int
    ) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return _EFAULT
        size = memory.data_len(caller)
        subs, events, out = subs & 0xFFFFFFFF, events & 0xFFFFFFFF, out & 0xFFFFFFFF
        count = max(0, min(count, 64))
        if subs + 48 * count > size or events + 32 * count > size or out + 4 > size:
            return _EFAULT
        raw = bytes(memory.read(caller, subs, subs + 48 * count))
        answer = abi.poll_answers(raw, count)
        memory.write(caller, answer, events)
        memory.write(caller, count.to_bytes(4, "little"), out)
        return 0

    def _proc_exit(self, code: int) -> None:
        raise GuestExit(code)

    def _instantiate(self, linker: wasmtime.Linker, module: wasmtime.Module) -> wasmtime.Instance:
        """The instance, or ModuleError when wasmtime refuses it (a limit, a start trap)."""
        try:
            return linker.instantiate(self._store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise ModuleError(
                self.name, f"cannot be instantiated: {_innermost_cause(exc)}"
            ) from None

    def _bind_exports(self, instance: wasmtime.Instance) -> None:
        """The handles the raw path calls with: context, memory, argument array, trap slot, and
        each ABI function the module exports."""
        exports = instance.exports(self._store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory
        self._ctx = context(self._store)
        self._mem_ref = memory_ref(memory)
        self._vals = args_array(2)
        self._arg0, self._arg1 = self._vals[0], self._vals[1]
        self._trap = TrapPtr()
        self._trap_ref = ctypes.byref(self._trap)
        self._funcs: dict[str, Any] = {}
        for export in (
            abi.EXPORT_VERSION,
            abi.EXPORT_BUFFERS,
            abi.EXPORT_MESSAGE,
            abi.EXPORT_INIT,
            abi.EXPORT_TICK,
            *abi.STATE_EXPORTS,
            abi.EXPORT_PROPERTIES,
        ):
            func = exports.get(export)
            if isinstance(func, wasmtime.Func):
                self._funcs[export] = func_ref(func)
        self._msg_ref = self._funcs[abi.EXPORT_MESSAGE]
        self.has_tick = abi.EXPORT_TICK in self._funcs
        self.has_state = abi.EXPORT_STATE_SAVE in self._funcs  # all three: checked at load
        self.wants_properties = abi.EXPORT_PROPERTIES in self._funcs
        #: of a module with properties, the last call's records with the properties they set
        self._records_props: list[tuple[bytes, bytes, bytes]] = []

    def _check_abi_version(self) -> None:
        """ModuleError unless the module was built for the ABI version this edged speaks."""
        version = self._call_setup(abi.EXPORT_VERSION)
        if version != abi.ABI_VERSION:
            raise ModuleError(
                self.name,
                f"built for filter ABI {version}; this edged speaks {abi.ABI_VERSION}",
            )

    def _take_buffers(self) -> None:
        """Read and check the buffer descriptor `edged_buffers` points at: where messages go in
        and emitted records come out."""
        desc_at = self._call_setup(abi.EXPORT_BUFFERS) & 0xFFFFFFFF
        size = self._memory.data_len(self._store)
        if desc_at + 16 > size:
            raise ModuleError(self.name, f"edged_buffers returned {desc_at}, outside memory")
        desc = abi.unpack_descriptor(bytes(self._memory.read(self._store, desc_at, desc_at + 16)))
        if (problem := abi.descriptor_error(desc, size)) is not None:
            raise ModuleError(self.name, problem)
        self._in_ptr, self._in_cap, self._out_ptr, self._out_cap = desc
        # What a filter emits is usually small: one copy of this much gets `used` and the
        # records together.
        self._peek = min(self._out_cap, _PEEK)
        if self.wants_properties:
            self._take_properties_area(size)

    def _take_properties_area(self, size: int) -> None:
        """Read and check where `edged_properties` wants a message's properties written."""
        at = self._call_setup(abi.EXPORT_PROPERTIES) & 0xFFFFFFFF
        if at + 8 > size:
            raise ModuleError(self.name, f"edged_properties returned {at}, outside memory")
        ptr, cap = abi.unpack_properties_descriptor(
            bytes(self._memory.read(self._store, at, at + 8))
        )
        if cap < 4:
            raise ModuleError(self.name, "edged_properties: the area is smaller than its header")
        if ptr + cap > size:
            raise ModuleError(
                self.name, f"edged_properties: the area {ptr}+{cap} lies outside linear memory"
            )
        for start, length, what in (
            (self._in_ptr, self._in_cap, "input"),
            (self._out_ptr, self._out_cap, "output"),
        ):
            if ptr < start + length and start < ptr + cap:
                raise ModuleError(self.name, f"edged_properties: the area overlaps the {what} area")
        self._props_ptr, self._props_cap = ptr, cap

    def _init(self, params: bytes) -> None:
        """Hand the encoded parameters to `edged_init`; ModuleError when they do not fit or it
        refuses them."""
        if len(params) > self._in_cap:
            raise ModuleError(self.name, f"parameters ({len(params)} bytes) exceed its input area")
        self._write(self._in_ptr, params)
        code = self._call_setup(abi.EXPORT_INIT, len(params))
        if code != 0:
            raise ModuleError(self.name, f"init returned {code} (parameters refused)")

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
        at = memory_data(ctx, self._mem_ref) + self._in_ptr
        _memmove(at, topic, tlen)
        _memmove(at + tlen, payload, plen)
        self._arg0.i32 = tlen
        self._arg1.i32 = plen
        # `_invoke`, written out: this is the one call made for every message.
        fuel = self._fuel
        set_fuel(ctx, fuel)
        ticks = self._ticker.ticks
        if ticks != self._armed_at:
            set_epoch_deadline(ctx, self._deadline_ticks)
            self._armed_at = ticks
        started = perf_counter_ns()
        err = call_unchecked(ctx, self._msg_ref, self._vals, 2, self._trap_ref)
        elapsed_us = (perf_counter_ns() - started) >> 10
        stats = self.stats
        stats.calls += 1
        stats.elapsed += elapsed_us
        stats.buckets[min(elapsed_us.bit_length(), 39)] += 1
        get_fuel(ctx, self._fuel_left_ref)
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
        if code == abi.REJECT:
            text, records = abi.split_reason(self._emitted(reject=True))
            raise FilterRejected(text, records)
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

    # -- properties -----------------------------------------------------------------------

    def on_message_props(
        self, topic: bytes, payload: bytes, props: Properties | None
    ) -> list[PropsRecord]:
        if not self.wants_properties:
            return [(t, p, props) for t, p in self.on_message(topic, payload)]
        self._write_properties(props)
        try:
            out = self.on_message(topic, payload)
        except FilterRejected as rejected:
            records = [r for r in self._merged(props) if r[0]]
            raise FilterRejected(rejected.text, records) from None  # type: ignore[arg-type]
        if out and not self._records_props:
            return [(topic, payload, props)]  # forwarded: no output area was read
        return self._merged(props)

    def on_tick_props(self, now_ms: int) -> list[PropsRecord]:
        if not self.wants_properties:
            return [(t, p, None) for t, p in self.on_tick(now_ms)]
        self._write_properties(None)
        self.on_tick(now_ms)
        return self._merged(None)

    def _write_properties(self, props: Properties | None) -> None:
        self._records_props = []
        area = abi.encode_properties(props)
        if len(area) > self._props_cap:
            raise FilterCallError(
                "input_too_large",
                f"the message's properties ({len(area)} bytes) do not fit the filter's "
                f"{self._props_cap}-byte properties area",
            )
        self._write(self._props_ptr, area)

    def _merged(self, props: Properties | None) -> list[PropsRecord]:
        """The last call's records, each with the input's properties and its own on top."""
        out: list[PropsRecord] = []
        base = props if props is not None else _NO_PROPERTIES
        for topic, payload, raw in self._records_props:
            own = abi.parse_properties(raw)
            out.append((topic, payload, props if own is None else base.overlay(own)))
        return out

    # -- state ----------------------------------------------------------------------------

    def save_state(self) -> SavedState | None:
        if not self.has_state:
            return None
        at = self._call_setup(abi.EXPORT_STATE_SAVE, counted=False) & 0xFFFFFFFF
        size = self._memory.data_len(self._store)
        if at + 12 > size:
            raise FilterCallError("state", f"edged_state_save returned {at}, outside memory")
        raw = bytes(self._memory.read(self._store, at, at + 12))
        ptr, length, fmt = abi.unpack_state_descriptor(raw)
        cap = self.budgets.max_state
        if length > cap:
            raise FilterCallError(
                "state", f"saved {length} bytes of state; budgets.max_state is {cap}"
            )
        if ptr + length > size:
            raise FilterCallError(
                "state", f"edged_state_save: its state at {ptr}+{length} lies outside memory"
            )
        data = _string_at(memory_data(self._ctx, self._mem_ref) + ptr, length) if length else b""
        return SavedState(fmt, data)

    def load_state(self, state: SavedState) -> None:
        if not self.has_state:
            raise FilterCallError("state_refused", "the module has no state exports")
        length = len(state.data)
        cap = self.budgets.max_state
        if length > cap:
            raise FilterCallError(
                "state", f"a state of {length} bytes is over budgets.max_state ({cap})"
            )
        at = self._call_setup(abi.EXPORT_STATE_BUFFER, length, counted=False) & 0xFFFFFFFF
        if at == abi.NO_STATE_BUFFER:
            raise FilterCallError("state_refused", f"edged_state_buffer cannot take {length} bytes")
        if at + length > self._memory.data_len(self._store):
            raise FilterCallError(
                "state", f"edged_state_buffer returned {at}+{length}, outside memory"
            )
        self._write(at, state.data)
        self._arg0.i32 = state.format
        self._arg1.i32 = length
        self._invoke(self._funcs[abi.EXPORT_STATE_LOAD], 2, counted=False)
        code = int(self._arg0.i32)
        if code != 0:
            raise FilterCallError(
                "state_refused",
                f"edged_state_load refused format {state.format} ({length} bytes): returned {code}",
            )

    # -- the rest -------------------------------------------------------------------------

    def _emitted(self, reject: bool = False) -> list[Record]:
        base = memory_data(self._ctx, self._mem_ref) + self._out_ptr
        head = _string_at(base, self._peek)
        used = int.from_bytes(head[:4], "little")
        if used > self._out_cap - 4:
            raise FilterCallError(
                "bad_output", f"used={used} exceeds the {self._out_cap}-byte output area"
            )
        limit = self._max_emit_bytes
        # Checked before copying: a filter may declare a huge output area and fill it.
        if used > limit + (12 if self.wants_properties else 8) * self._max_emits:
            raise FilterCallError("emit_too_large", f"emitted {used} bytes; the budget is {limit}")
        area = head[4 : 4 + used] if used + 4 <= len(head) else _string_at(base + 4, used)
        if self.wants_properties:
            with_props = abi.parse_records_with_properties(area, reject=reject)
            self._records_props = with_props
            records = [(t, p) for t, p, _ in with_props]
            headers = 12 * len(records)  # the properties count as emitted bytes
        else:
            records = abi.parse_records(area, reject=reject)
            headers = 8 * len(records)
        if len(records) > self._max_emits:
            raise FilterCallError(
                "too_many_emits",
                f"emitted {len(records)} messages; the budget is {self._max_emits}",
            )
        size = used - headers  # the records fill `used` exactly: headers and bytes
        if size > limit:
            raise FilterCallError("emit_too_large", f"emitted {size} bytes; the budget is {limit}")
        return records

    def _invoke(self, func: Any, nargs: int, counted: bool = True) -> None:
        """One guest call inside the budgets: fuel refilled, deadline re-armed, cost recorded
        (unless not `counted`: a state save or load is no message or tick)."""
        ctx = self._ctx
        set_fuel(ctx, self._fuel)
        ticks = self._ticker.ticks
        if ticks != self._armed_at:
            set_epoch_deadline(ctx, self._deadline_ticks)
            self._armed_at = ticks
        started = perf_counter_ns()
        err = call_unchecked(ctx, func, self._vals, nargs, self._trap_ref)
        if counted:
            elapsed_us = (perf_counter_ns() - started) >> 10
            stats = self.stats
            stats.calls += 1
            stats.elapsed += elapsed_us
            stats.buckets[min(elapsed_us.bit_length(), 39)] += 1
            get_fuel(ctx, self._fuel_left_ref)
            stats.fuel_used += self._fuel - self._fuel_left.value
        if err or self._trap:
            self._fail(err)

    def _fail(self, err: Any) -> NoReturn:
        """Turn the raw call's error or trap into a FilterCallError, freeing what wasmtime gave."""
        host_exc = take_host_exception()
        exc: wasmtime.WasmtimeError | wasmtime.Trap
        if self._trap:
            exc = trap_from(self._trap)
            # The Trap now owns that pointer object; the next call needs a fresh one.
            self._trap = TrapPtr()
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
            exc = error_at(err)
            reason = "trap"
        if isinstance(host_exc, GuestExit):
            raise FilterCallError("exit", f"the filter called proc_exit({host_exc.code})")
        if host_exc is not None:
            raise FilterCallError("trap", f"host function failed: {host_exc!r}")
        raise FilterCallError(reason, _innermost_cause(exc))

    def _call_setup(self, export: str, arg: int | None = None, counted: bool = True) -> int:
        if arg is not None:
            self._arg0.i32 = arg
        self._invoke(self._funcs[export], 2, counted)
        return int(self._arg0.i32)

    def _write(self, at: int, data: bytes) -> None:
        base = memory_data(self._ctx, self._mem_ref)
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


def _innermost_cause(exc: BaseException) -> str:
    """The last line: wasmtime puts the innermost cause last, after the backtrace and any
    outer context ("error while executing at wasm backtrace: ... Caused by: wasm trap: ...")."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    if not text:
        return type(exc).__name__
    # With several causes wasmtime numbers them ("1: wasm trap: ..."); the number says nothing.
    return re.sub(r"^\d+:\s*", "", text.splitlines()[-1].strip())

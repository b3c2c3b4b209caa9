"""What budget enforcement costs per message: fuel and epoch deadlines on versus off, one run.

    python benchmarks/budget_cost.py [--calls N] [--quick]

Three loops over the same filter (examples/filters/threshold.wasm, half the readings pass):
1. raw wasmtime call path, engine with neither fuel nor epochs (the floor);
2. the same raw path on an engine with both, re-arming fuel and the deadline before each call;
3. edged's own per-message path (`WasmtimeFilter.on_message`, budgets, stats, output checks).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from pathlib import Path

import wasmtime
from wasmtime import _bindings as raw

from edged.config import Budgets
from edged.engine import WasmtimeEngine

HERE = Path(__file__).resolve().parent
MODULE = HERE.parent / "examples" / "filters" / "threshold.wasm"
TOPIC = b"sensors/room1/temperature"


def _payloads(n: int) -> list[bytes]:
    return [json.dumps({"value": 20 + (i % 20)}).encode() for i in range(n)]


def raw_loop(payloads: list[bytes], budgets: bool) -> float:
    config = wasmtime.Config()
    config.consume_fuel = budgets
    config.epoch_interruption = budgets
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    if budgets:
        store.set_fuel(10**9)
        store.set_epoch_deadline(10**6)
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()
    linker.define_func("edged", "log", wasmtime.FuncType([i32, i32, i32], []), lambda *a: None)
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(MODULE)))
    ex = instance.exports(store)
    memory, buffers, init, on_message = (
        ex["memory"],
        ex["edged_buffers"],
        ex["edged_init"],
        ex["edged_on_message"],
    )
    desc = bytes(memory.read(store, buffers(store), buffers(store) + 16))  # type: ignore[union-attr,operator]
    in_ptr = int.from_bytes(desc[:4], "little")
    params = b"limit\x0029.5\x00"
    memory.write(store, params, in_ptr)  # type: ignore[union-attr]
    init(store, len(params))  # type: ignore[operator]
    ctx = store._context()
    mem_ref = ctypes.byref(memory._memory)  # type: ignore[union-attr]
    func_ref = ctypes.byref(on_message._func)  # type: ignore[union-attr]
    vals = (raw.wasmtime_val_raw * 2)()
    a0, a1 = vals[0], vals[1]
    trap = ctypes.POINTER(raw.wasm_trap_t)()
    trap_ref = ctypes.byref(trap)
    call, data = raw._wasmtime_func_call_unchecked, raw._wasmtime_memory_data
    set_fuel, set_deadline = (
        raw._wasmtime_context_set_fuel,
        raw._wasmtime_context_set_epoch_deadline,
    )
    tlen = len(TOPIC)
    start = time.perf_counter()
    for payload in payloads:
        at = ctypes.addressof(data(ctx, mem_ref).contents) + in_ptr
        ctypes.memmove(at, TOPIC, tlen)
        ctypes.memmove(at + tlen, payload, len(payload))
        a0.i32, a1.i32 = tlen, len(payload)
        if budgets:
            set_fuel(ctx, 20_000_000)
            set_deadline(ctx, 11)
        if call(ctx, func_ref, vals, 2, trap_ref) or trap:
            raise RuntimeError("trap")
    return time.perf_counter() - start


def edged_loop(payloads: list[bytes], wasi: bool = False) -> float:
    """edged's per-message path; with `wasi`, the same module instantiated as a WASI module is
    (a WASI linker, a store with a WASI context, its shims defined): what WASI itself adds to a
    call, with the filter's work unchanged."""
    engine = WasmtimeEngine()
    module = engine.load("threshold", MODULE.read_bytes())
    if wasi:
        from edged.engine.abi import encode_params
        from edged.engine.wasmtime_filter import WasmtimeFilter

        filt = WasmtimeFilter(
            engine.wasmtime,
            module._module,
            name="threshold",
            budgets=Budgets(),
            epoch_tick_ms=engine.settings.epoch_tick_ms,
            ticker=engine.ticker,
            params=encode_params({"limit": 29.5}),
            log=lambda *_: None,
            imports_log=True,
            has_init=True,
            wasi=True,
        )
    else:
        filt = module.instantiate({"limit": 29.5}, lambda *_: None, Budgets())
    start = time.perf_counter()
    for payload in payloads:
        filt.on_message(TOPIC, payload)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    payloads = _payloads(2_000 if args.quick else args.calls)
    rows = [
        ("raw call, no fuel, no epochs (floor)", raw_loop(payloads, budgets=False)),
        ("raw call, fuel + epoch deadline", raw_loop(payloads, budgets=True)),
        ("edged on_message, all budgets", edged_loop(payloads)),
    ]
    floor = rows[0][1]
    print(f"{'path':<40} {'µs/msg':>8} {'ratio':>6}")
    for name, seconds in rows:
        print(f"{name:<40} {seconds / len(payloads) * 1e6:>8.2f} {seconds / floor:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

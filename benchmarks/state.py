"""Filter state: what a swap that hands a state over, a checkpoint, and a stateful filter cost.

1. **Swap with a state** of 0 B, 4 KiB, 64 KiB and 1 MiB (and, for reference, a module
   without state exports): the hot-swap scenario (`scenarios.hot_swap`, a 10,000 msg/s QoS 1
   stream, signed pushes alternating two versions) with a forwarding module whose state is
   that many bytes. Push → ack time, the longest gap in the output stream, and how many swaps
   handed the state over (`state_loaded` in the node's log).
2. **Checkpoint cost**: 8 filters of 4 KiB each, every one changed between checkpoints, in a
   `Daemon` built in this process (no broker needed): the CPU of `Daemon._checkpoint` (each
   filter's save, then one SQLite transaction with fsync), its wall time (the loop waits for
   it), and the bytes handed to `write()` (`wchar` of /proc/self/io), per checkpoint and per
   hour at the default interval.
3. **Per-message path**: `WasmtimeFilter.on_message` per call for the same module with and
   without state exports (the same work: forward, bump a counter); the host never looks at
   a state between saves, so the two should match.
"""

from __future__ import annotations

import logging
import statistics
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import wasmtime
import yaml

from benchmarks import scenarios
from benchmarks.scenarios import Context, Row
from edged.config import Budgets, load_config
from edged.engine import WasmtimeEngine

KiB = 1024
MiB = 1024 * KiB
SWAP_STATES = (0, 4 * KiB, 64 * KiB, MiB)
# Where the state lies in linear memory: from the second page on.
_STATE_AT = 65536
CHECKPOINT_FILTERS = 8
CHECKPOINT_STATE = 4 * KiB
DEFAULT_INTERVAL = 60.0  # state.checkpoint_interval's default (edged.config.model)
TOPIC = b"sensors/s0"
PAYLOAD = b'{"sensor":"s0","seq":1000000,"unit":"degC","value":24.000000000}'


def forward_wat(state: int | None, variant: int = 1) -> str:
    """A module that forwards every message and adds `variant` to a counter at the start of its
    state area; with `state` bytes of state (None: no state exports). Variants differ only in
    that constant, so two of them make two versions to push in turn."""
    pages = 1 + max(1, -(-max(state or 0, 4) // 65536))
    descriptor = "".join(f"\\{b:02x}" for b in struct.pack("<III", _STATE_AT, state or 0, 1))
    exports = ""
    if state is not None:
        exports = f"""
  (func (export "edged_state_save") (result i32) (i32.const 16))
  (func (export "edged_state_buffer") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const {state}))
      (then (i32.const {_STATE_AT})) (else (i32.const -1))))
  (func (export "edged_state_load") (param $format i32) (param $len i32) (result i32)
    (i32.or (i32.ne (local.get $format) (i32.const 1))
            (i32.ne (local.get $len) (i32.const {state}))))"""
    return f"""
(module
  (memory (export "memory") {pages})
  ;; buffers: input at 64 (61,376 bytes), output at 61,440 (4,096)
  (data (i32.const 0) "\\40\\00\\00\\00\\c0\\ef\\00\\00\\00\\f0\\00\\00\\00\\10\\00\\00")
  ;; state descriptor at 16: ptr, len, format 1
  (data (i32.const 16) "{descriptor}")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32)
    (i32.store (i32.const {_STATE_AT})
      (i32.add (i32.load (i32.const {_STATE_AT})) (i32.const {variant})))
    (i32.const 1)){exports})
"""


def forward_wasm(state: int | None, variant: int = 1) -> bytes:
    return bytes(wasmtime.wat2wasm(forward_wat(state, variant)))


def _label(state: int | None) -> str:
    if state is None:
        return "no state exports"
    if state >= MiB:
        return f"{state // MiB} MiB"
    return f"{state // KiB} KiB" if state else "0 B"


@dataclass(frozen=True)
class Counts:
    checkpoints: int
    calls: int
    call_rounds: int

    @classmethod
    def full(cls) -> Counts:
        return cls(checkpoints=200, calls=100_000, call_rounds=5)

    @classmethod
    def quick(cls) -> Counts:
        return cls(checkpoints=5, calls=2_000, call_rounds=1)


# -- 1. swaps ---------------------------------------------------------------------------------


def swaps(ctx: Context) -> list[Row]:
    rows = []
    for state in (None, *SWAP_STATES):
        ctx.say(f"state: swap, {_label(state)}")
        versions = (forward_wasm(state, 1), forward_wasm(state, 2))
        budgets = {"max_state": f"{max(state or 0, 256 * KiB) // KiB} KiB"}
        row = scenarios.hot_swap(ctx, versions, budgets)
        rows.append({"state": _label(state), "state_bytes": state, **row})
    return rows


# -- 2. checkpoints ---------------------------------------------------------------------------


def _wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def checkpoints(ctx: Context, count: int) -> Row:
    """`count` checkpoints of CHECKPOINT_FILTERS filters of CHECKPOINT_STATE bytes, each changed
    before every checkpoint, written by a Daemon built in this process."""
    from edged.daemon import Daemon

    workdir = ctx.workdir / "checkpoints"
    workdir.mkdir()
    wasm = workdir / "state4k.wasm"
    wasm.write_bytes(forward_wasm(CHECKPOINT_STATE))
    document = {
        "node_id": "bench-checkpoints",
        "state_dir": str(workdir / "state"),
        "broker": {"host": ctx.host, "port": ctx.port},
        "modules": {"state4k": {"file": str(wasm)}},
        "pipelines": [
            {
                "name": f"p{i}",
                "subscribe": [f"bench/checkpoints/p{i}/#"],
                "filters": [{"module": "state4k"}],
                "outputs": [{"topic": "bench/checkpoints/out/{topic}"}],
            }
            for i in range(CHECKPOINT_FILTERS)
        ],
    }
    path = workdir / "edged.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    # the daemon's per-checkpoint debug line would print 200 times here
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    daemon = Daemon(load_config(path))
    filters = [step.filter for p in daemon.pipelines for step in p.steps]
    cpu: list[float] = []
    wall: list[float] = []
    written: list[int] = []
    try:
        for _ in range(count + 1):
            for f in filters:
                f.on_message(TOPIC, PAYLOAD)
            w0, c0, t0 = _wchar(), time.thread_time(), time.perf_counter()
            saved = daemon._checkpoint("interval")
            t1, c1, w1 = time.perf_counter(), time.thread_time(), _wchar()
            assert saved == CHECKPOINT_FILTERS, saved
            cpu.append(c1 - c0)
            wall.append(t1 - t0)
            written.append(w1 - w0)
    finally:
        daemon.states.close()
        daemon.engine.close()
        structlog.reset_defaults()
    # the first one creates the rows: not a steady-state checkpoint
    cpu, wall, written = cpu[1:], wall[1:], written[1:]
    per = statistics.mean(written)
    return {
        "filters": CHECKPOINT_FILTERS,
        "state_bytes": CHECKPOINT_STATE,
        "checkpoints": len(cpu),
        "cpu_ms": {
            "median": round(statistics.median(cpu) * 1000, 2),
            "max": round(max(cpu) * 1000, 2),
        },
        "wall_ms": {
            "median": round(statistics.median(wall) * 1000, 2),
            "max": round(max(wall) * 1000, 2),
        },
        "bytes_per_checkpoint": round(per),
        "interval_s": DEFAULT_INTERVAL,
        "mib_per_hour": round(per * 3600 / DEFAULT_INTERVAL / MiB, 2),
    }


# -- 3. the per-message path ------------------------------------------------------------------


def calls(calls: int, rounds: int) -> dict[str, float]:
    """µs per `on_message` for the module without and with state exports (4 KiB), the two
    timed in turn, `rounds` times each; medians."""
    engine = WasmtimeEngine()
    try:
        filters = {
            "no state exports": engine.load("plain", forward_wasm(None)),
            "state exports, 4 KiB": engine.load("stateful", forward_wasm(CHECKPOINT_STATE)),
        }
        instances = {
            name: module.instantiate({}, lambda *_: None, Budgets())
            for name, module in filters.items()
        }
        times: dict[str, list[float]] = {name: [] for name in instances}
        for filt in instances.values():
            for _ in range(1000):  # warm up: the first calls fault in memory and code
                filt.on_message(TOPIC, PAYLOAD)
        for _ in range(rounds):
            for name, filt in instances.items():
                on_message = filt.on_message
                start = time.perf_counter()
                for _ in range(calls):
                    on_message(TOPIC, PAYLOAD)
                times[name].append(time.perf_counter() - start)
    finally:
        engine.close()
    return {name: round(statistics.median(t) / calls * 1e6, 2) for name, t in times.items()}


def measure(ctx: Context, counts: Counts) -> dict[str, Any]:
    swap_rows = swaps(ctx)
    ctx.say("state: checkpoint cost")
    checkpoint = checkpoints(ctx, counts.checkpoints)
    ctx.say("state: per-call cost")
    per_call = calls(counts.calls, counts.call_rounds)
    for row in swap_rows:
        wanted = 0 if row["state_bytes"] is None else row["swaps"]
        acks = dict(row["acks"])
        if (
            row["state_loads"] != wanted
            or acks != {"activated": row["swaps"]}
            or row["lost"]
            or row["duplicated"]
        ):
            ctx.notes.append(
                f"state: swap with {row['state']}: {row['state_loads']} state loads for "
                f"{row['swaps']} swaps, acks {acks}, {row['lost']} lost, "
                f"{row['duplicated']} duplicated"
            )
    return {
        "stream_rate": ctx.sizes.swap_rate,
        "swaps": swap_rows,
        "checkpoint": checkpoint,
        "call_us": per_call,
    }

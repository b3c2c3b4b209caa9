"""The engine's side of filter state (docs/filter-abi.md, "State"): save, load, and every way
a module can get them wrong.

The modules are `tests.unit.test_engine`'s inline WAT filters plus a counter: each message
bumps an i64 and emits it (topic `n`, 8 little-endian bytes). Its state is that i64, format 1,
saved at address 32 with the state descriptor at 16 (both below the input area at 64).
"""

from __future__ import annotations

import struct

import pytest
import wasmtime

from edged.config import Budgets
from edged.engine import Filter, SavedState, WasmtimeEngine
from tests.unit.test_engine import (
    OUT_PTR,
    PAGE,
    call_error,
    filter_wat,
    refusal,
    start,
    wasm,
    wat_bytes,
)

DESC_AT, BLOB_AT = 16, 32

#: edged_state_save: the counter at BLOB_AT, the descriptor (BLOB_AT, 8, format 1) at DESC_AT
SAVE = f"""
    (i64.store (i32.const {BLOB_AT}) (global.get $n))
    (i32.store (i32.const {DESC_AT}) (i32.const {BLOB_AT}))
    (i32.store (i32.const {DESC_AT + 4}) (i32.const 8))
    (i32.store (i32.const {DESC_AT + 8}) (i32.const 1))
    (i32.const {DESC_AT})"""
#: edged_state_buffer: room for 8 bytes at BLOB_AT, -1 for more
BUFFER = f"""
    (if (result i32) (i32.gt_u (local.get $len) (i32.const 8))
      (then (i32.const -1)) (else (i32.const {BLOB_AT})))"""
#: edged_state_load: format 1 of exactly 8 bytes, else refused with 7 (format) or 8 (length)
LOAD = f"""
    (if (i32.ne (local.get $format) (i32.const 1)) (then (return (i32.const 7))))
    (if (i32.ne (local.get $len) (i32.const 8)) (then (return (i32.const 8))))
    (global.set $n (i64.load (i32.const {BLOB_AT})))
    (i32.const 0)"""


def counter(save: str | None = SAVE, buffer: str | None = BUFFER, load: str | None = LOAD) -> bytes:
    """The counter module; each keyword is the body of that state export, None leaves it out."""
    # the output area: used, then one record (topic_len 1, payload_len 8, "n", the count)
    area = struct.pack("<III", 8 + 1 + 8, 1, 8) + b"n"
    body = [
        "(global $n (mut i64) (i64.const 0))",
        f'(data (i32.const {OUT_PTR}) "{wat_bytes(area)}")',
    ]
    if save is not None:
        body.append(f'(func (export "edged_state_save") (result i32) {save})')
    if buffer is not None:
        body.append(f'(func (export "edged_state_buffer") (param $len i32) (result i32) {buffer})')
    if load is not None:
        body.append(
            '(func (export "edged_state_load") (param $format i32) (param $len i32)'
            f" (result i32) {load})"
        )
    on_message = f"""
      (global.set $n (i64.add (global.get $n) (i64.const 1)))
      (i64.store (i32.const {OUT_PTR + 13}) (global.get $n))
      (i32.const 2)"""
    return wasm("\n".join(body), on_message=on_message)


def count(filt: Filter) -> int:
    """Send one message; the count the counter emits for it."""
    (record,) = filt.on_message(b"t", b"x")
    assert record[0] == b"n"
    return int(struct.unpack("<q", record[1])[0])


@pytest.fixture
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


def test_counter_state_survives_a_fresh_instance(engine: WasmtimeEngine) -> None:
    """A saved count loaded into a fresh instance carries on where the first one stopped."""
    module = engine.load("f", counter())
    assert module.has_state
    first = module.instantiate({}, lambda *_: None)
    assert first.has_state
    assert [count(first) for _ in range(3)] == [1, 2, 3]
    saved = first.save_state()
    assert saved == SavedState(1, struct.pack("<q", 3))
    second = module.instantiate({}, lambda *_: None)
    second.load_state(saved)
    assert count(second) == 4
    # Saving changes nothing for the instance that saved: it goes on counting too.
    assert first.save_state() == saved
    assert count(first) == 4


def test_module_without_state_exports_has_none(engine: WasmtimeEngine) -> None:
    """A filter without the state exports saves nothing and refuses any state handed to it."""
    module = engine.load("f", wasm())
    assert not module.has_state
    running = module.instantiate({}, lambda *_: None)
    assert not running.has_state
    assert running.save_state() is None
    exc = call_error(running.load_state, SavedState(1, b""))
    assert exc.reason == "state_refused"


def test_empty_state_saves_and_loads(engine: WasmtimeEngine) -> None:
    """A zero-length state is a state: saved as b"", and handed back with len 0."""
    save = f"""
      (i32.store (i32.const {DESC_AT}) (i32.const 0))
      (i32.store (i32.const {DESC_AT + 4}) (i32.const 0))
      (i32.store (i32.const {DESC_AT + 8}) (i32.const 5))
      (i32.const {DESC_AT})"""
    load = "(if (result i32) (i32.eqz (local.get $len)) (then (i32.const 0)) (else (i32.const 1)))"
    running = start(engine, counter(save=save, load=load))
    assert running.save_state() == SavedState(5, b"")
    start(engine, counter(save=save, load=load)).load_state(SavedState(5, b""))


def test_save_over_max_state_is_a_state_violation(engine: WasmtimeEngine) -> None:
    """A save larger than budgets.max_state fails with reason `state`; the filter serves on."""
    running = start(engine, counter(), budgets=Budgets(max_state=4))
    assert count(running) == 1
    exc = call_error(running.save_state)
    assert exc.reason == "state"
    assert "budgets.max_state is 4" in exc.detail
    assert count(running) == 2


def test_load_over_max_state_is_refused_before_the_module_sees_it(
    engine: WasmtimeEngine,
) -> None:
    """A stored state larger than this node's max_state is not handed to the module at all."""
    running = start(engine, counter(), budgets=Budgets(max_state=4))
    exc = call_error(running.load_state, SavedState(1, struct.pack("<q", 9)))
    assert exc.reason == "state"
    assert "max_state" in exc.detail


@pytest.mark.parametrize(
    ("save", "words"),
    [
        (f"(i32.const {PAGE - 4})", "outside memory"),
        ("(i32.const -1)", "outside memory"),
        (
            f"""(i32.store (i32.const {DESC_AT}) (i32.const {PAGE - 4}))
                (i32.store (i32.const {DESC_AT + 4}) (i32.const 8))
                (i32.const {DESC_AT})""",
            "lies outside memory",
        ),
    ],
    ids=["descriptor_past_the_end", "descriptor_at_minus_one", "blob_past_the_end"],
)
def test_save_outside_memory_is_a_state_violation(
    engine: WasmtimeEngine, save: str, words: str
) -> None:
    """A descriptor or a blob that does not lie inside linear memory fails with `state`."""
    running = start(engine, counter(save=save))
    exc = call_error(running.save_state)
    assert exc.reason == "state"
    assert words in exc.detail
    assert count(running) == 1


def test_state_buffer_outside_memory_is_a_state_violation(engine: WasmtimeEngine) -> None:
    """edged_state_buffer pointing where the blob would not fit in memory fails with `state`."""
    running = start(engine, counter(buffer=f"(i32.const {PAGE - 4})"))
    exc = call_error(running.load_state, SavedState(1, struct.pack("<q", 3)))
    assert exc.reason == "state"
    assert "outside memory" in exc.detail


@pytest.mark.parametrize("where", ["save", "buffer", "load"])
def test_trap_in_a_state_call_has_the_trap_reason(engine: WasmtimeEngine, where: str) -> None:
    """A trap in edged_state_save, _buffer or _load fails with reason `trap`, and its message."""
    module = counter(**{where: "unreachable"})
    running = start(engine, module)
    call = running.save_state if where == "save" else running.load_state
    args = () if where == "save" else (SavedState(1, struct.pack("<q", 3)),)
    exc = call_error(call, *args)
    assert exc.reason == "trap"
    assert "unreachable" in exc.detail


def test_endless_load_runs_out_of_fuel(engine: WasmtimeEngine) -> None:
    """The state calls run under the filter's fuel like any other call."""
    spin = "(loop $l (br $l)) (i32.const 0)"
    running = start(engine, counter(load=spin), budgets=Budgets(fuel=100_000))
    exc = call_error(running.load_state, SavedState(1, struct.pack("<q", 3)))
    assert exc.reason == "fuel"


@pytest.mark.parametrize(
    ("state", "code"),
    [(SavedState(2, struct.pack("<q", 3)), 7), (SavedState(1, b"abc"), 8)],
    ids=["unknown_format", "wrong_length"],
)
def test_load_that_returns_non_zero_is_refused(
    engine: WasmtimeEngine, state: SavedState, code: int
) -> None:
    """A module that does not take a state says so with a non-zero code: `state_refused`,
    naming the format, the length and the code."""
    running = start(engine, counter())
    exc = call_error(running.load_state, state)
    assert exc.reason == "state_refused"
    assert f"format {state.format}" in exc.detail
    assert f"({len(state.data)} bytes)" in exc.detail
    assert exc.detail.endswith(f"returned {code}")


def test_state_buffer_minus_one_is_refused(engine: WasmtimeEngine) -> None:
    """A blob edged_state_buffer has no room for (-1) is refused, never written."""
    running = start(engine, counter())
    exc = call_error(running.load_state, SavedState(1, b"\x01" * 9))
    assert exc.reason == "state_refused"
    assert "cannot take 9 bytes" in exc.detail


@pytest.mark.parametrize(
    "present",
    [("save",), ("buffer",), ("load",), ("save", "buffer"), ("save", "load"), ("buffer", "load")],
    ids=lambda p: "+".join(p),
)
def test_some_state_exports_without_the_others_are_refused(
    engine: WasmtimeEngine, present: tuple[str, ...]
) -> None:
    """The three state exports go together; a module with some is refused at load, naming the
    ones it lacks."""
    kinds = ("save", "buffer", "load")
    module = counter(**{k: None for k in kinds if k not in present})
    reason = refusal(engine, module)
    missing = [f"edged_state_{k}" for k in kinds if k not in present]
    assert f"without {', '.join(missing)}" in reason
    assert "all three, or none" in reason


def test_state_export_with_the_wrong_signature_is_refused(engine: WasmtimeEngine) -> None:
    """edged_state_load taking one parameter instead of two is refused at load, by name."""
    bad = filter_wat(
        """(func (export "edged_state_save") (result i32) (i32.const 0))
           (func (export "edged_state_buffer") (param i32) (result i32) (i32.const 0))
           (func (export "edged_state_load") (param i32) (result i32) (i32.const 0))"""
    )
    reason = refusal(engine, bytes(wasmtime.wat2wasm(bad)))
    assert "edged_state_load" in reason


def test_save_and_load_are_not_counted_as_calls(engine: WasmtimeEngine) -> None:
    """The call figures are about messages and ticks: saves and loads add nothing to them."""
    module = engine.load("f", counter())
    first = module.instantiate({}, lambda *_: None)
    count(first)
    count(first)
    before = (first.stats.calls, first.stats.fuel_used, sum(first.stats.buckets))
    saved = first.save_state()
    assert saved is not None
    assert (first.stats.calls, first.stats.fuel_used, sum(first.stats.buckets)) == before
    second = module.instantiate({}, lambda *_: None)
    second.load_state(saved)
    assert (second.stats.calls, second.stats.fuel_used, second.stats.elapsed) == (0, 0, 0)
    assert count(second) == 3
    assert second.stats.calls == 1

"""WASI modules in the engine: what they are granted, and hostile ones that try a sleep, a flood
of output, a loop of random bytes or an exit. Each gets a clear outcome; none stalls the caller
or takes the process down.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import wasmtime

from edged.config.model import Budgets
from edged.engine import EngineSettings, WasmtimeEngine
from edged.errors import FilterCallError

ALL = frozenset({"clock", "random", "log"})
P = "wasi_snapshot_preview1"
# input area at 64 (1024 bytes), output area at 2048 (1024 bytes)
DESCRIPTOR = "\\40\\00\\00\\00\\00\\04\\00\\00\\00\\08\\00\\00\\00\\04\\00\\00"


@pytest.fixture(scope="module")
def engine() -> WasmtimeEngine:
    return WasmtimeEngine(EngineSettings())


def module(imports: str, on_message: str, extra: str = "") -> bytes:
    """A filter with WASI `imports` whose edged_on_message is `on_message` (params $t $p)."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module
              {imports}
              (memory (export "memory") 2)
              (data (i32.const 0) "{DESCRIPTOR}")
              (func (export "edged_abi_version") (result i32) (i32.const 1))
              (func (export "edged_buffers") (result i32) (i32.const 0))
              (func (export "edged_on_message") (param $t i32) (param $p i32) (result i32)
                {on_message})
              {extra})"""
        )
    )


def start(engine: WasmtimeEngine, wasm: bytes, **options: Any) -> Any:
    logs: list[tuple[str, str]] = []
    instance = engine.load("w", wasm).instantiate(
        {}, lambda level, text: logs.append((level, text)), options.get("budgets", Budgets()), ALL
    )
    instance.logs = logs
    return instance


WRITE = f'(import "{P}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))'


def test_stdout_and_stderr_lines_become_log_lines(engine: WasmtimeEngine) -> None:
    """ "hi\\n" to stdout is an info line, to stderr a warning; a line written in two parts is
    one line."""
    text = "hi\\0a" + "par" + "t\\0a"
    wasm = module(
        WRITE,
        """
        (call $write (i32.const 1) (i32.const 3000) (i32.const 1) (i32.const 3100)) drop
        (call $write (i32.const 2) (i32.const 3000) (i32.const 1) (i32.const 3100)) drop
        (call $write (i32.const 1) (i32.const 3008) (i32.const 1) (i32.const 3100)) drop
        (call $write (i32.const 1) (i32.const 3016) (i32.const 1) (i32.const 3100)) drop
        (i32.const 1)""",
        # iovecs at 3000 ("hi\\n"), 3008 ("par"), 3016 ("t\\n"); bytes at 4000
        f'(data (i32.const 4000) "{text}")'
        '(data (i32.const 3000) "\\a0\\0f\\00\\00\\03\\00\\00\\00")'
        '(data (i32.const 3008) "\\a3\\0f\\00\\00\\03\\00\\00\\00")'
        '(data (i32.const 3016) "\\a6\\0f\\00\\00\\02\\00\\00\\00")',
    )
    instance = start(engine, wasm)
    instance.on_message(b"t", b"p")
    assert instance.logs == [("info", "hi"), ("warning", "hi"), ("info", "part")]


def test_a_sleep_through_poll_oneoff_is_answered_at_once(engine: WasmtimeEngine) -> None:
    """A 300 ms clock subscription comes back at once: a host call is neither metered nor
    interruptible, so edged never sleeps in one (the event says the clock went off)."""
    poll = f'(import "{P}" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))'
    # subscription at 2048: userdata 7, tag 0 (clock), clock id 1, timeout 300 ms in ns
    wasm = module(
        poll,
        """(drop (call $poll (i32.const 2048) (i32.const 2200) (i32.const 1) (i32.const 2400)))
           (if (i64.ne (i64.load (i32.const 2200)) (i64.const 7)) (then unreachable))
           (if (i32.ne (i32.load (i32.const 2400)) (i32.const 1)) (then unreachable))
           (i32.const 1)""",
        '(data (i32.const 2048) "\\07\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00'
        '\\01\\00\\00\\00\\00\\00\\00\\00\\00\\a3\\e1\\11\\00\\00\\00\\00")',
    )
    instance = start(engine, wasm)
    began = time.monotonic()
    assert instance.on_message(b"t", b"p") == ((b"t", b"p"),)
    assert time.monotonic() - began < 0.05


def test_megabytes_to_stdout_cost_a_bounded_copy_and_bounded_lines(
    engine: WasmtimeEngine,
) -> None:
    """One write of 1 MiB without a newline: said written whole, a bounded part kept, no line
    logged until a newline comes; the call returns at once."""
    wasm = module(
        WRITE,
        """(call $write (i32.const 1) (i32.const 3000) (i32.const 1) (i32.const 3100)) drop
           (if (i32.ne (i32.load (i32.const 3100)) (i32.const 1048576)) (then unreachable))
           (i32.const 1)""",
        '(data (i32.const 3000) "\\00\\00\\00\\00\\00\\00\\10\\00")',  # iovec: 0, 1 MiB
    )
    budgets = Budgets(memory=32 * 2**20)
    engine_module = engine.load("w", wasm)
    logs: list[tuple[str, str]] = []
    instance = engine_module.instantiate(
        {}, lambda level, text: logs.append((level, text)), budgets, ALL
    )
    # grow memory to hold the 1 MiB the iovec names
    instance._memory.grow(instance._store, 16)
    began = time.monotonic()
    assert instance.on_message(b"t", b"p") == ((b"t", b"p"),)
    assert time.monotonic() - began < 0.1
    assert logs == []
    assert len(instance._wasi_lines[1]) <= 1024


def test_a_loop_of_random_bytes_ends_at_its_fuel(engine: WasmtimeEngine) -> None:
    random = f'(import "{P}" "random_get" (func $random (param i32 i32) (result i32)))'
    wasm = module(
        random,
        "(loop $again (drop (call $random (i32.const 3000) (i32.const 4096))) (br $again))"
        " (i32.const 1)",
    )
    instance = start(engine, wasm, budgets=Budgets(fuel=200_000, deadline_ms=2000))
    with pytest.raises(FilterCallError) as info:
        instance.on_message(b"t", b"p")
    assert info.value.reason in ("fuel", "deadline")


def test_proc_exit_ends_the_call_as_a_violation_and_the_filter_serves_on(
    engine: WasmtimeEngine,
) -> None:
    exit_ = f'(import "{P}" "proc_exit" (func $exit (param i32)))'
    wasm = module(
        exit_,
        "(if (i32.eq (local.get $p) (i32.const 4)) (then (call $exit (i32.const 3))))"
        " (i32.const 1)",
    )
    instance = start(engine, wasm)
    with pytest.raises(FilterCallError) as info:
        instance.on_message(b"t", b"exit")
    assert (info.value.reason, info.value.detail) == ("exit", "the filter called proc_exit(3)")
    assert instance.on_message(b"t", b"ok") == ((b"t", b"ok"),)


def test_arguments_and_environment_are_empty(engine: WasmtimeEngine) -> None:
    sizes = f'(import "{P}" "environ_sizes_get" (func $env (param i32 i32) (result i32)))'
    wasm = module(
        sizes,
        """(drop (call $env (i32.const 3000) (i32.const 3004)))
           (if (i32.ne (i32.load (i32.const 3000)) (i32.const 0)) (then unreachable))
           (i32.const 1)""",
    )
    assert start(engine, wasm).on_message(b"t", b"p") == ((b"t", b"p"),)


def test_initialize_runs_once_before_anything_else(engine: WasmtimeEngine) -> None:
    """A reactor's `_initialize` (libc's or Go's constructors) is called once, at instantiation."""
    wasm = module(
        "",
        "(i32.store (i32.const 3000) (i32.add (i32.load (i32.const 3000)) (i32.const 1))) "
        "(if (i32.ne (i32.load (i32.const 3004)) (i32.const 1)) (then unreachable)) (i32.const 1)",
        '(func (export "_initialize") (i32.store (i32.const 3004)'
        " (i32.add (i32.load (i32.const 3004)) (i32.const 1))))",
    )
    instance = start(engine, wasm)
    for _ in range(3):
        assert instance.on_message(b"t", b"p") == ((b"t", b"p"),)

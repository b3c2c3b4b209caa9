"""The wasmtime engine against the filter ABI (docs/filter-abi.md).

Every module is written inline as WAT. `filter_wat` fills in a conforming module (memory of one
page, the descriptor at address 0 with the layout of the ABI doc's passthrough example, version
1, a FORWARD `edged_on_message`), so each test spells out only the part it is about.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from edged.config import DEFAULT_BUDGETS, Budgets
from edged.engine import EngineSettings, WasmtimeEngine
from edged.errors import FilterCallError, FilterRejected, ModuleError
from edged.mqtt.properties import Properties
from tests.helpers.paths import ROOT

IN_PTR, IN_CAP, OUT_PTR, OUT_CAP = 64, 61376, 61440, 4096
DESCRIPTOR = (IN_PTR, IN_CAP, OUT_PTR, OUT_CAP)
PAGE = 65536


# -- building modules -------------------------------------------------------------------------


def wat_bytes(data: bytes) -> str:
    """`data` as the inside of a WAT string literal."""
    return "".join(f"\\{b:02x}" for b in data)


def filter_wat(
    body: str = "",
    *,
    on_message: str | None = "(i32.const 1)",
    abi_version: str | None = "(i32.const 1)",
    buffers: str | None = "(i32.const 0)",
    memory: str = '(memory (export "memory") 1)',
    descriptor: tuple[int, int, int, int] = DESCRIPTOR,
    imports: str = "",
) -> str:
    """A filter module; each keyword is the body of that export, None leaves the export out.

    edged_on_message's parameters are named $tlen and $plen.
    """
    parts = [
        imports,
        memory,
        f'(data (i32.const 0) "{wat_bytes(struct.pack("<4I", *descriptor))}")',
    ]
    if buffers is not None:
        parts.append(f'(func (export "edged_buffers") (result i32) {buffers})')
    if abi_version is not None:
        parts.append(f'(func (export "edged_abi_version") (result i32) {abi_version})')
    if on_message is not None:
        parts.append(
            '(func (export "edged_on_message") (param $tlen i32) (param $plen i32) (result i32)\n'
            f"  {on_message})"
        )
    parts.append(body)
    return "(module\n" + "\n".join(p for p in parts if p) + "\n)"


def wasm(body: str = "", **kwargs: Any) -> bytes:
    """`filter_wat` compiled to a binary."""
    return bytes(wasmtime.wat2wasm(filter_wat(body, **kwargs)))


def out_area(*records: tuple[bytes, bytes], used: int | None = None) -> bytes:
    """An output area: the `used` header, then each record as the ABI lays it out."""
    body = b"".join(struct.pack("<II", len(t), len(p)) + t + p for t, p in records)
    return struct.pack("<I", len(body) if used is None else used) + body


def emitting(area: bytes) -> bytes:
    """A module whose output area holds `area` and whose edged_on_message returns EMIT."""
    return wasm(f'(data (i32.const {OUT_PTR}) "{wat_bytes(area)}")', on_message="(i32.const 2)")


def echo_body(in_ptr: int, out_ptr: int) -> str:
    """edged_on_message that emits the input area back as one record (topic, payload)."""
    return f"""
      (i32.store (i32.const {out_ptr})
        (i32.add (i32.const 8) (i32.add (local.get $tlen) (local.get $plen))))
      (i32.store (i32.const {out_ptr + 4}) (local.get $tlen))
      (i32.store (i32.const {out_ptr + 8}) (local.get $plen))
      (memory.copy (i32.const {out_ptr + 12}) (i32.const {in_ptr})
        (i32.add (local.get $tlen) (local.get $plen)))
      (i32.const 2)"""


def ignore_log(level: str, text: str) -> None:
    pass


def start(
    engine: WasmtimeEngine,
    module_wasm: bytes,
    params: dict[str, Any] | None = None,
    log: Callable[[str, str], None] = ignore_log,
    budgets: Budgets = DEFAULT_BUDGETS,
) -> Any:
    """Load and instantiate: the running filter."""
    return engine.load("f", module_wasm).instantiate(params or {}, log, budgets)


def refusal(
    engine: WasmtimeEngine, module_wasm: bytes, params: dict[str, Any] | None = None
) -> str:
    """The reason a module is refused, whether at load or at instantiation."""
    with pytest.raises(ModuleError) as info:
        start(engine, module_wasm, params)
    assert info.value.module == "f"
    return info.value.reason


def call_error(call: Callable[..., object], *args: object) -> FilterCallError:
    """The FilterCallError that `call(*args)` raises."""
    with pytest.raises(FilterCallError) as info:
        call(*args)
    return info.value


@pytest.fixture
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


# -- conformance: what is refused, and why ----------------------------------------------------


def test_passthrough_example_loads_and_forwards(engine: WasmtimeEngine) -> None:
    """The ABI doc's passthrough example loads, reports its exports and forwards messages."""
    module_wasm = wasm()
    module = engine.load("f", module_wasm)
    assert (module.has_init, module.has_tick) == (False, False)
    assert module.digest == hashlib.sha256(module_wasm).hexdigest()
    running = module.instantiate({}, ignore_log)
    assert running.has_tick is False
    assert running.on_message(b"a/b", b"x") == ((b"a/b", b"x"),)


@pytest.mark.parametrize("data", [b"", b"hello", b"(module)", b"\x7fELF\x02\x01\x01"])
def test_refuses_bytes_that_are_not_wasm(engine: WasmtimeEngine, data: bytes) -> None:
    """Anything without the \\0asm header is refused as not a WebAssembly binary."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", data)
    assert info.value.reason == "not a WebAssembly binary (no \\0asm header)"
    assert str(info.value).startswith("module 'f': ")


@pytest.mark.parametrize(
    "data",
    [b"\0asm", b"\0asm\x01\0\0\0\xff\xff\xff", b"\0asm\x02\0\0\0", wasm()[:-3]],
    ids=["header-only", "garbage-section", "wrong-version", "truncated"],
)
def test_refuses_invalid_wasm_after_the_header(engine: WasmtimeEngine, data: bytes) -> None:
    """Bytes with the header but no valid module behind it are refused as invalid WebAssembly."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", data)
    assert info.value.reason.startswith("invalid WebAssembly: ")
    assert len(info.value.reason) > len("invalid WebAssembly: ")


@pytest.mark.parametrize("memory", ["(memory 1)", '(memory (export "mem") 1)'])
def test_refuses_module_without_memory_export(engine: WasmtimeEngine, memory: str) -> None:
    """A module that does not export its memory as 'memory' is refused."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", wasm(memory=memory))
    assert info.value.reason == "does not export its linear memory as 'memory'"


def test_refuses_module_without_abi_version(engine: WasmtimeEngine) -> None:
    """No edged_abi_version export: refused, naming the export and the ABI edged speaks."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", wasm(abi_version=None))
    assert "no edged_abi_version export" in info.value.reason
    assert "this edged speaks 1" in info.value.reason


@pytest.mark.parametrize("version", [0, 2, -1])
def test_refuses_other_abi_versions(engine: WasmtimeEngine, version: int) -> None:
    """A module built for another ABI version is refused with both version numbers."""
    reason = refusal(engine, wasm(abi_version=f"(i32.const {version})"))
    assert reason == f"built for filter ABI {version}; this edged speaks 1"


@pytest.mark.parametrize(
    ("export", "omit"),
    [("edged_on_message", {"on_message": None}), ("edged_buffers", {"buffers": None})],
)
def test_refuses_module_without_required_export(
    engine: WasmtimeEngine, export: str, omit: dict[str, None]
) -> None:
    """A module without edged_on_message or edged_buffers is refused naming the export."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", wasm(**omit))
    assert info.value.reason == f"missing required export {export}"


@pytest.mark.parametrize(
    ("export", "declaration", "expected"),
    [
        ("edged_on_message", "(param i32) (result i32) (i32.const 1)", "(i32) -> (i32)"),
        ("edged_on_message", "(param i64 i32) (result i32) (i32.const 1)", "(i64, i32) -> (i32)"),
        ("edged_on_message", "(param i32 i32)", "(i32, i32) -> ()"),
        ("edged_buffers", "(result i64) (i64.const 0)", "() -> (i64)"),
        ("edged_on_tick", "(param i32) (result i32) (i32.const 0)", "(i32) -> (i32)"),
        ("edged_init", "(param i32)", "(i32) -> ()"),
    ],
    ids=["message-one-param", "message-i64", "message-no-result", "buffers", "tick", "init"],
)
def test_refuses_exports_with_wrong_signature(
    engine: WasmtimeEngine, export: str, declaration: str, expected: str
) -> None:
    """An ABI export with another signature is refused showing the expected and found one."""
    wanted = {
        "edged_on_message": "(i32, i32) -> (i32)",
        "edged_buffers": "() -> (i32)",
        "edged_on_tick": "(i64) -> (i32)",
        "edged_init": "(i32) -> (i32)",
    }[export]
    module_wasm = wasm(
        f'(func (export "{export}") {declaration})',
        on_message=None if export == "edged_on_message" else "(i32.const 1)",
        buffers=None if export == "edged_buffers" else "(i32.const 0)",
    )
    with pytest.raises(ModuleError) as info:
        engine.load("f", module_wasm)
    assert info.value.reason == f"export {export} must be {wanted}, found {expected}"


def test_refuses_export_that_is_not_a_function(engine: WasmtimeEngine) -> None:
    """An ABI export that is a global instead of a function is refused as not a function."""
    with pytest.raises(ModuleError) as info:
        engine.load(
            "f", wasm('(global (export "edged_on_message") i32 (i32.const 1))', on_message=None)
        )
    assert info.value.reason == (
        "export edged_on_message must be (i32, i32) -> (i32), found not a function"
    )


@pytest.mark.parametrize(
    ("imports", "named"),
    [
        ('(import "env" "abort" (func))', "env.abort"),
        ('(import "edged" "time" (func (result i64)))', "edged.time"),
        ('(import "edged" "log" (func (param i32 i32)))', "edged.log"),
        ('(import "edged" "log" (global i32))', "edged.log"),
    ],
    ids=["env", "unknown-edged", "log-wrong-signature", "log-not-a-function"],
)
def test_refuses_imports_edged_does_not_provide(
    engine: WasmtimeEngine, imports: str, named: str
) -> None:
    """Any import but edged.log (i32, i32, i32) is refused, naming its module and name."""
    with pytest.raises(ModuleError) as info:
        engine.load("f", wasm(imports=imports))
    assert f"imports {named}, which edged does not provide" in info.value.reason
    assert "edged.log" in info.value.reason


WASI_WRITE = (
    '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'
)


def test_a_wasi_import_needs_its_capability_granted(engine: WasmtimeEngine) -> None:
    """fd_write needs `log`: refused without the grant, naming the import and the capability;
    it serves with it. A WASI function that needs no capability (args, environment: empty)
    needs no grant."""
    module = engine.load("f", wasm(imports=WASI_WRITE))
    assert module.capabilities_needed == {"log"}
    with pytest.raises(ModuleError) as info:
        module.instantiate({}, lambda *_: None)
    assert info.value.reason == (
        "imports wasi_snapshot_preview1.fd_write, which needs the capability 'log' (not granted)"
    )
    instance = module.instantiate({}, lambda *_: None, capabilities=frozenset({"log"}))
    assert instance.on_message(b"t", b"p") == ((b"t", b"p"),)
    inert = '(import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))'
    plain = engine.load("g", wasm(imports=inert))
    assert plain.capabilities_needed == frozenset()
    assert plain.instantiate({}, lambda *_: None).on_message(b"t", b"p") == ((b"t", b"p"),)


def test_a_wasi_command_is_refused_with_how_to_build_a_reactor(engine: WasmtimeEngine) -> None:
    reason = refusal(engine, wasm('(func (export "_start"))'))
    assert reason.startswith("exports _start: a WASI command")
    assert "-mexec-model=reactor" in reason


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [
        ((64, 70000, 61440, 4096), "an area lies outside linear memory (65536 bytes)"),
        ((64, 1000, 61440, 4097), "an area lies outside linear memory (65536 bytes)"),
        ((64, 1000, 512, 4096), "the input and output areas overlap"),
        ((8192, 1000, 4096, 4097), "the input and output areas overlap"),
        ((64, 0, 61440, 4096), "the input area is empty"),
        ((64, 1000, 61440, 3), "the output area is smaller than its 4-byte header"),
    ],
    ids=["input-outside", "output-outside", "overlap", "overlap-by-one", "empty-in", "tiny-out"],
)
def test_refuses_unusable_descriptor(
    engine: WasmtimeEngine, descriptor: tuple[int, int, int, int], expected: str
) -> None:
    """A buffer descriptor that points outside memory or overlaps itself is refused."""
    reason = refusal(engine, wasm(descriptor=descriptor))
    assert reason.startswith("edged_buffers: ")
    assert expected in reason


def test_refuses_descriptor_address_outside_memory(engine: WasmtimeEngine) -> None:
    """edged_buffers returning an address whose 16 bytes are not all in memory is refused."""
    reason = refusal(engine, wasm(buffers=f"(i32.const {PAGE - 8})"))
    assert reason == f"edged_buffers returned {PAGE - 8}, outside memory"


def test_accepts_areas_that_touch(engine: WasmtimeEngine) -> None:
    """Areas that end exactly where the other starts, or at the end of memory, are accepted."""
    running = start(engine, wasm(descriptor=(16, PAGE - 16 - 4, PAGE - 4, 4)))
    assert running.on_message(b"t", b"p") == ((b"t", b"p"),)


# -- edged_init and parameters ----------------------------------------------------------------

PARAMS_TO_OUTPUT = f"""
  (func (export "edged_init") (param $len i32) (result i32)
    (i32.store (i32.const {OUT_PTR}) (i32.add (i32.const 9) (local.get $len)))
    (i32.store (i32.const {OUT_PTR + 4}) (i32.const 1))
    (i32.store (i32.const {OUT_PTR + 8}) (local.get $len))
    (i32.store8 (i32.const {OUT_PTR + 12}) (i32.const 0x70))
    (memory.copy (i32.const {OUT_PTR + 13}) (i32.const {IN_PTR}) (local.get $len))
    (i32.const 0))"""


@pytest.mark.parametrize(
    ("params", "encoded"),
    [
        (
            {"limit": 30, "on": True, "ratio": 0.5, "name": "x"},
            b"limit\x0030\x00on\x00true\x00ratio\x000.5\x00name\x00x\x00",
        ),
        ({"off": False, "unit": "\u00b0C"}, b"off\x00false\x00unit\x00\xc2\xb0C\x00"),
        ({}, b""),
    ],
    ids=["mixed", "false-and-utf8", "none"],
)
def test_params_reach_init_encoded(engine: WasmtimeEngine, params: dict, encoded: bytes) -> None:
    """init finds the params in its input area as key NUL value NUL pairs, params_len bytes."""
    module = engine.load("f", wasm(PARAMS_TO_OUTPUT, on_message="(i32.const 2)"))
    assert module.has_init is True
    running = module.instantiate(params, ignore_log)
    assert running.on_message(b"t", b"") == [(b"p", encoded)]


def test_init_is_called_once_before_any_message(engine: WasmtimeEngine) -> None:
    """init runs exactly once, at instantiation, before the first message."""
    module_wasm = wasm(
        "(global $inits (mut i32) (i32.const 0))"
        '(func (export "edged_init") (param i32) (result i32)'
        "  (global.set $inits (i32.add (global.get $inits) (i32.const 1))) (i32.const 0))",
        on_message="(global.get $inits)",
    )
    running = start(engine, module_wasm)
    assert running.on_message(b"t", b"p") == ((b"t", b"p"),)
    assert running.on_message(b"t", b"p") == ((b"t", b"p"),)


def test_init_returning_nonzero_refuses_module(engine: WasmtimeEngine) -> None:
    """init returning 3 refuses the module and shows the code to the operator."""
    module_wasm = wasm('(func (export "edged_init") (param i32) (result i32) (i32.const 3))')
    assert "init returned 3" in refusal(engine, module_wasm)


def test_init_trapping_refuses_module(engine: WasmtimeEngine) -> None:
    """init that traps refuses the module with the trap in the reason."""
    module_wasm = wasm('(func (export "edged_init") (param i32) (result i32) unreachable)')
    reason = refusal(engine, module_wasm, {"k": "v"})
    assert reason.startswith("trapped during setup: ")
    assert "unreachable" in reason


def test_params_for_module_without_init_are_refused(engine: WasmtimeEngine) -> None:
    """Giving params to a module without edged_init is refused, naming the missing export."""
    module = engine.load("f", wasm())
    assert module.has_init is False
    with pytest.raises(ModuleError) as info:
        module.instantiate({"limit": 30}, ignore_log)
    assert info.value.reason == "takes no parameters (no edged_init export)"


def test_params_larger_than_input_area_are_refused(engine: WasmtimeEngine) -> None:
    """Params that do not fit the input area refuse the module instead of overrunning it."""
    module_wasm = wasm(
        '(func (export "edged_init") (param i32) (result i32) (i32.const 0))',
        descriptor=(64, 16, 4096, 4096),
    )
    reason = refusal(engine, module_wasm, {"key": "0123456789abcdef"})
    assert reason == "parameters (21 bytes) exceed its input area"


# -- edged_on_message results -----------------------------------------------------------------


def test_drop_returns_nothing(engine: WasmtimeEngine) -> None:
    """Result code 0 (DROP) gives an empty outcome."""
    assert start(engine, wasm(on_message="(i32.const 0)")).on_message(b"a", b"b") == ()


def test_forward_returns_the_same_objects(engine: WasmtimeEngine) -> None:
    """Result code 1 (FORWARD) gives the caller's own topic and payload objects back."""
    topic, payload = b"plant/1/temp", bytes(range(256)) * 4
    outcome = start(engine, wasm()).on_message(topic, payload)
    assert outcome == ((topic, payload),)
    assert outcome[0][0] is topic
    assert outcome[0][1] is payload


def test_emit_returns_records_in_order(engine: WasmtimeEngine) -> None:
    """Result code 2 (EMIT) gives every record of the output area, bytes exact, in order."""
    records = [(b"sensors/a", b"\x00\x01\xff"), (b"alerts/\xc3\xa9", b"")]
    outcome = start(engine, emitting(out_area(*records))).on_message(b"in", b"x")
    assert outcome == records


def test_emit_with_used_zero_emits_nothing(engine: WasmtimeEngine) -> None:
    """EMIT with used = 0 gives an empty outcome, the same as DROP."""
    assert list(start(engine, emitting(out_area())).on_message(b"in", b"x")) == []


def test_emit_may_fill_the_output_area_exactly(engine: WasmtimeEngine) -> None:
    """used = out_cap - 4 with a record ending on the last byte is accepted whole."""
    payload = bytes(i % 251 for i in range(OUT_CAP - 4 - 8 - 1))
    area = out_area((b"t", payload))
    assert len(area) == OUT_CAP
    assert start(engine, emitting(area)).on_message(b"in", b"") == [(b"t", payload)]


@pytest.mark.parametrize("code", [4, 7, -1, 0x7FFFFFFF])
def test_other_result_codes_are_bad_result(engine: WasmtimeEngine, code: int) -> None:
    """Any result code but 0, 1, 2 is a bad_result naming the code."""
    running = start(engine, wasm(on_message=f"(i32.const {code})"))
    error = call_error(running.on_message, b"a", b"b")
    assert error.reason == "bad_result"
    assert error.detail == f"edged_on_message returned {code}"


BAD_OUTPUTS = {
    "past-used": (out_area((b"t", b"abcde"), used=12), "record at byte 0 runs past `used`"),
    "second-past-used": (
        out_area((b"ok", b""), (b"t", b"abcde"), used=22),
        "record at byte 10 runs past `used`",
    ),
    "used-over-cap": (out_area(used=OUT_CAP - 3), f"used={OUT_CAP - 3} exceeds the 4096-byte"),
    "used-huge": (out_area(used=0xFFFFFFFF), "exceeds the 4096-byte output area"),
    "hash-after-good-record": (out_area((b"ok", b"1"), (b"a/#", b"2")), "contains b'#'"),
    "plus": (out_area((b"a/+/b", b"x")), "contains b'+'"),
    "nul": (out_area((b"a\x00b", b"x")), "contains b'\\x00'"),
    "empty-topic": (out_area((b"", b"x")), "record topic length 0 out of 1..65535"),
    "not-utf8": (out_area((b"a/\xff\xfe", b"x")), "is not UTF-8"),
    "truncated-header": (out_area(used=4) + b"\x01\0\0\0", "truncated record header at byte 0"),
}


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_malformed_output_is_bad_output(engine: WasmtimeEngine, case: str) -> None:
    """An output area that breaks the ABI drops the whole message as bad_output."""
    area, detail = BAD_OUTPUTS[case]
    running = start(engine, emitting(area))
    error = call_error(running.on_message, b"in", b"x")
    assert error.reason == "bad_output"
    assert detail in error.detail


@pytest.mark.parametrize(("topic_len", "ok"), [(65535, True), (65536, False)])
def test_emitted_topic_length_limit(engine: WasmtimeEngine, topic_len: int, ok: bool) -> None:
    """An emitted topic may be up to 65535 bytes; one byte more is bad_output."""
    out_ptr, out_cap = PAGE, 2 * PAGE
    module_wasm = wasm(
        memory='(memory (export "memory") 3)',
        descriptor=(64, 1024, out_ptr, out_cap),
        on_message=f"""
          (i32.store (i32.const {out_ptr}) (i32.const {8 + topic_len}))
          (i32.store (i32.const {out_ptr + 4}) (i32.const {topic_len}))
          (i32.store (i32.const {out_ptr + 8}) (i32.const 0))
          (memory.fill (i32.const {out_ptr + 12}) (i32.const 0x61) (i32.const {topic_len}))
          (i32.const 2)""",
    )
    running = start(engine, module_wasm)
    if ok:
        assert running.on_message(b"in", b"") == [(b"a" * topic_len, b"")]
    else:
        error = call_error(running.on_message, b"in", b"")
        assert (error.reason, error.detail) == (
            "bad_output",
            "record topic length 65536 out of 1..65535",
        )


# -- the input area ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "descriptor",
    [DESCRIPTOR, (8192, 4096, 1024, 4096)],
    ids=["doc-layout", "output-before-input"],
)
@pytest.mark.parametrize(
    ("topic", "payload"),
    [(b"plant/7/temp", bytes(range(256))), (b"t", b""), ("caf\u00e9/\u00b0".encode(), b"\0\0")],
    ids=["binary-payload", "empty-payload", "utf8-topic"],
)
def test_topic_and_payload_are_placed_as_specified(
    engine: WasmtimeEngine, descriptor: tuple[int, int, int, int], topic: bytes, payload: bytes
) -> None:
    """The topic lands at in_ptr and the payload right after it, lengths passed as arguments."""
    in_ptr, _, out_ptr, _ = descriptor
    running = start(engine, wasm(on_message=echo_body(in_ptr, out_ptr), descriptor=descriptor))
    assert running.on_message(topic, payload) == [(topic, payload)]
    assert running.on_message(b"x/y", b"short") == [(b"x/y", b"short")]


@pytest.mark.parametrize(
    ("descriptor", "size", "reason"),
    [
        (DESCRIPTOR, IN_CAP, "trap"),
        (DESCRIPTOR, IN_CAP + 1, "input_too_large"),
        ((64, 100, 4096, 4096), 100, "trap"),
        ((64, 100, 4096, 4096), 101, "input_too_large"),
    ],
    ids=["fits-doc-layout", "over-doc-layout", "fits-small", "over-small"],
)
def test_input_larger_than_in_cap_is_not_passed(
    engine: WasmtimeEngine, descriptor: tuple[int, int, int, int], size: int, reason: str
) -> None:
    """A message over in_cap is input_too_large without calling the module (which would trap)."""
    running = start(engine, wasm(on_message="unreachable", descriptor=descriptor))
    topic = b"big/topic"
    error = call_error(running.on_message, topic, b"\xaa" * (size - len(topic)))
    assert error.reason == reason
    if reason == "input_too_large":
        assert (
            error.detail == f"{size} bytes do not fit the filter's {descriptor[1]}-byte input area"
        )


# -- traps and budgets ------------------------------------------------------------------------


def _traps_when_topic_is_one_byte(action: str) -> str:
    return f"(if (i32.eq (local.get $tlen) (i32.const 1)) (then {action})) (i32.const 1)"


def test_trap_is_reported_and_filter_keeps_serving(engine: WasmtimeEngine) -> None:
    """`unreachable` is a trap for that message; the next message is served normally."""
    running = start(engine, wasm(on_message=_traps_when_topic_is_one_byte("unreachable")))
    for _ in range(3):
        error = call_error(running.on_message, b"x", b"p")
        assert error.reason == "trap"
        assert "unreachable" in error.detail
        assert running.on_message(b"ok", b"p") == ((b"ok", b"p"),)


@pytest.mark.parametrize(
    ("action", "detail"),
    [
        ("(drop (i32.load (i32.const -4)))", "out of bounds"),
        ("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "divide by zero"),
    ],
    ids=["out-of-bounds", "divide-by-zero"],
)
def test_other_traps_are_reported(engine: WasmtimeEngine, action: str, detail: str) -> None:
    """Out-of-bounds access and division by zero are traps with the wasm trap message."""
    running = start(engine, wasm(on_message=_traps_when_topic_is_one_byte(action)))
    error = call_error(running.on_message, b"x", b"")
    assert error.reason == "trap"
    assert detail in error.detail
    assert running.on_message(b"ok", b"") == ((b"ok", b""),)


def test_infinite_loop_runs_out_of_fuel() -> None:
    """A call that never ends is stopped as fuel; fuel is refilled for the next message."""
    engine = WasmtimeEngine()
    running = start(
        engine,
        wasm(on_message=_traps_when_topic_is_one_byte("(loop $l (br $l))")),
        budgets=Budgets(fuel=1_000_000),
    )
    for _ in range(2):
        assert call_error(running.on_message, b"x", b"").reason == "fuel"
        assert running.on_message(b"ok", b"") == ((b"ok", b""),)


def test_fuel_is_a_per_call_budget() -> None:
    """Calls that each use most of the fuel budget all succeed: fuel does not accumulate."""
    engine = WasmtimeEngine()
    spin = """
      (local $n i32)
      (local.set $n (i32.const 100000))
      (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (i32.const 1)"""
    running = start(engine, wasm(on_message=spin), budgets=Budgets(fuel=1_000_000))
    for _ in range(5):
        assert running.on_message(b"t", b"") == ((b"t", b""),)
    greedy = start(engine, wasm(on_message=spin), budgets=Budgets(fuel=100_000))
    assert call_error(greedy.on_message, b"t", b"").reason == "fuel"


def test_unbounded_recursion_is_a_trap(engine: WasmtimeEngine) -> None:
    """Runaway recursion overflows the wasm stack (reason `stack`); process and filter go on."""
    module_wasm = wasm(
        "(func $deep (param i32) (result i32)"
        "  (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
        on_message=_traps_when_topic_is_one_byte("(drop (call $deep (i32.const 0)))"),
    )
    running = start(engine, module_wasm)
    error = call_error(running.on_message, b"x", b"")
    assert error.reason == "stack"
    assert "stack" in error.detail
    assert running.on_message(b"ok", b"") == ((b"ok", b""),)


# -- memory that grows and moves --------------------------------------------------------------


@pytest.fixture
def moving_engine() -> WasmtimeEngine:
    """An engine whose linear memories have no reservation, so every memory.grow moves them."""
    engine = WasmtimeEngine()
    config = wasmtime.Config()
    config.consume_fuel = True
    config.max_wasm_stack = engine.settings.wasm_stack
    config.memory_reservation = 0
    config.memory_guard_size = 0
    config.memory_reservation_for_growth = 0
    engine.wasmtime = wasmtime.Engine(config)
    return engine


def test_memory_growth_during_call_keeps_output_correct(moving_engine: WasmtimeEngine) -> None:
    """A filter that grows (and so moves) its memory on every call still emits the right bytes."""
    store = wasmtime.Store(moving_engine.wasmtime)
    probe = wasmtime.Instance(store, wasmtime.Module(moving_engine.wasmtime, wasm()), [])
    memory = probe.exports(store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    before = memory.data_ptr(store)
    memory.grow(store, 4)
    assert memory.data_ptr(store) != before, "premise: growth must move the memory"

    grow_and_echo = f"""
      (local $n i32)
      (drop (memory.grow (i32.const 4)))
      (local.set $n (i32.add (local.get $tlen) (local.get $plen)))
      (i32.store (i32.const {OUT_PTR}) (i32.add (i32.const 13) (local.get $n)))
      (i32.store (i32.const {OUT_PTR + 4}) (i32.const 1))
      (i32.store (i32.const {OUT_PTR + 8}) (i32.add (i32.const 4) (local.get $n)))
      (i32.store8 (i32.const {OUT_PTR + 12}) (i32.const 0x67))
      (i32.store (i32.const {OUT_PTR + 13}) (memory.size))
      (memory.copy (i32.const {OUT_PTR + 17}) (i32.const {IN_PTR}) (local.get $n))
      (i32.const 2)"""
    running = start(moving_engine, wasm(on_message=grow_and_echo))
    for call in range(1, 9):
        topic, payload = f"room/{call}".encode(), bytes([call]) * (call * 300)
        pages = struct.pack("<I", 1 + 4 * call)
        assert running.on_message(topic, payload) == [(b"g", pages + topic + payload)]


def test_memory_cannot_grow_past_the_limit() -> None:
    """memory.grow past the memory budget fails inside the module; the call itself goes on."""
    engine = WasmtimeEngine()
    grow = "(i32.ne (memory.grow (i32.const 2)) (i32.const -1))"
    running = start(engine, wasm(on_message=grow), budgets=Budgets(memory=4 * PAGE))
    assert running.on_message(b"t", b"") == ((b"t", b""),)
    assert running.on_message(b"t", b"") == ()


def test_initial_memory_over_the_limit_is_refused() -> None:
    """A module whose initial memory exceeds its memory budget cannot be instantiated."""
    engine = WasmtimeEngine()
    with pytest.raises(ModuleError) as info:
        start(engine, wasm(memory='(memory (export "memory") 5)'), budgets=Budgets(memory=4 * PAGE))
    reason = info.value.reason
    assert reason.startswith("cannot be instantiated: ")


# -- edged_on_tick ----------------------------------------------------------------------------

TICK_EMITS_NOW = f"""
  (func (export "edged_on_tick") (param $now i64) (result i32)
    (i32.store (i32.const {OUT_PTR}) (i32.const 17))
    (i32.store (i32.const {OUT_PTR + 4}) (i32.const 1))
    (i32.store (i32.const {OUT_PTR + 8}) (i32.const 8))
    (i32.store8 (i32.const {OUT_PTR + 12}) (i32.const 0x74))
    (i64.store (i32.const {OUT_PTR + 13}) (local.get $now))
    (i32.const 2))"""


@pytest.mark.parametrize("now_ms", [1_700_000_000_123, 0, 2**40 + 5])
def test_tick_emits_with_now_visible(engine: WasmtimeEngine, now_ms: int) -> None:
    """on_tick passes now_ms as i64 and returns what the tick emits."""
    module = engine.load("f", wasm(TICK_EMITS_NOW))
    assert module.has_tick is True
    running = module.instantiate({}, ignore_log)
    assert running.has_tick is True
    assert running.on_tick(now_ms) == [(b"t", struct.pack("<q", now_ms))]
    assert running.on_message(b"m", b"p") == ((b"m", b"p"),)


def test_tick_returning_zero_emits_nothing(engine: WasmtimeEngine) -> None:
    """on_tick returning 0 gives an empty outcome."""
    tick = '(func (export "edged_on_tick") (param i64) (result i32) (i32.const 0))'
    assert start(engine, wasm(tick)).on_tick(1) == ()


@pytest.mark.parametrize("code", [1, 5])
def test_tick_other_results_are_bad_result(engine: WasmtimeEngine, code: int) -> None:
    """on_tick returning FORWARD (or any code but 0 and 2) is a bad_result."""
    tick = f'(func (export "edged_on_tick") (param i64) (result i32) (i32.const {code}))'
    error = call_error(start(engine, wasm(tick)).on_tick, 1)
    assert (error.reason, error.detail) == ("bad_result", f"edged_on_tick returned {code}")


def test_tick_trap_is_reported(engine: WasmtimeEngine) -> None:
    """A trap in on_tick is a trap; messages are still served afterwards."""
    running = start(
        engine, wasm('(func (export "edged_on_tick") (param i64) (result i32) unreachable)')
    )
    assert call_error(running.on_tick, 1).reason == "trap"
    assert running.on_message(b"m", b"") == ((b"m", b""),)


# -- the edged.log import ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "name"), [(0, "debug"), (1, "info"), (2, "warning"), (3, "error")]
)
def test_guest_log_reaches_log_callback(engine: WasmtimeEngine, level: int, name: str) -> None:
    """edged.log(level, ptr, len) from init calls the log callback with (level name, text)."""
    text = "ready: caf\u00e9".encode()
    module_wasm = wasm(
        f'(data (i32.const 20) "{wat_bytes(text)}")'
        '(func (export "edged_init") (param i32) (result i32)'
        f"  (call $log (i32.const {level}) (i32.const 20) (i32.const {len(text)})) (i32.const 0))",
        imports='(import "edged" "log" (func $log (param i32 i32 i32)))',
    )
    lines: list[tuple[str, str]] = []
    running = start(engine, module_wasm, log=lambda lvl, msg: lines.append((lvl, msg)))
    assert lines == [(name, "ready: caf\u00e9")]
    assert running.on_message(b"m", b"") == ((b"m", b""),)
    assert len(lines) == 1


def test_raising_log_callback_does_not_leak_into_later_loads(engine: WasmtimeEngine) -> None:
    """A log sink that raises costs the log line only; later refusals keep their own reason."""

    def broken(level: str, text: str) -> None:
        raise RuntimeError("log sink broke")

    logging_init = wasm(
        '(func (export "edged_init") (param i32) (result i32)'
        "  (call $log (i32.const 1) (i32.const 0) (i32.const 4)) (i32.const 0))",
        imports='(import "edged" "log" (func $log (param i32 i32 i32)))',
    )
    start(engine, logging_init, log=broken)
    with pytest.raises(ModuleError) as info:
        start(engine, wasm("(func $trap unreachable) (start $trap)"))
    assert info.value.reason.startswith("cannot be instantiated: ")


class _SinkAborts(BaseException):
    """What a log sink may raise that is not an Exception (as KeyboardInterrupt is not)."""


def test_log_sink_that_aborts_fails_that_message_only(engine: WasmtimeEngine) -> None:
    """A log sink raising past `except Exception` fails the message that logged, as a trap
    naming it; later messages, and a later trap's own reason, are unaffected."""

    def aborting(level: str, text: str) -> None:
        raise _SinkAborts("stop")

    module_wasm = wasm(
        on_message="(if (i32.eq (local.get $tlen) (i32.const 1))"
        "  (then (call $log (i32.const 1) (i32.const 0) (i32.const 4))))"
        "(if (i32.eq (local.get $tlen) (i32.const 2)) (then unreachable))"
        "(i32.const 1)",
        imports='(import "edged" "log" (func $log (param i32 i32 i32)))',
    )
    running = start(engine, module_wasm, log=aborting)
    error = call_error(running.on_message, b"x", b"")
    assert (error.reason, error.detail) == ("trap", "host function failed: _SinkAborts('stop')")
    assert running.on_message(b"ok!", b"p") == ((b"ok!", b"p"),)
    later = call_error(running.on_message, b"xx", b"")
    assert later.reason == "trap"
    assert "unreachable" in later.detail


def test_only_the_raw_module_imports_wasmtime_internals() -> None:
    """A wasmtime release that moves its private modules breaks one file of edged,
    edged/engine/_raw.py: no other module imports them."""
    importers = set()
    for path in (ROOT / "edged").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            if any(name.startswith("wasmtime._") for name in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"edged/engine/_raw.py"}


# -- the compiled cache -----------------------------------------------------------------------


def test_cache_second_engine_loads_compiled_module(tmp_path: Path) -> None:
    """A second engine with the same cache dir takes the compiled module from the cache."""
    cache_dir = tmp_path / "cache"
    module_wasm = wasm(on_message=echo_body(IN_PTR, OUT_PTR))
    first = WasmtimeEngine(cache_dir=cache_dir)
    assert first.cache is not None and first.cache.usable
    start(first, module_wasm)
    assert first.cache_hits == 0
    assert len(list(cache_dir.glob("*.cwasm"))) == 1
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700

    second = WasmtimeEngine(cache_dir=cache_dir)
    running = start(second, module_wasm)
    assert second.cache_hits == 1
    assert running.on_message(b"a/b", b"cached") == [(b"a/b", b"cached")]


def test_cache_is_keyed_by_engine_settings(tmp_path: Path) -> None:
    """An engine with a different wasm stack limit does not take another's compiled code."""
    module_wasm = wasm()
    start(WasmtimeEngine(cache_dir=tmp_path), module_wasm)
    other = WasmtimeEngine(EngineSettings(wasm_stack=256 * 1024), cache_dir=tmp_path)
    start(other, module_wasm)
    assert other.cache_hits == 0
    assert len(list(tmp_path.glob("*.cwasm"))) == 2


@pytest.mark.parametrize("where", ["digest", "middle", "end"])
def test_corrupted_cache_file_is_ignored(tmp_path: Path, where: str) -> None:
    """A damaged compiled artifact is not used; the module is compiled afresh and works."""
    module_wasm = wasm(on_message=echo_body(IN_PTR, OUT_PTR))
    start(WasmtimeEngine(cache_dir=tmp_path), module_wasm)
    (artifact,) = tmp_path.glob("*.cwasm")
    blob = bytearray(artifact.read_bytes())
    at = {"digest": 3, "middle": len(blob) // 2, "end": len(blob) - 1}[where]
    blob[at] ^= 0xFF
    artifact.write_bytes(bytes(blob))

    second = WasmtimeEngine(cache_dir=tmp_path)
    running = start(second, module_wasm)
    assert second.cache_hits == 0
    assert running.on_message(b"a/b", b"fresh") == [(b"a/b", b"fresh")]
    third = WasmtimeEngine(cache_dir=tmp_path)
    start(third, module_wasm)
    assert third.cache_hits == 1


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_cache_dir_writable_by_others_is_not_used(tmp_path: Path, mode: int) -> None:
    """A cache dir others can write to is not used at all; modules still load."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(mode)
    module_wasm = wasm()
    for _ in range(2):
        engine = WasmtimeEngine(cache_dir=cache_dir)
        assert engine.cache is not None
        assert engine.cache.usable is False
        assert engine.cache.problem is not None
        assert "writable" in engine.cache.problem
        assert str(cache_dir) in engine.cache.problem
        assert start(engine, module_wasm).on_message(b"t", b"p") == ((b"t", b"p"),)
        assert engine.cache_hits == 0
    assert list(cache_dir.iterdir()) == []


def test_cache_dir_that_cannot_be_created_is_not_used(tmp_path: Path) -> None:
    """A cache dir that cannot be created is reported and modules still load."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    engine = WasmtimeEngine(cache_dir=blocker / "cache")
    assert engine.cache is not None
    assert engine.cache.usable is False
    assert (engine.cache.problem or "").startswith(f"cannot create {blocker / 'cache'}")
    assert start(engine, wasm()).on_message(b"t", b"p") == ((b"t", b"p"),)


def test_cached_module_is_still_checked(tmp_path: Path) -> None:
    """A module taken from the cache goes through the same ABI checks as a fresh one."""
    module_wasm = wasm(on_message=None)
    for expected_hits in (0, 1):
        engine = WasmtimeEngine(cache_dir=tmp_path)
        with pytest.raises(ModuleError) as info:
            engine.load("f", module_wasm)
        assert info.value.reason == "missing required export edged_on_message"
        assert engine.cache_hits == expected_hits


# -- the fast call path agrees with wasmtime's own call ---------------------------------------

HASH_BODY = f"""
  (local $h i32)
  (local.set $h (i32.xor (i32.mul (local.get $tlen) (i32.const 0x01000193))
                         (i32.mul (local.get $plen) (i32.const 0x9E3779B1))))
  (i32.store (i32.const {OUT_PTR}) (i32.const 13))
  (i32.store (i32.const {OUT_PTR + 4}) (i32.const 1))
  (i32.store (i32.const {OUT_PTR + 8}) (i32.const 4))
  (i32.store8 (i32.const {OUT_PTR + 12}) (i32.const 0x68))
  (i32.store (i32.const {OUT_PTR + 13}) (local.get $h))"""
SIZES = [(1, 0), (1, 1), (2, 3), (3, 7), (5, 0), (12, 100), (64, 1000), (200, 4000), (999, 60000)]


def _slow_outcome(module_wasm: bytes, topic: bytes, payload: bytes) -> object:
    """What the module does with one message, called through wasmtime.Func.__call__."""
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, module_wasm), [])
    exports = instance.exports(store)
    memory, on_message = exports["memory"], exports["edged_on_message"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(on_message, wasmtime.Func)
    memory.write(store, topic + payload, IN_PTR)
    code = on_message(store, len(topic), len(payload))
    if code == 0:
        return ()
    if code == 1:
        return ((topic, payload),)
    if code in (2, 3):
        area = bytes(memory.read(store, OUT_PTR, OUT_PTR + 17))
        records = [(area[12:13], area[13:17])]
        return records if code == 2 else ("rejected", "rejected by the filter", records)
    return ("bad_result", f"edged_on_message returned {code}")


@pytest.mark.parametrize(
    "result", ["(i32.rem_u (local.get $h) (i32.const 4))", "(local.get $h)"], ids=["mod4", "raw"]
)
def test_fast_call_agrees_with_wasmtime_call(engine: WasmtimeEngine, result: str) -> None:
    """on_message gives what calling the export through wasmtime's public API gives."""
    module_wasm = wasm(on_message=HASH_BODY + "\n" + result)
    running = start(engine, module_wasm)
    for topic_len, payload_len in SIZES:
        topic = b"t" * topic_len
        payload = bytes(i % 256 for i in range(payload_len))
        expected = _slow_outcome(module_wasm, topic, payload)
        try:
            actual: object = running.on_message(topic, payload)
        except FilterCallError as exc:
            actual = (exc.reason, exc.detail)
        except FilterRejected as rejected:
            actual = ("rejected", rejected.text, rejected.records)
        assert actual == expected, (topic_len, payload_len)


def test_fast_call_sizes_cover_every_outcome() -> None:
    """The sizes above make the hash module drop, forward, emit, reject, fail and go
    negative."""
    hashes = [((t * 0x01000193) ^ (p * 0x9E3779B1)) & 0xFFFFFFFF for t, p in SIZES]
    assert {h % 4 for h in hashes} == {0, 1, 2, 3}
    assert any(h >= 2**31 for h in hashes)
    assert any(0 < h < 2**31 for h in hashes)


# -- the epoch ticker ---------------------------------------------------------------------------


def test_a_filter_keeps_its_deadline_after_its_engine_object_is_gone() -> None:
    """The ticker runs as long as any instance needs it, not just as long as the engine object:
    an endless loop with fuel to spare still ends at its deadline."""
    budgets = Budgets(fuel=10**10, deadline_ms=50)  # ~6 s of looping: the deadline comes first
    running = start(
        WasmtimeEngine(), wasm(on_message="(loop $l (br $l)) (i32.const 0)"), budgets=budgets
    )
    gc.collect()
    assert call_error(running.on_message, b"t", b"").reason == "deadline"


def test_dropped_engines_leave_no_ticker_thread() -> None:
    """Fifty engines made and dropped (as `edged filter run` and reloads do): their ticker
    threads end within a tick, each after letting go of its engine."""
    before = threading.active_count()
    for _ in range(50):
        WasmtimeEngine()
    gc.collect()
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


# -- REJECT -----------------------------------------------------------------------------------


def rejecting(area: bytes) -> bytes:
    """A module whose output area holds `area` and whose edged_on_message returns REJECT."""
    return wasm(f'(data (i32.const {OUT_PTR}) "{wat_bytes(area)}")', on_message="(i32.const 3)")


def test_reject_carries_the_reason_and_the_records_that_go_on(engine: WasmtimeEngine) -> None:
    filt = start(engine, rejecting(out_area((b"a/b", b"ask"), (b"", b"unknown alias 7"))))
    with pytest.raises(FilterRejected) as info:
        filt.on_message(b"t", b"p")
    assert info.value.text == "unknown alias 7"
    assert info.value.records == [(b"a/b", b"ask")]


def test_reject_without_a_reason_says_so_and_keeps_at_most_1_kib(engine: WasmtimeEngine) -> None:
    with pytest.raises(FilterRejected) as info:
        start(engine, rejecting(out_area())).on_message(b"t", b"p")
    assert (info.value.text, info.value.records) == ("rejected by the filter", [])
    with pytest.raises(FilterRejected) as info:
        start(engine, rejecting(out_area((b"", b"x" * 3000)))).on_message(b"t", b"p")
    assert info.value.text == "x" * 1024


def test_two_reasons_or_an_empty_topic_in_an_emit_are_bad_output(engine: WasmtimeEngine) -> None:
    two = start(engine, rejecting(out_area((b"", b"a"), (b"", b"b"))))
    assert call_error(two.on_message, b"t", b"p").reason == "bad_output"
    emit = start(engine, emitting(out_area((b"", b"a"))))
    assert call_error(emit.on_message, b"t", b"p").reason == "bad_output"


# -- properties (docs/filter-abi.md, "Properties") ----------------------------------------------

PROPS_AT = PAGE  # the properties area: the second page


def props_module(area: tuple[int, int] = (PROPS_AT, 1024), **kwargs: Any) -> bytes:
    """A module with `edged_properties` (its descriptor at 16) in a memory of two pages."""
    body = (
        f'(data (i32.const 16) "{wat_bytes(struct.pack("<2I", *area))}")\n'
        '(func (export "edged_properties") (result i32) (i32.const 16))\n' + kwargs.pop("body", "")
    )
    return wasm(body, memory='(memory (export "memory") 2)', **kwargs)


def props_records(*records: tuple[bytes, bytes, bytes]) -> bytes:
    body = b"".join(struct.pack("<III", len(t), len(p), len(x)) + t + p + x for t, p, x in records)
    return struct.pack("<I", len(body)) + body


def entry(ident: int, a: bytes, b: bytes = b"") -> bytes:
    return struct.pack("<III", ident, len(a), len(b)) + a + b


@pytest.mark.parametrize(
    ("area", "reason"),
    [
        ((2 * PAGE - 8, 64), "outside linear memory"),
        ((IN_PTR + 100, 64), "overlaps the input area"),
        ((OUT_PTR, 64), "overlaps the output area"),
        ((PROPS_AT, 2), "smaller than its header"),
    ],
)
def test_an_unusable_properties_area_refuses_the_module(
    engine: WasmtimeEngine, area: tuple[int, int], reason: str
) -> None:
    assert reason in refusal(engine, props_module(area))


def test_properties_set_by_the_filter_go_over_the_inputs(engine: WasmtimeEngine) -> None:
    own = (
        entry(3, b"application/json")
        + entry(38, b"k", b"new")
        + entry(1, (1).to_bytes(4, "little"))
    )
    area = props_records((b"out/t", b"p", own), (b"out/u", b"q", b""))
    filt = start(
        engine,
        props_module(
            body=f'(data (i32.const {OUT_PTR}) "{wat_bytes(area)}")', on_message="(i32.const 2)"
        ),
    )
    assert filt.wants_properties
    given = Properties(content_type="text/plain", user=(("k", "old"), ("trace", "t1")))
    (first, second) = filt.on_message_props(b"in", b"x", given)
    assert first[:2] == (b"out/t", b"p")
    assert first[2].content_type == "application/json"
    assert first[2].payload_format == 1
    assert first[2].user == (("trace", "t1"), ("k", "new"))
    assert first[2].own.user == (("k", "new"),)
    assert second == (b"out/u", b"q", given)  # sets nothing: the input's, as they are


@pytest.mark.parametrize(
    "bad",
    [
        entry(35, (5).to_bytes(4, "little")),  # a topic alias: not the filter's to set
        entry(1, (2).to_bytes(4, "little")),  # payload format 2
        entry(3, b"\xff\xfe"),  # content type not UTF-8
        entry(2, b"\x01"),  # expiry not 4 bytes
        entry(38, b"k", b"v")[:-1],  # runs past the record
    ],
)
def test_a_bad_property_entry_is_bad_output(engine: WasmtimeEngine, bad: bytes) -> None:
    area = props_records((b"out/t", b"p", bad))
    filt = start(
        engine,
        props_module(
            body=f'(data (i32.const {OUT_PTR}) "{wat_bytes(area)}")', on_message="(i32.const 2)"
        ),
    )
    assert call_error(filt.on_message_props, b"in", b"x", None).reason == "bad_output"


def test_properties_over_the_area_are_input_too_large(engine: WasmtimeEngine) -> None:
    filt = start(engine, props_module((PROPS_AT, 64)))
    big = Properties(user=(("name", "v" * 100),))
    assert call_error(filt.on_message_props, b"in", b"x", big).reason == "input_too_large"
    assert filt.on_message_props(b"in", b"x", Properties(user=(("a", "b"),)))[0][0] == b"in"

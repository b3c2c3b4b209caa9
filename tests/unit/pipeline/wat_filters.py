"""Small filter modules written inline as WAT, the example filters, and a recording publisher.

Each module has one page of memory, its buffer descriptor at address 0, the input area at
`IN_PTR` and the output area at `OUT_PTR` (docs/filter-abi.md). Modules are compiled and loaded
once per test run into one shared engine: instantiating is cheap (well under a millisecond),
compiling an example C filter costs 15-30 ms.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from edged.config import DEFAULT_BUDGETS, Budgets, ParamValue
from edged.engine import WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.engine.wasmtime_filter import WasmtimeFilter
from tests.helpers.paths import wasm

IN_PTR, IN_CAP, OUT_PTR, OUT_CAP = 64, 4096, 8192, 4096

#: the first payload byte, or -1 for an empty payload, in $first
_FIRST_BYTE = f"""
  (local.set $first (i32.const -1))
  (if (i32.gt_u (local.get $plen) (i32.const 0))
    (then (local.set $first
      (i32.load8_u (i32.add (i32.const {IN_PTR}) (local.get $tlen))))))"""


def module_wat(
    on_message: str = "(i32.const 1)",
    *,
    extra: str = "",
    in_cap: int = IN_CAP,
    data: bytes = b"",
    locals_: str = "",
) -> str:
    """A filter module: `on_message` is the body of edged_on_message (params $tlen and $plen,
    an i32 local $first set to the first payload byte, and `locals_` declared), `extra` more
    fields of the module and `data` the output area's initial bytes."""
    descriptor = struct.pack("<4I", IN_PTR, in_cap, OUT_PTR, OUT_CAP)
    segments = f'(data (i32.const 0) "{_escape(descriptor)}")'
    if data:
        segments += f'\n  (data (i32.const {OUT_PTR}) "{_escape(data)}")'
    return f"""(module
  (memory (export "memory") 1)
  {segments}
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_on_message") (param $tlen i32) (param $plen i32) (result i32)
    (local $first i32) {locals_}
    {_FIRST_BYTE}
    {on_message})
  {extra}
)"""


def _escape(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


#: every message goes on unchanged
FORWARD = module_wat()
#: every message is dropped: the filter's own decision
DROP = module_wat("(i32.const 0)")
#: every call traps
TRAP = module_wat("unreachable")
#: by the first payload byte: `t` traps, `d` is dropped, anything else is forwarded
JUDGE = module_wat(
    """
    (if (i32.eq (local.get $first) (i32.const 0x74)) (then unreachable))
    (if (i32.eq (local.get $first) (i32.const 0x64)) (then (return (i32.const 0))))
    (i32.const 1)"""
)
#: forwards until a payload starting with `!` arrives; from then on this instance traps on
#: every call (its memory is spoiled), while a fresh instance forwards again
POISONABLE = module_wat(
    """
    (if (i32.eq (local.get $first) (i32.const 0x21)) (then (global.set $spoiled (i32.const 1))))
    (if (global.get $spoiled) (then unreachable))
    (i32.const 1)""",
    extra="(global $spoiled (mut i32) (i32.const 0))",
)
#: emits every message twice, unchanged
DOUBLE = module_wat(
    f"""
    (local.set $n (i32.add (local.get $tlen) (local.get $plen)))
    (i32.store (i32.const {OUT_PTR})
      (i32.mul (i32.const 2) (i32.add (i32.const 8) (local.get $n))))
    (i32.store (i32.const {OUT_PTR + 4}) (local.get $tlen))
    (i32.store (i32.const {OUT_PTR + 8}) (local.get $plen))
    (memory.copy (i32.const {OUT_PTR + 12}) (i32.const {IN_PTR}) (local.get $n))
    (i32.store (i32.add (i32.const {OUT_PTR + 12}) (local.get $n)) (local.get $tlen))
    (i32.store (i32.add (i32.const {OUT_PTR + 16}) (local.get $n)) (local.get $plen))
    (memory.copy (i32.add (i32.const {OUT_PTR + 20}) (local.get $n))
      (i32.const {IN_PTR}) (local.get $n))
    (i32.const 2)""",
    locals_="(local $n i32)",
)
#: forwards messages; every tick emits topic `tick` with now_ms as 8 little-endian bytes
TICKER = module_wat(
    extra=f"""(func (export "edged_on_tick") (param $now i64) (result i32)
    (i64.store (i32.const {OUT_PTR + 16}) (local.get $now))
    (i32.const 2))""",
    data=struct.pack("<III", 8 + 4 + 8, 4, 8) + b"tick",
)
#: forwards messages; every tick traps
TICK_TRAP = module_wat(extra='(func (export "edged_on_tick") (param i64) (result i32) unreachable)')
#: forwards messages of up to 32 bytes (topic and payload); larger ones do not fit its input
SMALL_INPUT = module_wat(in_cap=32)


def _records(*records: tuple[bytes, bytes]) -> bytes:
    body = b"".join(struct.pack("<II", len(t), len(p)) + t + p for t, p in records)
    return struct.pack("<I", len(body)) + body


#: refuses a payload starting with `?` (REJECT: reason "no alias 7" and a request to
#: `ask/again`), forwards the rest
REJECTOR = module_wat(
    """
    (if (i32.eq (local.get $first) (i32.const 0x3f)) (then (return (i32.const 3))))
    (i32.const 1)""",
    data=_records((b"", b"no alias 7"), (b"ask/again", b"rebirth")),
)


@functools.cache
def engine() -> WasmtimeEngine:
    """One engine for every test of the run (each filter instance still has its own store)."""
    return WasmtimeEngine()


@functools.cache
def load(name: str, wat: str) -> WasmtimeModule:
    """The module `wat`, compiled once, named `name`."""
    return engine().load(name, bytes(wasmtime.wat2wasm(wat)))


@functools.cache
def example(name: str) -> WasmtimeModule:
    """One of the committed example filters (examples/filters/<name>.wasm)."""
    return engine().load_file(name, Path(wasm(name)))


def quiet(level: str, text: str) -> None:
    """A log sink for filters whose own log lines do not matter to the test."""


def start(
    module: WasmtimeModule,
    params: Mapping[str, ParamValue] | None = None,
    budgets: Budgets = DEFAULT_BUDGETS,
) -> WasmtimeFilter:
    """A fresh instance of `module`."""
    return module.instantiate(dict(params or {}), quiet, budgets)


def inline(name: str, wat: str) -> WasmtimeFilter:
    """A fresh instance of the inline module `wat`."""
    return start(load(name, wat))


@dataclass
class Outbox:
    """A publisher that records what it is given; it refuses everything when `accept` is off."""

    accept: bool = True
    sent: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    brokers: list[str] = field(default_factory=list)  # the broker of each one sent
    #: the MQTT 5 properties of each one sent, as they go on the wire
    properties: list[bytes] = field(default_factory=list)

    def __call__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        broker: str,
        properties: bytes = b"",
    ) -> bool:
        if self.accept:
            self.sent.append((topic, payload, qos, retain))
            self.brokers.append(broker)
            self.properties.append(properties)
        return self.accept

    @property
    def topics(self) -> list[str]:
        return [topic for topic, _, _, _ in self.sent]

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload, _, _ in self.sent]

"""What the pipeline needs from a Wasm engine; wasmtime is the one engine today.

Keeping this small is what lets another engine be added without touching the pipeline: load
bytes into a module, instantiate the module with parameters, call the instance per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edged.config import ParamValue
from edged.mqtt.properties import Properties

#: One message as a filter sees it: `(topic, payload)`, both raw bytes. (edged's MQTT message,
#: with QoS and retain, is `edged.mqtt.message.Message`.)
Record = tuple[bytes, bytes]
#: What a call returns: the records that go on (empty for drop, the input itself for forward).
Outcome = Sequence[Record]
#: A message with its MQTT 5 properties (None: it has none), for the filters that read or set
#: them (docs/filter-abi.md, "Properties") and the messages that carry some.
PropsRecord = tuple[bytes, bytes, Properties | None]
#: Where a filter's own log lines go: `(level, text)`.
LogSink = Callable[[str, str], None]


class CallStats:
    """Per-instance call figures, kept with a few integer operations per call.

    Latency goes into power-of-two microsecond buckets: enough for p50/p99 on a dashboard, and
    no allocation per call. The clock is read in units of 1,024 ns (`ns >> 10`, a shift rather
    than a division): bucket `i` holds the calls shorter than `2**i` such units, and `elapsed`
    is their sum (`UNIT_SECONDS` converts).
    """

    __slots__ = ("buckets", "calls", "elapsed", "fuel_used")

    #: one unit of `elapsed` and of the buckets' bounds, in seconds
    UNIT_SECONDS = 1024e-9

    def __init__(self) -> None:
        self.calls = 0
        self.fuel_used = 0
        self.elapsed = 0
        self.buckets = [0] * 40

    def percentile_us(self, fraction: float) -> int:
        """Upper bound, in µs, of the bucket holding that fraction of calls (0 if none)."""
        wanted = fraction * sum(self.buckets)
        seen = 0
        for index, count in enumerate(self.buckets):
            seen += count
            if count and seen >= wanted:
                return 1 << index
        return 0


@dataclass(frozen=True, slots=True)
class SavedState:
    """A filter's state as its module saved it: an opaque blob in a format the module numbers
    itself (docs/filter-abi.md, "State")."""

    format: int
    data: bytes


class Filter(Protocol):
    """One instance of a module, with its own memory and parameters."""

    stats: CallStats

    @property
    def has_tick(self) -> bool: ...

    def on_message(self, topic: bytes, payload: bytes) -> Outcome:
        """Run the filter on one message; raises FilterCallError when the call fails."""
        ...

    def on_tick(self, now_ms: int) -> Outcome: ...

    @property
    def wants_properties(self) -> bool:
        """Whether the module reads and sets MQTT 5 properties (exports `edged_properties`)."""
        ...

    def on_message_props(
        self, topic: bytes, payload: bytes, props: Properties | None
    ) -> list[PropsRecord]:
        """`on_message` with the message's properties: each record that goes on with its own
        (the input's, with what the filter set on top). Raises FilterCallError or
        FilterRejected (whose records are PropsRecords then)."""
        ...

    def on_tick_props(self, now_ms: int) -> list[PropsRecord]: ...

    @property
    def has_state(self) -> bool: ...

    def save_state(self) -> SavedState | None:
        """The state now (None for a filter without state exports); raises FilterCallError
        with reason `state` for a blob over `budgets.max_state` or outside memory, or the
        call's own reason (trap, fuel, deadline)."""
        ...

    def load_state(self, state: SavedState) -> None:
        """Hand a saved state to a fresh instance; raises FilterCallError: `state_refused`
        when the module does not take it, else as `save_state`. After a failure the instance
        must not be used: make a fresh one."""
        ...


class FilterModule(Protocol):
    """A verified, compiled module: cheap to instantiate many times."""

    name: str
    digest: str
    has_init: bool
    has_tick: bool

    def instantiate(self, params: Mapping[str, ParamValue], log: LogSink) -> Filter:
        """A ready instance; raises ModuleError when the module refuses the parameters."""
        ...


class FilterEngine(Protocol):
    def load(self, name: str, wasm: bytes) -> FilterModule:
        """Verify and compile; raises ModuleError with the reason when the module is refused."""
        ...

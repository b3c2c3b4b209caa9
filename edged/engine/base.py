"""What the pipeline needs from a Wasm engine; wasmtime is the one engine today.

Keeping this small is what lets another engine be added without touching the pipeline: load
bytes into a module, instantiate the module with parameters, call the instance per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

#: One message as the pipeline carries it: topic and payload, both raw bytes.
Message = tuple[bytes, bytes]
#: What a call returns: the messages that go on (empty for drop, the input itself for forward).
Outcome = Sequence[Message]
#: Where a filter's own log lines go: `(level, text)`.
LogSink = Callable[[str, str], None]
ParamValue = str | int | float | bool


class Filter(Protocol):
    """One instance of a module, with its own memory and parameters."""

    @property
    def has_tick(self) -> bool: ...

    def on_message(self, topic: bytes, payload: bytes) -> Outcome:
        """Run the filter on one message; raises FilterCallError when the call fails."""
        ...

    def on_tick(self, now_ms: int) -> Outcome: ...


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

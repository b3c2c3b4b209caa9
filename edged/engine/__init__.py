"""Filter engines: verify, compile and run WebAssembly filter modules (the ABI is in `abi`)."""

from edged.engine.base import (
    CallStats,
    Filter,
    FilterEngine,
    FilterModule,
    Outcome,
    PropsRecord,
    Record,
    SavedState,
)
from edged.engine.wasmtime_engine import EngineSettings, WasmtimeEngine

__all__ = [
    "CallStats",
    "EngineSettings",
    "Filter",
    "FilterEngine",
    "FilterModule",
    "Outcome",
    "PropsRecord",
    "Record",
    "SavedState",
    "WasmtimeEngine",
]

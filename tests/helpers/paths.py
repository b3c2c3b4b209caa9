"""Where the tests find the source tree, the example filters and their own Wasm modules."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FILTERS = ROOT / "examples" / "filters"
#: the WAT modules written for the tests (each breaks one budget or rule on purpose)
MODULES = ROOT / "tests" / "modules"


def wasm(name: str) -> str:
    return str(FILTERS / f"{name}.wasm")

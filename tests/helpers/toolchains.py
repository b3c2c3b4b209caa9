"""Which filter toolchains this machine has: a language whose compiler is missing is rebuilt
nowhere and tested on its committed builds instead."""

from __future__ import annotations

import shutil

from edged.authoring.scaffold import find_rustc
from tests.helpers.paths import ROOT

SDK = ROOT / "sdk"
ASC = SDK / "assemblyscript" / "node_modules" / ".bin" / "asc"


def missing_tools(lang: str) -> list[str]:
    """What a fresh build of `lang` needs and this machine lacks."""
    tools = {"c": ["clang", "wasm-ld"], "rust": [], "as": ["node"], "wat": ["wat2wasm"]}[lang]
    missing = [tool for tool in ["make", *tools] if shutil.which(tool) is None]
    if lang == "rust" and find_rustc() is None:
        missing.append("rustc with the wasm32-unknown-unknown target")
    if lang == "as" and not ASC.exists():
        missing.append("sdk/assemblyscript/node_modules (npm ci)")
    return missing

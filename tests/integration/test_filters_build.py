"""The example filters rebuild from source, with the SDK's toolchain, byte for byte."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import FILTERS, ROOT

ALL_FILTERS = (
    "passthrough",
    "threshold",
    "deadband",
    "average",
    "convert",
    "cbor_json",
    "msgpack_json",
    "annotate",
)
BUILD_TOOLS = ("make", "clang", "wasm-ld", "wat2wasm")


def test_fresh_build_matches_committed_modules(tmp_path: Path) -> None:
    """Rebuilding the example filters from source gives byte-identical .wasm files."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"build tools not installed: {', '.join(missing)}")

    makefile = (FILTERS / "Makefile").read_text()
    match = re.search(r"^SDK\s*\?=\s*(\S+)\s*$", makefile, re.MULTILINE)
    assert match, "examples/filters/Makefile no longer sets SDK ?= <relative path>"
    sdk_rel = match.group(1)

    root_copy = tmp_path.resolve() / "repo"
    copy = root_copy / FILTERS.relative_to(ROOT)
    copy.mkdir(parents=True)
    for src in FILTERS.iterdir():
        if src.suffix in (".c", ".h", ".wat") or src.name == "Makefile":
            shutil.copy2(src, copy / src.name)
    sdk_src = (FILTERS / sdk_rel).resolve()
    sdk_copy = (copy / sdk_rel).resolve()
    assert sdk_copy.is_relative_to(root_copy), f"SDK path {sdk_rel} leaves the repository"
    shutil.copytree(sdk_src, sdk_copy)

    env = {k: v for k, v in os.environ.items() if k not in ("SDK", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "-C", str(copy), "clean", "all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # The Sparkplug B filters need nanopb (`make sparkplug`): tests/integration/test_sparkplug.py
    committed = sorted(
        p.name for p in FILTERS.glob("*.wasm") if not p.name.startswith("sparkplug_")
    )
    built = sorted(p.name for p in copy.glob("*.wasm"))
    assert built == committed
    assert committed == sorted(f"{name}.wasm" for name in ALL_FILTERS)
    differing = [
        name for name in built if (copy / name).read_bytes() != (FILTERS / name).read_bytes()
    ]
    assert differing == [], f"rebuilt modules differ from the committed ones: {differing}"

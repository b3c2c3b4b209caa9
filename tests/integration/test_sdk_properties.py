"""MQTT 5 properties in every SDK: each language's annotate (examples/filters/annotate.c and its
ports) prints the same lines and refuses the same inputs, with the same reasons, as the C build.

C, Rust, AssemblyScript and WAT run from their committed builds (tests/integration/test_sdks.py
rebuilds those and compares them byte for byte). Go and Zig are built here, cached as
tests/integration/test_sdks_wasi.py caches its builds, and their tests carry the `toolchains`
marker; without the compiler they skip and say why. Every module goes through the real engine,
by `load_filter` and `run_lines` as `edged filter run` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

from edged.authoring.runner import RunTotals, load_filter, run_lines
from edged.config import ParamValue
from edged.errors import ModuleError
from tests.helpers.paths import FILTERS, ROOT
from tests.integration.test_sdks_wasi import (
    CACHE,
    GO_GRANTS,
    Toolchain,
    _go,
    _make_env,
    _run,
    _sources,
    _zig,
)

SDK = ROOT / "sdk"
#: where a language's committed annotate.wasm and threshold.wasm are
COMMITTED = {
    "c": FILTERS,
    "rust": SDK / "rust" / "examples",
    "as": SDK / "assemblyscript" / "examples",
    "wat": SDK / "wat" / "examples",
}
BUILT = ("go", "zig")
LANGS = [
    *COMMITTED,
    *(pytest.param(lang, marks=pytest.mark.toolchains) for lang in BUILT),
]

TRACE = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
#: every kind of property, and the cases annotate tells apart
LINES: list[dict[str, object]] = [
    {
        "topic": "s/1",
        "payload": "{}",
        "properties": {"user_properties": [["traceparent", TRACE]], "content_type": "text/plain"},
    },
    {"topic": "s/2", "payload": "{}", "properties": {"user_properties": [["x", "y"]]}},
    {"topic": "s/3", "payload": "{}"},
    {
        "topic": "s/4",
        "payload_b64": "//4AAQ==",
        "properties": {
            "content_type": "application/cbor",
            "correlation_data_b64": "cmVxLTQy",
            "response_topic": "r/4",
            "payload_format": 0,
            "message_expiry": 60,
            "user_properties": [["a", "1"], ["traceparent", "t2"], ["traceparent", "t3"]],
        },
    },
    # found, though empty; a name differing in case is not the same name
    {"topic": "s/5", "payload": "x", "properties": {"user_properties": [["traceparent", ""]]}},
    {"topic": "s/6", "payload": "x", "properties": {"user_properties": [["Traceparent", "t"]]}},
    {
        "topic": "s/ü",
        "payload": "ü",
        "properties": {"user_properties": [["gateway", "old"], ["traceparent", "ü"]]},
    },
    # the wanted one after many others: the entries are walked by their lengths
    {
        "topic": "s/8",
        "payload": "{}",
        "properties": {
            "user_properties": [*([f"k{i}", "v" * i] for i in range(40)), ["traceparent", "t"]]
        },
    },
    # more properties than the 4 KiB area of every SDK: the host drops it (input_too_large)
    {"topic": "s/9", "payload": "{}", "properties": {"user_properties": [["big", "b" * 5000]]}},
    {"topic": "s/10", "payload": "{}", "properties": {"payload_format": 1}},
]
INPUT = [json.dumps(line, ensure_ascii=False) for line in LINES]

CASES: dict[str, dict[str, ParamValue]] = {
    "all": {
        "content_type": "application/json",
        "property": "gateway",
        "value": "gw-7",
        "require": "traceparent",
    },
    "none": {},
    "content_type": {"content_type": "application/cbor"},
    "property": {"property": "gateway", "value": "gw-7"},
    "require": {"require": "traceparent"},
    "empty": {"content_type": "", "property": "", "value": "", "require": ""},
    "require_100": {"require": "r" * 100},
}
#: params each annotate refuses in init, with its code
REFUSED: dict[str, dict[str, ParamValue]] = {
    "property_alone": {"property": "gateway"},
    "value_alone": {"value": "gw-7"},
    "require_101": {"require": "r" * 101},
}


# -- the modules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modules:
    annotate: Path
    threshold: Path
    grants: frozenset[str]


def _build(tool: Toolchain) -> Path:
    """annotate.wasm and threshold.wasm of Go or Zig, built once per source and compiler."""
    digest = hashlib.sha256(tool.version.encode())
    for path in _sources(tool.lang):
        digest.update(path.relative_to(SDK).as_posix().encode() + b"\0" + path.read_bytes())
    dest = CACHE / "sdk-props" / f"{tool.lang}-{digest.hexdigest()[:16]}"
    names = ("annotate", "threshold")
    if all((dest / f"{name}.wasm").is_file() for name in names):
        return dest
    work = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in names:
        out = work / f"{name}.wasm"
        if tool.lang == "go":
            args = ["build", "-trimpath", "-buildmode=c-shared", "-o", str(out)]
            _run([*tool.command, *args, f"./examples/{name}"], SDK / "go", tool.env)
        else:
            zig = f"ZIG={' '.join(tool.command)}"
            _run(
                ["make", "-C", str(SDK / "zig"), zig, f"DEST={work}", str(out)],
                ROOT,
                _make_env(tool),
            )
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    return dest


@pytest.fixture(scope="module")
def modules() -> Callable[[str], Modules]:
    """The modules of a language, built on first use; a missing compiler skips."""
    found: dict[str, Modules | str] = {}

    def get(lang: str) -> Modules:
        if lang not in found:
            if lang in COMMITTED:
                folder = COMMITTED[lang]
            else:
                tool = _go() if lang == "go" else _zig()
                if isinstance(tool, str):
                    found[lang] = tool
                else:
                    folder = _build(tool)
            if lang not in found:
                grants = GO_GRANTS if lang == "go" else frozenset()
                found[lang] = Modules(folder / "annotate.wasm", folder / "threshold.wasm", grants)
        got = found[lang]
        if isinstance(got, str):
            pytest.skip(got)
        return got

    return get


@dataclass(frozen=True)
class Run:
    out: str
    errors: str
    totals: RunTotals | None  # None when init refused the params


def run(mods: Modules, params: dict[str, ParamValue]) -> Run:
    """The input through annotate with `params`, as `edged filter run` prints it."""
    out, errors = io.StringIO(), io.StringIO()
    try:
        filt = load_filter(mods.annotate, params, errors, mods.grants)
    except ModuleError as exc:
        return Run("", f"{errors.getvalue()}{exc}", None)
    totals = run_lines(filt, INPUT, out, errors, tick_at_end=False)
    return Run(out.getvalue(), errors.getvalue(), totals)


@pytest.fixture(scope="module")
def reference(modules: Callable[[str], Modules]) -> dict[str, Run]:
    """What the C build prints for every case."""
    c = modules("c")
    return {case: run(c, params) for case, params in {**CASES, **REFUSED}.items()}


# -- the tests ----------------------------------------------------------------------------------


def test_the_c_reference_is_what_annotate_promises(reference: dict[str, Run]) -> None:
    """The C build, which every other language is held to: the properties it sets go on top of
    the input's, and an input without the required user property is refused with its name."""
    got = [json.loads(line) for line in reference["all"].out.splitlines()]
    assert [x["topic"] for x in got] == ["s/1", "s/4", "s/5", "s/ü", "s/8"]
    assert got[0]["properties"] == {
        "content_type": "application/json",
        "user_properties": [["traceparent", TRACE], ["gateway", "gw-7"]],
    }
    assert got[1]["payload_b64"] == "//4AAQ=="
    assert got[1]["properties"] == {
        "content_type": "application/json",
        "correlation_data_b64": "cmVxLTQy",
        "response_topic": "r/4",
        "user_properties": [["a", "1"], ["traceparent", "t2"], ["traceparent", "t3"],
                            ["gateway", "gw-7"]],
    }  # fmt: skip
    assert got[3]["properties"]["user_properties"] == [["traceparent", "ü"], ["gateway", "gw-7"]]
    totals = reference["all"].totals
    assert totals is not None
    assert (totals.messages_out, totals.rejected, totals.failures) == (5, 4, 1)
    errors = reference["all"].errors
    assert errors.count("rejected by the filter: missing user property traceparent") == 4
    assert "input_too_large" in errors
    # nothing set: every input goes on, with what `properties: pass` carries of its own
    passed = [json.loads(x) for x in reference["none"].out.splitlines()]
    assert [x["topic"] for x in passed] == [x["topic"] for x in LINES if x["topic"] != "s/9"]
    assert passed[0] == LINES[0]
    assert "properties" not in passed[-1]  # a payload format goes on only when a filter sets it
    assert reference["empty"].errors.count("missing user property \n") == 9
    assert "init returned 1" in reference["property_alone"].errors
    assert "init returned 2" in reference["require_101"].errors


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", [*CASES, *REFUSED])
def test_annotate_prints_what_c_prints(
    modules: Callable[[str], Modules], reference: dict[str, Run], lang: str, case: str
) -> None:
    """The same output lines, rejections (with their reasons), refusals and log lines as C."""
    got = run(modules(lang), {**CASES, **REFUSED}[case])
    want = reference[case]
    # the module's file name is in a refusal's message; every language's is annotate.wasm
    assert got.out == want.out
    assert got.errors == want.errors
    assert got.totals == want.totals


@pytest.mark.parametrize("lang", LANGS)
def test_only_the_modules_that_opt_in_export_edged_properties(
    modules: Callable[[str], Modules], lang: str
) -> None:
    """annotate exports edged_properties; threshold, built without the opt-in from the same
    SDK, does not, so the host calls it as before."""
    mods = modules(lang)
    engine = wasmtime.Engine()

    def exports(path: Path) -> set[str]:
        return {e.name for e in wasmtime.Module.from_file(engine, str(path)).exports}

    assert "edged_properties" in exports(mods.annotate)
    threshold = exports(mods.threshold)
    assert "edged_on_message" in threshold and "edged_properties" not in threshold

"""The filter SDKs in sdk/: every language's threshold and average agree byte for byte.

Each language's examples are rebuilt from source once per run (a language whose compiler is
missing falls back to its committed builds, and only its rebuild test skips). The conformance
cases in sdk/conformance run every build over the same input through the real engine, whole and
with the state saved and loaded into a fresh instance part-way.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shlex
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edged.authoring.runner import load_filter, run_lines
from edged.authoring.scaffold import find_rustc
from edged.config import ParamValue
from edged.engine import SavedState, WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.errors import FilterCallError, ModuleError
from tests.helpers.toolchains import ASC, missing_tools

ROOT = Path(__file__).resolve().parent.parent.parent
SDK = ROOT / "sdk"
CONFORMANCE = SDK / "conformance"
LANGS = ("c", "rust", "as", "wat")
FILTERS = ("threshold", "average")
#: where each language's committed example modules are
COMMITTED = {
    "c": ROOT / "examples" / "filters",
    "rust": SDK / "rust" / "examples",
    "as": SDK / "assemblyscript" / "examples",
    "wat": SDK / "wat" / "examples",
}


def _make(directory: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "DEST", "OUT")}
    result = subprocess.run(
        ["make", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def build(lang: str, dest: Path) -> None:
    """Build `lang`'s threshold and average (and for WAT its examples) into `dest`."""
    dest.mkdir(parents=True)
    if lang == "c":
        # The C examples' own Makefile builds in place; copy sources and header next to dest.
        for name in FILTERS:
            shutil.copy2(ROOT / "examples" / "filters" / f"{name}.c", dest / f"{name}.c")
        shutil.copy2(ROOT / "examples" / "filters" / "Makefile", dest / "Makefile")
        _make(dest, f"SDK={SDK / 'c'}", *(f"{name}.wasm" for name in FILTERS))
    elif lang == "rust":
        _make(SDK / "rust", f"DEST={dest}", f"OUT={dest / 'build'}", f"RUSTC={find_rustc()}")
    elif lang == "as":
        _make(SDK / "assemblyscript", f"DEST={dest}", f"ASC={ASC}")
    else:
        _make(SDK / "wat", f"DEST={dest}", f"OUT={dest / 'build'}")


@dataclass
class Builds:
    """Per language: the directory its modules come from, and whether they were just built."""

    dirs: dict[str, Path] = field(default_factory=dict)
    fresh: dict[str, bool] = field(default_factory=dict)
    engine: WasmtimeEngine = field(default_factory=WasmtimeEngine)
    modules: dict[tuple[str, str], WasmtimeModule] = field(default_factory=dict)

    def path(self, lang: str, name: str) -> Path:
        return self.dirs[lang] / f"{name}.wasm"

    def module(self, lang: str, name: str) -> WasmtimeModule:
        key = (lang, name)
        if key not in self.modules:
            self.modules[key] = self.engine.load_file(f"{lang}-{name}", self.path(lang, name))
        return self.modules[key]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    out = Builds()
    for lang in LANGS:
        if missing_tools(lang):
            out.dirs[lang] = COMMITTED[lang]
            out.fresh[lang] = False
            continue
        dest = tmp_path_factory.mktemp(f"build-{lang}") / "out"
        build(lang, dest)
        out.dirs[lang] = dest
        out.fresh[lang] = True
    return out


# -- reproducible builds ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["rust", "as", "wat"])
def test_fresh_build_matches_committed_examples(builds: Builds, lang: str) -> None:
    """Rebuilding an SDK's example filters from source gives the committed .wasm byte for byte."""
    if not builds.fresh[lang]:
        pytest.skip(f"not installed: {', '.join(missing_tools(lang))}")
    committed_dir = COMMITTED[lang]
    committed = sorted(p.name for p in committed_dir.glob("*.wasm"))
    extra = {
        "wat": ["count.wasm", "annotate.wasm"],
        "as": ["cbor_json.wasm", "msgpack_json.wasm", "annotate.wasm"],
        "rust": ["cbor_json.wasm", "msgpack_json.wasm", "annotate.wasm"],
    }.get(lang, [])
    assert committed == sorted(["average.wasm", "threshold.wasm", *extra])
    differing = [
        name
        for name in committed
        if (builds.dirs[lang] / name).read_bytes() != (committed_dir / name).read_bytes()
    ]
    assert differing == [], f"rebuilt {lang} modules differ from the committed ones: {differing}"


# -- conformance --------------------------------------------------------------------------------


def read_cases() -> list[tuple[str, str, dict[str, str]]]:
    cases = []
    for line in (CONFORMANCE / "cases.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, filt, *pairs = shlex.split(line)
        cases.append((name, filt, dict(pair.split("=", 1) for pair in pairs)))
    return cases


CASES = read_cases()


def run_case(path: Path, params: dict[str, str]) -> tuple[str, str]:
    """What `edged filter run` prints for the conformance input: (emitted lines, problems)."""
    out, errors = io.StringIO(), io.StringIO()
    filt = load_filter(path, params, errors)
    with open(CONFORMANCE / "input.jsonl", encoding="utf-8") as lines:
        run_lines(filt, lines, out, errors, tick_at_end=False)
    return out.getvalue(), errors.getvalue()


INPUT_LINES = (CONFORMANCE / "input.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
#: the cases whose filter keeps state
STATE_CASES = [c for c in CASES if c[1] == "average"]
#: sdk/conformance/average.state.json is the state after this many input lines
PINNED_SPLIT = 31


def run_split(
    module: WasmtimeModule, params: dict[str, str], split: int
) -> tuple[str, str, SavedState]:
    """The conformance input with the state saved after `split` lines and loaded into a fresh
    instance that takes the rest: (emitted lines, problems, the state handed over)."""
    out, errors = io.StringIO(), io.StringIO()

    def log(level: str, text: str) -> None:
        print(f"[{level}] {text}", file=errors)

    first = module.instantiate(params, log)
    run_lines(first, INPUT_LINES[:split], out, errors, tick_at_end=False)
    saved = first.save_state()
    assert saved is not None
    second = module.instantiate(params, log)
    second.load_state(saved)
    run_lines(second, INPUT_LINES[split:], out, errors, tick_at_end=False)
    return out.getvalue(), errors.getvalue(), saved


@pytest.mark.parametrize(("case", "name", "params"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_state_handed_over_midway_changes_no_output(
    builds: Builds, case: str, name: str, params: dict[str, str]
) -> None:
    """Saving the state after any line of the input and loading it into a fresh instance that
    takes the rest gives, in every language, exactly the uninterrupted run's output; and every
    language hands over the same bytes."""
    expected = (CONFORMANCE / f"{case}.expected.jsonl").read_text()
    blobs: dict[str, list[SavedState]] = {lang: [] for lang in LANGS}
    problems: dict[str, list[str]] = {lang: [] for lang in LANGS}
    for lang in LANGS:
        for split in range(len(INPUT_LINES) + 1):
            emitted, errors, saved = run_split(builds.module(lang, name), params, split)
            assert emitted == expected, f"{lang}, state handed over after line {split}"
            blobs[lang].append(saved)
            problems[lang].append(errors)
    for lang in LANGS[1:]:
        assert blobs[lang] == blobs["c"], f"{lang} saves other bytes than C"
        assert problems[lang] == problems["c"], lang
    assert {b.format for b in blobs["c"]} == {1}


def test_average_state_blob_is_pinned(builds: Builds) -> None:
    """average's state format 1 is a contract with the states nodes have stored: every
    language saves exactly the committed blob after the same input."""
    pinned = json.loads((CONFORMANCE / "average.state.json").read_text())
    want = SavedState(pinned["format"], base64.b64decode(pinned["state_b64"]))
    for lang in LANGS:
        _, _, saved = run_split(builds.module(lang, "average"), {}, PINNED_SPLIT)
        assert saved == want, lang
    # the number of topics, then per topic its text (with a length) and 4 numbers
    assert len(want.data) == 4 + sum(36 + len(t.encode()) for t in PINNED_TOPICS)


#: the topics with readings in the first PINNED_SPLIT lines, in first-seen order
PINNED_TOPICS = ("plant/boiler", "room/1", "room/2", "sensé/€")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def window(
    topic: bytes, count: int = 1, total: float = 1.0, low: float = 1.0, high: float = 1.0
) -> bytes:
    """One topic of average's state format 1."""
    return u32(len(topic)) + topic + struct.pack("<Qddd", count, total, low, high)


STATE_REFUSALS: dict[str, tuple[SavedState, int]] = {
    "unknown_format": (SavedState(2, u32(0)), 1),
    "too_many_topics": (SavedState(1, u32(65)), 2),
    "topic_too_long": (SavedState(1, u32(1) + window(b"x" * 201)), 2),
    "count_over_i64": (SavedState(1, u32(1) + window(b"t", count=2**63)), 2),
    "topic_twice": (SavedState(1, u32(2) + window(b"t") + window(b"t")), 3),
    "empty_blob": (SavedState(1, b""), -1),
    "truncated_count": (SavedState(1, u32(1)), -1),
    "truncated_topic": (SavedState(1, u32(1) + u32(10) + b"abc"), -1),
    "cut_in_a_number": (SavedState(1, u32(1) + window(b"t")[:-3]), -1),
    "trailing_bytes": (SavedState(1, u32(1) + window(b"t") + b"\x00"), -2),
}


@pytest.mark.parametrize("case", STATE_REFUSALS, ids=list(STATE_REFUSALS))
def test_languages_refuse_state_alike(builds: Builds, case: str) -> None:
    """A state average cannot take is refused with the same code in every language: its own
    codes for what it does not keep, the SDKs' -1 and -2 for a blob laid out otherwise."""
    state, code = STATE_REFUSALS[case]
    for lang in LANGS:
        filt = builds.module(lang, "average").instantiate({}, lambda *_: None)
        with pytest.raises(FilterCallError) as info:
            filt.load_state(state)
        assert info.value.reason == "state_refused", lang
        assert info.value.detail.endswith(f"returned {code}"), (lang, info.value.detail)


def test_loaded_state_is_what_the_filter_goes_on_with(builds: Builds) -> None:
    """A state written by hand (two windows, one empty) is taken by every language and gives
    the same summaries, in the blob's order."""
    state = SavedState(1, u32(2) + window(b"b", 0, 0, 0, 0) + window(b"a", 2, 3.5, 1.5, 2))
    seen = {}
    for lang in LANGS:
        filt = builds.module(lang, "average").instantiate({}, lambda *_: None)
        filt.load_state(state)
        filt.on_message(b"b", b'{"value":5}')
        seen[lang] = list(filt.on_tick(9))
    assert seen["c"] == [
        (b"b/avg", b'{"avg":5.00,"min":5.00,"max":5.00,"count":1,"ts":9}'),
        (b"a/avg", b'{"avg":1.75,"min":1.50,"max":2.00,"count":2,"ts":9}'),
    ]
    for lang in LANGS:
        assert seen[lang] == seen["c"], lang


@pytest.mark.parametrize(("case", "name", "params"), CASES, ids=[c[0] for c in CASES])
def test_languages_emit_byte_identical_output(
    builds: Builds, case: str, name: str, params: dict[str, str]
) -> None:
    """C, Rust, AssemblyScript and WAT emit exactly the conformance case's expected lines."""
    expected = (CONFORMANCE / f"{case}.expected.jsonl").read_text()
    assert expected.count("\n") >= 10
    results = {lang: run_case(builds.path(lang, name), params) for lang in LANGS}
    for lang, (emitted, _) in results.items():
        assert emitted == expected, f"{lang} differs from {case}.expected.jsonl"
    problems = {lang: errors for lang, (_, errors) in results.items()}
    assert all(problems[lang] == problems["c"] for lang in LANGS), problems


def test_conformance_input_covers_the_tricky_parts() -> None:
    """The shared input has several topics, odd numbers, broken JSON and a tick at the end."""
    lines = (CONFORMANCE / "input.jsonl").read_text().splitlines()
    assert lines[-1].startswith('{"tick": ')
    text = "\n".join(lines)
    for needle in ("1e400", "12345678901234567890123", "2.675", "0.125", "sensé/€", "not JSON"):
        assert needle in text, needle
    assert len(CASES) >= 6


GARBAGE: dict[str, bytes] = {
    "random_60k": random.Random(20240601).randbytes(60 * 1024),
    "deep_array": b"[" * 10000,
    "deep_before_field": b'{"a":' + b"[" * 10000 + b',"value":42}',
    "deep_64": b'{"a":' + b"[" * 64 + b"]" * 64 + b',"value":42}',
    "deep_65": b'{"a":' + b"[" * 65 + b"]" * 65 + b',"value":42}',
    "mismatched": b'{"a":{"b":[1,2}],"value":42}',
    "huge_number": b'{"value":1' + b"0" * 60000 + b"}",
    "huge_exponent": b'{"value":1e' + b"9" * 60000 + b"}",
    "tiny_fraction": b'{"value":0.' + b"0" * 60000 + b"1}",
    "backslashes": b'{"' + b"\\" * 60000,
    "control_topic_chars": b'{"value":99}',
}


@pytest.mark.parametrize("garbage", GARBAGE, ids=list(GARBAGE))
def test_languages_agree_on_garbage(builds: Builds, garbage: str) -> None:
    """Deep nesting, huge tokens and random bytes get the same outcome in every language."""
    topic = b'g/\x01\t"\\' if garbage == "control_topic_chars" else b"g/x"
    outcomes: dict[str, object] = {}
    for lang in LANGS:
        seen: list[object] = []
        for name, params in (("threshold", {"limit": 30}), ("average", {"decimals": 20})):
            filt = builds.module(lang, name).instantiate(params, lambda *_: None)
            try:
                seen.append(list(filt.on_message(topic, GARBAGE[garbage])))
            except FilterCallError as exc:
                seen.append(exc.reason)
            seen.append(list(filt.on_message(b"after", b'{"value":42}')))
            if filt.has_tick:
                seen.append(list(filt.on_tick(1)))
        outcomes[lang] = seen
    for lang in LANGS:
        assert outcomes[lang] == outcomes["c"], lang


# -- the SDKs' shared behaviour -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_exports_take_params_and_only_average_ticks(builds: Builds, lang: str) -> None:
    """Every SDK exports edged_init; only the average filters export edged_on_tick and the
    state exports."""
    for name in FILTERS:
        module = builds.module(lang, name)
        assert module.has_init
        assert module.has_tick == (name == "average")
        assert module.has_state == (name == "average")


def refusal(builds: Builds, lang: str, name: str, params: dict[str, ParamValue]) -> tuple[str, ...]:
    logs: list[tuple[str, str]] = []
    with pytest.raises(ModuleError) as info:
        builds.module(lang, name).instantiate(params, lambda lvl, text: logs.append((lvl, text)))
    return (info.value.reason, *(f"{lvl}: {text}" for lvl, text in logs))


REFUSALS: dict[str, tuple[str, dict[str, ParamValue]]] = {
    "no_limit": ("threshold", {}),
    "limit_not_a_number": ("threshold", {"limit": "thirty"}),
    "bad_topic": ("threshold", {"limit": 1, "topic": "a/#"}),
    "bad_suffix": ("average", {"suffix": "/+"}),
    "long_suffix": ("average", {"suffix": "x" * 201}),
    "fractional_decimals": ("average", {"decimals": 2.5}),
    "too_many_decimals": ("average", {"decimals": 21}),
    "params_too_long": ("average", {"pad": "x" * 5000}),
    "too_many_params": ("average", {f"p{i}": i for i in range(33)}),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_languages_refuse_params_alike(builds: Builds, case: str) -> None:
    """Bad params are refused with the same init code and the same log line in every language."""
    name, params = REFUSALS[case]
    reference = refusal(builds, "c", name, params)
    assert reference[0].startswith("init returned")
    for lang in LANGS[1:]:
        assert refusal(builds, lang, name, params) == reference, lang


def test_output_area_overflow_is_handled_alike(builds: Builds) -> None:
    """An alert too large for the output area is dropped, and 64 topics still fit one tick."""
    huge_topic = b"t/" + b'"' * 40000  # escaped, the alert outgrows the output area
    seen = {}
    for lang in LANGS:
        threshold = builds.module(lang, "threshold").instantiate({"limit": 1}, lambda *_: None)
        average = builds.module(lang, "average").instantiate({"decimals": 20}, lambda *_: None)
        for i in range(70):
            average.on_message(f"room/{i:03d}/".encode() + b"y" * 150, b'{"value":-1e14}')
        seen[lang] = (
            list(threshold.on_message(huge_topic, b'{"value":5}')),
            list(average.on_tick(7)),
            list(average.on_tick(8)),
        )
    assert seen["c"][0] == []
    assert len(seen["c"][1]) == 64
    for lang in LANGS:
        assert seen[lang] == seen["c"], lang


# -- WAT ----------------------------------------------------------------------------------------


def test_wat_count_example_counts_between_ticks(builds: Builds) -> None:
    """The WAT count example drops messages and reports how many arrived on each tick."""
    count = builds.module("wat", "count").instantiate({}, lambda *_: None)
    assert not builds.module("wat", "count").has_init
    for _ in range(3):
        assert list(count.on_message(b"a", b"{}")) == []
    assert list(count.on_tick(1700000000000)) == [(b"count", b'{"count":3,"ts":1700000000000}')]
    assert list(count.on_tick(1700000000001)) == []

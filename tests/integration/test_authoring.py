"""`edged filter new`, `test` and `inspect` as a filter author runs them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edged.authoring.scaffold import LANGS, find_rustc
from tests.helpers.daemon import write_config
from tests.helpers.paths import ROOT, wasm
from tests.helpers.toolchains import ASC, missing_tools

THRESHOLD = wasm("threshold")
AVERAGE = wasm("average")
CONFORMANCE_INPUT = ROOT / "sdk" / "conformance" / "input.jsonl"


def edged(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- edged filter new ---------------------------------------------------------------------------


#: Go and Zig projects are built and tested in test_sdks_wasi.py (scripts/toolchains.sh)
MAKE_LANGS = tuple(lang for lang in LANGS if lang not in ("go", "zig"))


@pytest.mark.parametrize("lang", MAKE_LANGS)
def test_new_project_builds_and_passes_its_own_test(tmp_path: Path, lang: str) -> None:
    """A scaffolded project builds with `make` and passes `edged filter test` as its README says."""
    made = edged("filter", "new", "my-filter", "--lang", lang, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "my-filter"
    readme = (project / "README.md").read_text()
    for command in (
        "make",
        "edged filter test my-filter.wasm --input input.jsonl --expect expected.jsonl",
        "edged module push my-filter.wasm --name my-filter",
    ):
        assert command in readme
    assert "{{name}}" not in "".join(p.read_text() for p in project.rglob("*") if p.is_file())
    if missing := missing_tools(lang):
        pytest.skip(f"not installed: {', '.join(missing)}")
    tools = {"rust": f"RUSTC={find_rustc()}", "as": f"ASC={ASC}"}
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    built = subprocess.run(
        ["make", "-C", str(project), *([tools[lang]] if lang in tools else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tested = edged(
        "filter",
        "test",
        "my-filter.wasm",
        "--input",
        "input.jsonl",
        "--expect",
        "expected.jsonl",
        cwd=project,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.startswith("PASS my-filter.wasm: 5 messages in")


def test_new_as_project_pins_the_sdk_compiler(tmp_path: Path) -> None:
    """The AssemblyScript project locks the same compiler version as the SDK, for `npm ci`."""
    assert edged("filter", "new", "f", "--lang", "as", "--dir", str(tmp_path / "p")).returncode == 0
    sdk_lock = json.loads((ROOT / "sdk" / "assemblyscript" / "package-lock.json").read_text())
    lock = json.loads((tmp_path / "p" / "package-lock.json").read_text())
    package = json.loads((tmp_path / "p" / "package.json").read_text())
    version = sdk_lock["packages"]["node_modules/assemblyscript"]["version"]
    assert package["devDependencies"] == {"assemblyscript": version}
    assert lock["packages"]["node_modules/assemblyscript"]["version"] == version
    assert lock["packages"][""]["name"] == package["name"] == "f"


def test_new_refuses_a_used_folder_and_a_bad_name(tmp_path: Path) -> None:
    """An existing non-empty folder or a name that is not an identifier is refused with exit 2."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    used = edged("filter", "new", "taken", "--lang", "c", cwd=tmp_path)
    assert used.returncode == 2
    assert "already exists" in used.stderr
    bad = edged("filter", "new", "9lives", "--lang", "c", cwd=tmp_path)
    assert bad.returncode == 2
    assert "filter name '9lives'" in bad.stderr
    assert not (tmp_path / "9lives").exists()
    lang = edged("filter", "new", "f", "--lang", "cobol", cwd=tmp_path)
    assert lang.returncode == 2
    assert "invalid choice: 'cobol'" in lang.stderr


# -- edged filter test --------------------------------------------------------------------------


@pytest.fixture
def readings(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "in.jsonl",
        {"topic": "plant/boiler", "payload": {"value": 31.5}},
        {"topic": "plant/boiler", "payload": {"value": 20}},
        {"topic": "room/1", "payload": '{"value": 3.1e1}'},
    )


def alert(topic: str, value: str) -> str:
    return f'{{"topic":"{topic}","field":"value","value":{value},"limit":30}}'


def test_test_passes_on_exact_and_value_payloads(tmp_path: Path, readings: Path) -> None:
    """Expected payloads match as exact text, or as JSON values when written as JSON; exit 0."""
    expect = write_lines(
        tmp_path / "out.jsonl",
        {"topic": "alert", "payload": alert("plant/boiler", "31.5")},
        {
            "topic": "alert",
            "payload": {"topic": "room/1", "field": "value", "value": 31.0, "limit": 30},
        },
    )
    result = edged(
        "filter", "test", THRESHOLD, "-i", str(readings), "-e", str(expect), "-p", "limit=30"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "PASS threshold.wasm: 3 messages in, 2 out, 2 expected\n"


def test_test_prints_a_diff_and_exits_1_on_mismatch(tmp_path: Path, readings: Path) -> None:
    """A different payload byte is shown as a unified diff naming both sides; exit 1."""
    expect = write_lines(
        tmp_path / "out.jsonl",
        {"topic": "alert", "payload": alert("plant/boiler", "31.50")},
        {"topic": "alert", "payload": alert("room/1", "3.1e1")},
    )
    result = edged(
        "filter", "test", THRESHOLD, "-i", str(readings), "-e", str(expect), "-p", "limit=30"
    )
    assert result.returncode == 1
    err = result.stderr
    assert "first difference at output record 1 (expected line 1)" in err
    assert f"--- {expect}\n+++ emitted by {THRESHOLD}\n" in err
    assert '-{"topic": "alert", "payload": "{\\"topic\\":\\"plant/boiler\\"' in err
    assert "31.50" in err and "31.5," in err
    assert '\n {"topic": "alert"' in err  # the matching record is context, not a change
    assert err.rstrip().endswith("FAIL threshold.wasm: 3 messages in, 2 out, 2 expected")


def test_test_is_order_sensitive_and_counts_records(tmp_path: Path, readings: Path) -> None:
    """Swapped, missing and extra records all fail."""
    first = {"topic": "alert", "payload": alert("plant/boiler", "31.5")}
    second = {"topic": "alert", "payload": alert("room/1", "3.1e1")}
    for records in ([second, first], [first], [first, second, second]):
        expect = write_lines(tmp_path / "out.jsonl", *records)
        result = edged(
            "filter", "test", THRESHOLD, "-i", str(readings), "-e", str(expect), "-p", "limit=30"
        )
        assert result.returncode == 1, records
        assert "FAIL" in result.stderr


def test_params_reach_the_filter_as_the_text_typed(tmp_path: Path, readings: Path) -> None:
    """`-p limit=3e1` gives the filter the text `3e1` (threshold echoes it), not 30 or 30.0."""
    expect = write_lines(
        tmp_path / "out.jsonl",
        {"topic": "alert", "payload": alert("plant/boiler", "31.5").replace("30}", "3e1}")},
        {"topic": "alert", "payload": alert("room/1", "3.1e1").replace("30}", "3e1}")},
    )
    result = edged(
        "filter", "test", THRESHOLD, "-i", str(readings), "-e", str(expect), "-p", "limit=3e1"
    )
    assert result.returncode == 0, result.stderr
    ran = edged("filter", "run", THRESHOLD, "-i", str(readings), "-p", "limit=030")
    assert ran.returncode == 2  # threshold's parser takes no leading zero, and is not given 30
    assert "param 'limit' is required and must be a number" in ran.stderr


def test_test_tells_true_from_1_in_value_payloads(tmp_path: Path) -> None:
    """A JSON-value payload compares types strictly enough that true is not 1."""
    source = write_lines(tmp_path / "in.jsonl", {"topic": "a", "payload": '{"value":1}'})
    expect = write_lines(tmp_path / "out.jsonl", {"topic": "a", "payload": {"value": True}})
    result = edged("filter", "test", wasm("passthrough"), "-i", str(source), "-e", str(expect))
    assert result.returncode == 1
    assert '+{"topic": "a", "payload": {"value": 1}}' in result.stderr


def test_test_fails_on_failed_calls_and_bad_lines(tmp_path: Path) -> None:
    """A tick line for a filter without a tick fails the test even when the output matches."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"tick": 5}\n')
    expect = tmp_path / "out.jsonl"
    expect.write_text("")
    result = edged(
        "filter", "test", THRESHOLD, "-i", str(source), "-e", str(expect), "-p", "limit=1"
    )
    assert result.returncode == 1
    assert "line 1: the filter has no edged_on_tick" in result.stderr
    assert "0 failed calls and 1 bad input lines" in result.stderr


def test_test_reports_unusable_files_with_exit_2(tmp_path: Path, readings: Path) -> None:
    """A missing or malformed expected file is a usage error naming the file and line."""
    missing = edged("filter", "test", THRESHOLD, "-i", str(readings), "-e", str(tmp_path / "no"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"topic": "a", "payload": "x"}\n{"payload": "y"}\n')
    result = edged(
        "filter", "test", THRESHOLD, "-i", str(readings), "-e", str(bad), "-p", "limit=1"
    )
    assert result.returncode == 2
    assert f"{bad}:2: expected an object with a string 'topic'" in result.stderr


def test_test_with_tick_lines_checks_summaries(tmp_path: Path) -> None:
    """Tick lines with a timestamp make a tick filter's output reproducible for golden tests."""
    source = write_lines(
        tmp_path / "in.jsonl",
        {"topic": "room/1", "payload": {"value": 20.0}},
        {"topic": "room/1", "payload": {"value": 20.6}},
        {"tick": 1700000000000},
    )
    expect = write_lines(
        tmp_path / "out.jsonl",
        {
            "topic": "room/1/avg",
            "payload": '{"avg":20.30,"min":20.00,"max":20.60,"count":2,"ts":1700000000000}',
        },
    )
    result = edged("filter", "test", AVERAGE, "-i", str(source), "-e", str(expect))
    assert result.returncode == 0, result.stderr


# -- state: run --save-state/--load-state, and test's hand-over ---------------------------------


def counter(tmp_path: Path, load_code: int) -> Path:
    """A filter that emits `n` with payload "1", "2", ... per message, and whose state exports
    save nothing and answer every load with `load_code`: it forgets its count on a hand-over
    (0), or refuses every state (1)."""
    import wasmtime

    path = tmp_path / f"counter{load_code}.wasm"
    path.write_bytes(
        wasmtime.wat2wasm(
            f"""(module
  (memory (export "memory") 1)
  ;; input area at 64 (4096 bytes), output area at 8192 (4096 bytes)
  (data (i32.const 0) "\\40\\00\\00\\00\\00\\10\\00\\00\\00\\20\\00\\00\\00\\10\\00\\00")
  ;; one record: used 10, topic_len 1, payload_len 1, topic "n", then the count's digit
  (data (i32.const 8192) "\\0a\\00\\00\\00\\01\\00\\00\\00\\01\\00\\00\\00n")
  (global $n (mut i32) (i32.const 0x30))
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store8 (i32.const 8205) (global.get $n))
    (i32.const 2))
  ;; the descriptor at 16 is all zeros: an empty state, format 0
  (func (export "edged_state_save") (result i32) (i32.const 16))
  (func (export "edged_state_buffer") (param i32) (result i32) (i32.const 32))
  (func (export "edged_state_load") (param i32 i32) (result i32) (i32.const {load_code})))"""
        )
    )
    return path


def test_run_saves_state_and_a_later_run_goes_on_from_it(tmp_path: Path) -> None:
    """`run --save-state` then `run --load-state` over the two halves of an input print what one
    run over the whole prints: average's windows cross the gap."""
    lines = CONFORMANCE_INPUT.read_text(encoding="utf-8").splitlines(keepends=True)
    first = tmp_path / "first.jsonl"
    rest = tmp_path / "rest.jsonl"
    first.write_text("".join(lines[:20]), encoding="utf-8")
    rest.write_text("".join(lines[20:]), encoding="utf-8")
    state = tmp_path / "state.json"
    whole = edged("filter", "run", AVERAGE, "-i", str(CONFORMANCE_INPUT))
    before = edged("filter", "run", AVERAGE, "-i", str(first), "--save-state", str(state))
    assert before.returncode == 0, before.stderr
    saved = json.loads(state.read_text())
    assert saved["format"] == 1
    assert len(base64.b64decode(saved["state_b64"])) == saved["size"] > 4
    assert f"state: format 1, {saved['size']} bytes, saved to {state}" in before.stderr
    after = edged("filter", "run", AVERAGE, "-i", str(rest), "--load-state", str(state))
    assert after.returncode == 0, after.stderr
    assert before.stdout + after.stdout == whole.stdout
    assert whole.stdout.count("\n") == 10


def test_run_refused_state_is_an_error_with_exit_1(tmp_path: Path) -> None:
    """A state the filter refuses stops `run` before the input, naming the format and the
    filter's code."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": 7, "state_b64": ""}))
    result = edged(
        "filter", "run", AVERAGE, "--load-state", str(state), "-i", str(CONFORMANCE_INPUT)
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        f"{state}: state load refused: edged_state_load refused format 7 (0 bytes): returned 1"
        in result.stderr
    )


def test_run_state_options_need_a_state_file_and_state_exports(tmp_path: Path) -> None:
    """A state file that is not one, or a module without state exports, is a usage error."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "1"}')
    result = edged("filter", "run", AVERAGE, "--load-state", str(bad))
    assert result.returncode == 2
    assert f'{bad}: expected {{"format": N, "state_b64": "..."}}' in result.stderr
    missing = edged("filter", "run", AVERAGE, "--load-state", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    stateless = edged(
        "filter", "run", THRESHOLD, "-p", "limit=1", "--save-state", str(tmp_path / "s.json")
    )
    assert stateless.returncode == 2
    assert "has no state exports" in stateless.stderr
    assert not (tmp_path / "s.json").exists()


def test_test_hands_the_state_over_midway(tmp_path: Path) -> None:
    """For a filter with state, `filter test` also saves it in the middle of the input, loads it
    into a fresh instance and requires the same output."""
    expect = tmp_path / "expected.jsonl"
    expect.write_text(edged("filter", "run", AVERAGE, "-i", str(CONFORMANCE_INPUT)).stdout)
    result = edged("filter", "test", AVERAGE, "-i", str(CONFORMANCE_INPUT), "-e", str(expect))
    assert result.returncode == 0, result.stderr
    assert "state saved after line 31 (182 bytes, format 1) and loaded into a fresh instance: " in (
        result.stdout
    )
    assert result.stdout.rstrip().endswith("PASS average.wasm: 58 messages in, 10 out, 10 expected")
    stateless = edged(
        "filter",
        "test",
        THRESHOLD,
        "-p",
        "limit=30",
        "-i",
        str(CONFORMANCE_INPUT),
        "-e",
        str(expect),
    )
    assert "fresh instance" not in stateless.stdout + stateless.stderr


def test_test_fails_when_a_hand_over_changes_the_output(tmp_path: Path) -> None:
    """A filter that forgets what it should have saved passes its golden file but fails the
    hand-over, with a diff of the two runs; one that refuses its own state fails too."""
    source = write_lines(tmp_path / "in.jsonl", *({"topic": "t", "payload": "x"} for _ in range(4)))
    expect = write_lines(
        tmp_path / "out.jsonl", *({"topic": "n", "payload": str(i)} for i in range(1, 5))
    )
    forgetful = edged(
        "filter", "test", str(counter(tmp_path, 0)), "-i", str(source), "-e", str(expect)
    )
    assert forgetful.returncode == 1
    err = forgetful.stderr
    assert (
        "state saved after line 2 (0 bytes, format 0) and loaded into a fresh instance: "
        "the output changed" in err
    )
    assert '-{"topic": "n", "payload": "3"}' in err
    assert '+{"topic": "n", "payload": "1"}' in err
    assert err.rstrip().endswith("FAIL counter0.wasm: 4 messages in, 4 out, 4 expected")
    refusing = edged(
        "filter", "test", str(counter(tmp_path, 1)), "-i", str(source), "-e", str(expect)
    )
    assert refusing.returncode == 1
    assert (
        "after line 2: state load refused: edged_state_load refused format 0 (0 bytes): returned 1"
        in refusing.stderr
    )


# -- edged filter inspect -----------------------------------------------------------------------


def test_inspect_shows_abi_exports_memory_and_verdict() -> None:
    """Inspect prints the ABI version, exports and imports with signatures, memory and PASS."""
    result = edged("filter", "inspect", AVERAGE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    size = Path(AVERAGE).stat().st_size
    assert f"size      {size} bytes" in out
    assert "abi       version 1 (ok; edged speaks 1)" in out
    assert "edged_on_tick       func    (i64) -> (i32)" in out
    assert "imports   edged.log           func    (i32, i32, i32) -> ()" in out
    assert "memory    initial " in out and "no maximum" in out
    assert "buffers   input 65536 bytes at " in out
    assert "tick      yes" in out
    assert "state     save/load exports (stateful)" in out
    assert "budgets   defaults: memory 16 MiB, fuel 20000000, deadline 100 ms" in out
    assert "64 emits, 65536 emit bytes, state 256 KiB" in out
    assert out.rstrip().endswith("verdict   PASS: a node would load it")


def test_inspect_json_and_init_refusal() -> None:
    """--json gives the same facts; a filter whose init refuses missing params fails, exit 1."""
    result = edged("filter", "inspect", THRESHOLD, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["abi_version"] == 1
    assert report["size"] == Path(THRESHOLD).stat().st_size
    assert {e["name"] for e in report["exports"]} == {
        "memory",
        "edged_abi_version",
        "edged_buffers",
        "edged_init",
        "edged_on_message",
    }
    assert report["imports"] == [
        {"name": "edged.log", "kind": "func", "type": "(i32, i32, i32) -> ()"}
    ]
    assert report["memory_initial_pages"] >= 3
    assert report["has_state"] is False
    assert report["passes"] is False
    assert report["reason"] == "init returned 1 (parameters refused)"
    assert report["logs"] == [
        ["error", "threshold: param 'limit' is required and must be a number"]
    ]
    with_params = edged("filter", "inspect", THRESHOLD, "--json", "-p", "limit=30")
    assert with_params.returncode == 0
    assert json.loads(with_params.stdout)["passes"] is True
    plain = edged("filter", "inspect", THRESHOLD, "-p", "limit=30")
    assert "state     none" in plain.stdout


def test_inspect_uses_the_node_config_budgets_and_params(tmp_path: Path) -> None:
    """With --config the module's own budgets and params decide; a memory budget too small fails."""
    config = write_config(
        tmp_path / "node.yaml",
        {
            "node_id": "gw-1",
            "broker": {"host": "localhost"},
            "modules": {
                "hot": {
                    "file": THRESHOLD,
                    "params": {"limit": 30},
                    "budgets": {"memory": "128 KiB"},
                },
                "ok": {"file": THRESHOLD, "params": {"limit": 30}},
            },
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": ["a/#"],
                    "filters": [{"module": "hot"}, {"module": "ok"}],
                    "outputs": [{"topic": "out/{topic}"}],
                }
            ],
        },
    )
    tight = edged("filter", "inspect", THRESHOLD, "-c", str(config), "-m", "hot")
    assert tight.returncode == 1, tight.stdout + tight.stderr
    assert f"budgets   {config}, module hot: memory 128 KiB" in tight.stdout
    assert "note      its initial memory (256 KiB) exceeds the memory budget (128 KiB)" in (
        tight.stdout
    )
    assert "verdict   FAIL: cannot be instantiated" in tight.stdout
    fine = edged("filter", "inspect", THRESHOLD, "-c", str(config), "-m", "ok")
    assert fine.returncode == 0, fine.stdout
    assert "params    limit=30" in fine.stdout
    ambiguous = edged("filter", "inspect", THRESHOLD, "-c", str(config))
    assert ambiguous.returncode == 2
    assert "say which module with --module (modules: hot, ok)" in ambiguous.stderr


def test_inspect_explains_a_file_that_is_not_a_filter(tmp_path: Path) -> None:
    """Invalid WebAssembly and a module without the ABI exports fail with the reason."""
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    result = edged("filter", "inspect", str(junk))
    assert result.returncode == 1
    assert "verdict   FAIL: invalid WebAssembly" in result.stdout
    import wasmtime

    bare = tmp_path / "bare.wasm"
    bare.write_bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1))'))
    result = edged("filter", "inspect", str(bare))
    assert result.returncode == 1
    assert "abi       unknown" in result.stdout
    assert "verdict   FAIL: no edged_abi_version export" in result.stdout


def test_every_sdk_example_passes_inspect() -> None:
    """The committed Rust, AssemblyScript and WAT examples load with the default budgets."""
    examples = sorted((ROOT / "sdk").glob("*/examples/*.wasm"))
    # Rust and AssemblyScript include cbor_json and msgpack_json; all three annotate
    assert len(examples) == 14
    for path in examples:
        params = ["-p", "limit=30"] if path.stem == "threshold" else []
        result = edged("filter", "inspect", str(path), *params)
        assert result.returncode == 0, result.stdout + result.stderr

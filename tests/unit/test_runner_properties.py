"""`edged filter run` with MQTT 5 properties and binary payloads on its JSON lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import wasmtime

from edged.authoring.runner import load_filter, run_lines
from edged.config import ParamValue
from tests.helpers.paths import MODULES, wasm


def run(module: str, *lines: dict[str, object]) -> tuple[list[dict[str, object]], str]:
    out, errors = io.StringIO(), io.StringIO()
    filt = load_filter(Path(module), {}, errors)
    run_lines(filt, [json.dumps(line) for line in lines], out, errors, tick_at_end=False)
    return [json.loads(x) for x in out.getvalue().splitlines()], errors.getvalue()


def test_properties_in_go_on_as_pass_would_publish_them() -> None:
    props = {"user_properties": [["traceparent", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"]]}
    got, errors = run(
        wasm("passthrough"),
        {"topic": "a/b", "payload_b64": "//4A", "properties": {**props, "message_expiry": 5}},
        {"topic": "a/c", "payload": "plain"},
    )
    assert errors == ""
    assert got == [
        {"topic": "a/b", "payload_b64": "//4A", "properties": props},
        {"topic": "a/c", "payload": "plain"},
    ]


def test_a_module_that_sets_properties_shows_them(tmp_path: Path) -> None:
    path = tmp_path / "setprops.wasm"
    path.write_bytes(wasmtime.wat2wasm((MODULES / "setprops.wat").read_text()))
    got, _ = run(str(path), {"topic": "a/b", "payload": "x", "properties": {"content_type": "t"}})
    assert got == [
        {
            "topic": "a/b",
            "payload": "x",
            "properties": {
                "content_type": "application/json",
                "correlation_data_b64": "cmVxLTQy",
                "user_properties": [["stage", "gateway"]],
            },
        }
    ]


def test_a_bad_properties_object_is_a_bad_line_naming_the_key() -> None:
    got, errors = run(wasm("passthrough"), {"topic": "a", "payload": "x", "properties": {"c": 1}})
    assert got == []
    assert "unknown key 'c'" in errors


def test_the_annotate_example_sets_properties_and_refuses_what_lacks_one() -> None:
    """examples/filters/annotate.c (the C SDK's property helpers): sets a content type and a
    user property, reads the input's user properties, and REJECTs an input without the one
    it requires (the reason names it)."""
    out, errors = io.StringIO(), io.StringIO()
    params: dict[str, ParamValue] = {
        "content_type": "application/json",
        "property": "gateway",
        "value": "gw-7",
        "require": "traceparent",
    }
    filt = load_filter(Path(wasm("annotate")), params, errors)
    assert filt.wants_properties
    trace = {"user_properties": [["traceparent", "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"]]}
    lines = [
        {"topic": "s/1", "payload": "{}", "properties": {**trace, "content_type": "text/plain"}},
        {"topic": "s/2", "payload": "{}", "properties": {"user_properties": [["x", "y"]]}},
        {"topic": "s/3", "payload": "{}"},
    ]
    totals = run_lines(filt, [json.dumps(x) for x in lines], out, errors, tick_at_end=False)
    (got,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert got["topic"] == "s/1"
    assert got["properties"] == {
        "content_type": "application/json",
        "user_properties": [*trace["user_properties"], ["gateway", "gw-7"]],
    }
    assert totals.rejected == 2
    assert errors.getvalue().count("rejected by the filter: missing user property traceparent") == 2


def test_inspect_says_whether_a_module_reads_properties() -> None:
    import subprocess
    import sys

    def props_row(name: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "edged", "filter", "inspect", wasm(name)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return next(line for line in out.splitlines() if line.startswith("props"))

    assert props_row("annotate") == "props     reads and sets MQTT 5 properties"
    assert props_row("threshold") == "props     not read (outputs carry their input's)"

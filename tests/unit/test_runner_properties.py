"""`edged filter run` with MQTT 5 properties and binary payloads on its JSON lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import wasmtime

from edged.authoring.runner import load_filter, run_lines
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

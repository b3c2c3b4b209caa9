"""`edged filter run`: one filter over JSON lines, no broker — the filter author's inner loop."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edged.config.model import ParamValue
from edged.engine import Filter, Outcome, WasmtimeEngine
from edged.errors import FilterCallError
from edged.mqtt.message import payload_fields


@dataclass(slots=True)
class RunTotals:
    lines: int = 0
    messages_in: int = 0
    messages_out: int = 0
    failures: int = 0
    bad_lines: int = 0


def load_filter(path: Path, params: Mapping[str, ParamValue], errors: TextIO) -> Filter:
    """The module at `path`, instantiated with `params`; its log lines go to `errors`."""
    engine = WasmtimeEngine()
    module = engine.load_file(path.name, path)

    def guest_log(level: str, text: str) -> None:
        print(f"[{level}] {text}", file=errors)

    return module.instantiate(params, guest_log)


def payload_bytes(record: Mapping[str, object]) -> bytes:
    """The payload of a JSON-lines record: `payload_b64`, else `payload` as text or JSON value."""
    if "payload_b64" in record:
        return base64.b64decode(str(record["payload_b64"]), validate=True)
    payload = record.get("payload", "")
    if isinstance(payload, str):
        return payload.encode()
    # A JSON value stands for its own compact text, so lines can carry readings as objects.
    return json.dumps(payload, separators=(",", ":")).encode()


def render_record(topic: str, payload: bytes) -> str:
    """One message as the JSON line `edged filter run` prints and `filter test` compares."""
    return json.dumps({"topic": topic, **payload_fields(payload)}, ensure_ascii=False)


def run_lines(
    filt: Filter, lines: Iterable[str], out: TextIO, errors: TextIO, *, tick_at_end: bool
) -> RunTotals:
    """Feed each line to the filter and print what it emits; problems go to `errors`."""
    totals = RunTotals()

    def show(outcome: Outcome) -> None:
        for topic, payload in outcome:
            totals.messages_out += 1
            print(render_record(topic.decode(errors="replace"), payload), file=out)

    def tick(now_ms: int, where: str) -> None:
        if not filt.has_tick:
            totals.bad_lines += 1
            print(f"{where}: the filter has no edged_on_tick", file=errors)
            return
        try:
            show(filt.on_tick(now_ms))
        except FilterCallError as exc:
            totals.failures += 1
            print(f"{where}: tick failed: {exc}", file=errors)

    for number, line in enumerate(lines, start=1):
        totals.lines += 1
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("expected an object")
            if "tick" in record:
                stamp = record["tick"]
                tick(stamp if type(stamp) is int else int(time.time() * 1000), where)
                continue
            topic = record["topic"]
            if not isinstance(topic, str) or not topic:
                raise ValueError("'topic' must be a non-empty string")
            payload = payload_bytes(record)
        except (ValueError, KeyError, TypeError) as exc:
            totals.bad_lines += 1
            text = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            print(f"{where}: not a message line ({text})", file=errors)
            continue
        totals.messages_in += 1
        try:
            show(filt.on_message(topic.encode(), payload))
        except FilterCallError as exc:
            totals.failures += 1
            print(f"{where}: dropped, {exc}", file=errors)
    if tick_at_end:
        tick(int(time.time() * 1000), "end of input")
    return totals

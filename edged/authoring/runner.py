"""`edged filter run`: one filter over JSON lines, no broker — the filter author's inner loop."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edged.config.model import ParamValue
from edged.engine import Filter, Outcome, PropsRecord, SavedState, WasmtimeEngine
from edged.errors import EdgedError, FilterCallError, FilterRejected
from edged.mqtt.message import payload_fields
from edged.mqtt.properties import Properties, PropertiesError, from_json, from_wire


@dataclass(slots=True)
class RunTotals:
    lines: int = 0
    messages_in: int = 0
    messages_out: int = 0
    failures: int = 0
    rejected: int = 0
    bad_lines: int = 0


def load_filter(
    path: Path,
    params: Mapping[str, ParamValue],
    errors: TextIO,
    capabilities: frozenset[str] = frozenset(),
) -> Filter:
    """The module at `path`, instantiated with `params` and the WASI `capabilities` granted
    (as `modules.<name>.capabilities` grants them on a node); its log lines go to `errors`."""
    from edged.config.model import DEFAULT_BUDGETS

    engine = WasmtimeEngine()
    module = engine.load_file(path.name, path)

    def guest_log(level: str, text: str) -> None:
        print(f"[{level}] {text}", file=errors)

    return module.instantiate(params, guest_log, DEFAULT_BUDGETS, capabilities)


def payload_bytes(record: Mapping[str, object]) -> bytes:
    """The payload of a JSON-lines record: `payload_b64`, else `payload` as text or JSON value."""
    if "payload_b64" in record:
        return base64.b64decode(str(record["payload_b64"]), validate=True)
    payload = record.get("payload", "")
    if isinstance(payload, str):
        return payload.encode()
    # A JSON value stands for its own compact text, so lines can carry readings as objects.
    return json.dumps(payload, separators=(",", ":")).encode()


def render_record(topic: str, payload: bytes, props: Properties | None = None) -> str:
    """One message as the JSON line `edged filter run` prints and `filter test` compares; its
    `properties` as an output rule with `properties: pass` would publish them."""
    record: dict[str, object] = {"topic": topic, **payload_fields(payload)}
    published = from_wire(props.for_output(True)) if props is not None else None
    if published is not None:
        record["properties"] = published.to_json()
    return json.dumps(record, ensure_ascii=False)


def line_properties(record: Mapping[str, object]) -> Properties | None:
    """The `properties` object of a JSON line (None without one); ValueError naming the key."""
    raw = record.get("properties")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'properties' must be an object")
    try:
        return from_json(raw)
    except PropertiesError as exc:
        raise ValueError(str(exc)) from None


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def run_lines(
    filt: Filter,
    lines: Iterable[str],
    out: TextIO,
    errors: TextIO,
    *,
    tick_at_end: bool,
    now_ms: Callable[[], int] = wall_clock_ms,
    first_line: int = 1,
) -> RunTotals:
    """Feed each line to the filter and print what it emits; problems go to `errors`.

    `now_ms` stamps the ticks that give no time of their own; `first_line` numbers the lines in
    what goes to `errors`."""
    totals = RunTotals()

    def show(outcome: Outcome | list[PropsRecord]) -> None:
        for record in outcome:
            totals.messages_out += 1
            props = record[2] if len(record) == 3 else None
            print(render_record(record[0].decode(errors="replace"), record[1], props), file=out)

    def tick(now_ms: int, where: str) -> None:
        if not filt.has_tick:
            totals.bad_lines += 1
            print(f"{where}: the filter has no edged_on_tick", file=errors)
            return
        try:
            show(filt.on_tick_props(now_ms) if filt.wants_properties else filt.on_tick(now_ms))
        except FilterCallError as exc:
            totals.failures += 1
            print(f"{where}: tick failed: {exc}", file=errors)

    for number, line in enumerate(lines, start=first_line):
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
                tick(stamp if type(stamp) is int else now_ms(), where)
                continue
            topic = record["topic"]
            if not isinstance(topic, str) or not topic:
                raise ValueError("'topic' must be a non-empty string")
            payload = payload_bytes(record)
            props = line_properties(record)
        except (ValueError, KeyError, TypeError) as exc:
            totals.bad_lines += 1
            text = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            print(f"{where}: not a message line ({text})", file=errors)
            continue
        totals.messages_in += 1
        try:
            if props is not None or filt.wants_properties:
                show(filt.on_message_props(topic.encode(), payload, props))
            else:
                show(filt.on_message(topic.encode(), payload))
        except FilterCallError as exc:
            totals.failures += 1
            print(f"{where}: dropped, {exc}", file=errors)
        except FilterRejected as rejected:
            totals.rejected += 1
            print(f"{where}: rejected by the filter: {rejected.text}", file=errors)
            show(rejected.records)
    if tick_at_end:
        tick(now_ms(), "end of input")
    return totals


# -- state files: what `filter run --save-state` writes and `--load-state` reads ---------------


def read_state_file(path: Path) -> SavedState:
    """The state in a file `--save-state` wrote: JSON `{"format": N, "state_b64": "..."}`."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EdgedError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise EdgedError(f"{path}: not JSON ({exc})") from None
    fmt = record.get("format") if isinstance(record, dict) else None
    blob = record.get("state_b64") if isinstance(record, dict) else None
    if type(fmt) is not int or not 0 <= fmt <= 0xFFFFFFFF or not isinstance(blob, str):
        raise EdgedError(
            f'{path}: expected {{"format": N, "state_b64": "..."}} with N a u32, as '
            "--save-state writes"
        )
    try:
        data = base64.b64decode(blob, validate=True)
    except ValueError:
        raise EdgedError(f"{path}: 'state_b64' is not base64") from None
    return SavedState(fmt, data)


def write_state_file(path: Path, state: SavedState) -> None:
    """Write `state` as `read_state_file` reads it (with its size, for a reader's eye)."""
    record = {
        "format": state.format,
        "size": len(state.data),
        "state_b64": base64.b64encode(state.data).decode("ascii"),
    }
    try:
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:
        raise EdgedError(f"cannot write {path}: {exc.strerror}") from None


def state_problem(exc: FilterCallError, action: str) -> str:
    """One line on a save or load that failed, the engine's reason first."""
    what = "refused" if exc.reason == "state_refused" else f"failed ({exc.reason})"
    return f"state {action} {what}: {exc.detail}"

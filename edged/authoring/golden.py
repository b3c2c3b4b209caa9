"""`edged filter test`: run a filter over JSON lines and compare what it emits with a golden file.

A record of the expected file matches an emitted one when the topics are equal and the payloads
are: byte for byte when the expected payload is written as a string (or as `payload_b64`), as
parsed JSON when it is written as a JSON value.

A filter with state is run a second time with its state saved in the middle of the input and
loaded into a fresh instance, as a node does on a reload: that must change nothing it emits.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edged.authoring.runner import (
    load_filter,
    payload_bytes,
    render_record,
    run_lines,
    state_problem,
    wall_clock_ms,
)
from edged.config.model import ParamValue
from edged.errors import EdgedError, FilterCallError


@dataclass(frozen=True)
class Expected:
    """One record of the expected file: topic and either exact payload bytes or a JSON value."""

    line: int
    topic: str
    payload: bytes | None  # exact bytes, or None when compared as a JSON value
    value: Any = None

    def render(self) -> str:
        if self.payload is None:
            return json.dumps({"topic": self.topic, "payload": self.value}, ensure_ascii=False)
        return render_record(self.topic, self.payload)


def read_expected(path: Path) -> list[Expected]:
    """The records of an expected-output file; EdgedError names the line of a bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgedError(f"cannot read {path}: {exc.strerror}") from None
    records: list[Expected] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise EdgedError(f"{where}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("topic"), str):
            raise EdgedError(f"{where}: expected an object with a string 'topic'")
        if "payload_b64" in record:
            try:
                raw = base64.b64decode(str(record["payload_b64"]), validate=True)
            except ValueError:
                raise EdgedError(f"{where}: 'payload_b64' is not base64") from None
            records.append(Expected(number, record["topic"], raw))
        elif isinstance(record.get("payload", ""), str):
            records.append(Expected(number, record["topic"], record.get("payload", "").encode()))
        else:
            records.append(Expected(number, record["topic"], None, record["payload"]))
    return records


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality that, unlike ==, tells true from 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _matches(want: Expected, topic: str, payload: bytes) -> bool:
    if want.topic != topic:
        return False
    if want.payload is not None:
        return want.payload == payload
    try:
        return _same_json(json.loads(payload), want.value)
    except ValueError:
        return False


def _render_like(want: Expected | None, topic: str, payload: bytes) -> str:
    """An emitted record written the way the expected one at its place is, so equal lines say
    equal records and a diff shows only what differs."""
    if want is not None and want.payload is None:
        try:
            value = json.loads(payload)
        except ValueError:
            pass
        else:
            return json.dumps({"topic": topic, "payload": value}, ensure_ascii=False)
    return render_record(topic, payload)


@dataclass
class TestOutcome:
    passed: bool
    report: str


def golden_test(
    module: Path,
    input_path: Path,
    expect_path: Path,
    params: Mapping[str, ParamValue],
    *,
    tick_at_end: bool = False,
    capabilities: frozenset[str] = frozenset(),
) -> TestOutcome:
    """Run `module` over `input_path` as `edged filter run` does; compare with `expect_path`."""
    expected = read_expected(expect_path)
    errors = io.StringIO()
    filt = load_filter(module, params, errors, capabilities)
    emitted = io.StringIO()
    try:
        text = input_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgedError(f"cannot read {input_path}: {exc.strerror}") from None
    source = text.splitlines(keepends=True)
    # One time for every tick without its own, so the run with the state handed over stamps
    # them as the whole run did.
    started = wall_clock_ms()
    totals = run_lines(
        filt, source, emitted, errors, tick_at_end=tick_at_end, now_ms=lambda: started
    )
    state_lines: list[str] = []
    state_ok = True
    if filt.has_state:
        state_ok = _hand_over_midway(
            module,
            params,
            source,
            emitted.getvalue(),
            tick_at_end,
            started,
            state_lines,
            capabilities,
        )
    actual: list[tuple[str, bytes]] = []
    for line in emitted.getvalue().splitlines():
        record = json.loads(line)
        actual.append((record["topic"], payload_bytes(record)))

    lines: list[str] = []
    problems = errors.getvalue()
    if problems:
        lines.append(problems.rstrip("\n"))
    mismatch = next(
        (
            i
            for i in range(max(len(expected), len(actual)))
            if i >= len(expected) or i >= len(actual) or not _matches(expected[i], *actual[i])
        ),
        None,
    )
    summary = (
        f"{module.name}: {totals.messages_in} messages in, {len(actual)} out, "
        f"{len(expected)} expected"
    )
    lines.extend(state_lines)
    if mismatch is None and not totals.failures and not totals.bad_lines and state_ok:
        lines.append(f"PASS {summary}")
        return TestOutcome(True, "\n".join(lines) + "\n")
    if totals.failures or totals.bad_lines:
        lines.append(
            f"{totals.failures} failed calls and {totals.bad_lines} bad input lines (see above)"
        )
    if mismatch is not None:
        where = (
            f"expected line {expected[mismatch].line}"
            if mismatch < len(expected)
            else "past the end of the expected file"
        )
        lines.append(f"first difference at output record {mismatch + 1} ({where})")
        want = [e.render() for e in expected]
        got = [
            want[i]
            if i < len(expected) and _matches(expected[i], topic, payload)
            else _render_like(expected[i] if i < len(expected) else None, topic, payload)
            for i, (topic, payload) in enumerate(actual)
        ]
        # imported here: it costs ~110 KiB of RSS and only a failed `filter test` needs it
        import difflib

        diff = difflib.unified_diff(
            want, got, fromfile=str(expect_path), tofile=f"emitted by {module}", lineterm=""
        )
        lines.extend(diff)
    lines.append(f"FAIL {summary}")
    return TestOutcome(False, "\n".join(lines) + "\n")


def _hand_over_midway(
    module: Path,
    params: Mapping[str, ParamValue],
    source: list[str],
    whole: str,
    tick_at_end: bool,
    started: int,
    report: list[str],
    capabilities: frozenset[str] = frozenset(),
) -> bool:
    """Run the input again with the state saved after its middle line and loaded into a fresh
    instance for the rest; True when that emits exactly `whole`. What it found goes to
    `report`."""
    split = len(source) // 2
    out, scratch = io.StringIO(), io.StringIO()  # problems were reported by the whole run
    first = load_filter(module, params, scratch, capabilities)
    run_lines(first, source[:split], out, scratch, tick_at_end=False, now_ms=lambda: started)
    try:
        saved = first.save_state()
    except FilterCallError as exc:
        report.append(f"after line {split}: {state_problem(exc, 'save')}")
        return False
    assert saved is not None  # the module has the state exports
    second = load_filter(module, params, scratch, capabilities)
    try:
        second.load_state(saved)
    except FilterCallError as exc:
        report.append(f"after line {split}: {state_problem(exc, 'load')}")
        return False
    run_lines(
        second,
        source[split:],
        out,
        scratch,
        tick_at_end=tick_at_end,
        now_ms=lambda: started,
        first_line=split + 1,
    )
    where = f"state saved after line {split} ({len(saved.data)} bytes, format {saved.format})"
    if out.getvalue() == whole:
        report.append(f"{where} and loaded into a fresh instance: same output")
        return True
    report.append(f"{where} and loaded into a fresh instance: the output changed")
    import difflib  # as in golden_test: only a failure needs it

    report.extend(
        difflib.unified_diff(
            whole.splitlines(),
            out.getvalue().splitlines(),
            fromfile="emitted by one instance",
            tofile=f"emitted with the state handed over after line {split}",
            lineterm="",
        )
    )
    return False


def print_outcome(outcome: TestOutcome, out: TextIO, err: TextIO) -> int:
    """The report on `out` when the test passed, on `err` when not; the exit status."""
    (out if outcome.passed else err).write(outcome.report)
    return 0 if outcome.passed else 1

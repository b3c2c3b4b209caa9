"""`edged logs` in this process: filtering and rendering the daemon's log lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edged.cli import main
from tests.helpers.logs import MALFORMED, SAMPLE, log_line, write_sample


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path)


def logs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """`edged logs ARGS` in this process: its stdout and stderr, after checking it exits 0."""
    assert main(["logs", *args]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def events(out: str) -> list[str]:
    """The event of each --json line printed."""
    return [json.loads(line)["event"] for line in out.splitlines()]


def test_plain_output_is_readable_text_without_colour(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Off a terminal each line reads as timestamp, level, event, then key=value pairs."""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow")
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0] == (
        "2026-03-02 10:00:00.250Z info    starting node_id=gw-1 pipelines=2 modules=3 "
        "broker=mqtt:1883"
    )
    assert lines[3] == (
        "2026-03-02 10:00:03.250Z warning filter_failed pipeline=temperature module=threshold "
        'topic=sensors/a/temperature reason=trap detail="wasm trap: unreachable" '
        "during=message suppressed=0"
    )
    summary = next(line for line in lines if " summary " in line)
    assert 'pipelines={"temperature":{"in":10,"out":8}} connected=true rss_mib=31.5' in summary
    assert lines[-4:] == [
        "2026-03-02 10:00:09.250Z error   internal_error topic=sensors/c/temperature",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "ValueError: boom",
    ]


def test_pipeline_module_and_topic_come_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever order a line has its fields in, pipeline, module and topic are shown first."""
    path = tmp_path / "x.log"
    path.write_text(log_line("filter_failed", "warning", 0, reason="trap", topic="a/b", module="m"))
    out, _ = logs(capsys, "--file", str(path), "--no-follow")
    assert out == "2026-03-02 10:00:00.250Z warning filter_failed module=m topic=a/b reason=trap\n"


def test_level_shows_that_level_and_above(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--level warning shows warnings and errors, and no debug, info or unparsable lines."""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--level", "warning", "--json")
    assert events(out) == [
        "filter_failed",
        "filter_quarantined",
        "filter_failed",
        "broker_unreachable",
        "internal_error",
    ]
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--level", "ERROR", "--json")
    assert events(out) == ["internal_error"]
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--level", "debug", "--json")
    assert len(out.splitlines()) == len(SAMPLE) - len(MALFORMED)


def test_pipeline_filter(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--pipeline NAME shows only the lines about that pipeline."""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--pipeline", "humidity", "--json")
    assert events(out) == ["filter_log", "filter_failed"]
    assert all(json.loads(line)["pipeline"] == "humidity" for line in out.splitlines())


def test_module_filter(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--module NAME shows only the lines about that filter module."""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--module", "threshold", "--json")
    assert events(out) == ["filter_failed", "filter_quarantined"]


def test_event_filter_is_repeatable_and_takes_lists(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--event may be given several times and hold several comma-separated names."""
    out, _ = logs(
        capsys,
        *("--file", str(sample), "--no-follow", "--json"),
        *("--event", "ready", "--event", "filter_quarantined,internal_error"),
    )
    assert events(out) == ["ready", "filter_quarantined", "internal_error"]


def test_filters_combine_with_and(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Different filters must all match; several values of one filter are alternatives."""
    out, _ = logs(
        capsys,
        *("--file", str(sample), "--no-follow", "--json", "--level", "warning"),
        *("--pipeline", "humidity,temperature", "--event", "filter_failed"),
    )
    assert [json.loads(line)["pipeline"] for line in out.splitlines()] == [
        "temperature",
        "humidity",
    ]
    out, _ = logs(
        capsys,
        *("--file", str(sample), "--no-follow", "--json"),
        *("--pipeline", "humidity", "--module", "threshold"),
    )
    assert out == ""


def test_json_passes_matching_lines_through_unchanged(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints each matching line byte for byte as the daemon wrote it."""
    out, err = logs(capsys, "--file", str(sample), "--no-follow", "--json", "--level", "warning")
    wanted = [
        line
        for line in SAMPLE
        if line not in MALFORMED and json.loads(line)["level"] in ("warning", "error")
    ]
    assert out == "".join(line + "\n" for line in wanted)
    assert err == ""


def test_json_keeps_stdout_pure_json(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without filters, --json prints every JSON line on stdout and the other lines on stderr."""
    out, err = logs(capsys, "--file", str(sample), "--no-follow", "--json")
    assert out == "".join(line + "\n" for line in SAMPLE if line not in MALFORMED)
    assert err == "".join(line + "\n" for line in MALFORMED)


def test_malformed_lines_are_shown_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines that are not JSON objects, even broken UTF-8, are printed as they are, in order."""
    path = tmp_path / "odd.log"
    odd = [b"plain text", b'"a JSON string"', b"null", b"", b"{broken", b"caf\xc3\xa9 \xff"]
    path.write_bytes(b"\n".join([SAMPLE[0].encode(), *odd, SAMPLE[1].encode()]) + b"\n")
    out, err = logs(capsys, "--file", str(path), "--no-follow")
    lines = out.splitlines()
    assert lines[1:-1] == ["plain text", '"a JSON string"', "null", "", "{broken", "café \ufffd"]
    assert " starting " in lines[0]
    assert " ready " in lines[-1]
    assert err == ""


def test_malformed_lines_are_left_out_by_any_filter(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a filter set, lines that are not JSON objects cannot match it and are not shown."""
    for option in (["--level", "debug"], ["--pipeline", "humidity"], ["--module", "avg"]):
        out, err = logs(capsys, "--file", str(sample), "--no-follow", "--json", *option)
        assert err == ""
        assert all(isinstance(json.loads(line), dict) for line in out.splitlines())
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "--event", "ready")
    assert len(out.splitlines()) == 1


def test_lines_option_starts_with_the_last_lines(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-n N starts with the last N lines of the log, counted before filtering."""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "-n", "3", "--json")
    assert events(out) == ["summary", "internal_error"]
    assert capsys.readouterr().err == ""
    out, _ = logs(capsys, "--file", str(sample), "--no-follow", "-n", "3")
    assert out.splitlines()[0] == "{not json"


def test_bad_lines_count_is_refused(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-n takes a number of lines or 'all'; anything else is a usage error, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(["logs", "--file", str(sample), "-n", "some"])
    assert exited.value.code == 2
    assert "expected a number of lines or 'all'" in capsys.readouterr().err


def test_missing_log_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log file that is not there gives one line naming it, and exit 2."""
    assert main(["logs", "--file", str(tmp_path / "nope.log"), "--no-follow"]) == 2
    err = capsys.readouterr().err
    assert err == f"edged: cannot read {tmp_path / 'nope.log'}: No such file or directory\n"

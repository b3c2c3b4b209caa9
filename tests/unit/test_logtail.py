"""`edged logs` as an operator uses it, and the daemon's own rotating log file."""

from __future__ import annotations

import io
import json
import os
import pty
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import structlog

from edged.cli import main
from edged.daemon import logs as log
from edged.errors import EdgedError
from tests.helpers.paths import wasm

EDGED = [sys.executable, "-m", "edged"]


def _line(event: str, level: str, second: int, **fields: object) -> str:
    """A line as the daemon writes it: its fields, then event, level and timestamp."""
    entry = {**fields, "event": event, "level": level}
    entry["timestamp"] = f"2026-03-02T10:00:{second:02d}.250000Z"
    return json.dumps(entry)


SAMPLE = [
    _line("starting", "info", 0, node_id="gw-1", pipelines=2, modules=3, broker="mqtt:1883"),
    _line("ready", "info", 1, subscriptions=["sensors/+/temperature", "sensors/+/humidity"]),
    _line("message", "debug", 2, pipeline="temperature", topic="sensors/a/temperature", size=17),
    _line(
        "filter_failed",
        "warning",
        3,
        pipeline="temperature",
        module="threshold",
        topic="sensors/a/temperature",
        reason="trap",
        detail="wasm trap: unreachable",
        during="message",
        suppressed=0,
    ),
    "Traceback (most recent call last):",
    _line(
        "filter_quarantined",
        "warning",
        4,
        pipeline="temperature",
        module="threshold",
        reason="trap",
        violations=3,
    ),
    _line("filter_log", "info", 5, pipeline="humidity", module="avg", text="window full"),
    _line(
        "filter_failed",
        "warning",
        6,
        pipeline="humidity",
        module="avg",
        topic="sensors/b/humidity",
        reason="fuel",
        detail="out of fuel",
        during="message",
        suppressed=2,
    ),
    "[1, 2, 3]",
    _line("broker_unreachable", "warning", 7, reason="connection refused", retry_in_s=2.0),
    "{not json",
    _line(
        "summary",
        "info",
        8,
        pipelines={"temperature": {"in": 10, "out": 8}},
        connected=True,
        rss_mib=31.5,
    ),
    _line(
        "internal_error",
        "error",
        9,
        topic="sensors/c/temperature",
        exception='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom',
    ),
]
MALFORMED = ["Traceback (most recent call last):", "[1, 2, 3]", "{not json"]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "edged.log"
    path.write_text("".join(line + "\n" for line in SAMPLE))
    return path


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
    path.write_text(_line("filter_failed", "warning", 0, reason="trap", topic="a/b", module="m"))
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


def test_stdin_is_read_with_a_dash(sample: Path) -> None:
    """`--file -` reads log lines piped in, to their end, and can filter them."""
    result = subprocess.run(
        [*EDGED, "logs", "--file", "-", "--event", "ready", "--json"],
        input=sample.read_text(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SAMPLE[1] + "\n"


def test_missing_log_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log file that is not there gives one line naming it, and exit 2."""
    assert main(["logs", "--file", str(tmp_path / "nope.log"), "--no-follow"]) == 2
    err = capsys.readouterr().err
    assert err == f"edged: cannot read {tmp_path / 'nope.log'}: No such file or directory\n"


def test_colour_on_a_terminal(sample: Path) -> None:
    """On a terminal the level, event and keys are coloured; NO_COLOR turns that off."""

    def on_tty(env: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [*EDGED, "logs", "--file", str(sample), "--no-follow", "--event", "filter_failed"],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert proc.wait(timeout=30) == 0
        return b"".join(chunks).decode().replace("\r\n", "\n")

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = on_tty(env)
    assert "\x1b[33mwarning\x1b[0m" in coloured
    assert "\x1b[1mfilter_failed\x1b[0m" in coloured
    assert "\x1b[36mpipeline\x1b[0m=temperature" in coloured
    plain = on_tty({**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert plain.count("filter_failed") == 2


# -- the journal ---------------------------------------------------------------------------------


def fake_journalctl(tmp_path: Path, sample: Path, status: int = 0) -> Path:
    """A journalctl stand-in that records its arguments and prints the sample log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{tmp_path / "args"}"\ncat "{sample}"\nexit {status}\n'
    )
    script.chmod(0o755)
    return bin_dir


def test_journal_is_followed_by_default(tmp_path: Path, sample: Path) -> None:
    """`edged logs` runs journalctl -u edged -o cat -f, 10 lines back, and filters its output."""
    bin_dir = fake_journalctl(tmp_path, sample)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [*EDGED, "logs", "--level", "error", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == SAMPLE[-1] + "\n"
    assert (tmp_path / "args").read_text() == "-u edged -o cat --no-pager -n 10 -f\n"
    result = subprocess.run(
        [*EDGED, "logs", "--unit", "edged-lab", "--no-follow", "-n", "50"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args").read_text() == "-u edged-lab -o cat --no-pager -n 50\n"
    assert len(result.stdout.splitlines()) == len(SAMPLE) + 3  # the traceback's own lines


def test_failing_journalctl_is_reported(tmp_path: Path, sample: Path) -> None:
    """When journalctl fails, edged logs says so and exits 2 (journalctl explains on stderr)."""
    bin_dir = fake_journalctl(tmp_path, sample, status=1)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [*EDGED, "logs", "--no-follow"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 2
    assert "edged: journalctl exited with status 1" in result.stderr


def test_missing_journalctl_suggests_a_log_file(tmp_path: Path) -> None:
    """Without journalctl, edged logs explains there is no journal and points to --file."""
    result = subprocess.run(
        [*EDGED, "logs"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 2
    assert "journalctl not found" in result.stderr
    assert "edged logs --file PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`edged logs | head` ends without a traceback when head has read enough."""
    path = tmp_path / "big.log"
    path.write_text("".join(line + "\n" for line in SAMPLE * 2000))
    proc = subprocess.Popen(
        [*EDGED, "logs", "--file", str(path), "--no-follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == b""


# -- following a file ----------------------------------------------------------------------------


class Tail:
    """`edged logs --file PATH --json` following, its output lines read as they come."""

    def __init__(self, path: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*EDGED, "logs", "--file", str(path), "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, into: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            into.put(line.rstrip("\n"))

    def take(self, count: int, timeout: float = 10.0, *, errors: bool = False) -> list[str]:
        """The next `count` lines; fails if they do not all arrive in time."""
        source = self.errors if errors else self.lines
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(source.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"got {len(got)} of {count} lines: {got}") from None
        return got

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def tail() -> Iterator[Any]:
    started: list[Tail] = []

    def start(path: Path, *args: str) -> Tail:
        started.append(Tail(path, *args))
        return started[-1]

    yield start
    for t in started:
        t.stop()


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as file:
        file.write("".join(line + "\n" for line in lines))


def numbered(n: int) -> str:
    return _line("tick", "info", n % 60, n=n)


def test_following_a_file_survives_rotation_and_truncation(tmp_path: Path, tail: Any) -> None:
    """Following a log file keeps every line across renames to .1 and truncation in place."""
    path = tmp_path / "edged.log"
    append(path, *(numbered(n) for n in range(12)))
    t = tail(path)
    assert t.take(10) == [numbered(n) for n in range(2, 12)]  # the last 10 lines, as tail -f

    append(path, numbered(12), numbered(13))
    assert t.take(2) == [numbered(12), numbered(13)]

    append(path, numbered(14))  # written just before the rename: still read from the old file
    path.rename(tmp_path / "edged.log.1")
    append(path, numbered(15), numbered(16))
    assert t.take(3) == [numbered(14), numbered(15), numbered(16)]

    path.rename(tmp_path / "edged.log.2")  # the name stays free for a while
    time.sleep(0.5)
    append(path, numbered(17))
    assert t.take(1) == [numbered(17)]

    shutil.copy(path, tmp_path / "copied")  # logrotate's copytruncate
    with open(path, "r+") as file:
        file.truncate(0)
    append(path, "{}")
    assert t.take(1) == ["{}"]
    append(path, numbered(18))
    assert t.take(1) == [numbered(18)]
    assert t.proc.poll() is None


def test_following_waits_for_a_file_that_is_not_there_yet(tmp_path: Path, tail: Any) -> None:
    """Following a log file that does not exist yet says so, then shows it once it appears."""
    path = tmp_path / "later.log"
    t = tail(path, "-n", "all")
    assert t.take(1, errors=True) == [f"edged: waiting for {path} to appear"]
    append(path, numbered(1), numbered(2))
    assert t.take(2) == [numbered(1), numbered(2)]


def test_following_waits_for_the_end_of_a_line(tmp_path: Path, tail: Any) -> None:
    """A line the daemon has only half written is shown once it is complete, in one piece."""
    path = tmp_path / "edged.log"
    path.write_text("")
    t = tail(path)
    line = numbered(7)
    with open(path, "a") as file:
        file.write(line[:20])
        file.flush()
        time.sleep(0.6)
        file.write(line[20:] + "\n")
    assert t.take(1) == [line]


# -- the daemon's log file -----------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    log.configure("info", "json", io.StringIO())  # closes the test's log file
    structlog.reset_defaults()


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_log_file_rotates_by_size_keeping_backups(tmp_path: Path) -> None:
    """log.file gets the JSON lines stdout gets, rotated to .1, .2 once max_bytes is reached."""
    stdout = io.StringIO()
    path = tmp_path / "logs" / "edged.log"
    log.configure("info", "json", stdout, file=path, max_bytes=2048, backups=2)
    logger = structlog.get_logger("test")
    for n in range(200):
        logger.info("tick", n=n, pipeline="temperature")
    logger.debug("hidden")

    assert sorted(p.name for p in path.parent.iterdir()) == [
        "edged.log",
        "edged.log.1",
        "edged.log.2",
    ]
    kept = [*read_lines(path.with_name("edged.log.2")), *read_lines(path.with_name("edged.log.1"))]
    kept += read_lines(path)
    numbers = [entry["n"] for entry in kept]
    assert numbers == list(range(numbers[0], 200))  # the newest lines, none lost between files
    assert all(entry["event"] == "tick" and entry["level"] == "info" for entry in kept)
    for name in ("edged.log", "edged.log.1", "edged.log.2"):
        assert 0 < (path.parent / name).stat().st_size <= 2048
    shown = stdout.getvalue().splitlines()
    assert len(shown) == 200
    assert shown[-1] == path.read_text().splitlines()[-1]


@pytest.mark.usefixtures("restore_logging")
def test_log_file_without_backups_starts_afresh(tmp_path: Path) -> None:
    """With log.backups 0 the file is emptied when full, so it never outgrows max_bytes."""
    path = tmp_path / "edged.log"
    log.configure("info", "json", io.StringIO(), file=path, max_bytes=1024, backups=0)
    for n in range(100):
        structlog.get_logger().warning("tick", n=n)
    assert [p.name for p in tmp_path.iterdir()] == ["edged.log"]
    assert path.stat().st_size <= 1024
    assert read_lines(path)[-1]["n"] == 99


@pytest.mark.usefixtures("restore_logging")
def test_log_file_is_json_even_when_the_console_is_not(tmp_path: Path) -> None:
    """With format console, stdout is readable text while the log file still gets JSON."""
    stdout = io.StringIO()
    path = tmp_path / "edged.log"
    log.configure("info", "console", stdout, file=path)
    structlog.get_logger().info("ready", subscriptions=["a/#"])
    (entry,) = read_lines(path)
    assert entry["event"] == "ready"
    assert entry["subscriptions"] == ["a/#"]
    assert "ready" in stdout.getvalue()
    assert not stdout.getvalue().startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_log_file_that_cannot_rotate_keeps_every_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """If rotating fails, lines still go to the file and stderr says why, once."""
    path = tmp_path / "edged.log"
    (tmp_path / "edged.log.1" / "in-the-way").mkdir(parents=True)
    log.configure("info", "json", io.StringIO(), file=path, max_bytes=1024, backups=1)
    for n in range(50):
        structlog.get_logger().info("tick", n=n)
    assert [entry["n"] for entry in read_lines(path)] == list(range(50))
    err = capsys.readouterr().err
    assert err == f"edged: cannot rotate log file {path}: Is a directory\n"


@pytest.mark.usefixtures("restore_logging")
def test_log_file_that_cannot_be_opened_is_an_error(tmp_path: Path) -> None:
    """A log file path that cannot be written is one clear error, before the daemon starts."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EdgedError, match=r"cannot open log file .*file/edged\.log"):
        log.configure(file=blocker / "edged.log")


def test_daemon_writes_its_log_file(start_daemon: Any, tmp_path: Path, topic_root: str) -> None:
    """`edged run` with log.file writes its JSON lines there, readable with `edged logs`."""
    daemon = start_daemon(
        {
            "node_id": "logfile",
            "modules": {"threshold": {"file": wasm("threshold"), "params": {"limit": 30}}},
            "pipelines": [
                {
                    "name": "temperature",
                    "subscribe": [f"{topic_root}/in/#"],
                    "filters": ["threshold"],
                    "outputs": [{"topic": f"{topic_root}/out/{{topic}}"}],
                }
            ],
            "log": {"file": str(tmp_path / "var" / "edged.log"), "max_bytes": "64 KiB"},
        }
    )
    daemon.stop()
    path = tmp_path / "var" / "edged.log"
    logged = [entry["event"] for entry in read_lines(path)]
    assert logged.index("starting") < logged.index("ready") < logged.index("stopped")
    result = subprocess.run(
        [*EDGED, "logs", "--file", str(path), "--no-follow", "--event", "ready"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert " info    ready subscriptions=" in result.stdout

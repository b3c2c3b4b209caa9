"""`edged logs` as its own process: reading stdin, a terminal, the journal, and following a
file across rotations; the daemon writing its log file."""

from __future__ import annotations

import os
import pty
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.helpers.logs import EDGED, SAMPLE, log_line, read_lines, write_sample
from tests.helpers.paths import wasm


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path)


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
    return log_line("tick", "info", n % 60, n=n)


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


def test_following_waits_for_the_end_of_aline(tmp_path: Path, tail: Any) -> None:
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
    assert " info    ready broker=default subscriptions=" in result.stdout

"""The daemon's own log file: JSON lines, rotated by size."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from edged.daemon import logs as log
from edged.errors import EdgedError
from tests.helpers.logs import read_lines


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    log.configure("info", "json", io.StringIO())  # closes the test's log file
    structlog.reset_defaults()


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

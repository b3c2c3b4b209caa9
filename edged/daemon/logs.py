"""Structured logs: JSON lines when stdout is not a terminal (journald keeps them as they are),
a readable coloured console on a terminal.

For installs without systemd, the same JSON lines can also go to a log file that is rotated by
size like logging.handlers.RotatingFileHandler does it: edged.log, edged.log.1, edged.log.2, ...
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO

import structlog

from edged.errors import EdgedError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3


class RotatingFile:
    """Appends lines to `path`, rotating it by size; safe to share between threads.

    Before a line would take the file past `max_bytes`, the file becomes `path`.1, the old .1
    becomes .2 and so on, keeping `backups` of them; with no backups the file starts afresh.
    A line longer than `max_bytes` still goes in whole, into a file of its own.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        if max_bytes <= 0 or backups < 0:
            raise ValueError("max_bytes must be above 0 and backups at least 0")
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._problem: str | None = None  # the last one reported
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 (see close)
        except OSError as exc:
            raise EdgedError(f"cannot open log file {path}: {exc.strerror or exc}") from None
        # A pipe or a device such as /dev/stderr is written to, never rotated.
        self._rotates = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)

    def write(self, line: str) -> None:
        """Append one line (without its newline). A failing disk never stops the daemon: each
        new problem is reported once on stderr, and writing goes on as far as the disk allows."""
        data = line.encode("utf-8", "backslashreplace") + b"\n"
        with self._lock:
            problem = None
            try:
                if self._file.closed:  # a rotation failed half-way: try again to open it
                    self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
                size = self._file.tell() if self._rotates else 0
                if size and size + len(data) > self.max_bytes:
                    try:
                        self._rotate()
                    except OSError as exc:  # keep the line: a log past max_bytes beats none
                        problem = f"cannot rotate log file {self.path}: {exc.strerror or exc}"
                self._file.write(data)
            except OSError as exc:
                problem = f"cannot write log file {self.path}: {exc.strerror or exc}"
            if problem is not None and problem != self._problem:
                print(f"edged: {problem}", file=sys.stderr)
            self._problem = problem

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        try:
            for n in range(self.backups - 1, 0, -1):
                older = self._backup(n)
                if older.exists():
                    os.replace(older, self._backup(n + 1))
            if self.backups:
                os.replace(self.path, self._backup(1))
        finally:
            mode = "ab" if self.backups else "wb"  # no backups: the file starts afresh
            self._file = open(self.path, mode, buffering=0)  # noqa: SIM115

    def _backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")


class _Render:
    """The last processor: renders the JSON line once, appends it to the log file if there is
    one, and hands stdout either that same line or the console rendering."""

    def __init__(
        self, console: structlog.typing.Processor | None, file: RotatingFile | None
    ) -> None:
        self._json = structlog.processors.JSONRenderer(sort_keys=False)
        self._console, self._file = console, file

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        line = str(self._json(logger, method, event))
        if self._file is not None:
            self._file.write(line)
        if self._console is None:
            return line
        return str(self._console(logger, method, event))


_log_file: RotatingFile | None = None


def configure(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    file: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
) -> None:
    """Set up structlog once for the process; `fmt` is auto, json or console.

    With `file`, every line also goes there as JSON, whatever `fmt` says for stdout. Calling this
    again closes the file of the previous call.
    """
    global _log_file
    out = stream if stream is not None else sys.stdout
    tty = out.isatty()
    use_json = fmt == "json" or (fmt == "auto" and not tty)
    new_file = RotatingFile(file, max_bytes, backups) if file is not None else None
    if _log_file is not None:
        _log_file.close()
    _log_file = new_file
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _Render(None if use_json else structlog.dev.ConsoleRenderer(colors=tty), new_file),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

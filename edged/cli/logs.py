"""`edged logs`: the daemon's JSON log lines, filtered and made readable for the operator.

The lines come from the service's journal (journalctl), from a log file written with `log.file`
(followed like `tail -F`, across rotations), or from stdin. Filters combine with AND; the values
given to one filter combine with OR. Lines that are not JSON objects are shown as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from edged.errors import EdgedError

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
FOLLOW_HISTORY = 10  # lines shown before following, as tail -f and journalctl -f do
POLL_SECONDS = 0.2
_READ_SIZE = 64 * 1024
_FIRST_KEYS = ("pipeline", "module", "topic")
_OWN_KEYS = {"timestamp", "level", "event", "exception"}

_RESET, _BOLD, _DIM, _CYAN = "\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[36m"
_LEVEL_COLOURS = {
    "debug": "\x1b[34m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[1;31m",
    "critical": "\x1b[1;41;97m",
}


# -- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """What a line must match to be shown; empty means anything."""

    level: int | None = None
    pipelines: frozenset[str] = frozenset()
    modules: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.level is not None or self.pipelines or self.modules or self.events)

    def matches(self, entry: Mapping[str, object] | None) -> bool:
        """`entry` is a parsed line, None for one that is not a JSON object."""
        if entry is None:
            return not self.active
        if self.level is not None:
            level = LEVELS.get(str(entry.get("level", "")).lower())
            if level is None or level < self.level:
                return False
        return all(
            not wanted or entry.get(key) in wanted
            for key, wanted in (
                ("pipeline", self.pipelines),
                ("module", self.modules),
                ("event", self.events),
            )
        )


def _names(values: Iterable[str] | None) -> frozenset[str]:
    """Repeated options and comma-separated lists, as one set."""
    return frozenset(
        name.strip() for value in values or () for name in value.split(",") if name.strip()
    )


def parse_line(line: str) -> dict[str, object] | None:
    """The JSON object a log line holds, or None for anything else."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


# -- rendering -----------------------------------------------------------------------------------


def _timestamp(value: object) -> str:
    if not isinstance(value, str):
        return "-" if value is None else str(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    return text + ("Z" if when.tzinfo is not None else "")


def _value(value: object) -> str:
    if isinstance(value, str):
        plain = value and all(c.isprintable() and c not in ' "=' for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def render(entry: Mapping[str, object], *, colour: bool) -> str:
    """One entry as a line: timestamp, level, event, then key=value (pipeline, module, topic
    first); a traceback follows on lines of its own."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    level = str(entry.get("level", "-")).lower()
    head = [
        paint(_DIM, _timestamp(entry.get("timestamp"))),
        paint(_LEVEL_COLOURS.get(level, ""), f"{level:<7}"),
        paint(_BOLD, str(entry.get("event", "-"))),
    ]
    keys = [k for k in _FIRST_KEYS if k in entry]
    keys += [k for k in entry if k not in _OWN_KEYS and k not in _FIRST_KEYS]
    pairs = [f"{paint(_CYAN, key)}={_value(entry[key])}" for key in keys]
    text = " ".join(head + pairs)
    trace = entry.get("exception")
    if trace is not None:
        text += "\n" + str(trace).rstrip("\n")
    return text


# -- sources -------------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw.decode("utf-8", "replace")


def stream_lines(stream: BinaryIO, history: int | None) -> Generator[str, None, None]:
    """Every line of a stream read to its end, or only its last `history` lines."""
    lines: Iterable[bytes] = stream if history is None else deque(stream, maxlen=history)
    for raw in lines:
        yield _decode(raw)


def journal_lines(unit: str, history: int | None, follow: bool) -> Generator[str, None, None]:
    """The unit's journal as its messages only (`journalctl -u UNIT -o cat`)."""
    lines = "all" if history is None else str(history)
    command = ["journalctl", "-u", unit, "-o", "cat", "--no-pager", "-n", lines]
    if follow:
        command.append("-f")
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    except FileNotFoundError:
        raise EdgedError(
            "journalctl not found: this system keeps no systemd journal; to read the log file "
            "that log.file in the config names, use: edged logs --file PATH"
        ) from None
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            yield _decode(raw)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        raise EdgedError(f"journalctl exited with status {code}")


class FileFollower:
    """The lines of a log file and then, like `tail -F`, the lines added to it.

    When the file is renamed away and a new one takes its name (rotation), the rest of the old
    file is read first, then the new one from its start; when it is truncated in place, it is
    read again from its start. A missing file is waited for.
    """

    def __init__(
        self,
        path: Path,
        *,
        poll: float = POLL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.path, self.poll, self.sleep, self.notice = path, poll, sleep, notice
        self._file: BinaryIO | None = None
        self._pending = b""  # the start of a line whose end is not written yet

    def lines(self, history: int | None) -> Generator[str, None, None]:
        """The last `history` lines (None: all), then every line added, for as long as asked."""
        self._file = self._open()
        try:
            if self._file is not None:
                yield from self._history(self._file, history)
            elif self.notice is not None:
                self.notice(f"waiting for {self.path} to appear")
            while True:
                yield from self._read_new()
                changed = yield from self._switch_if_changed()
                if not changed:
                    self.sleep(self.poll)
        finally:
            if self._file is not None:
                self._file.close()

    def _open(self) -> BinaryIO | None:
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EdgedError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _history(self, file: BinaryIO, history: int | None) -> Iterator[str]:
        kept: deque[bytes] = deque(maxlen=history)
        for raw in file:
            if not raw.endswith(b"\n"):
                self._pending = raw
            elif history is None:
                yield _decode(raw)
            else:
                kept.append(raw)
        for raw in kept:
            yield _decode(raw)

    def _read_new(self) -> Iterator[str]:
        """The whole lines added since the last read."""
        while self._file is not None and (chunk := self._file.read(_READ_SIZE)):
            *complete, self._pending = (self._pending + chunk).split(b"\n")
            for raw in complete:
                yield _decode(raw)

    def _flush_pending(self) -> Iterator[str]:
        """An unfinished line its writer will not finish here: shown as it is."""
        if self._pending:
            yield _decode(self._pending)
        self._pending = b""

    def _switch_if_changed(self) -> Generator[str, None, bool]:
        """Move on to the file now at the path if it is another one, or back to the start if
        it was truncated; the lines left in the old one come first. False if nothing changed."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed away, and its successor is not there yet
        except OSError as exc:
            raise EdgedError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if self._file is not None:
            was = os.fstat(self._file.fileno())
            if (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
                if now.st_size >= self._file.tell():
                    return False
                yield from self._flush_pending()
                self._file.seek(0)  # truncated in place
                return True
            yield from self._read_new()  # written before the rename
            yield from self._flush_pending()
            self._file.close()
        self._file = self._open()
        return self._file is not None


# -- the command ---------------------------------------------------------------------------------


def _history(value: str) -> int | None:
    if value.lower() == "all":
        return None
    try:
        lines = int(value)
    except ValueError:
        lines = -1
    if lines < 0:
        raise argparse.ArgumentTypeError(f"expected a number of lines or 'all', got {value!r}")
    return lines


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser("logs", help="show the daemon's logs, filtered")
    add_arguments(logs)
    logs.set_defaults(handler=run_logs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `edged logs`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Show edged's log lines, readable and filtered. By default they come from the "
        "systemd journal, followed."
    )
    parser.epilog = """\
filters combine with AND; several values for one filter with OR.
lines that are not JSON objects are shown as they are, when no filter is set.

examples:
  edged logs --level warning                    warnings and errors, as they come
  edged logs -n 200 --no-follow --pipeline temperature
  edged logs --file /var/log/edged/edged.log --event filter_failed,filter_quarantined
  edged logs --json --module threshold | jq .reason
"""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--unit", default="edged", metavar="NAME", help="the systemd unit (default: edged)"
    )
    source.add_argument(
        "--file",
        metavar="PATH",
        help="read this log file (log.file in the config) instead of the journal; - for stdin",
    )
    parser.add_argument(
        "-n",
        "--lines",
        type=_history,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"start with the last N lines, before filtering, or 'all' (default: "
        f"{FOLLOW_HISTORY} when following, else all)",
    )
    follow = parser.add_mutually_exclusive_group()
    follow.add_argument(
        "-f",
        "--follow",
        action="store_true",
        default=True,
        help="keep showing new lines, across log file rotations (the default)",
    )
    follow.add_argument(
        "--no-follow", dest="follow", action="store_false", help="stop at the end of the log"
    )
    parser.add_argument(
        "--level",
        type=str.lower,
        choices=tuple(LEVELS),
        help="show only this level and above",
    )
    for name in ("pipeline", "module", "event"):
        parser.add_argument(
            f"--{name}",
            action="append",
            metavar="NAME",
            help=f"show only lines of this {name} (repeat or separate with commas for several)",
        )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the matching JSON lines as they are (other lines go to stderr)",
    )


def filters_from(args: argparse.Namespace) -> Filters:
    return Filters(
        level=None if args.level is None else LEVELS[args.level],
        pipelines=_names(args.pipeline),
        modules=_names(args.module),
        events=_names(args.event),
    )


def run_logs(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`edged logs`: show the matching lines until the source ends (or forever, following)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    filters = filters_from(args)
    lines = _source(args, err)
    flush = args.follow or args.file == "-"  # show each line as it comes
    colour = out.isatty() and not os.environ.get("NO_COLOR")
    try:
        for line in lines:
            entry = parse_line(line)
            if not filters.matches(entry):
                continue
            if entry is None:
                (err if args.json else out).write(line + "\n")  # stdout stays JSON for jq
            else:
                out.write(line + "\n" if args.json else render(entry, colour=colour) + "\n")
            if flush:
                out.flush()
        out.flush()
    except BrokenPipeError:  # the reader went away, as `edged logs | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    finally:
        lines.close()  # stops journalctl, closes the file
    return 0


def _source(args: argparse.Namespace, err: TextIO) -> Generator[str, None, None]:
    follow: bool = args.follow
    if args.file == "-":  # a pipe ends when its writer does: no following, all lines by default
        return stream_lines(sys.stdin.buffer, getattr(args, "lines", None))
    history: int | None = getattr(args, "lines", FOLLOW_HISTORY if follow else None)
    if args.file is None:
        return journal_lines(args.unit, history, follow)
    if not follow:
        return _read_file(Path(args.file), history)

    def notice(text: str) -> None:
        print(f"edged: {text}", file=err, flush=True)

    return FileFollower(Path(args.file), notice=notice).lines(history)


def _read_file(path: Path, history: int | None) -> Generator[str, None, None]:
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise EdgedError(f"cannot read {path}: {exc.strerror or exc}") from None
    with file:
        yield from stream_lines(file, history)

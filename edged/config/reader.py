"""Reading YAML values with their key paths: the _Reader, sizes, and the checks shared by sections.

A _Reader records every problem as ``key.path: reason`` and carries on with a default, so one
pass over the document finds every mistake.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from edged.errors import ConfigError
from edged.sizes import SIZE_EXAMPLES, format_size, parse_size
from edged.topics import topic_name_error

_T = TypeVar("_T")
_L = TypeVar("_L", bound=str)
_Check = Callable[[str], str | None]
_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _brief(text: str, limit: int = 40) -> str:
    """`text` cut to `limit` characters: errors quote what was written, which may be huge."""
    return text if len(text) <= limit else text[: limit - 4] + "..."


def _quote(value: object, limit: int = 40) -> str:
    """repr(value), cut to `limit`; a huge integer by its size (str() refuses 4300+ digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    return _brief(repr(value), limit)


def _describe(value: object, *, secret: bool = False) -> str:
    if isinstance(value, list | Mapping) or value is None:
        return "a list" if isinstance(value, list) else "null" if value is None else "a mapping"
    kind = _KINDS.get(type(value), type(value).__name__)
    if secret:
        return kind
    return f"{kind} {str(value).lower() if isinstance(value, bool) else _quote(value)}"


def _finite(value: int | float) -> float | None:
    """`value` as a float; None if it is NaN, infinite or an integer past what a float holds."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _range(lo: str, hi: str | None, *, above: bool = False) -> str:
    if hi is not None:
        return f"must be between {lo} and {hi}"
    return f"must be greater than {lo}" if above else f"must be at least {lo}"


class _Reader:
    """A path-aware view of one YAML node that records problems instead of raising them."""

    def __init__(self, value: object, where: str, errors: list[str], base_dir: Path) -> None:
        self.value, self.where, self.errors, self.base_dir = value, where, errors, base_dir
        self._data: Mapping[object, object] = value if isinstance(value, Mapping) else {}
        self._seen: set[object] = set()

    def at(self, key: str | None) -> str:
        if key is None:
            return self.where or "<root>"
        key = _brief(key, 64)
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str | None, reason: str) -> None:
        self.errors.append(f"{self.at(key)}: {reason}")

    def sub(self, value: object, where: str) -> _Reader:
        return _Reader(value, where, self.errors, self.base_dir)

    def mapping(self) -> _Reader:
        if not isinstance(self.value, Mapping):
            self.fail(None, f"expected a mapping, got {_describe(self.value)}")
        return self

    def shorthand(self, key: str) -> _Reader:
        """A bare string item stands for a mapping holding only `key`."""
        if isinstance(self.value, str):
            return self.sub({key: self.value}, self.where)
        return self.mapping()

    def has(self, key: str) -> bool:
        self._seen.add(key)
        return self._data.get(key) is not None

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        expected: str,
        *,
        required: bool = False,
        secret: bool = False,
    ) -> object:
        """The value if given and of the right kind, else None after recording why."""
        if not self.has(key):
            # Keys of something that is not a mapping at all would only repeat that error.
            if required and isinstance(self.value, Mapping):
                missing = "required, got null" if key in self._data else "required key is missing"
                self.fail(key, missing)
            return None
        value = self._data[key]
        # YAML's true/false are Python ints too, but never a port number or a delay.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.fail(key, f"expected {expected}, got {_describe(value, secret=secret)}")
        elif isinstance(value, str) and not _is_utf8(value):
            self.fail(key, "is not valid UTF-8 (it holds a lone surrogate)")
        else:
            return value
        return None

    def text(
        self,
        key: str,
        default: _T,
        *,
        required: bool = False,
        check: _Check | None = None,
        secret: bool = False,
    ) -> str | _T:
        value = self.get(key, str, "a string", required=required, secret=secret)
        if not isinstance(value, str):
            return default
        if check is not None and (reason := check(value)) is not None:
            self.fail(key, reason)
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.get(key, int, "an integer")
        if isinstance(value, int) and not lo <= value <= hi:
            self.fail(key, f"must be between {lo} and {hi}, got {_quote(value)}")
        return value if isinstance(value, int) else default

    def number(self, key: str, default: _T) -> float | _T:
        """Seconds: every number in the schema must be finite and above zero."""
        value = self.get(key, (int, float), "a number")
        if not isinstance(value, int | float):
            return default
        try:
            number = float(value)
        except OverflowError:  # an integer past what a float holds
            self.fail(key, f"must be greater than 0, got {_quote(value)}")
            return default
        if not (math.isfinite(number) and number > 0):
            self.fail(key, f"must be greater than 0, got {_quote(value)}")
        return number

    def whole(self, key: str, lo: int, hi: int | None = None) -> int | None:
        """An integer within [lo, hi]; None if absent or unusable (after recording why)."""
        value = self.get(key, int, "an integer")
        if not isinstance(value, int):
            return None
        if value < lo or (hi is not None and value > hi):
            bounds = _range(str(lo), None if hi is None else str(hi))
            self.fail(key, f"{bounds}, got {_quote(value)}")
            return None
        return value

    def real(
        self, key: str, lo: float, hi: float | None = None, *, above: bool = False
    ) -> float | None:
        """A finite number within [lo, hi] (above lo if `above`); None if absent or unusable."""
        value = self.get(key, (int, float), "a number")
        if not isinstance(value, int | float):
            return None
        number = _finite(value)
        low_ok = number is not None and (number > lo if above else number >= lo)
        if number is None or not low_ok or (hi is not None and number > hi):
            bounds = _range(f"{lo:g}", None if hi is None else f"{hi:g}", above=above)
            self.fail(key, f"{bounds}, got {_quote(value)}")
            return None
        return number

    def size(self, key: str, lo: int, hi: int | None = None) -> int | None:
        """Bytes within [lo, hi], given as an int or a string with a unit; None if unusable."""
        value = self.get(key, (int, str), SIZE_EXAMPLES)
        if not isinstance(value, int | str):
            return None
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return None
        if size < lo or (hi is not None and size > hi):
            bounds = _range(format_size(lo), None if hi is None else format_size(hi))
            shown = format_size(size) if size.bit_length() <= 64 else _quote(size)
            self.fail(key, f"{bounds}, got {shown}")
            return None
        return size

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, bool, "true or false")
        return value if isinstance(value, bool) else default

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(key, default).lower()
        if value not in options:
            self.fail(key, f"must be one of {', '.join(options)}; got {_quote(value)}")
        return value

    def literal(self, key: str, options: tuple[_L, ...], default: _L) -> _L:
        """Like choice, typed as one of `options`; the default if the value is not one."""
        value = self.choice(key, options, default)
        return next((option for option in options if option == value), default)

    def path(self, key: str, *, required: bool = False, must_exist: bool = False) -> Path | None:
        """A path taken relative to the config file's directory; None if absent or unusable."""
        value = self.text(key, None, required=required, check=_nonempty_error)
        if value is None or _nonempty_error(value) is not None:
            return None
        path = self.base_dir / value  # an absolute value replaces base_dir
        if must_exist and (reason := _file_error(path)) is not None:
            self.fail(key, reason)
            return None
        return path

    def child(self, key: str, *, required: bool = False) -> _Reader:
        return self.sub(self.get(key, Mapping, "a mapping", required=required), self.at(key))

    def items(self, key: str, what: str) -> list[_Reader]:
        value = self.get(key, list, "a list", required=True)
        if value == []:
            self.fail(key, f"needs at least one {what}")
        items = value if isinstance(value, list) else []
        return [self.sub(item, f"{self.at(key)}[{i}]") for i, item in enumerate(items)]

    def entries_list(self) -> list[_Reader]:
        """The items of a list value (none when the value is absent or was refused)."""
        items = self.value if isinstance(self.value, list) else []
        return [self.sub(item, f"{self.where}[{i}]") for i, item in enumerate(items)]

    def entries(self) -> list[tuple[str, object]]:
        if not self._data:
            return []
        self._seen.update(k for k in self._data if isinstance(k, str))
        return [(k, v) for k, v in self._data.items() if isinstance(k, str)]

    def done(self, result: _T) -> _T:
        """Report every key no getter asked for, then hand back `result`."""
        for key in self._data:
            if not isinstance(key, str):
                self.fail(None, f"key {_quote(key)} is not a string")
            elif key not in self._seen:
                self.fail(key, f"unknown key{self._hint(key)}")
        return result

    def _hint(self, key: str) -> str:
        """The known key closest to `key`, else all of them; none for an error never shown."""
        if len(self.errors) >= ConfigError.SHOWN:
            return ""  # ~0.1 ms each: 100,000 unknown keys took 10 s
        known = sorted(k for k in self._seen if isinstance(k, str))
        # imported here: it costs ~110 KiB of RSS and only an unknown key needs it
        import difflib

        close = difflib.get_close_matches(key, known, n=1)
        return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _pattern(regex: str, reason: str) -> _Check:
    compiled = re.compile(regex)
    return lambda s: None if compiled.fullmatch(s) else reason


_name_error = _pattern(r"[A-Za-z0-9_-]+", "may only use letters, digits, '_' and '-'")
_node_id_error = _pattern(r"[A-Za-z0-9_-]{1,64}", "must be 1-64 letters, digits, '_' or '-'")


def _is_utf8(s: str) -> bool:
    # A YAML escape such as "\ud800" yields a string that cannot be encoded for the wire.
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _nonempty_error(s: str) -> str | None:
    return "must not be empty" if not s else "must not contain NUL" if "\0" in s else None


def _file_error(path: Path) -> str | None:
    shown = _brief(str(path), 200)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"no such file: {shown}"
    except OSError as exc:
        return f"cannot access {shown}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: {shown}"
    return None if os.access(path, os.R_OK) else f"not readable: {shown}"


def _publish_error(s: str) -> str | None:
    # Brokers refuse publishes to '$' topics: those belong to the broker itself.
    reserved = "must not start with '$' (reserved for the broker)" if s[:1] == "$" else None
    return topic_name_error(s) or reserved


def _prefix_error(s: str) -> str | None:
    slash = "must not start or end with '/'" if s[:1] == "/" or s[-1:] == "/" else None
    return _publish_error(s) or slash


def _client_id_error(s: str) -> str | None:
    return None if 0 < len(s.encode()) <= 65535 else "must be 1 to 65535 bytes of UTF-8"


_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def _template_check(samples: Mapping[str, str]) -> _Check:
    """A check that a topic template uses only these placeholders and gives a valid topic.

    Each placeholder is filled in with its sample: the values it stands for (node_id, a pipeline
    name, the topic prefix, an emitted topic) are checked on their own and cannot make a valid
    topic invalid, so any stand-in of the same shape will do.
    """

    def check(template: str) -> str | None:
        for name in _PLACEHOLDER_RE.findall(template):
            if name not in samples:
                known = ", ".join(f"{{{p}}}" for p in sorted(samples))
                return f"unknown placeholder {{{name}}}; known: {known}"
        rendered = _PLACEHOLDER_RE.sub(lambda m: samples[m[1]], template)
        reason = _publish_error(rendered)
        return (
            None if reason is None else f"gives an invalid topic {_quote(rendered, 80)}: {reason}"
        )

    return check

"""Byte sizes as people write and read them: "16 MiB" in a config, "1.5 MiB" in a report."""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

SIZE_EXAMPLES = 'a size such as 16777216, "512 KiB" or "16 MiB"'
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_UNITS = {"b": ("B", 1), "kib": ("KiB", KiB), "mib": ("MiB", MiB), "gib": ("GiB", GiB)}
# Decimal (1000) or binary (1024)? Refused rather than guessed.
_AMBIGUOUS = {"k": "KiB", "kb": "KiB", "m": "MiB", "mb": "MiB", "g": "GiB", "gb": "GiB"}
# Digits of the number, decimals included: 4 GiB has 10; past 4300 Python will not read one.
_MAX_DIGITS = 30


def _quoted(text: str) -> str:
    """repr(text), cut to 40 characters: an error quotes what was written, which may be huge."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:36] + "..."


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as "512 KiB", "16MiB" or "1.5 GiB".

    Units are B, KiB, MiB and GiB (1024-based). Raises ValueError with a message for the user.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = "a boolean" if isinstance(value, bool) else type(value).__name__
        raise ValueError(f"expected {SIZE_EXAMPLES}, got {kind}")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.fullmatch(value)
    if match and len(match[1]) > _MAX_DIGITS:
        match = None
    unit = match[2].lower() if match else ""
    if match and unit in _AMBIGUOUS:
        raise ValueError(
            f"unit {match[2]!r} is ambiguous; write '{match[1]} {_AMBIGUOUS[unit]}' "
            "(KiB, MiB and GiB are 1024-based)"
        )
    if match is None or unit not in (*_UNITS, ""):
        raise ValueError(f"expected {SIZE_EXAMPLES}, got {_quoted(value)}")
    # Plain ints, exact ("1.5" is 15 / 10): fractions (+ decimal) would cost ~390 KiB of RSS.
    whole, _, decimals = match[1].partition(".")
    scale: int = 10 ** len(decimals)
    size = (int(whole) * scale + int(decimals or "0")) * (_UNITS[unit][1] if unit else 1)
    if size % scale:
        raise ValueError(f"{_quoted(value)} is {size / scale:g} bytes, not a whole number of bytes")
    return size // scale


def format_size(size: int) -> str:
    """A byte count in the largest unit that divides it exactly: "512 KiB", "1000 B"."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def format_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"

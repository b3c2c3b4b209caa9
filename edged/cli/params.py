"""`--param KEY=VALUE` as the commands take it.

`split_params` keeps each value as the text given: the `filter` tools pass that text to the
filter byte for byte (`3e1` stays `3e1`). `parse_params` types the common cases the way a
config's YAML does, for `module push`, whose params stand in for a config's: "30" -> 30,
"0.5" -> 0.5, "true" -> True; anything else stays text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from edged.errors import EdgedError

if TYPE_CHECKING:  # edged.config brings the config loader and PyYAML, ~65 ms of start-up
    from edged.config.model import ParamValue

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def param_value(text: str) -> ParamValue:
    """One value typed: "30" -> 30, "0.5" -> 0.5, "true" -> True, else the text."""
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text) and math.isfinite(value := float(text)):
        return value
    return text


def split_params(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs with each value kept as the text given; a later KEY replaces one."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgedError(f"--param {pair!r}: expected KEY=VALUE")
        if "\0" in pair:  # the filter ABI hands params over NUL-separated
            raise EdgedError(f"--param {key!r}: cannot contain NUL")
        params[key] = value
    return params


def parse_params(pairs: Iterable[str]) -> dict[str, ParamValue]:
    """`KEY=VALUE` pairs as a params mapping, each value typed by `param_value`."""
    return {key: param_value(value) for key, value in split_params(pairs).items()}

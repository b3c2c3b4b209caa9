"""`--param KEY=VALUE` as the commands take it: `module push`, and the `filter` tools.

A value is typed as YAML would type it in a config's `params`, so a filter sees the same value
from the command line as from a node's config: "30" -> 30, "0.5" -> 0.5, "true" -> True, and
anything else stays text.
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
    """One value typed as YAML would: "30" -> 30, "0.5" -> 0.5, "true" -> True, else the text."""
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text) and math.isfinite(value := float(text)):
        return value
    return text


def parse_params(pairs: Iterable[str]) -> dict[str, ParamValue]:
    """`KEY=VALUE` pairs as a params mapping; a later KEY replaces an earlier one."""
    params: dict[str, ParamValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgedError(f"--param {pair!r}: expected KEY=VALUE")
        if "\0" in pair:
            raise EdgedError(f"--param {key!r}: cannot contain NUL")
        params[key] = param_value(value)
    return params

"""Reading the config file: a missing file, YAML syntax errors with line and column, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edged.config import (
    ConfigError,
    load_config,
)
from edged.config.document import parse_yaml
from tests.unit.config.samples import FULL, SECRET, write


def test_yaml_error_near_password_does_not_quote_it(confdir: Path) -> None:
    """A YAML syntax error on the password's line does not echo that line."""
    text = FULL.replace(f"password: {SECRET}", f"password: {SECRET}: oops")
    with pytest.raises(ConfigError) as caught:
        load_config(write(confdir, text))
    assert SECRET not in str(caught.value)
    assert caught.value.errors[0].startswith("line 11, column ")


def test_missing_config_file_is_one_clean_error(tmp_path: Path) -> None:
    """A config file that does not exist gives a single error naming the file."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ["<file>: cannot read: no such file or directory"]
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}: 1 error\n")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_yaml_syntax_error_gives_line_and_column(confdir: Path) -> None:
    """Broken YAML is one error with the line and column, and no traceback text."""
    path = write(confdir, "node_id: gw-1\nbroker:\n  host: [a, b\nmodules: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (error,) = caught.value.errors
    assert error.startswith("line 4, column 8: invalid YAML: ")
    assert "Traceback" not in str(caught.value)
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(("text", "got"), [("", "an empty document"), ("- a\n- b\n", "a list")])
def test_top_level_must_be_a_mapping(confdir: Path, text: str, got: str) -> None:
    """An empty file or a top level that is not a mapping is one error at <root>."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(confdir, text))
    assert caught.value.errors == [f"<root>: expected a mapping, got {got}"]


BROKEN = [
    "node_id: gw-1\nbroker:\n  host: [a, b\nmodules: {}\n",
    f"password: {SECRET}: oops\n",
    "a:\n  b: 1\n c: 2\n",
    "a:\n\tb: 1\n",
    'a: "\\q"\n',
    "a: \x07\n",
    "a: b\x00\n",
    "a: 1\n---\nb: 2\n",
    'a: "abc\n',
    "a: *x\n",
    "a: &x 1\nb: &x 2\n",
    "[a]: 1\n",
    "a: !foo x\n",
    "{a: 1\n",
    "%YAML 2.0\n---\na: 1\n",
    "a: 2024-13-45\n",
    "[" * 1000 + "]" * 1000,
    "a: &a [*a]\n",
    "a: 9" + "9" * 2000 + "\n",
]


def _outcome(data: bytes, *, fast: bool) -> tuple[object, ...]:
    try:
        return ("read", parse_yaml(data, fast=fast))
    except yaml.MarkedYAMLError as exc:
        marks = [(m.line, m.column) if m else None for m in (exc.problem_mark, exc.context_mark)]
        return (type(exc).__name__, exc.problem, exc.context, *marks)
    except yaml.YAMLError as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")
@pytest.mark.parametrize("text", [*BROKEN, b"a: \xff\xfe\n", "a: [1, {b: c}]\n"])
def test_both_parsers_give_the_same_errors(text: str | bytes) -> None:
    """The fast C parser, where there is one, reports what the pure-Python one always did."""
    data = text if isinstance(text, bytes) else text.encode()
    assert _outcome(data, fast=True) == _outcome(data, fast=False)


@pytest.mark.parametrize("text", BROKEN)
def test_broken_yaml_is_one_error_with_its_place(confdir: Path, text: str) -> None:
    """Every broken document is one error at a line and column (or the file), no traceback."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(confdir, text))
    (error,) = caught.value.errors
    assert error.startswith(("line ", "<file>: ")), error
    assert SECRET not in error

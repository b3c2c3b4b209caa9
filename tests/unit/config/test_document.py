"""Reading the config file: a missing file, YAML syntax errors with line and column, no secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config import (
    ConfigError,
    load_config,
)
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

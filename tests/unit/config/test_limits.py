"""Hostile configs: huge, deeply nested, alias bombs, giant numbers, thousands of mistakes.

Each ends in one ConfigError naming the place and the limit, quickly: never a traceback, an
"internal error", a hang or megabytes of output.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edged.config import ConfigError, load_config, parse_config
from edged.config.document import MAX_BYTES, MAX_DEPTH, MAX_INT_CHARS, MAX_VALUES
from tests.unit.config.samples import errors_of, minimal, write


def load_errors(directory: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(directory, text))
    return caught.value.errors


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("node_id: x\nbroker: " + "[" * 5000 + "]" * 5000 + "\n", "line 2, column 72"),
        ("node_id: x\nbroker: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "line 2, column 261"),
        ("".join(" " * i + "a:\n" for i in range(200)), "line 65, column 65"),
    ],
    ids=["lists", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_one_error_at_its_place(tmp_path: Path, text: str, where: str) -> None:
    """Thousands of nested lists or mappings are refused where level 65 starts, not a crash."""
    assert load_errors(tmp_path, text) == [
        f"{where}: nested deeper than {MAX_DEPTH} levels; a config needs far fewer"
    ]


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    """64 levels are still read: the error that follows is about the config, not its depth."""
    text = "node_id: x\nbroker: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert "broker: expected a mapping, got a list" in load_errors(tmp_path, text)


def test_nesting_through_an_alias_counts(tmp_path: Path) -> None:
    """An alias to a deep list, used inside another deep list, is as deep as both together."""
    deep = "[" * 40 + "1" + "]" * 40
    text = f"node_id: x\na: &a {deep}\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    assert load_errors(tmp_path, text) == [
        "line 3, column 34: nested deeper than 64 levels through alias *a; a config needs far fewer"
    ]


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    """Aliases repeating a list a billion times are refused where they pass the value limit."""
    text = "node_id: x\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 9):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]\n"
    started = time.perf_counter()
    (error,) = load_errors(tmp_path, text)
    assert time.perf_counter() - started < 1
    assert error.startswith("line 6, column 45: ")  # a4 would hold 111,111
    assert error.endswith(
        f"more than {MAX_VALUES:,} keys, values and list items (an alias counts as everything it "
        "repeats); a config needs far fewer"
    )


def test_one_list_repeated_by_many_pipelines_is_refused(tmp_path: Path) -> None:
    """A long topic list shared by thousands of pipelines through an alias is refused quickly.

    Checked entry by entry it would have taken over ten minutes.
    """
    topics = ", ".join(f"t/{i}" for i in range(20_000))
    pipelines = "".join(
        f"  - {{name: p{i}, subscribe: *topics, filters: [m], outputs: [{{topic: o}}]}}\n"
        for i in range(5000)
    )
    text = f"node_id: gw\nbroker: {{}}\ntopics: &topics [{topics}]\npipelines:\n{pipelines}"
    started = time.perf_counter()
    (error,) = load_errors(tmp_path, text)
    assert time.perf_counter() - started < 1
    assert error.startswith("line 8, column ") and "keys, values and list items" in error


def test_an_alias_inside_its_own_node_is_refused(tmp_path: Path) -> None:
    """A list that holds itself is one error at the alias."""
    assert load_errors(tmp_path, "node_id: x\na: &a [1, *a]\n") == [
        "line 2, column 11: alias *a is used inside the node it names"
    ]


def test_ordinary_aliases_still_work(confdir: Path) -> None:
    """An anchor shared by a few places, and a merge key, give the values they stand for."""
    text = """\
node_id: gw
broker: {}
modules:
  threshold: {file: filters/threshold.wasm, params: &common {limit: 3, unit: C}}
  passthrough: {file: filters/passthrough.wasm, params: {<<: *common, limit: 4}}
pipelines:
  - {name: a, subscribe: &topics [s/1, s/2], filters: [threshold], outputs: [{topic: o}]}
  - {name: b, subscribe: *topics, filters: [passthrough], outputs: [{topic: o}]}
"""
    config = load_config(write(confdir, text))
    assert config.modules["passthrough"].params == {"limit": 4, "unit": "C"}
    assert config.pipelines[0].subscribe == config.pipelines[1].subscribe


@pytest.mark.parametrize(
    "number", ["9" * 100_000, "0x" + "f" * 5000, "1" + ":59" * 5000], ids=["decimal", "hex", "b60"]
)
def test_a_huge_integer_is_refused_without_quoting_it(tmp_path: Path, number: str) -> None:
    """An integer of thousands of digits is one error at its place that does not repeat it."""
    (error,) = load_errors(tmp_path, f"node_id: x\nbroker: {{port: {number}}}\n")
    assert error == (
        f"line 2, column 16: an integer of {len(number):,} characters; at most {MAX_INT_CHARS}"
    )


@pytest.mark.parametrize(("value", "kind"), [("2024-13-45", "a date"), ("!!int abc", "an integer")])
def test_an_impossible_typed_value_is_a_yaml_error(tmp_path: Path, value: str, kind: str) -> None:
    """A date with month 13 or an explicit !!int that is not one: an error at its place."""
    assert load_errors(tmp_path, f"node_id: x\nsince: {value}\n") == [
        f"line 2, column 8: invalid YAML: not {kind}"
    ]


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("broker", "port"),
        ("broker", "reconnect_min_delay"),
        ("budgets", "deadline_ms"),
        ("budgets", "memory"),
        ("budgets", "fuel"),
        ("violations", "cooldown"),
        ("engine", "wasm_stack"),
        ("broker", "mqtt_version"),
    ],
)
@pytest.mark.parametrize("sign", [1, -1])
def test_numbers_past_any_range_are_errors(
    confdir: Path, section: str, key: str, sign: int
) -> None:
    """An integer of 5000 digits given to parse_config is an error at its key, cut short."""
    data = minimal()
    data[section] = {key: sign * 10**5000}
    (error,) = errors_of(data, confdir)
    assert error.startswith(f"{section}.{key}: ")
    assert len(error) < 200


def test_a_huge_non_string_key_is_named_briefly(confdir: Path) -> None:
    """A key that is a giant number is reported as not a string, without its digits."""
    data = minimal()
    data[10**5000] = 1  # type: ignore[index]
    assert errors_of(data, confdir) == [
        "<root>: key an integer of about 5001 digits is not a string"
    ]


def test_long_values_are_cut_in_errors(confdir: Path) -> None:
    """An error quotes at most the start of a long wrong value, never all of it."""
    data = minimal()
    data["log"] = {"level": "x" * 100_000}
    data["pipelines"][0]["filters"] = ["y" * 100_000]
    data["budgets"] = {"memory": "1." + "5" * 5000 + " KiB"}
    errors = errors_of(data, confdir)
    assert len(errors) == 3
    assert all(len(error) < 200 for error in errors)
    assert "unknown module 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...;" in errors[1]


def test_unknown_module_lists_at_most_twenty_known_ones(confdir: Path) -> None:
    """With thousands of modules, a wrong module name lists twenty of them and the count."""
    data = minimal()
    data["modules"] = {f"m{i:04}": {"file": "filters/threshold.wasm"} for i in range(3000)}
    (error,) = errors_of(data, confdir)
    known = ", ".join(f"m{i:04}" for i in range(20))
    assert error == (
        f"pipelines[0].filters[0].module: unknown module 'threshold'; known: {known}, ... "
        "(3000 in all)"
    )


def test_thousands_of_errors_show_the_first_fifty_and_a_count(confdir: Path) -> None:
    """110,000 unknown keys print 50 errors and how many more, in well under a second."""
    data = minimal()
    data.update({f"key{i}": 1 for i in range(110_000)})
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=confdir)
    assert time.perf_counter() - started < 1
    lines = str(caught.value).splitlines()
    assert lines[0] == "<config>: 110000 errors"
    assert lines[1].startswith("  - key0: unknown key; known keys: broker, brokers, budgets, ")
    assert len(lines) == 1 + ConfigError.SHOWN + 1
    assert lines[-1] == f"  ... and {110_000 - ConfigError.SHOWN} more"
    assert len(caught.value.errors) == 110_000


@pytest.mark.parametrize(("count", "more"), [(50, None), (51, "  ... and 1 more")])
def test_the_count_line_appears_only_past_fifty(count: int, more: str | None) -> None:
    """Fifty errors are all shown; the fifty-first turns into a count line."""
    lines = str(ConfigError([f"k{i}: bad" for i in range(count)], "c.yaml")).splitlines()
    assert lines[0] == f"c.yaml: {count} errors"
    assert lines[50] == "  - k49: bad"
    assert lines[51:] == ([more] if more else [])


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    """A config file over 1 MiB is one error with its size and the limit, before parsing."""
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: [" + b"1, " * (MAX_BYTES // 3) + b"]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [
        f"<file>: too large: 1.0 MiB ({path.stat().st_size:,} bytes); a config file may hold at "
        "most 1 MiB"
    ]


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    """A file of exactly 1 MiB is parsed (here a comment: an empty document)."""
    path = tmp_path / "edged.yaml"
    path.write_bytes(b"#" * (MAX_BYTES - 1) + b"\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ["<root>: expected a mapping, got an empty document"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_device_is_refused() -> None:
    """`-c /dev/zero` reads one byte past the limit and stops, instead of filling the memory."""
    with pytest.raises(ConfigError) as caught:
        load_config("/dev/zero")
    assert caught.value.errors == [
        "<file>: too large: more than 1 MiB; a config file may hold at most 1 MiB"
    ]

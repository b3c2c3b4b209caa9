"""What every section shares: every error at once with its key path, unknown keys, types,
paths relative to the config file, names and topic templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config import (
    ConfigError,
    load_config,
    parse_config,
)
from tests.unit.config.samples import FULL, errors_of, minimal, write


def test_every_error_is_reported_at_once(confdir: Path) -> None:
    """Four unrelated mistakes give four errors, each with its exact key path."""
    text = FULL.replace("port: 8884", 'port: "18x3"').replace("  host:", "  hots:")
    text = text.replace("      - passthrough", "      - avg").replace("level: debug", "level: loud")
    with pytest.raises(ConfigError) as caught:
        load_config(write(confdir, text))

    assert sorted(caught.value.errors) == sorted(
        [
            "broker.port: expected an integer, got string '18x3'",
            "broker.hots: unknown key; did you mean 'host'?",
            "pipelines[0].filters[1].module: unknown module 'avg'; known: passthrough, threshold",
            "log.level: must be one of debug, info, warning, error; got 'loud'",
        ]
    )
    assert "4 errors" in str(caught.value)


def test_missing_required_keys_are_named(confdir: Path) -> None:
    """An empty mapping lists every required top-level key that is missing."""
    assert errors_of({}, confdir) == [
        "node_id: required key is missing",
        "broker: required key is missing",
        "modules: required key is missing",
        "pipelines: required key is missing",
    ]


def test_unknown_key_suggests_the_closest_known_one(confdir: Path) -> None:
    """A misspelt key is an error that suggests the key that was probably meant."""
    data = minimal()
    data["broker"] = {"hots": "mqtt.local"}
    data["pipeline"] = []
    errors = errors_of(data, confdir)
    assert "broker.hots: unknown key; did you mean 'host'?" in errors
    assert "pipeline: unknown key; did you mean 'pipelines'?" in errors


def test_unknown_key_without_close_match_lists_known_keys(confdir: Path) -> None:
    """A key nothing like any known one is answered with the list of keys allowed there."""
    data = minimal()
    data["log"] = {"zzz": 1}
    assert errors_of(data, confdir) == [
        "log.zzz: unknown key; known keys: backups, file, format, level, max_bytes, "
        "summary_interval"
    ]


def test_wrong_types_name_the_expected_type(confdir: Path) -> None:
    """A value of the wrong type says what was expected and what was found."""
    data = minimal()
    data["node_id"] = 42
    data["broker"] = {"port": True, "keepalive": 30.5, "host": ["a"]}
    data["pipelines"][0]["outputs"][0]["retain"] = "yes"
    data["modules"]["threshold"]["params"] = {"limit": {"max": 3}}
    assert errors_of(data, confdir) == [
        "node_id: expected a string, got integer 42",
        "broker.host: expected a string, got a list",
        "broker.port: expected an integer, got boolean true",
        "broker.keepalive: expected an integer, got number 30.5",
        "modules.threshold.params.limit: expected a string, number or boolean, got a mapping",
        "pipelines[0].outputs[0].retain: expected true or false, got string 'yes'",
    ]


def test_output_template_rejects_unknown_placeholders(confdir: Path) -> None:
    """Only {topic}, {node_id} and {pipeline} may appear in an output topic template."""
    data = minimal()
    data["pipelines"][0]["outputs"] = [{"topic": "out/{host}/{topic}"}]
    assert errors_of(data, confdir) == [
        "pipelines[0].outputs[0].topic: unknown placeholder {host}; "
        "known: {node_id}, {pipeline}, {topic}"
    ]


@pytest.mark.parametrize("template", ["out/+/{topic}", "out/#", "", "$SYS/{topic}"])
def test_output_template_must_give_a_valid_topic(confdir: Path, template: str) -> None:
    """An output template that cannot give a publishable topic is an error."""
    data = minimal()
    data["pipelines"][0]["outputs"] = [{"topic": template}]
    (error,) = errors_of(data, confdir)
    assert error.startswith("pipelines[0].outputs[0].topic: ")


def test_relative_paths_resolve_against_the_config_directory(
    confdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Module, TLS and state paths are relative to the config file, not the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(write(confdir, FULL))

    assert config.modules["threshold"].file == confdir / "filters" / "threshold.wasm"
    assert config.broker.tls is not None
    assert config.broker.tls.ca_file == confdir / "certs" / "ca.pem"
    assert config.state_dir == confdir / "state"
    assert config.source == confdir / "edged.yaml"


def test_absolute_paths_are_kept(confdir: Path) -> None:
    """An absolute module path is used as it is."""
    data = minimal()
    for name in ("threshold", "passthrough"):
        data["modules"][name]["file"] = str(confdir / "filters" / f"{name}.wasm")
    config = parse_config(data, base_dir=Path("/nonexistent"))
    assert config.modules["passthrough"].file == confdir / "filters" / "passthrough.wasm"


def test_module_file_must_exist_and_be_a_file(confdir: Path) -> None:
    """A module file that is missing or is a directory is an error naming the full path."""
    data = minimal()
    data["modules"]["threshold"]["file"] = "filters/missing.wasm"
    data["modules"]["passthrough"]["file"] = "filters"
    assert errors_of(data, confdir) == [
        f"modules.threshold.file: no such file: {confdir / 'filters' / 'missing.wasm'}",
        f"modules.passthrough.file: not a regular file: {confdir / 'filters'}",
    ]


@pytest.mark.parametrize("node_id", ["", "gw 1", "gw/1", "x" * 65, "gw+1"])
def test_node_id_must_be_a_simple_name(confdir: Path, node_id: str) -> None:
    """node_id is 1-64 letters, digits, '_' or '-'."""
    data = minimal()
    data["node_id"] = node_id
    (error,) = errors_of(data, confdir)
    assert error.startswith("node_id: ")


@pytest.mark.parametrize("prefix", ["/edged", "edged/", "a/+", "", "$SYS"])
def test_topic_prefix_must_be_a_plain_topic(confdir: Path, prefix: str) -> None:
    """topic_prefix is a publishable topic without wildcards or surrounding '/'."""
    data = minimal()
    data["topic_prefix"] = prefix
    (error,) = errors_of(data, confdir)
    assert error.startswith("topic_prefix: ")


def test_unknown_module_budget_key_suggests_the_known_one(confdir: Path) -> None:
    """A misspelt key in a module's budgets is an error at its full path with a suggestion."""
    data = minimal()
    data["modules"]["threshold"]["budgets"] = {"memroy": "4 MiB", "zzz": 1}
    data["budgets"] = {"dedline_ms": 5}
    assert errors_of(data, confdir) == [
        "budgets.dedline_ms: unknown key; did you mean 'deadline_ms'?",
        "modules.threshold.budgets.memroy: unknown key; did you mean 'memory'?",
        "modules.threshold.budgets.zzz: unknown key; known keys: deadline_ms, fuel, max_emit_bytes,"
        " max_emits, max_state, memory, table_elements",
    ]


def test_unknown_keys_in_the_other_sections_are_errors(confdir: Path) -> None:
    """Misspelt keys in engine, daemon, violations and metrics are caught with a suggestion."""
    data = minimal()
    data["engine"] = {"wasm_stak": "1 MiB"}
    data["daemon"] = {"queue": 5}
    data["violations"] = {"cooldwn": 5}
    data["metrics"] = {"intervall": 5}
    assert errors_of(data, confdir) == [
        "engine.wasm_stak: unknown key; did you mean 'wasm_stack'?",
        "daemon.queue: unknown key; did you mean 'queue_size'?",
        "violations.cooldwn: unknown key; did you mean 'cooldown'?",
        "metrics.intervall: unknown key; did you mean 'interval'?",
    ]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{prefix}/{topic}", "unknown placeholder {topic}; known: {node_id}, {prefix}"),
        ("{pipeline}/dead", "unknown placeholder {pipeline}; known: {node_id}, {prefix}"),
        ("{prefix}/+/dead", "gives an invalid topic 'edged/+/dead': "),
        ("dead/#", "gives an invalid topic 'dead/#': "),
        ("$SYS/{node_id}", "gives an invalid topic '$SYS/node': must not start with '$'"),
        ("", "gives an invalid topic '': "),
    ],
)
def test_dead_letter_topic_is_checked(confdir: Path, template: str, error: str) -> None:
    """dead_letter_topic allows only {prefix} and {node_id} and must give a publishable topic."""
    data = minimal()
    data["violations"] = {"dead_letter_topic": template}
    (got,) = errors_of(data, confdir)
    assert got.startswith(f"violations.dead_letter_topic: {error}")

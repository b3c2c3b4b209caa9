"""The config file: what a valid one turns into, and how every kind of mistake is reported."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

import edged.config
from edged.config import (
    DEFAULT_BUDGETS,
    BrokerConfig,
    Budgets,
    Config,
    ConfigError,
    DaemonConfig,
    EngineConfig,
    FilterConfig,
    LogConfig,
    MetricsConfig,
    ModuleConfig,
    OutputRule,
    PipelineConfig,
    Subscription,
    TLSConfig,
    ViolationsConfig,
    format_size,
    load_config,
    parse_config,
    parse_size,
)
from edged.topics import topic_filter_error, topic_matches, topic_name_error

SECRET = "hunter2-Zq9"

FULL = """\
node_id: gw-1
topic_prefix: site/edged
state_dir: state
broker:
  host: mqtt.example.net
  port: 8884
  client_id: gateway-one
  keepalive: 45
  mqtt_version: "3.1.1"
  username: edge
  password: hunter2-Zq9
  tls:
    ca_file: certs/ca.pem
    cert_file: certs/client.pem
    key_file: certs/client.key
  reconnect_min_delay: 0.5
  reconnect_max_delay: 30
modules:
  threshold:
    file: filters/threshold.wasm
    params: {limit: 30, field: temp, strict: true, scale: 1.5}
  passthrough:
    file: filters/passthrough.wasm
    budgets: {memory: 4 MiB, deadline_ms: 20}
pipelines:
  - name: temperature
    subscribe:
      - topic: sensors/+/temperature
        qos: 1
      - sensors/+/temp
    filters:
      - module: threshold
        params: {limit: 28}
        tick_interval: 10
      - passthrough
    outputs:
      - match: alerts/#
        topic: "out/{node_id}/{pipeline}/{topic}"
        qos: 2
        retain: true
      - topic: "out/{topic}"
    on_quarantine: skip
budgets:
  memory: 8 MiB
  fuel: 5000000
  deadline_ms: 50
  max_emits: 16
  max_emit_bytes: 16 KiB
  table_elements: 500
engine:
  wasm_stack: 1 MiB
  epoch_tick_ms: 5
daemon:
  memory_budget: 1 GiB
  queue_size: 500
  overload: block
violations:
  dead_letter_topic: "dlq/{node_id}/{prefix}"
  dead_letter_qos: 1
  quarantine_after: 3
  window: 2.5
  cooldown: 0
metrics:
  interval: 0
log:
  level: debug
  format: json
  summary_interval: 15
"""


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """A config directory holding two dummy module files and TLS files (any bytes will do)."""
    directory = tmp_path / "conf"
    (directory / "filters").mkdir(parents=True)
    (directory / "certs").mkdir()
    for name in ("threshold", "passthrough"):
        (directory / "filters" / f"{name}.wasm").write_bytes(b"\0asm\1\0\0\0")
    for name in ("ca.pem", "client.pem", "client.key"):
        (directory / "certs" / name).write_text("dummy\n")
    return directory


def write(directory: Path, text: str, name: str = "edged.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def minimal() -> dict[str, Any]:
    return {
        "node_id": "gw-1",
        "broker": {},
        "modules": {
            "threshold": {"file": "filters/threshold.wasm", "params": {"limit": 30}},
            "passthrough": {"file": "filters/passthrough.wasm"},
        },
        "pipelines": [
            {
                "name": "temperature",
                "subscribe": ["sensors/+/temperature"],
                "filters": ["threshold"],
                "outputs": [{"topic": "out/{topic}"}],
            }
        ],
    }


def errors_of(data: object, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=base_dir)
    return caught.value.errors


def test_full_config_round_trips_into_dataclasses(confdir: Path) -> None:
    """Every key of a complete config lands in the matching frozen dataclass field."""
    path = write(confdir, FULL)
    config = load_config(path)

    assert config.node_id == "gw-1"
    assert config.topic_prefix == "site/edged"
    assert config.state_dir == confdir / "state"
    assert config.source == path
    assert config.client_id == "gateway-one"
    assert config.status_topic == "site/edged/gw-1/status"
    assert config.broker == BrokerConfig(
        host="mqtt.example.net",
        port=8884,
        client_id="gateway-one",
        keepalive=45,
        mqtt_version="3.1.1",
        username="edge",
        password=SECRET,
        tls=TLSConfig(
            ca_file=confdir / "certs/ca.pem",
            cert_file=confdir / "certs/client.pem",
            key_file=confdir / "certs/client.key",
        ),
        reconnect_min_delay=0.5,
        reconnect_max_delay=30.0,
    )
    budgets = Budgets(
        memory=8 * 1024 * 1024,
        fuel=5_000_000,
        deadline_ms=50.0,
        max_emits=16,
        max_emit_bytes=16 * 1024,
        table_elements=500,
    )
    assert config.budgets == budgets
    assert config.modules["threshold"] == ModuleConfig(
        name="threshold",
        file=confdir / "filters/threshold.wasm",
        params={"limit": 30, "field": "temp", "strict": True, "scale": 1.5},
        budgets=budgets,
    )
    assert config.modules["passthrough"].params == {}
    assert config.modules["passthrough"].budgets == dataclasses.replace(
        budgets, memory=4 * 1024 * 1024, deadline_ms=20.0
    )
    assert config.engine == EngineConfig(wasm_stack=1024 * 1024, epoch_tick_ms=5.0)
    assert config.daemon == DaemonConfig(memory_budget=1024**3, queue_size=500, overload="block")
    assert config.violations == ViolationsConfig(
        dead_letter_topic="dlq/{node_id}/{prefix}",
        dead_letter_qos=1,
        quarantine_after=3,
        window=2.5,
        cooldown=0.0,
    )
    assert config.metrics == MetricsConfig(interval=0.0)
    assert config.dead_letter_topic == "dlq/gw-1/site/edged"
    assert config.metrics_topic == "site/edged/gw-1/metrics"
    assert config.pipelines == (
        PipelineConfig(
            name="temperature",
            subscribe=(
                Subscription(topic="sensors/+/temperature", qos=1),
                Subscription(topic="sensors/+/temp", qos=0),
            ),
            filters=(
                FilterConfig(
                    module="threshold",
                    params={"limit": 28, "field": "temp", "strict": True, "scale": 1.5},
                    tick_interval=10.0,
                    own_params={"limit": 28},
                ),
                FilterConfig(module="passthrough", params={}, tick_interval=None),
            ),
            outputs=(
                OutputRule(
                    match="alerts/#", topic="out/{node_id}/{pipeline}/{topic}", qos=2, retain=True
                ),
                OutputRule(match="#", topic="out/{topic}", qos=0, retain=False),
            ),
            on_quarantine="skip",
        ),
    )
    assert config.log == LogConfig(level="debug", format="json", summary_interval=15.0)
    assert isinstance(config.pipelines[0].filters[0].tick_interval, float)


def test_minimal_config_gets_documented_defaults(confdir: Path) -> None:
    """Everything left out takes the default the schema documents."""
    config = parse_config(minimal(), base_dir=confdir)

    assert config.topic_prefix == "edged"
    assert config.state_dir is None
    assert config.source is None
    assert config.broker == BrokerConfig(
        host="localhost",
        port=1883,
        client_id=None,
        keepalive=30,
        mqtt_version="5",
        username=None,
        password=None,
        tls=None,
        reconnect_min_delay=1.0,
        reconnect_max_delay=60.0,
    )
    assert config.client_id == "edged-gw-1"
    assert config.effective_client_id == "edged-gw-1"
    assert config.status_topic == "edged/gw-1/status"
    (pipeline,) = config.pipelines
    assert pipeline.subscribe == (Subscription(topic="sensors/+/temperature", qos=0),)
    assert pipeline.filters == (
        FilterConfig(module="threshold", params={"limit": 30}, tick_interval=None),
    )
    assert pipeline.outputs == (OutputRule(match="#", topic="out/{topic}", qos=0, retain=False),)
    assert config.log == LogConfig(level="info", format="auto", summary_interval=60.0)


@pytest.mark.parametrize("log_text", ["", "log:\n", "log: {}\n"])
def test_log_section_may_be_missing_or_empty(confdir: Path, log_text: str) -> None:
    """A missing, null or empty `log` section means all log defaults."""
    text = FULL.split("log:\n")[0] + log_text
    config = load_config(write(confdir, text))
    assert config.log == LogConfig(level="info", format="auto", summary_interval=60.0)


def test_log_file_is_off_by_default_with_10_mib_and_3_backups(confdir: Path) -> None:
    """Without log.file the daemon logs to stdout only; the rotation defaults are documented."""
    log = parse_config(minimal(), base_dir=confdir).log
    assert (log.file, log.max_bytes, log.backups) == (None, 10 * MIB, 3)


def test_log_file_is_relative_to_the_config_and_takes_a_size(confdir: Path) -> None:
    """log.file is taken relative to the config file; max_bytes is a size like "1 MiB"."""
    data = minimal()
    data["log"] = {"file": "logs/edged.log", "max_bytes": "1 MiB", "backups": 0}
    log = parse_config(data, base_dir=confdir).log
    assert log == LogConfig(
        level="info",
        format="auto",
        summary_interval=60.0,
        file=confdir / "logs" / "edged.log",
        max_bytes=MIB,
        backups=0,
    )


def test_log_file_settings_are_checked(confdir: Path) -> None:
    """A bad log file path, size or backup count is reported with its key path."""
    data = minimal()
    data["log"] = {"file": "", "max_bytes": "10 MB", "backups": -1}
    assert errors_of(data, confdir) == [
        "log.file: must not be empty",
        "log.max_bytes: unit 'MB' is ambiguous; write '10 MiB' (KiB, MiB and GiB are 1024-based)",
        "log.backups: must be between 0 and 1000, got -1",
    ]
    data["log"] = {"file": 7, "max_bytes": 100, "backups": "3"}
    assert errors_of(data, confdir) == [
        "log.file: expected a string, got integer 7",
        "log.max_bytes: must be at least 1 KiB, got 100 B",
        "log.backups: expected an integer, got string '3'",
    ]


def test_config_objects_are_read_only(confdir: Path) -> None:
    """A loaded config cannot be changed by the layers that share it."""
    config = parse_config(minimal(), base_dir=confdir)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.node_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.modules["threshold"].params["limit"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        config.modules["new"] = config.modules["threshold"]  # type: ignore[index]
    with pytest.raises(TypeError):
        Config(node_id="x")  # type: ignore[call-arg]


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


def test_unknown_module_lists_known_modules(confdir: Path) -> None:
    """A filter naming a module that is not defined lists the defined ones, sorted."""
    data = minimal()
    data["pipelines"][0]["filters"] = ["passthrough", {"module": "avg"}]
    assert errors_of(data, confdir) == [
        "pipelines[0].filters[1].module: unknown module 'avg'; known: passthrough, threshold"
    ]


@pytest.mark.parametrize("bad", ["a/#/b", "a+/b", "", "a/b#", "a\0b"])
def test_bad_subscription_filters_are_rejected(confdir: Path, bad: str) -> None:
    """A subscription topic that is not a valid MQTT topic filter is an error at its path."""
    data = minimal()
    data["pipelines"][0]["subscribe"] = ["ok/#", {"topic": bad, "qos": 1}]
    (error,) = errors_of(data, confdir)
    assert error.startswith("pipelines[0].subscribe[1].topic: ")


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


def test_output_match_and_qos_are_checked(confdir: Path) -> None:
    """An output rule's match must be a topic filter and its QoS 0, 1 or 2."""
    data = minimal()
    data["pipelines"][0]["outputs"] = [{"match": "a/#/b", "topic": "x", "qos": 3}]
    errors = errors_of(data, confdir)
    assert [e.split(":")[0] for e in errors] == [
        "pipelines[0].outputs[0].match",
        "pipelines[0].outputs[0].qos",
    ]


def test_password_never_appears_in_errors_or_repr(confdir: Path) -> None:
    """The broker password is in the config object but in no error message and no repr."""
    data = minimal()
    data["broker"] = {"username": "edge", "password": SECRET}
    config = parse_config(data, base_dir=confdir)
    assert config.broker.password == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config)

    data["broker"] = {"username": "edge", "password": SECRET, "port": 0}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=confdir)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)

    data["broker"] = {"username": "edge", "password": 98765432}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=confdir)
    assert caught.value.errors == ["broker.password: expected a string, got integer"]


def test_yaml_error_near_password_does_not_quote_it(confdir: Path) -> None:
    """A YAML syntax error on the password's line does not echo that line."""
    text = FULL.replace(f"password: {SECRET}", f"password: {SECRET}: oops")
    with pytest.raises(ConfigError) as caught:
        load_config(write(confdir, text))
    assert SECRET not in str(caught.value)
    assert caught.value.errors[0].startswith("line 11, column ")


@pytest.mark.parametrize(
    ("content", "password"),
    [("pw\n", "pw"), ("pw", "pw"), ("pw\r\n", "pw"), ("pw\n\n", "pw\n"), ("", "")],
)
def test_password_file_is_read_and_one_newline_stripped(
    confdir: Path, content: str, password: str
) -> None:
    """password_file is read at load, relative to the config file, minus one trailing newline."""
    (confdir / "secrets").mkdir()
    (confdir / "secrets" / "mqtt").write_text(content, newline="")
    data = minimal()
    data["broker"] = {"username": "edge", "password_file": "secrets/mqtt"}
    assert parse_config(data, base_dir=confdir).broker.password == password


def test_password_file_problems_are_errors(confdir: Path) -> None:
    """A missing password file, or one given next to a password, is an error."""
    data = minimal()
    data["broker"] = {"username": "edge", "password_file": "nope"}
    assert errors_of(data, confdir) == [f"broker.password_file: no such file: {confdir / 'nope'}"]

    (confdir / "pw").write_text("x\n")
    data["broker"] = {"username": "edge", "password": "a", "password_file": "pw"}
    assert errors_of(data, confdir) == [
        "broker.password_file: cannot be used together with password"
    ]


def test_password_needs_a_username(confdir: Path) -> None:
    """A password without a username is refused rather than silently not sent."""
    data = minimal()
    data["broker"] = {"password": SECRET}
    assert errors_of(data, confdir) == ["broker.username: required when a password is given"]


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


def test_tls_enables_port_8883_and_needs_cert_and_key_together(confdir: Path) -> None:
    """Giving `tls` switches the default port to 8883; a client cert needs its key."""
    data = minimal()
    data["broker"] = {"tls": {}}
    config = parse_config(data, base_dir=confdir)
    assert config.broker.port == 8883
    assert config.broker.tls == TLSConfig(ca_file=None, cert_file=None, key_file=None)

    data["broker"] = {"tls": {"cert_file": "certs/client.pem"}, "port": 1883}
    assert errors_of(data, confdir) == ["broker.tls.key_file: required when cert_file is given"]


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


@pytest.mark.parametrize("value", [0, -1, "fast", float("inf")])
def test_tick_interval_must_be_positive(confdir: Path, value: object) -> None:
    """tick_interval must be a finite number of seconds above zero."""
    data = minimal()
    data["pipelines"][0]["filters"] = [{"module": "threshold", "tick_interval": value}]
    (error,) = errors_of(data, confdir)
    assert error.startswith("pipelines[0].filters[0].tick_interval: ")


@pytest.mark.parametrize(
    ("given", "version"),
    [("3.1.1", "3.1.1"), ("311", "3.1.1"), (311, "3.1.1"), ("5", "5"), (5, "5")],
)
def test_mqtt_version_spellings(confdir: Path, given: object, version: str) -> None:
    """mqtt_version accepts "3.1.1", "311", 311, "5" and 5."""
    data = minimal()
    data["broker"] = {"mqtt_version": given}
    assert parse_config(data, base_dir=confdir).broker.mqtt_version == version


@pytest.mark.parametrize("given", [3.1, 5.0, "4", True, "v5"])
def test_other_mqtt_versions_are_refused(confdir: Path, given: object) -> None:
    """Any other mqtt_version is an error listing the accepted ones."""
    data = minimal()
    data["broker"] = {"mqtt_version": given}
    (error,) = errors_of(data, confdir)
    assert error.startswith('broker.mqtt_version: expected "3.1.1" or "5", got ')


def test_unquoted_mqtt_version_in_yaml(confdir: Path) -> None:
    """`mqtt_version: 3.1.1` and `mqtt_version: 5` work without quotes in the file."""
    for plain, version in (("3.1.1", "3.1.1"), ("5", "5")):
        text = FULL.replace('mqtt_version: "3.1.1"', f"mqtt_version: {plain}")
        assert load_config(write(confdir, text)).broker.mqtt_version == version


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


def test_broker_ranges_are_checked(confdir: Path) -> None:
    """Port, keepalive and reconnect delays must be within their documented ranges."""
    data = minimal()
    data["broker"] = {
        "port": 70000,
        "keepalive": 2,
        "client_id": "",
        "reconnect_min_delay": 10,
        "reconnect_max_delay": 5,
    }
    assert errors_of(data, confdir) == [
        "broker.port: must be between 1 and 65535, got 70000",
        "broker.client_id: must be 1 to 65535 bytes of UTF-8",
        "broker.keepalive: must be between 5 and 65535, got 2",
        "broker.reconnect_max_delay: must not be below reconnect_min_delay (10.0)",
    ]


def test_pipeline_names_are_unique_and_lists_not_empty(confdir: Path) -> None:
    """Two pipelines may not share a name, and each needs subscriptions, filters and outputs."""
    data = minimal()
    second = copy.deepcopy(data["pipelines"][0])
    second.update(subscribe=[], filters=[], outputs=[])
    data["pipelines"].append(second)
    assert errors_of(data, confdir) == [
        "pipelines[1].subscribe: needs at least one topic filter",
        "pipelines[1].filters: needs at least one filter",
        "pipelines[1].outputs: needs at least one output rule",
        "pipelines[1].name: duplicate pipeline name 'temperature'",
    ]


def test_module_and_pipeline_counts(confdir: Path) -> None:
    """At least one module and one pipeline are required."""
    data = minimal()
    data["modules"] = {}
    data["pipelines"] = []
    errors = errors_of(data, confdir)
    assert errors[0] == "modules: needs at least one module"
    assert "pipelines: needs at least one pipeline" in errors


def test_params_must_be_flat_scalars(confdir: Path) -> None:
    """Module params are strings, numbers or booleans; nested values and NUL are refused."""
    data = minimal()
    data["modules"]["threshold"]["params"] = {"a": [1], "b": None, "c": "x\0y", "": 1, "ok": 1}
    assert errors_of(data, confdir) == [
        "modules.threshold.params.a: expected a string, number or boolean, got a list",
        "modules.threshold.params.b: expected a string, number or boolean, got null",
        "modules.threshold.params.c: must be UTF-8 text without NUL",
        "modules.threshold.params: parameter name '' must be non-empty UTF-8 without NUL",
    ]


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("sensors/+/temperature", "sensors/a/temperature", True),
        ("sensors/+/temperature", "sensors/a/b/temperature", False),
        ("sensors/#", "sensors", True),
        ("sensors/#", "sensors/a/b", True),
        ("sensors/#", "sensorsX/a", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b", "A/b", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "/x", True),
        ("#", "a/b/c", True),
        ("#", "$SYS/broker/load", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker/load", True),
    ],
)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    """topic_matches follows MQTT: '+' is one level, '#' the rest and its parent, '$' is apart."""
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern", ["a/b", "+", "#", "a/+/b", "a/#", "+/+/#", "/"])
def test_topic_filter_error_accepts_valid_filters(pattern: str) -> None:
    """Well-formed topic filters have no error."""
    assert topic_filter_error(pattern) is None


@pytest.mark.parametrize("pattern", ["a/#/b", "a+/b", "", "a/b#", "a\0b", "x" * 65536])
def test_topic_filter_error_explains_bad_filters(pattern: str) -> None:
    """Malformed topic filters get a reason."""
    assert topic_filter_error(pattern)


@pytest.mark.parametrize(
    ("topic", "ok"), [("a/b", True), ("a/+", False), ("a/#", False), ("", False)]
)
def test_topic_name_error(topic: str, ok: bool) -> None:
    """Topic names to publish to may not be empty or contain wildcards."""
    assert (topic_name_error(topic) is None) is ok


# Budgets, engine, daemon, violations, metrics (docs/budgets.md)

MIB = 1024 * 1024


def test_budget_sections_default_to_the_documented_values(confdir: Path) -> None:
    """Without the new sections every key takes the default docs/budgets.md shows."""
    config = parse_config(minimal(), base_dir=confdir)

    assert config.budgets == Budgets(
        memory=16 * MIB,
        fuel=20_000_000,
        deadline_ms=100.0,
        max_emits=64,
        max_emit_bytes=65536,
        table_elements=10000,
    )
    assert config.budgets == DEFAULT_BUDGETS == Budgets()
    assert all(m.budgets == config.budgets for m in config.modules.values())
    assert config.engine == EngineConfig(wasm_stack=512 * 1024, epoch_tick_ms=10.0)
    assert config.daemon == DaemonConfig(
        memory_budget=256 * MIB, queue_size=10000, overload="drop_oldest"
    )
    assert config.violations == ViolationsConfig(
        dead_letter_topic="{prefix}/{node_id}/deadletter",
        dead_letter_qos=0,
        quarantine_after=5,
        window=10.0,
        cooldown=60.0,
    )
    assert config.metrics == MetricsConfig(interval=10.0)
    assert config.pipelines[0].on_quarantine == "drop"
    assert config.dead_letter_topic == "edged/gw-1/deadletter"
    assert config.metrics_topic == "edged/gw-1/metrics"


@pytest.mark.parametrize("section", ["budgets", "engine", "daemon", "violations", "metrics"])
def test_budget_sections_may_be_empty_or_null(confdir: Path, section: str) -> None:
    """An empty or null new section means all of its defaults."""
    for value in (None, {}):
        data = minimal()
        data[section] = value
        assert parse_config(data, base_dir=confdir) == parse_config(minimal(), base_dir=confdir)


@pytest.mark.parametrize("section", ["budgets", "engine", "daemon", "violations", "metrics"])
def test_budget_sections_must_be_mappings(confdir: Path, section: str) -> None:
    """A new section that is not a mapping is one error at its name."""
    data = minimal()
    data[section] = 5
    assert errors_of(data, confdir) == [f"{section}: expected a mapping, got integer 5"]


def test_dataclasses_built_directly_get_default_budgets() -> None:
    """Code building the config objects itself gets the documented budgets without naming them."""
    module = ModuleConfig(name="m", file=Path("m.wasm"), params={})
    pipeline = PipelineConfig(name="p", subscribe=(), filters=(), outputs=())
    assert module.budgets == DEFAULT_BUDGETS
    assert pipeline.on_quarantine == "drop"


def test_package_keeps_every_public_name() -> None:
    """Everything edged.config exports can be imported from it."""
    for name in edged.config.__all__:
        assert getattr(edged.config, name) is not None
    assert edged.config.ConfigError is ConfigError


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (0, 0),
        (65536, 65536),
        ("512 KiB", 512 * 1024),
        ("16MiB", 16 * MIB),
        ("1 GiB", 1024 * MIB),
        ("1.5 MiB", 3 * MIB // 2),
        ("0.5KiB", 512),
        ("100 B", 100),
        ("2 kib", 2048),
        (" 3 MiB ", 3 * MIB),
        ("4096", 4096),
    ],
)
def test_sizes_accept_bytes_and_binary_units(confdir: Path, given: object, size: int) -> None:
    """A size is an integer of bytes or a number with B, KiB, MiB or GiB, decimals allowed."""
    data = minimal()
    data["budgets"] = {"max_emit_bytes": given}
    assert parse_config(data, base_dir=confdir).budgets.max_emit_bytes == size


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("16 megs", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '16 megs'"""),
        ("2 TiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '2 TiB'"""),
        ("-1 KiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '-1 KiB'"""),
        ("MiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got 'MiB'"""),
        ("1e6", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '1e6'"""),
        ("", """expected a size such as 16777216, "512 KiB" or "16 MiB", got ''"""),
        (True, """expected a size such as 16777216, "512 KiB" or "16 MiB", got boolean true"""),
        (
            1.5e6,
            """expected a size such as 16777216, "512 KiB" or "16 MiB", got number 1500000.0""",
        ),
        ("16 MB", "unit 'MB' is ambiguous; write '16 MiB' (KiB, MiB and GiB are 1024-based)"),
        ("64kB", "unit 'kB' is ambiguous; write '64 KiB' (KiB, MiB and GiB are 1024-based)"),
        ("1 G", "unit 'G' is ambiguous; write '1 GiB' (KiB, MiB and GiB are 1024-based)"),
        ("0.1 KiB", "'0.1 KiB' is 102.4 bytes, not a whole number of bytes"),
        ("1.5 B", "'1.5 B' is 1.5 bytes, not a whole number of bytes"),
        (-1, "must be at least 0 B, got -1 B"),
    ],
)
def test_bad_sizes_are_explained(confdir: Path, given: object, error: str) -> None:
    """A size that is not whole bytes in B/KiB/MiB/GiB says why; KB, MB and GB are refused."""
    data = minimal()
    data["budgets"] = {"max_emit_bytes": given}
    assert errors_of(data, confdir) == [f"budgets.max_emit_bytes: {error}"]


def test_parse_size_and_format_size_are_inverse() -> None:
    """format_size writes a size the way parse_size reads it back."""
    for size in (0, 1, 1000, 1024, 65536, 1536, 16 * MIB, 3 * 1024 * MIB):
        assert parse_size(format_size(size)) == size
    assert format_size(512 * 1024) == "512 KiB"
    with pytest.raises(ValueError, match="ambiguous"):
        parse_size("1 MB")


def test_size_ranges_are_checked(confdir: Path) -> None:
    """Memory, Wasm stack and memory budget must lie within their documented ranges."""
    data = minimal()
    data["budgets"] = {"memory": "32 KiB"}
    data["engine"] = {"wasm_stack": "128 MiB"}
    data["daemon"] = {"memory_budget": "512 KiB"}
    data["modules"]["threshold"]["budgets"] = {"memory": "5 GiB"}
    assert errors_of(data, confdir) == [
        "engine.wasm_stack: must be between 64 KiB and 64 MiB, got 128 MiB",
        "budgets.memory: must be between 64 KiB and 4 GiB, got 32 KiB",
        "modules.threshold.budgets.memory: must be between 64 KiB and 4 GiB, got 5 GiB",
        "daemon.memory_budget: must be at least 1 MiB, got 512 KiB",
    ]


def test_smallest_allowed_sizes_are_accepted(confdir: Path) -> None:
    """One Wasm page of memory, a 64 KiB stack and a 1 MiB memory budget are all allowed."""
    data = minimal()
    data["budgets"] = {"memory": 65536, "max_emits": 0, "max_emit_bytes": 0, "table_elements": 0}
    data["engine"] = {"wasm_stack": "64 KiB", "epoch_tick_ms": 1}
    data["daemon"] = {"memory_budget": "1 MiB", "queue_size": 1}
    config = parse_config(data, base_dir=confdir)
    assert config.budgets.memory == 65536
    assert config.engine == EngineConfig(wasm_stack=65536, epoch_tick_ms=1.0)
    assert config.daemon.memory_budget == MIB


def test_budget_numbers_are_checked(confdir: Path) -> None:
    """Fuel, deadline, emit and table limits refuse booleans, wrong types and values too small."""
    data = minimal()
    data["budgets"] = {
        "fuel": 999,
        "deadline_ms": 0,
        "max_emits": -1,
        "max_emit_bytes": "lots",
        "table_elements": True,
    }
    assert errors_of(data, confdir) == [
        "budgets.fuel: must be at least 1000, got 999",
        "budgets.deadline_ms: must be greater than 0, got 0",
        "budgets.max_emits: must be at least 0, got -1",
        """budgets.max_emit_bytes: expected a size such as 16777216, "512 KiB" or "16 MiB", """
        "got 'lots'",
        "budgets.table_elements: expected an integer, got boolean true",
    ]


def test_module_budgets_override_only_the_keys_given(confdir: Path) -> None:
    """A module's `budgets` replaces the keys it names and inherits the rest from `budgets`."""
    data = minimal()
    data["budgets"] = {"fuel": 1000, "max_emits": 8}
    data["modules"]["threshold"]["budgets"] = {"memory": "4 MiB", "deadline_ms": 20, "fuel": 2000}
    config = parse_config(data, base_dir=confdir)
    assert config.modules["threshold"].budgets == Budgets(
        memory=4 * MIB, fuel=2000, deadline_ms=20.0, max_emits=8
    )
    assert config.modules["passthrough"].budgets == config.budgets
    assert config.budgets == Budgets(fuel=1000, max_emits=8)


def test_unknown_module_budget_key_suggests_the_known_one(confdir: Path) -> None:
    """A misspelt key in a module's budgets is an error at its full path with a suggestion."""
    data = minimal()
    data["modules"]["threshold"]["budgets"] = {"memroy": "4 MiB", "zzz": 1}
    data["budgets"] = {"dedline_ms": 5}
    assert errors_of(data, confdir) == [
        "budgets.dedline_ms: unknown key; did you mean 'deadline_ms'?",
        "modules.threshold.budgets.memroy: unknown key; did you mean 'memory'?",
        "modules.threshold.budgets.zzz: unknown key; known keys: deadline_ms, fuel, max_emit_bytes,"
        " max_emits, memory, table_elements",
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


@pytest.mark.parametrize("overload", ["drop_oldest", "drop_newest", "block"])
def test_overload_choices(confdir: Path, overload: str) -> None:
    """daemon.overload is drop_oldest, drop_newest or block."""
    data = minimal()
    data["daemon"] = {"overload": overload}
    assert parse_config(data, base_dir=confdir).daemon.overload == overload


@pytest.mark.parametrize("overload", ["drop", "oldest", "", 1])
def test_other_overload_values_are_refused(confdir: Path, overload: object) -> None:
    """Any other daemon.overload is an error at its path."""
    data = minimal()
    data["daemon"] = {"overload": overload}
    (error,) = errors_of(data, confdir)
    assert error.startswith("daemon.overload: ")
    if isinstance(overload, str):
        assert "must be one of drop_oldest, drop_newest, block" in error


def test_daemon_and_violation_numbers_are_checked(confdir: Path) -> None:
    """Queue size, dead-letter QoS, quarantine count and window must be in range."""
    data = minimal()
    data["daemon"] = {"queue_size": 0}
    data["violations"] = {
        "dead_letter_qos": 3,
        "quarantine_after": 0,
        "window": 0,
        "cooldown": -1,
    }
    data["metrics"] = {"interval": float("nan")}
    assert errors_of(data, confdir) == [
        "daemon.queue_size: must be at least 1, got 0",
        "violations.dead_letter_qos: must be between 0 and 2, got 3",
        "violations.quarantine_after: must be at least 1, got 0",
        "violations.window: must be greater than 0, got 0",
        "violations.cooldown: must be at least 0, got -1",
        "metrics.interval: must be at least 0, got nan",
    ]


def test_zero_turns_metrics_and_cooldown_off(confdir: Path) -> None:
    """metrics.interval 0 means no metrics, and cooldown 0 an immediate retry; both are allowed."""
    data = minimal()
    data["metrics"] = {"interval": 0}
    data["violations"] = {"cooldown": 0}
    config = parse_config(data, base_dir=confdir)
    assert config.metrics.interval == 0.0
    assert config.violations.cooldown == 0.0


@pytest.mark.parametrize(
    ("template", "topic"),
    [
        ("{prefix}/{node_id}/deadletter", "site/edged/gw-1/deadletter"),
        ("dlq/{node_id}", "dlq/gw-1"),
        ("{prefix}/dead", "site/edged/dead"),
        ("fixed/topic", "fixed/topic"),
    ],
)
def test_dead_letter_topic_fills_in_prefix_and_node_id(
    confdir: Path, template: str, topic: str
) -> None:
    """{prefix} and {node_id} in dead_letter_topic become topic_prefix and node_id."""
    data = minimal()
    data["topic_prefix"] = "site/edged"
    data["violations"] = {"dead_letter_topic": template}
    config = parse_config(data, base_dir=confdir)
    assert config.violations.dead_letter_topic == template
    assert config.dead_letter_topic == topic


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


def test_deadline_below_the_epoch_tick_is_refused(confdir: Path) -> None:
    """A deadline shorter than one epoch tick is an error at the global or the module's path."""
    data = minimal()
    data["engine"] = {"epoch_tick_ms": 20}
    data["budgets"] = {"deadline_ms": 10}
    data["modules"]["threshold"]["budgets"] = {"deadline_ms": 5}
    assert errors_of(data, confdir) == [
        "budgets.deadline_ms: is 10 ms, below engine.epoch_tick_ms (20 ms): deadlines are checked"
        " once per epoch tick, so none can be shorter than one tick",
        "modules.threshold.budgets.deadline_ms: is 5 ms, below engine.epoch_tick_ms (20 ms):"
        " deadlines are checked once per epoch tick, so none can be shorter than one tick",
    ]


def test_deadline_at_or_above_the_tick_is_accepted(confdir: Path) -> None:
    """A deadline of exactly one tick works, and a module may override a too short global one."""
    data = minimal()
    data["engine"] = {"epoch_tick_ms": 1}
    data["budgets"] = {"deadline_ms": 1}
    data["modules"]["threshold"]["budgets"] = {"deadline_ms": 2.5}
    config = parse_config(data, base_dir=confdir)
    assert config.budgets.deadline_ms == 1.0
    assert config.modules["threshold"].budgets.deadline_ms == 2.5

    data = minimal()
    data["modules"]["threshold"]["budgets"] = {"deadline_ms": 5}
    (error,) = errors_of(data, confdir)
    assert error.startswith("modules.threshold.budgets.deadline_ms: is 5 ms, below ")


@pytest.mark.parametrize("tick", [0.5, 1001, "fast"])
def test_bad_epoch_tick_is_reported_once(confdir: Path, tick: object) -> None:
    """A wrong epoch_tick_ms is one error, not also one for every deadline it would bound."""
    data = minimal()
    data["engine"] = {"epoch_tick_ms": tick}
    data["budgets"] = {"deadline_ms": 2}
    (error,) = errors_of(data, confdir)
    assert error.startswith("engine.epoch_tick_ms: ")


@pytest.mark.parametrize("value", ["drop", "skip", "SKIP"])
def test_on_quarantine_values(confdir: Path, value: str) -> None:
    """A pipeline's on_quarantine is drop or skip."""
    data = minimal()
    data["pipelines"][0]["on_quarantine"] = value
    assert parse_config(data, base_dir=confdir).pipelines[0].on_quarantine == value.lower()


@pytest.mark.parametrize("value", ["pass", "", True])
def test_other_on_quarantine_values_are_refused(confdir: Path, value: object) -> None:
    """Any other on_quarantine is an error at the pipeline's path."""
    data = minimal()
    data["pipelines"][0]["on_quarantine"] = value
    (error,) = errors_of(data, confdir)
    assert error.startswith("pipelines[0].on_quarantine: ")


def test_shipped_gateway_config_sets_module_budgets() -> None:
    """configs/gateway.yaml shows a module's budgets laid over the global ones."""
    path = Path(__file__).resolve().parent.parent.parent / "configs" / "gateway.yaml"
    config = load_config(path)
    assert config.modules["average"].budgets == dataclasses.replace(
        config.budgets, memory=4 * MIB, deadline_ms=20.0
    )
    assert config.budgets == DEFAULT_BUDGETS


def test_budget_counts_must_fit_the_engine(confdir: Path) -> None:
    """Fuel and table sizes too large for the engine's counters are refused at load."""
    data = minimal()
    data["budgets"] = {"fuel": 2**63, "table_elements": 2**31}
    assert errors_of(data, confdir) == [
        f"budgets.fuel: must be below 2**63, got {2**63}",
        f"budgets.table_elements: must be below 2**31, got {2**31}",
    ]

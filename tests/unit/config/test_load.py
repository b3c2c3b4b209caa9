"""Each section of the config: what a valid one turns into, and how its mistakes are reported."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from edged.config import (
    DEFAULT_BUDGETS,
    BrokerConfig,
    Budgets,
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
    load_config,
    parse_config,
)
from edged.mqtt.credentials import load_credentials
from tests.helpers.paths import ROOT
from tests.unit.config.samples import FULL, MIB, SECRET, errors_of, minimal, write


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


@pytest.mark.parametrize("log_text", ["", "log:\n", "log: {}\n"])
def test_log_section_may_be_missing_or_empty(confdir: Path, log_text: str) -> None:
    """A missing, null or empty `log` section means all log defaults."""
    text = FULL.split("log:\n")[0] + log_text
    config = load_config(write(confdir, text))
    assert config.log == LogConfig(level="info", format="auto", summary_interval=60.0)


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


@pytest.mark.parametrize(
    ("content", "password"),
    [("pw\n", "pw"), ("pw", "pw"), ("pw\r\n", "pw"), ("pw\n\n", "pw\n"), ("", "")],
)
def test_password_file_is_read_and_one_newline_stripped(
    confdir: Path, content: str, password: str
) -> None:
    """password_file is relative to the config file and checked at load; the link reads it
    (again for every connection attempt) minus one trailing newline."""
    (confdir / "secrets").mkdir()
    (confdir / "secrets" / "mqtt").write_text(content, newline="")
    data = minimal()
    data["broker"] = {"username": "edge", "password_file": "secrets/mqtt"}
    broker = parse_config(data, base_dir=confdir).broker
    assert (broker.password, broker.password_file) == (None, confdir / "secrets" / "mqtt")
    assert load_credentials(broker).password == password


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


def test_tls_enables_port_8883_and_needs_cert_and_key_together(confdir: Path) -> None:
    """Giving `tls` switches the default port to 8883; a client cert needs its key."""
    data = minimal()
    data["broker"] = {"tls": {}}
    config = parse_config(data, base_dir=confdir)
    assert config.broker.port == 8883
    assert config.broker.tls == TLSConfig(ca_file=None, cert_file=None, key_file=None)

    data["broker"] = {"tls": {"cert_file": "certs/client.pem"}, "port": 1883}
    assert errors_of(data, confdir) == ["broker.tls.key_file: required when cert_file is given"]


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
    path = ROOT / "configs" / "gateway.yaml"
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

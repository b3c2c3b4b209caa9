"""The config's dataclasses: the defaults a config that leaves a key out gets, read-only objects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
    ViolationsConfig,
    parse_config,
)
from edged.config.model import MQTT_PORT, MQTTS_PORT, TOPIC_PREFIX
from tests.unit.config.samples import MIB, minimal


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
    assert list(config.brokers) == ["default"]
    assert config.control_broker == "default"
    assert config.broker.outbox_file == "outbox.sqlite3"
    assert config.status_topic == "edged/gw-1/status"
    (pipeline,) = config.pipelines
    assert pipeline.subscribe == (Subscription(topic="sensors/+/temperature", qos=0),)
    assert pipeline.filters == (
        FilterConfig(module="threshold", params={"limit": 30}, tick_interval=None),
    )
    assert pipeline.outputs == (OutputRule(match="#", topic="out/{topic}", qos=0, retain=False),)
    assert config.log == LogConfig(level="info", format="auto", summary_interval=60.0)


def test_log_file_is_off_by_default_with_10_mib_and_3_backups(confdir: Path) -> None:
    """Without log.file the daemon logs to stdout only; the rotation defaults are documented."""
    log = parse_config(minimal(), base_dir=confdir).log
    assert (log.file, log.max_bytes, log.backups) == (None, 10 * MIB, 3)


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
        memory_budget=256 * MIB, queue_size=10000, overload="block"
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


def test_a_config_that_leaves_keys_out_gets_the_model_defaults(confdir: Path) -> None:
    """Every key left out takes the default of its dataclass field: defaults live in one place."""
    data = minimal()
    data["pipelines"][0]["subscribe"] = ["a/b"]
    data["pipelines"][0]["outputs"] = [{"topic": "out/{topic}"}]
    config = parse_config(data, base_dir=confdir)
    assert config.topic_prefix == TOPIC_PREFIX
    assert config.broker == BrokerConfig()
    assert config.log == LogConfig()
    (pipeline,) = config.pipelines
    assert pipeline.subscribe == (Subscription(topic="a/b"),)
    assert pipeline.filters == (FilterConfig(module="threshold", params={"limit": 30}),)
    assert pipeline.outputs == (OutputRule(topic="out/{topic}"),)
    assert (
        pipeline.on_quarantine
        == PipelineConfig(name="p", subscribe=(), filters=(), outputs=()).on_quarantine
    )
    defaults = (Budgets(), EngineConfig(), DaemonConfig(), ViolationsConfig(), MetricsConfig())
    assert (config.budgets, config.engine, config.daemon, config.violations, config.metrics) == (
        defaults
    )


def test_tls_switches_the_default_port_to_mqtts(confdir: Path) -> None:
    """Without `port`, the broker is reached on plain MQTT's port, or MQTT over TLS's with tls."""
    data = minimal()
    assert parse_config(data, base_dir=confdir).broker.port == MQTT_PORT == BrokerConfig().port
    data["broker"] = {"tls": {}}
    assert parse_config(data, base_dir=confdir).broker.port == MQTTS_PORT


def test_log_config_builds_with_the_documented_defaults() -> None:
    """LogConfig() needs no arguments: info level, automatic format, a summary every minute."""
    assert LogConfig() == LogConfig(level="info", format="auto", summary_interval=60.0)

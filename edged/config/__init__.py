"""The config file: read once, checked in full, turned into frozen dataclasses.

Every problem is collected with its key path before anything is raised, so an operator fixing a
gateway's config sees all of its mistakes in one go instead of one per restart.

    model     the dataclasses a checked config turns into, and every default
    document  the file as a YAML document, read within limits (size, depth, values)
    reader    reading values with their key paths; the checks shared by sections
    load      one parser per section; parse_config and load_config

The sections budgets, engine, daemon, violations and metrics are specified in docs/budgets.md.
"""

from __future__ import annotations

from edged.config.load import load_config, parse_config
from edged.config.model import (
    DEFAULT_BUDGETS,
    ON_QUARANTINE,
    OVERLOADS,
    BrokerConfig,
    Budgets,
    Config,
    DaemonConfig,
    DeployConfig,
    EngineConfig,
    FilterConfig,
    LogConfig,
    MetricsConfig,
    ModuleConfig,
    MqttVersion,
    OnQuarantine,
    OutboxConfig,
    OutputRule,
    Overload,
    Params,
    ParamValue,
    PipelineConfig,
    StateConfig,
    Subscription,
    TLSConfig,
    ViolationsConfig,
)
from edged.errors import ConfigError
from edged.sizes import GiB, KiB, MiB, format_size, parse_size

__all__ = [
    "DEFAULT_BUDGETS",
    "ON_QUARANTINE",
    "OVERLOADS",
    "BrokerConfig",
    "Budgets",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DeployConfig",
    "EngineConfig",
    "FilterConfig",
    "GiB",
    "KiB",
    "LogConfig",
    "MetricsConfig",
    "MiB",
    "ModuleConfig",
    "MqttVersion",
    "OnQuarantine",
    "OutboxConfig",
    "OutputRule",
    "Overload",
    "ParamValue",
    "Params",
    "PipelineConfig",
    "StateConfig",
    "Subscription",
    "TLSConfig",
    "ViolationsConfig",
    "format_size",
    "load_config",
    "parse_config",
    "parse_size",
]

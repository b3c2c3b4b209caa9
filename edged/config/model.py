"""What a checked config turns into: frozen dataclasses shared read-only by every layer.

This is the one place the defaults live: a field's default is what a config that leaves the key
out gets (config/load.py reads them from here), so code and tests can also build the objects
directly without spelling out every setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from edged.sizes import KiB, MiB

ParamValue = str | int | float | bool
Params = Mapping[str, ParamValue]
MqttVersion = Literal["3.1.1", "5"]
Overload = Literal["drop_oldest", "drop_newest", "block"]
OnQuarantine = Literal["drop", "skip"]
OVERLOADS: tuple[Overload, ...] = ("drop_oldest", "drop_newest", "block")
ON_QUARANTINE: tuple[OnQuarantine, ...] = ("drop", "skip")

_DEAD_LETTER_PLACEHOLDER = re.compile(r"\{(node_id|prefix)\}")

#: Config.topic_prefix when the config does not give one
TOPIC_PREFIX = "edged"


@dataclass(frozen=True, kw_only=True, slots=True)
class TLSConfig:
    ca_file: Path | None = None  # None: the system's trusted CAs
    cert_file: Path | None = None  # client certificate and key, given together
    key_file: Path | None = None


#: the broker's port when `port` is not given: plain MQTT, or MQTT over TLS
MQTT_PORT = 1883
MQTTS_PORT = 8883


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxConfig:
    """Outgoing publishes kept on disk while they cannot be delivered (docs/delivery.md)."""

    max_bytes: int = 64 * MiB
    max_age: float | None = 7 * 86400.0  # seconds; older entries are deleted unsent
    when_full: Overload = "drop_oldest"  # drop_oldest | drop_newest | block


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkLimits:
    """What a broker accepts, for brokers that drop the rest without a word (cloud brokers).

    AWS IoT Core, for one, documents 128 KiB payloads, 256-byte topics of at most 7 slashes,
    and 100 publishes per second per connection. None: no limit of edged's own.
    """

    max_payload: int | None = None  # bytes; a bigger output is dead-lettered
    max_topic_bytes: int | None = None  # an output to a longer topic is dead-lettered
    max_topic_levels: int | None = None  # ... and one to a topic of more levels
    max_publish_rate: float | None = None  # publishes per second; faster ones wait in the outbox

    @property
    def any(self) -> bool:
        return any(
            v is not None for v in (self.max_payload, self.max_topic_bytes, self.max_topic_levels)
        )


#: the name of the one broker of a config that says `broker:` rather than `brokers:`
DEFAULT_BROKER = "default"


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConfig:
    name: str = DEFAULT_BROKER
    host: str = "localhost"
    port: int = MQTT_PORT  # MQTTS_PORT when tls is given
    client_id: str | None = None  # None: edged-<node_id>
    keepalive: int = 30  # seconds
    mqtt_version: MqttVersion = "5"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Read again for every connection attempt (edged.mqtt.credentials), like the TLS files, so a
    # new password is used from the next reconnect; `password` is then None. Only the path is
    # compared on a reload: a changed file keeps the link, which reconnects (daemon/reload.py).
    password_file: Path | None = None
    tls: TLSConfig | None = None
    reconnect_min_delay: float = 1.0  # seconds; doubled after each failure ...
    reconnect_max_delay: float = 60.0  # ... up to this
    # Seconds the broker keeps edged's session (subscriptions, queued messages, unacknowledged
    # inputs) while edged is away; 0: a clean session on every connect (nothing kept).
    session_expiry: int = 86400
    # QoS 1/2 inputs the broker may send before edged acknowledges one (MQTT 5 Receive
    # Maximum). The outgoing window is the broker's own Receive Maximum.
    inflight: int = 100
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    limits: LinkLimits = field(default_factory=LinkLimits)

    def client_id_for(self, node_id: str) -> str:
        """The MQTT client id actually used: the configured one, else one derived from node_id."""
        return self.client_id or f"edged-{node_id}"

    @property
    def outbox_file(self) -> str:
        """The outbox's file name in the state directory (the one broker of `broker:` keeps the
        name it had before there were several)."""
        return "outbox.sqlite3" if self.name == DEFAULT_BROKER else f"outbox-{self.name}.sqlite3"


@dataclass(frozen=True, kw_only=True, slots=True)
class Budgets:
    """The hard limits of every call into one module (message, init, tick)."""

    memory: int = 16 * MiB  # bytes of linear memory per instance
    fuel: int = 20_000_000  # Wasm instructions per call
    deadline_ms: float = 100.0  # wall-clock limit per call
    max_emits: int = 64  # messages one call may emit
    max_emit_bytes: int = 65536  # topic + payload bytes of all records of one call
    table_elements: int = 10_000  # entries in the module's tables
    # bytes of state one save may keep (docs/state.md): a per-topic table of a few hundred
    # sensors at a few hundred bytes each (a topic, a window's sums, a timestamp) with room
    max_state: int = 256 * KiB


DEFAULT_BUDGETS = Budgets()


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineConfig:
    wasm_stack: int = 512 * KiB  # bytes of Wasm stack per call
    epoch_tick_ms: float = 10.0  # resolution of every deadline_ms


@dataclass(frozen=True, kw_only=True, slots=True)
class DaemonConfig:
    memory_budget: int = 256 * MiB  # the memory caps of all instances together
    # Messages read from the broker and not yet filtered: the daemon reads all the broker sent
    # into this bounded intake queue, then runs the filters on a time slice of it.
    queue_size: int = 10_000
    # What a full queue does. `block`: read only what fits and leave the rest at the broker,
    # which delivers it when there is room; nothing is dropped. The drop policies suit
    # readings where the newest (or the first) matter more than every one.
    overload: Overload = "block"


@dataclass(frozen=True, kw_only=True, slots=True)
class ViolationsConfig:
    dead_letter_topic: str = "{prefix}/{node_id}/deadletter"  # template; see Config
    dead_letter_qos: int = 0
    quarantine_after: int = 5  # this many violations ...
    window: float = 10.0  # ... within this many seconds quarantine the filter
    cooldown: float = 60.0  # seconds until a quarantined filter is tried again


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsConfig:
    interval: float = 10.0  # seconds between metrics publications; 0 means none


@dataclass(frozen=True, kw_only=True, slots=True)
class StateConfig:
    """Filters' saved states (docs/state.md)."""

    # Seconds between checkpoints of the filters whose state changed. What a kill -9 or a power
    # cut can cost of a filter's memory; an SD card's wear is the other side: at 60 s, 8 filters
    # of 4 KiB each write 2.6 MiB an hour (measured, docs/state.md), an idle gateway nothing.
    checkpoint_interval: float = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpConfig:
    """The opt-in HTTP endpoint: /metrics, /healthz, /readyz (docs/monitoring.md)."""

    # "host:port" (IPv6 as "[::1]:9108"), or the absolute path of a Unix socket to create
    listen: str = "127.0.0.1:9108"
    # /healthz fails once the loop has not come round for this long; under a systemd watchdog,
    # its WatchdogSec instead
    alive_within: float = 30.0
    # /readyz fails while any outbox holds more than this fraction of its max_bytes
    ready_outbox_fill: float = 0.8

    @property
    def unix_socket(self) -> bool:
        return self.listen.startswith("/")

    @property
    def address(self) -> tuple[str, int]:
        """The host and port to listen on (not for a Unix socket)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def loopback(self) -> bool:
        """Reachable only from this machine (a Unix socket counts)."""
        if self.unix_socket:
            return True
        host = self.address[0]
        return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeployConfig:
    """Remote module delivery (docs/deploy.md); off unless trusted keys or unsigned are allowed."""

    groups: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = ()  # base64 raw ed25519 public keys or PEM blocks
    allow_unsigned: bool = False
    # WASI capabilities a pushed module may be granted (what its manifest asks for, at most)
    allowed_capabilities: frozenset[str] = frozenset()
    max_module_bytes: int = 1024 * 1024
    probation_messages: int = 100
    probation_seconds: float = 60.0

    @property
    def enabled(self) -> bool:
        return bool(self.trusted_keys) or self.allow_unsigned


#: the WASI capabilities a module can be granted (docs/filter-abi.md, "WASI")
CAPABILITIES = ("clock", "random", "log")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleConfig:
    name: str
    file: Path
    params: Params
    # The global budgets with the module's own `budgets:` laid over them.
    budgets: Budgets = field(default_factory=Budgets)
    # WASI capabilities granted (docs/filter-abi.md, "WASI"): clock, random, log; none by default
    capabilities: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    topic: str  # a topic filter, or `$share/<group>/<filter>` (MQTT 5)
    qos: int = 0
    broker: str = DEFAULT_BROKER  # the name of the broker it is subscribed on


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterConfig:
    module: str
    params: Params  # the module's params with this filter's own laid over them
    tick_interval: float | None = None  # seconds between calls of its tick; None: never
    own_params: Params = field(default_factory=lambda: MappingProxyType({}))  # set here only


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputRule:
    match: str = "#"  # the emitted topics this rule takes
    topic: str  # template: {topic}, {node_id} and {pipeline} are filled in per message
    qos: int = 0
    retain: bool = False
    broker: str = DEFAULT_BROKER  # the name of the broker it publishes to
    # MQTT 5 properties the filters did not set: pass (the input's user properties, content
    # type, correlation data and response topic go on) or drop
    properties: str = "pass"


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineConfig:
    name: str
    subscribe: tuple[Subscription, ...]
    filters: tuple[FilterConfig, ...]
    outputs: tuple[OutputRule, ...]
    on_quarantine: OnQuarantine = "drop"  # drop: messages reaching the filter; skip: pass it by


@dataclass(frozen=True, kw_only=True, slots=True)
class LogConfig:
    level: str = "info"  # debug | info | warning | error
    format: str = "auto"  # auto (console on a terminal, else JSON lines) | json | console
    summary_interval: float = 60.0  # seconds between the per-pipeline summary events
    file: Path | None = None  # JSON lines also go here, for installs without systemd
    max_bytes: int = 10 * MiB  # rotate before the file would grow past this
    backups: int = 3  # rotated files kept: file.1 .. file.N; none: the file starts afresh


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    node_id: str
    topic_prefix: str  # TOPIC_PREFIX if not given
    state_dir: Path | None
    brokers: Mapping[str, BrokerConfig]  # by name, in the config's order
    modules: Mapping[str, ModuleConfig]
    pipelines: tuple[PipelineConfig, ...]
    log: LogConfig
    budgets: Budgets = field(default_factory=Budgets)  # the defaults, before module overrides
    engine: EngineConfig = field(default_factory=EngineConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    violations: ViolationsConfig = field(default_factory=ViolationsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    # The outbox settings every broker's own `outbox:` is laid over.
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    control_broker: str = DEFAULT_BROKER  # the status, metrics, deploy and dead-letter topics'
    http: HttpConfig | None = None  # None: nothing listens
    source: Path | None = None

    @property
    def broker(self) -> BrokerConfig:
        """The control broker: where the node's status, metrics, deploys and dead letters are."""
        return self.brokers[self.control_broker]

    @property
    def client_id(self) -> str:
        """The control broker's MQTT client id."""
        return self.broker.client_id_for(self.node_id)

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}/status"

    @property
    def metrics_topic(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}/metrics"

    @property
    def dead_letter_topic(self) -> str:
        """violations.dead_letter_topic with {prefix} and {node_id} filled in."""
        values = {"prefix": self.topic_prefix, "node_id": self.node_id}
        template = self.violations.dead_letter_topic
        return _DEAD_LETTER_PLACEHOLDER.sub(lambda m: values[m[1]], template)  # in one pass

"""Reading the config file: one parser per section, then parse_config and load_config."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from edged.config.document import read_document
from edged.config.model import (
    CAPABILITIES,
    DEFAULT_BROKER,
    DEFAULT_BUDGETS,
    MQTTS_PORT,
    ON_QUARANTINE,
    OVERLOADS,
    TOPIC_PREFIX,
    BrokerConfig,
    Budgets,
    Config,
    DaemonConfig,
    DeployConfig,
    EngineConfig,
    FilterConfig,
    HttpConfig,
    LinkLimits,
    LogConfig,
    MetricsConfig,
    ModuleConfig,
    MqttVersion,
    OutboxConfig,
    OutputRule,
    Params,
    ParamValue,
    PipelineConfig,
    StateConfig,
    Subscription,
    TLSConfig,
    ViolationsConfig,
)
from edged.config.reader import (
    _brief,
    _client_id_error,
    _describe,
    _is_utf8,
    _name_error,
    _node_id_error,
    _nonempty_error,
    _prefix_error,
    _quote,
    _Reader,
    _template_check,
)
from edged.errors import ConfigError
from edged.sizes import GiB, KiB, MiB
from edged.topics import split_shared, subscription_error, topic_filter_error

# Written as a string or as a YAML integer (never str() of that: it may have thousands of digits)
_MQTT_VERSIONS: dict[str | int, MqttVersion] = {
    "3.1.1": "3.1.1",
    "311": "3.1.1",
    311: "3.1.1",
    "5": "5",
    5: "5",
}
_output_topic_error = _template_check(
    {"node_id": "node", "pipeline": "pipeline", "topic": "sample/topic"}
)
_dead_letter_error = _template_check({"prefix": "edged", "node_id": "node"})


def _params(r: _Reader) -> Params:
    out: dict[str, ParamValue] = {}
    for key, value in r.entries():
        # The filter ABI hands params over as 'key NUL value NUL' in UTF-8.
        if not key or "\0" in key or not _is_utf8(key):
            r.fail(None, f"parameter name {_quote(key)} must be non-empty UTF-8 without NUL")
        elif isinstance(value, float) and not math.isfinite(value):
            r.fail(key, f"must be a finite number, got {value}")
        elif isinstance(value, str) and ("\0" in value or not _is_utf8(value)):
            r.fail(key, "must be UTF-8 text without NUL")
        elif isinstance(value, str | int | float):
            out[key] = value
        else:
            r.fail(key, f"expected a string, number or boolean, got {_describe(value)}")
    return r.done(MappingProxyType(out))


def _tls(r: _Reader) -> TLSConfig:
    files = {key: r.path(key, must_exist=True) for key in ("ca_file", "cert_file", "key_file")}
    for given, missing in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if r.has(given) and not r.has(missing):
            r.fail(missing, f"required when {given} is given")
    return r.done(TLSConfig(**files))


def _mqtt_version(r: _Reader, default: MqttVersion) -> MqttVersion:
    value = r.get("mqtt_version", (str, int), '"3.1.1" or "5"')
    if not isinstance(value, str | int):
        return default
    version = _MQTT_VERSIONS.get(value)
    if version is None:
        r.fail("mqtt_version", f'expected "3.1.1" or "5", got {_describe(value)}')
    return version or default


def _read_secret(r: _Reader, key: str, path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:  # never str(exc): a decode error quotes the bytes
        reason = (exc.strerror or "unreadable") if isinstance(exc, OSError) else "not UTF-8 text"
        r.fail(key, f"cannot read {_brief(str(path), 200)}: {reason}")
        return None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _limits(r: _Reader) -> LinkLimits:
    d = LinkLimits()
    payload = r.size("max_payload", 1, 256 * MiB)  # MQTT's own limit is 256 MiB
    topic_bytes = r.whole("max_topic_bytes", 1, 65535)
    levels = r.whole("max_topic_levels", 1, 65535)
    rate = r.real("max_publish_rate", 0, above=True)
    return r.done(
        LinkLimits(
            max_payload=d.max_payload if payload is None else payload,
            max_topic_bytes=d.max_topic_bytes if topic_bytes is None else topic_bytes,
            max_topic_levels=d.max_topic_levels if levels is None else levels,
            max_publish_rate=d.max_publish_rate if rate is None else rate,
        )
    )


def _broker(r: _Reader, name: str, outbox: OutboxConfig) -> BrokerConfig:
    d = BrokerConfig()
    host = r.text("host", d.host, check=_nonempty_error)
    port = r.integer("port", MQTTS_PORT if r.has("tls") else d.port, 1, 65535)
    client_id = r.text("client_id", d.client_id, check=_client_id_error)
    keepalive = r.integer("keepalive", d.keepalive, 5, 65535)
    version = _mqtt_version(r, d.mqtt_version)
    username = r.text("username", d.username)
    password = r.text("password", d.password, secret=True)
    password_file = r.path("password_file", must_exist=True)
    secret = password
    if password is not None and r.has("password_file"):
        r.fail("password_file", "cannot be used together with password")
    elif password_file is not None:
        # checked now; the link reads it again for every connection attempt
        secret = _read_secret(r, "password_file", password_file)
    # MQTT 3.1.1 forbids a password without a user name, and the link never sends one alone.
    if secret is not None and username is None:
        r.fail("username", "required when a password is given")
    tls = _tls(r.child("tls")) if r.has("tls") else d.tls
    min_delay = r.number("reconnect_min_delay", d.reconnect_min_delay)
    max_delay = r.number("reconnect_max_delay", d.reconnect_max_delay)
    if max_delay < min_delay:
        r.fail("reconnect_max_delay", f"must not be below reconnect_min_delay ({min_delay})")
    # MQTT 5 carries the Session Expiry Interval in four bytes
    expiry = r.whole("session_expiry", 0, 2**32 - 1)
    inflight = r.integer("inflight", d.inflight, 1, 65535)
    return r.done(
        BrokerConfig(
            name=name,
            host=host,
            port=port,
            client_id=client_id,
            keepalive=keepalive,
            mqtt_version=version,
            username=username,
            password=password,
            password_file=password_file,
            tls=tls,
            reconnect_min_delay=min_delay,
            reconnect_max_delay=max_delay,
            session_expiry=d.session_expiry if expiry is None else expiry,
            inflight=inflight,
            outbox=_outbox(r.child("outbox"), outbox),
            limits=_limits(r.child("limits")),
        )
    )


def _brokers(r: _Reader, outbox: OutboxConfig) -> dict[str, BrokerConfig]:
    """`brokers:` (named brokers), or `broker:` as the one broker named `default`."""
    if r.has("broker") and r.has("brokers"):
        r.fail("brokers", "cannot be used together with broker (the one-broker form)")
    if not r.has("brokers"):
        return {DEFAULT_BROKER: _broker(r.child("broker", required=True), DEFAULT_BROKER, outbox)}
    section = r.child("brokers")
    if isinstance(section.value, Mapping) and not section.value:
        section.fail(None, "needs at least one broker")
    brokers: dict[str, BrokerConfig] = {}
    for name, value in section.entries():
        b = section.sub(value, section.at(name)).mapping()
        if (reason := _name_error(name)) is not None:
            b.fail(None, f"bad broker name: {reason}")
        brokers[name] = _broker(b, name, outbox)
    return section.done(brokers)


def _check_identities(r: _Reader, brokers: Mapping[str, BrokerConfig], node_id: str) -> None:
    """Two links to one broker with one client id would take the connection from each other,
    the broker closing the older one each time the other connects (MQTT §3.1.4)."""
    seen: dict[tuple[str, int, str], str] = {}
    for name, b in brokers.items():
        key = (b.host, b.port, b.client_id_for(node_id))
        if key in seen:
            r.fail(
                f"brokers.{name}.client_id",
                f"broker {_quote(seen[key])} connects to {b.host}:{b.port} with the same client "
                f"id {_quote(key[2])}: give one of them its own client_id",
            )
        seen[key] = name


def _broker_name(r: _Reader, brokers: Mapping[str, BrokerConfig], key: str = "broker") -> str:
    """The broker `key` names (checked against the known ones), else the first broker."""
    first = next(iter(brokers), DEFAULT_BROKER)
    name = r.text(key, first)
    if brokers and name not in brokers:
        known = ", ".join(_quote(b) for b in list(brokers)[:20])
        r.fail(key, f"unknown broker {_quote(name)}; known: {known}")
        return first
    return name


def _engine(r: _Reader) -> tuple[EngineConfig, float | None]:
    """The engine section, and its epoch tick for checking deadlines: None if it is wrong."""
    d = EngineConfig()
    stack = r.size("wasm_stack", 64 * KiB, 64 * MiB)
    tick = r.real("epoch_tick_ms", 1, 1000)
    engine = EngineConfig(
        wasm_stack=d.wasm_stack if stack is None else stack,
        epoch_tick_ms=d.epoch_tick_ms if tick is None else tick,
    )
    return r.done(engine), tick if r.has("epoch_tick_ms") else engine.epoch_tick_ms


def _fits(r: _Reader, key: str, value: int | None, bits: int) -> int | None:
    """`value` if it fits the engine's unsigned `bits`-bit field, else None after saying so."""
    if value is not None and value >= 2 ** (bits - 1):
        r.fail(key, f"must be below 2**{bits - 1}, got {_quote(value)}")
        return None
    return value


def _budgets(r: _Reader, base: Budgets, tick_ms: float | None) -> Budgets:
    """`base` with every key given in this `budgets` mapping laid over it.

    `tick_ms` is the engine's epoch tick, None when that is itself wrong: a deadline shorter than
    one tick cannot be kept, since the engine only looks at the clock once per tick.
    """
    memory = r.size("memory", 64 * KiB, 4 * GiB)  # one Wasm page .. all a 32-bit memory holds
    fuel = _fits(r, "fuel", r.whole("fuel", 1000), 64)  # wasmtime keeps fuel in a u64
    deadline = r.real("deadline_ms", 0, above=True)
    if deadline is not None and tick_ms is not None and deadline < tick_ms:
        r.fail(
            "deadline_ms",
            f"is {deadline:g} ms, below engine.epoch_tick_ms ({tick_ms:g} ms): deadlines are "
            "checked once per epoch tick, so none can be shorter than one tick",
        )
    emits = r.whole("max_emits", 0)
    emit_bytes = r.size("max_emit_bytes", 0)
    tables = _fits(r, "table_elements", r.whole("table_elements", 0), 32)  # wasm32: u32 indexes
    max_state = _fits(r, "max_state", r.size("max_state", 0), 32)  # a wasm32 length
    return r.done(
        Budgets(
            memory=base.memory if memory is None else memory,
            fuel=base.fuel if fuel is None else fuel,
            deadline_ms=base.deadline_ms if deadline is None else deadline,
            max_emits=base.max_emits if emits is None else emits,
            max_emit_bytes=base.max_emit_bytes if emit_bytes is None else emit_bytes,
            table_elements=base.table_elements if tables is None else tables,
            max_state=base.max_state if max_state is None else max_state,
        )
    )


def _daemon(r: _Reader) -> DaemonConfig:
    d = DaemonConfig()
    budget = r.size("memory_budget", MiB)
    queue_size = r.whole("queue_size", 1)
    overload = r.literal("overload", OVERLOADS, d.overload)
    return r.done(
        DaemonConfig(
            memory_budget=d.memory_budget if budget is None else budget,
            queue_size=d.queue_size if queue_size is None else queue_size,
            overload=overload,
        )
    )


def _violations(r: _Reader) -> ViolationsConfig:
    d = ViolationsConfig()
    topic = r.text("dead_letter_topic", d.dead_letter_topic, check=_dead_letter_error)
    qos = r.whole("dead_letter_qos", 0, 2)
    after = r.whole("quarantine_after", 1)
    window = r.real("window", 0, above=True)
    cooldown = r.real("cooldown", 0)
    return r.done(
        ViolationsConfig(
            dead_letter_topic=topic,
            dead_letter_qos=d.dead_letter_qos if qos is None else qos,
            quarantine_after=d.quarantine_after if after is None else after,
            window=d.window if window is None else window,
            cooldown=d.cooldown if cooldown is None else cooldown,
        )
    )


def _deploy(r: _Reader) -> DeployConfig:
    d = DeployConfig()
    groups: list[str] = []
    for item in r.sub(r.get("groups", list, "a list"), r.at("groups")).entries_list():
        name = item.value
        if not isinstance(name, str) or _name_error(name) is not None:
            item.fail(None, "a group name is letters, digits, '_' or '-'")
        else:
            groups.append(name)
    keys: list[str] = []
    for item in r.sub(r.get("trusted_keys", list, "a list"), r.at("trusted_keys")).entries_list():
        if (key := _trusted_key(item)) is not None:
            keys.append(key)
    allow = r.flag("allow_unsigned", d.allow_unsigned)
    allowed = _capabilities(r, "allowed_capabilities")
    max_bytes = r.size("max_module_bytes", 1024)
    messages = r.whole("probation_messages", 0)
    seconds = r.real("probation_seconds", 0)
    return r.done(
        DeployConfig(
            groups=tuple(groups),
            trusted_keys=tuple(keys),
            allow_unsigned=allow,
            allowed_capabilities=allowed,
            max_module_bytes=d.max_module_bytes if max_bytes is None else max_bytes,
            probation_messages=d.probation_messages if messages is None else messages,
            probation_seconds=d.probation_seconds if seconds is None else seconds,
        )
    )


def _trusted_key(item: _Reader) -> str | None:
    """A key written in place (base64 of the raw 32 bytes, or PEM), or the file holding one."""
    # Imported here: cryptography costs ~9 MiB of RSS, and only nodes taking deploys need it.
    from edged.keys import load_public_key

    text = item.value
    if not isinstance(text, str):
        item.fail(None, f"expected a public key or a key file, got {type(text).__name__}")
        return None
    try:
        load_public_key(text)
        return text.strip()
    except ValueError as exc:
        in_place = str(exc)
    path = item.base_dir / text
    if not path.is_file():
        item.fail(None, f"neither an ed25519 public key ({in_place}) nor a key file")
        return None
    try:
        content = path.read_text()
        load_public_key(content)
    except (OSError, ValueError) as exc:
        item.fail(None, f"key file {_brief(str(path), 200)}: {exc}")
        return None
    return content.strip()


def _outbox(r: _Reader, d: OutboxConfig) -> OutboxConfig:
    """An outbox section with what it leaves out taken from `d`."""
    max_bytes = r.size("max_bytes", KiB)
    max_age = r.real("max_age", 0, above=True)
    return r.done(
        OutboxConfig(
            max_bytes=d.max_bytes if max_bytes is None else max_bytes,
            max_age=d.max_age if max_age is None else max_age,
            when_full=r.literal("when_full", OVERLOADS, d.when_full),
        )
    )


def _listen_error(text: str) -> str | None:
    if text.startswith("/"):
        return None if len(text.encode()) < 108 else "a Unix socket path is under 108 bytes"
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        return 'expected "host:port" (e.g. "127.0.0.1:9108", "[::1]:9108") or a socket path'
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return 'an IPv6 address is written in brackets: "[::1]:9108"'
    return None


def _http(r: _Reader) -> HttpConfig:
    d = HttpConfig()
    listen = r.text("listen", d.listen, check=_listen_error)
    alive = r.real("alive_within", 0, above=True)
    fill = r.real("ready_outbox_fill", 0, 1, above=True)
    return r.done(
        HttpConfig(
            listen=listen,
            alive_within=d.alive_within if alive is None else alive,
            ready_outbox_fill=d.ready_outbox_fill if fill is None else fill,
        )
    )


def _metrics(r: _Reader) -> MetricsConfig:
    interval = r.real("interval", 0)
    return r.done(MetricsConfig() if interval is None else MetricsConfig(interval=interval))


def _state(r: _Reader) -> StateConfig:
    interval = r.real("checkpoint_interval", 0, above=True)
    return r.done(StateConfig() if interval is None else StateConfig(checkpoint_interval=interval))


def _capabilities(r: _Reader, key: str = "capabilities") -> frozenset[str]:
    """`capabilities: [clock, random, log]`: WASI capabilities by name."""
    value = r.get(key, list, "a list of capability names")
    granted: set[str] = set()
    for index, item in enumerate(value if isinstance(value, list) else []):
        if item not in CAPABILITIES:
            r.fail(
                f"{key}[{index}]",
                f"unknown capability {_quote(item)}; known: {', '.join(CAPABILITIES)}",
            )
        else:
            granted.add(item)
    return frozenset(granted)


def _modules(r: _Reader, budgets: Budgets, tick_ms: float | None) -> dict[str, ModuleConfig]:
    if isinstance(r.value, Mapping) and not r.value:
        r.fail(None, "needs at least one module")
    modules: dict[str, ModuleConfig] = {}
    for name, value in r.entries():
        m = r.sub(value, r.at(name)).mapping()
        if (reason := _name_error(name)) is not None:
            m.fail(None, f"bad module name: {reason}")
        file = m.path("file", required=True, must_exist=True) or Path()
        params = _params(m.child("params"))
        own = _budgets(m.child("budgets"), budgets, tick_ms)
        granted = _capabilities(m)
        modules[name] = m.done(
            ModuleConfig(name=name, file=file, params=params, budgets=own, capabilities=granted)
        )
    return r.done(modules)


def _subscription(r: _Reader, brokers: Mapping[str, BrokerConfig]) -> Subscription:
    d = Subscription(topic="")  # for its defaults; topic is required
    r = r.shorthand("topic")
    topic = r.text("topic", d.topic, required=True, check=subscription_error)
    qos = r.integer("qos", d.qos, 0, 2)
    broker = _broker_name(r, brokers)
    group, _ = split_shared(topic)
    if group is not None and broker in brokers and brokers[broker].mqtt_version != "5":
        r.fail(
            "topic",
            f"a shared subscription ($share/...) needs MQTT 5; broker {_quote(broker)} "
            'has mqtt_version "3.1.1"',
        )
    return r.done(Subscription(topic=topic, qos=qos, broker=broker))


def _filter(r: _Reader, modules: Mapping[str, ModuleConfig]) -> FilterConfig:
    d = FilterConfig(module="", params={})  # for its defaults; module and params are required
    r = r.shorthand("module")
    module = r.text("module", d.module, required=True)
    if module and module not in modules:
        names = sorted(modules)
        # All of them for a usual config; a screenful of names at most
        known = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if names[20:] else "")
        known = known or "(none)"
        r.fail("module", f"unknown module {_quote(module)}; known: {known}")
    inherited = modules[module].params if module in modules else {}
    own = _params(r.child("params"))
    params = MappingProxyType({**inherited, **own})
    tick = r.number("tick_interval", d.tick_interval)
    return r.done(FilterConfig(module=module, params=params, tick_interval=tick, own_params=own))


def _output(r: _Reader, brokers: Mapping[str, BrokerConfig]) -> OutputRule:
    d = OutputRule(topic="")  # for its defaults; topic is required
    return r.mapping().done(
        OutputRule(
            match=r.text("match", d.match, check=topic_filter_error),
            topic=r.text("topic", d.topic, required=True, check=_output_topic_error),
            qos=r.integer("qos", d.qos, 0, 2),
            retain=r.flag("retain", d.retain),
            broker=_broker_name(r, brokers),
            properties=r.choice("properties", ("pass", "drop"), d.properties),
        )
    )


def _pipeline(
    r: _Reader, modules: Mapping[str, ModuleConfig], brokers: Mapping[str, BrokerConfig]
) -> PipelineConfig:
    d = PipelineConfig(name="", subscribe=(), filters=(), outputs=())  # for on_quarantine
    return r.mapping().done(
        PipelineConfig(
            name=r.text("name", "", required=True, check=_name_error),
            subscribe=tuple(
                _subscription(s, brokers) for s in r.items("subscribe", "topic filter")
            ),
            filters=tuple(_filter(f, modules) for f in r.items("filters", "filter")),
            outputs=tuple(_output(o, brokers) for o in r.items("outputs", "output rule")),
            on_quarantine=r.literal("on_quarantine", ON_QUARANTINE, d.on_quarantine),
        )
    )


def _log(r: _Reader) -> LogConfig:
    d = LogConfig()
    return r.done(
        LogConfig(
            level=r.choice("level", ("debug", "info", "warning", "error"), d.level),
            format=r.choice("format", ("auto", "json", "console"), d.format),
            summary_interval=r.number("summary_interval", d.summary_interval),
            file=r.path("file"),
            max_bytes=d.max_bytes if (size := r.size("max_bytes", KiB)) is None else size,
            backups=d.backups if (kept := r.whole("backups", 0, 1000)) is None else kept,
        )
    )


def parse_config(data: object, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Check a parsed YAML document and build the Config, or raise ConfigError with every problem.

    Relative paths are taken relative to `base_dir` (the current directory if None).
    """
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else _describe(data)
        raise ConfigError([f"<root>: expected a mapping, got {got}"], source)
    errors: list[str] = []
    r = _Reader(data, "", errors, base_dir or Path.cwd())
    node_id = r.text("node_id", "", required=True, check=_node_id_error)
    topic_prefix = r.text("topic_prefix", TOPIC_PREFIX, check=_prefix_error)
    state_dir = r.path("state_dir")
    outbox = _outbox(r.child("outbox"), OutboxConfig())
    before = len(errors)
    brokers = _brokers(r, outbox)
    control = _broker_name(r, brokers, key="control_broker")
    if len(errors) == before:  # a broker that did not parse has defaults that would clash
        _check_identities(r, brokers, node_id)
    # The engine first: its epoch tick bounds every deadline, the global and the modules' own.
    engine, tick_ms = _engine(r.child("engine"))
    budgets = _budgets(r.child("budgets"), DEFAULT_BUDGETS, tick_ms)
    modules = _modules(r.child("modules", required=True), budgets, tick_ms)
    pipelines: list[PipelineConfig] = []
    names: set[str] = set()
    for item in r.items("pipelines", "pipeline"):
        pipeline = _pipeline(item, modules, brokers)
        if pipeline.name in names:
            item.fail("name", f"duplicate pipeline name {_quote(pipeline.name)}")
        elif pipeline.name:
            names.add(pipeline.name)
        pipelines.append(pipeline)
    config = r.done(
        Config(
            node_id=node_id,
            topic_prefix=topic_prefix,
            state_dir=state_dir,
            brokers=MappingProxyType(brokers),
            control_broker=control,
            modules=MappingProxyType(modules),
            pipelines=tuple(pipelines),
            log=_log(r.child("log")),
            budgets=budgets,
            engine=engine,
            daemon=_daemon(r.child("daemon")),
            violations=_violations(r.child("violations")),
            metrics=_metrics(r.child("metrics")),
            state=_state(r.child("state")),
            deploy=_deploy(r.child("deploy")),
            outbox=outbox,
            http=_http(r.child("http")) if r.has("http") else None,
        )
    )
    if errors:
        raise ConfigError(errors, source)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the config file at `path`; raise ConfigError listing every problem."""
    source = os.fspath(path)
    file = Path(source).absolute()
    config = parse_config(read_document(file, source), source=source, base_dir=file.parent)
    return replace(config, source=file)

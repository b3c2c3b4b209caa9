"""The config file: read once, checked in full, turned into frozen dataclasses.

Every problem is collected with its key path before anything is raised, so an operator fixing a
gateway's config sees all of its mistakes in one go instead of one per restart.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

import yaml

# Part of this module's interface, defined where the rest of edged uses them.
from edged.errors import ConfigError as ConfigError
from edged.errors import EdgedError as EdgedError
from edged.mqtt.topics import topic_filter_error as topic_filter_error
from edged.mqtt.topics import topic_matches as topic_matches
from edged.mqtt.topics import topic_name_error as topic_name_error

ParamValue = str | int | float | bool
Params = Mapping[str, ParamValue]
MqttVersion = Literal["3.1.1", "5"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TLSConfig:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    client_id: str | None
    keepalive: int
    mqtt_version: MqttVersion
    username: str | None
    password: str | None = field(repr=False)
    tls: TLSConfig | None
    reconnect_min_delay: float
    reconnect_max_delay: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleConfig:
    name: str
    file: Path
    params: Params


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    topic: str
    qos: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterConfig:
    module: str
    params: Params  # the module's params with this filter's own laid over them
    tick_interval: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputRule:
    match: str
    topic: str  # template: {topic}, {node_id} and {pipeline} are filled in per message
    qos: int
    retain: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineConfig:
    name: str
    subscribe: tuple[Subscription, ...]
    filters: tuple[FilterConfig, ...]
    outputs: tuple[OutputRule, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class LogConfig:
    level: str
    format: str
    summary_interval: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    node_id: str
    topic_prefix: str
    state_dir: Path | None
    broker: BrokerConfig
    modules: Mapping[str, ModuleConfig]
    pipelines: tuple[PipelineConfig, ...]
    log: LogConfig
    source: Path | None = None

    @property
    def client_id(self) -> str:
        """The MQTT client id actually used: the configured one, else one derived from node_id."""
        return self.broker.client_id or f"edged-{self.node_id}"

    @property
    def effective_client_id(self) -> str:
        return self.client_id

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}/status"


_T = TypeVar("_T")
_Check = Callable[[str], str | None]
_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _describe(value: object, *, secret: bool = False) -> str:
    if isinstance(value, list | Mapping) or value is None:
        return "a list" if isinstance(value, list) else "null" if value is None else "a mapping"
    kind = _KINDS.get(type(value), type(value).__name__)
    if secret:
        return kind
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:36] + '...'}"


class _Reader:
    """A path-aware view of one YAML node that records problems instead of raising them."""

    def __init__(self, value: object, where: str, errors: list[str], base_dir: Path) -> None:
        self.value, self.where, self.errors, self.base_dir = value, where, errors, base_dir
        self._data: Mapping[object, object] = value if isinstance(value, Mapping) else {}
        self._seen: set[object] = set()

    def at(self, key: str | None) -> str:
        if key is None:
            return self.where or "<root>"
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str | None, reason: str) -> None:
        self.errors.append(f"{self.at(key)}: {reason}")

    def sub(self, value: object, where: str) -> _Reader:
        return _Reader(value, where, self.errors, self.base_dir)

    def mapping(self) -> _Reader:
        if not isinstance(self.value, Mapping):
            self.fail(None, f"expected a mapping, got {_describe(self.value)}")
        return self

    def shorthand(self, key: str) -> _Reader:
        """A bare string item stands for a mapping holding only `key`."""
        if isinstance(self.value, str):
            return self.sub({key: self.value}, self.where)
        return self.mapping()

    def has(self, key: str) -> bool:
        self._seen.add(key)
        return self._data.get(key) is not None

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        expected: str,
        *,
        required: bool = False,
        secret: bool = False,
    ) -> object:
        """The value if given and of the right kind, else None after recording why."""
        if not self.has(key):
            # Keys of something that is not a mapping at all would only repeat that error.
            if required and isinstance(self.value, Mapping):
                missing = "required, got null" if key in self._data else "required key is missing"
                self.fail(key, missing)
            return None
        value = self._data[key]
        # YAML's true/false are Python ints too, but never a port number or a delay.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.fail(key, f"expected {expected}, got {_describe(value, secret=secret)}")
        elif isinstance(value, str) and not _is_utf8(value):
            self.fail(key, "is not valid UTF-8 (it holds a lone surrogate)")
        else:
            return value
        return None

    def text(
        self,
        key: str,
        default: _T,
        *,
        required: bool = False,
        check: _Check | None = None,
        secret: bool = False,
    ) -> str | _T:
        value = self.get(key, str, "a string", required=required, secret=secret)
        if not isinstance(value, str):
            return default
        if check is not None and (reason := check(value)) is not None:
            self.fail(key, reason)
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.get(key, int, "an integer")
        if isinstance(value, int) and not lo <= value <= hi:
            self.fail(key, f"must be between {lo} and {hi}, got {value}")
        return value if isinstance(value, int) else default

    def number(self, key: str, default: _T) -> float | _T:
        """Seconds: every number in the schema must be finite and above zero."""
        value = self.get(key, (int, float), "a number")
        if isinstance(value, int | float) and not (math.isfinite(value) and value > 0):
            self.fail(key, f"must be greater than 0, got {value}")
        return float(value) if isinstance(value, int | float) else default

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, bool, "true or false")
        return value if isinstance(value, bool) else default

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(key, default).lower()
        if value not in options:
            self.fail(key, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def path(self, key: str, *, required: bool = False, must_exist: bool = False) -> Path | None:
        """A path taken relative to the config file's directory; None if absent or unusable."""
        value = self.text(key, None, required=required, check=_nonempty_error)
        if value is None or _nonempty_error(value) is not None:
            return None
        path = self.base_dir / value  # an absolute value replaces base_dir
        if must_exist and (reason := _file_error(path)) is not None:
            self.fail(key, reason)
            return None
        return path

    def child(self, key: str, *, required: bool = False) -> _Reader:
        return self.sub(self.get(key, Mapping, "a mapping", required=required), self.at(key))

    def items(self, key: str, what: str) -> list[_Reader]:
        value = self.get(key, list, "a list", required=True)
        if value == []:
            self.fail(key, f"needs at least one {what}")
        items = value if isinstance(value, list) else []
        return [self.sub(item, f"{self.at(key)}[{i}]") for i, item in enumerate(items)]

    def entries(self) -> list[tuple[str, object]]:
        self._seen.update(k for k in self._data if isinstance(k, str))
        return [(k, v) for k, v in self._data.items() if isinstance(k, str)]

    def done(self, result: _T) -> _T:
        """Report every key no getter asked for, then hand back `result`."""
        known = sorted(k for k in self._seen if isinstance(k, str))
        for key in self._data:
            if not isinstance(key, str):
                self.fail(None, f"key {key!r} is not a string")
            elif key not in self._seen:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                self.fail(key, f"unknown key; {hint}")
        return result


_MQTT_VERSIONS: dict[str, MqttVersion] = {"3.1.1": "3.1.1", "311": "3.1.1", "5": "5"}
_PLACEHOLDERS = ("node_id", "pipeline", "topic")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


def _pattern(regex: str, reason: str) -> _Check:
    compiled = re.compile(regex)
    return lambda s: None if compiled.fullmatch(s) else reason


_name_error = _pattern(r"[A-Za-z0-9_-]+", "may only use letters, digits, '_' and '-'")
_node_id_error = _pattern(r"[A-Za-z0-9_-]{1,64}", "must be 1-64 letters, digits, '_' or '-'")


def _is_utf8(s: str) -> bool:
    # A YAML escape such as "\ud800" yields a string that cannot be encoded for the wire.
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _nonempty_error(s: str) -> str | None:
    return "must not be empty" if not s else "must not contain NUL" if "\0" in s else None


def _file_error(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:
        return f"cannot access {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"not a regular file: {path}"
    return None if os.access(path, os.R_OK) else f"not readable: {path}"


def _publish_error(s: str) -> str | None:
    # Brokers refuse publishes to '$' topics: those belong to the broker itself.
    reserved = "must not start with '$' (reserved for the broker)" if s[:1] == "$" else None
    return topic_name_error(s) or reserved


def _prefix_error(s: str) -> str | None:
    slash = "must not start or end with '/'" if s[:1] == "/" or s[-1:] == "/" else None
    return _publish_error(s) or slash


def _client_id_error(s: str) -> str | None:
    return None if 0 < len(s.encode()) <= 65535 else "must be 1 to 65535 bytes of UTF-8"


def _template_error(template: str) -> str | None:
    for name in _PLACEHOLDER_RE.findall(template):
        if name not in _PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in _PLACEHOLDERS)
            return f"unknown placeholder {{{name}}}; known: {known}"
    # Filled in the way the output rules fill it. node_id and pipeline names cannot hold '/', '+'
    # or '#', so any sample stands in for them.
    rendered = template.replace("{topic}", "sample/topic")
    rendered = rendered.replace("{node_id}", "node").replace("{pipeline}", "pipeline")
    reason = _publish_error(rendered)
    return None if reason is None else f"gives an invalid topic {rendered!r}: {reason}"


def _params(r: _Reader) -> Params:
    out: dict[str, ParamValue] = {}
    for key, value in r.entries():
        # The filter ABI hands params over as 'key NUL value NUL' in UTF-8.
        if not key or "\0" in key or not _is_utf8(key):
            r.fail(None, f"parameter name {key!r} must be non-empty UTF-8 without NUL")
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


def _mqtt_version(r: _Reader) -> MqttVersion:
    value = r.get("mqtt_version", (str, int), '"3.1.1" or "5"')
    version = "5" if value is None else _MQTT_VERSIONS.get(str(value))
    if version is None:
        r.fail("mqtt_version", f'expected "3.1.1" or "5", got {_describe(value)}')
    return version or "5"


def _read_secret(r: _Reader, key: str, path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:  # never str(exc): a decode error quotes the bytes
        reason = (exc.strerror or "unreadable") if isinstance(exc, OSError) else "not UTF-8 text"
        r.fail(key, f"cannot read {path}: {reason}")
        return None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _broker(r: _Reader) -> BrokerConfig:
    host = r.text("host", "localhost", check=_nonempty_error)
    port = r.integer("port", 8883 if r.has("tls") else 1883, 1, 65535)
    client_id = r.text("client_id", None, check=_client_id_error)
    keepalive = r.integer("keepalive", 30, 5, 65535)
    version = _mqtt_version(r)
    username = r.text("username", None)
    password = r.text("password", None, secret=True)
    password_file = r.path("password_file", must_exist=True)
    if password is not None and r.has("password_file"):
        r.fail("password_file", "cannot be used together with password")
    elif password_file is not None:
        password = _read_secret(r, "password_file", password_file)
    # MQTT 3.1.1 forbids a password without a user name, and the link never sends one alone.
    if password is not None and username is None:
        r.fail("username", "required when a password is given")
    tls = _tls(r.child("tls")) if r.has("tls") else None
    min_delay = r.number("reconnect_min_delay", 1.0)
    max_delay = r.number("reconnect_max_delay", 60.0)
    if max_delay < min_delay:
        r.fail("reconnect_max_delay", f"must not be below reconnect_min_delay ({min_delay})")
    return r.done(
        BrokerConfig(
            host=host,
            port=port,
            client_id=client_id,
            keepalive=keepalive,
            mqtt_version=version,
            username=username,
            password=password,
            tls=tls,
            reconnect_min_delay=min_delay,
            reconnect_max_delay=max_delay,
        )
    )


def _modules(r: _Reader) -> dict[str, ModuleConfig]:
    if isinstance(r.value, Mapping) and not r.value:
        r.fail(None, "needs at least one module")
    modules: dict[str, ModuleConfig] = {}
    for name, value in r.entries():
        m = r.sub(value, r.at(name)).mapping()
        if (reason := _name_error(name)) is not None:
            m.fail(None, f"bad module name: {reason}")
        file = m.path("file", required=True, must_exist=True) or Path()
        params = _params(m.child("params"))
        modules[name] = m.done(ModuleConfig(name=name, file=file, params=params))
    return r.done(modules)


def _subscription(r: _Reader) -> Subscription:
    r = r.shorthand("topic")
    topic = r.text("topic", "", required=True, check=topic_filter_error)
    return r.done(Subscription(topic=topic, qos=r.integer("qos", 0, 0, 2)))


def _filter(r: _Reader, modules: Mapping[str, ModuleConfig]) -> FilterConfig:
    r = r.shorthand("module")
    module = r.text("module", "", required=True)
    if module and module not in modules:
        known = ", ".join(sorted(modules)) or "(none)"
        r.fail("module", f"unknown module {module!r}; known: {known}")
    inherited = modules[module].params if module in modules else {}
    params = MappingProxyType({**inherited, **_params(r.child("params"))})
    tick = r.number("tick_interval", None)
    return r.done(FilterConfig(module=module, params=params, tick_interval=tick))


def _output(r: _Reader) -> OutputRule:
    return r.mapping().done(
        OutputRule(
            match=r.text("match", "#", check=topic_filter_error),
            topic=r.text("topic", "", required=True, check=_template_error),
            qos=r.integer("qos", 0, 0, 2),
            retain=r.flag("retain", False),
        )
    )


def _pipeline(r: _Reader, modules: Mapping[str, ModuleConfig]) -> PipelineConfig:
    return r.mapping().done(
        PipelineConfig(
            name=r.text("name", "", required=True, check=_name_error),
            subscribe=tuple(_subscription(s) for s in r.items("subscribe", "topic filter")),
            filters=tuple(_filter(f, modules) for f in r.items("filters", "filter")),
            outputs=tuple(_output(o) for o in r.items("outputs", "output rule")),
        )
    )


def _log(r: _Reader) -> LogConfig:
    return r.done(
        LogConfig(
            level=r.choice("level", ("debug", "info", "warning", "error"), "info"),
            format=r.choice("format", ("auto", "json", "console"), "auto"),
            summary_interval=r.number("summary_interval", 60.0),
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
    topic_prefix = r.text("topic_prefix", "edged", check=_prefix_error)
    state_dir = r.path("state_dir")
    broker = _broker(r.child("broker", required=True))
    modules = _modules(r.child("modules", required=True))
    pipelines: list[PipelineConfig] = []
    for item in r.items("pipelines", "pipeline"):
        pipeline = _pipeline(item, modules)
        if pipeline.name and pipeline.name in (p.name for p in pipelines):
            item.fail("name", f"duplicate pipeline name {pipeline.name!r}")
        pipelines.append(pipeline)
    config = r.done(
        Config(
            node_id=node_id,
            topic_prefix=topic_prefix,
            state_dir=state_dir,
            broker=broker,
            modules=MappingProxyType(modules),
            pipelines=tuple(pipelines),
            log=_log(r.child("log")),
        )
    )
    if errors:
        raise ConfigError(errors, source)
    return config


def _read_yaml(path: Path, source: str) -> object:
    try:
        return yaml.safe_load(path.read_bytes())
    except OSError as exc:
        error = f"<file>: cannot read: {(exc.strerror or str(exc)).lower()}"
    # Built from the parts, never str(exc): PyYAML's own message quotes the offending lines or
    # bytes, which may be part of a password.
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        error = f"{where}: invalid YAML: {exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark:
            error += f" ({exc.context} at line {exc.context_mark.line + 1})"
    except yaml.reader.ReaderError as exc:
        error = f"<file>: invalid text at byte {exc.position}: {exc.reason}"
    except yaml.YAMLError:
        error = "<file>: invalid YAML"
    raise ConfigError([error], source) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the config file at `path`; raise ConfigError listing every problem."""
    source = os.fspath(path)
    file = Path(source).absolute()
    config = parse_config(_read_yaml(file, source), source=source, base_dir=file.parent)
    return replace(config, source=file)

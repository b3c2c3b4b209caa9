"""The operator side of remote deploys (docs/deploy.md): `edged keygen` and `edged module ...`.

    keygen      an ed25519 key pair: the private key for `module push --key`, the public one for
                the nodes' `deploy.trusted_keys`
    push        sign a module with manifest.build, publish it to a node or a group, wait for acks
    rollback    ask the node(s) to go back to the previous version of a module
    remove      ask the node(s) to drop the pushed version and go back to the config's file
    status      read the nodes' retained `modules` status and show it as a table

Every usage mistake (a missing file, a bad key, a wrong option) is an EdgedError, which the CLI
turns into one message and exit 2; a deploy that a node refuses, or that some node never answers,
ends in exit 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from edged.errors import BrokerError, EdgedError
from edged.topics import topic_name_error

# paho, cryptography and the config loader are imported where they are used: the parsers are
# built on every `edged` command, and importing them here would add ~0.1 s to each.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edged.config import BrokerConfig, ParamValue

EXIT_OK = 0
EXIT_FAILED = 1

WASM_MAGIC = b"\0asm"
# What counts as success in an ack, per command; anything else (refused, a rollback in probation
# after a push) or no answer at all makes the command exit 1.
SUCCESS = {
    "push": frozenset({"activated", "already_active"}),
    "rollback": frozenset({"rolled_back"}),
    "remove": frozenset({"removed"}),
}

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


# --- arguments --------------------------------------------------------------------------------


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keygen` and `module` (push, rollback, remove, status) on the `edged` command."""
    keygen = commands.add_parser("keygen", help="make a key pair for signing module deploys")
    keygen.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PATH",
        help="the private key goes to PATH (mode 0600), the public key to PATH.pub",
    )

    module = commands.add_parser("module", help="deploy filter modules to nodes over MQTT")
    actions = module.add_subparsers(dest="module_command", required=True, metavar="ACTION")

    push = actions.add_parser("push", help="sign and push a module version, wait for the acks")
    push.add_argument("file", type=Path, metavar="FILE", help="the module's .wasm file")
    push.add_argument("--name", required=True, help="the module's name in the nodes' configs")
    push.add_argument("--version", required=True, type=int, metavar="N", help="1, 2, 3, ...")
    push.add_argument("--key", type=Path, metavar="KEY.pem", help="from `edged keygen`")
    push.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="module params (replace the config's); 30, 0.5, true and false are typed",
    )
    push.add_argument(
        "--unsigned", action="store_true", help="no signature (nodes with allow_unsigned only)"
    )
    push.add_argument(
        "--retain", action="store_true", help="retain the deploy, for nodes that come later"
    )

    rollback = actions.add_parser("rollback", help="back to the previous version of a module")
    remove = actions.add_parser("remove", help="drop the pushed version, back to the config's")
    for sub in (rollback, remove):
        sub.add_argument("--name", required=True, help="the module's name")

    for sub in (push, rollback, remove):
        _add_target(sub)
        sub.add_argument(
            "--expect",
            type=int,
            metavar="N",
            help="with --group: stop once N nodes answered (default: wait the whole timeout)",
        )
        _add_broker(sub)
        sub.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")

    status = actions.add_parser("status", help="show what the nodes run, from the broker")
    _add_target(status)
    _add_broker(status)
    status.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS")
    status.add_argument("--json", action="store_true", help="print the status JSON as it is")


def _add_target(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--node", metavar="ID", help="one node, by its node_id")
    target.add_argument("--group", metavar="G", help="every node with G in deploy.groups")


def _add_broker(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config", "-c", type=Path, metavar="CFG", help="a node config, for its broker settings"
    )
    where.add_argument(
        "--broker", metavar="HOST:PORT", help="a plain broker (default: localhost:1883)"
    )
    parser.add_argument(
        "--prefix", help="the nodes' topic_prefix (default: the config's, else edged)"
    )


def run_command(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        return keygen(args.out, sys.stdout)
    if args.module_command == "push":
        return push(args, sys.stdout, sys.stderr)
    if args.module_command in ("rollback", "remove"):
        return control(args, sys.stdout, sys.stderr)
    return status(args, sys.stdout)


# --- keygen -----------------------------------------------------------------------------------


def keygen(out: Path, stdout: TextIO) -> int:
    """Write a new key pair to `out` and `out.pub`, never over an existing file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from edged.keys import key_id

    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists() or path.is_symlink():
            raise EdgedError(f"{path} already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    line = base64.b64encode(raw).decode()
    _write_new(out, pem, 0o600)
    try:
        _write_new(pub, (line + "\n").encode(), 0o644)
    except EdgedError:
        out.unlink()
        raise
    print(f"key id {key_id(key.public_key())}", file=stdout)
    print(f"private key: {out} (keep it secret; for `edged module push --key`)", file=stdout)
    print(f"public key:  {pub}", file=stdout)
    print("add this line under deploy.trusted_keys in each node's config:", file=stdout)
    print(f'    - "{line}"', file=stdout)
    return EXIT_OK


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise EdgedError(f"{path} already exists; not overwriting a key") from None
    except OSError as exc:
        raise EdgedError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgedError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: encrypted, and no password given
        raise EdgedError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgedError(f"{path} is not an ed25519 key (make one with `edged keygen`)")
    return key


# --- params and targets -----------------------------------------------------------------------


def param_value(text: str) -> ParamValue:
    """A --param value typed as YAML would: "30" -> 30, "0.5" -> 0.5, "true" -> True."""
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text) and math.isfinite(value := float(text)):
        return value
    return text


def parse_params(pairs: Iterable[str]) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgedError(f"--param {pair!r}: expected KEY=VALUE")
        if "\0" in pair:
            raise EdgedError(f"--param {key!r}: cannot contain NUL")
        params[key] = param_value(value)
    return params


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes and where its acks come from."""

    prefix: str
    node: str | None
    group: str | None

    def request_topic(self, kind: str) -> str:
        if self.node is not None:
            return f"{self.prefix}/{self.node}/{kind}"
        return f"{self.prefix}/groups/{self.group}/{kind}"

    def topic_filter(self, kind: str) -> str:
        """`ack` or `modules` of the node, or of every node (a group's members are not known)."""
        return f"{self.prefix}/{self.node if self.node is not None else '+'}/{kind}"

    def node_of(self, topic: str) -> str:
        return topic.removeprefix(self.prefix + "/").rpartition("/")[0]

    def describe(self) -> str:
        return f"node {self.node}" if self.node is not None else f"group {self.group}"


def _target(args: argparse.Namespace, prefix: str) -> Target:
    for option, value in (("--node", args.node), ("--group", args.group)):
        if value is not None and (not value or any(c in value for c in "/+#\0")):
            raise EdgedError(f"{option} {value!r}: must be non-empty, without / + # or NUL")
    expect = getattr(args, "expect", None)
    if expect is not None and args.node is not None:
        raise EdgedError("--expect is for --group: a --node request expects its one node")
    if expect is not None and expect < 1:
        raise EdgedError(f"--expect must be at least 1, got {expect}")
    if not args.timeout > 0:
        raise EdgedError(f"--timeout must be above 0, got {args.timeout:g}")
    return Target(prefix=prefix, node=args.node, group=args.group)


# --- the broker -------------------------------------------------------------------------------


def _parse_broker(text: str) -> BrokerConfig:
    from edged.config import BrokerConfig

    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "1883"
    host = host.removeprefix("[").removesuffix("]")  # [::1]:1883
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EdgedError(f"--broker {text!r}: expected HOST:PORT")
    return BrokerConfig(
        host=host,
        port=int(port_text),
        client_id=None,
        keepalive=30,
        mqtt_version="5",
        username=None,
        password=None,
        tls=None,
        reconnect_min_delay=1.0,
        reconnect_max_delay=60.0,
    )


def broker_and_prefix(args: argparse.Namespace) -> tuple[BrokerConfig, str]:
    """The broker from --config (its whole broker section) or --broker, and the topic prefix."""
    if args.config is not None:
        from edged.config import load_config

        config = load_config(args.config)
        broker, prefix = config.broker, config.topic_prefix
    else:
        broker, prefix = _parse_broker(args.broker or "localhost:1883"), "edged"
    if args.prefix is not None:
        prefix = args.prefix
        if (error := topic_name_error(prefix)) is not None or prefix.endswith("/"):
            raise EdgedError(f"--prefix {prefix!r}: {error or 'must not end with /'}")
    return broker, prefix


class Session:
    """A short-lived MQTT client: connect, subscribe, publish, read what arrives."""

    def __init__(self, broker: BrokerConfig, purpose: str, timeout: float = 10.0) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.broker = broker
        self.timeout = timeout
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._subacks: queue.Queue[tuple[int, list[Any]]] = queue.Queue()
        self._topics: list[tuple[str, int]] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edged-{purpose}-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if broker.mqtt_version == "5" else paho.MQTTv311,
        )
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls is not None:
            tls = broker.tls
            self.client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self._subacks.put((mid, codes))
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain))
        )

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            for topic, qos in self._topics:  # again after a reconnect
                client.subscribe(topic, qos)
        self._connected.set()

    def __enter__(self) -> Session:
        b = self.broker
        try:
            self.client.connect(b.host, b.port, keepalive=b.keepalive)
        except OSError as exc:
            raise BrokerError(f"cannot connect to {b.host}:{b.port}: {exc}") from None
        self.client.loop_start()
        try:
            if not self._connected.wait(self.timeout):
                raise BrokerError(f"no answer from the broker at {b.host}:{b.port}")
            if self._refused is not None:
                raise BrokerError(f"the broker at {b.host}:{b.port} refused us: {self._refused}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the broker to confirm, so nothing published after is missed."""
        self._topics.append((topic, qos))
        _, mid = self.client.subscribe(topic, qos)
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, codes = self._subacks.get(timeout=left)
            except queue.Empty:
                break
            if got == mid:
                if any(code.is_failure for code in codes):
                    raise BrokerError(f"the broker refused the subscription to {topic}")
                return
        raise BrokerError(f"the broker did not confirm the subscription to {topic}")

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"cannot publish to {topic}: {exc}") from None
        if not info.is_published():
            raise BrokerError(f"the broker did not take the message on {topic}")


# --- acks -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """One node's answer to one request, from `<prefix>/<node>/ack` (edged/deploy/manager.py)."""

    node: str
    result: str  # activated, already_active, refused, rolled_back, removed
    request_id: str | None
    module: str | None = None
    version: int | None = None  # the version now active (0: the config's file) or refused
    digest: str | None = None
    reason: str | None = None
    detail: str | None = None
    failed_version: int | None = None  # a rollback in probation: the version that failed

    @classmethod
    def parse(cls, node: str, payload: bytes) -> Ack | None:
        """The ack in `payload`, published by `node` (from its topic), or None if it is not one."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("result"), str):
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        def number(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            node=node,
            result=data["result"],
            request_id=text("request_id"),
            module=text("module"),
            version=number("version"),
            digest=text("digest"),
            reason=text("reason"),
            detail=text("detail"),
            failed_version=number("failed_version"),
        )

    def line(self) -> str:
        """`gw-1: activated threshold v7 (sha256 1a2b3c4d…)` or `gw-2: refused: reason — detail`."""
        if self.result == "refused":
            line = f"{self.node}: refused: {self.reason or '?'}"
        else:
            line = f"{self.node}: {self.result}"
            if self.module is not None:
                line += f" {self.module}"
            if self.version == 0:
                line += " (the config's file)"
            elif self.version is not None:
                line += f" v{self.version}"
            if self.digest is not None:
                line += f" (sha256 {self.digest[:8]}…)"
            if self.reason is not None:
                line += f": {self.reason}"
        return line + (f" — {self.detail}" if self.detail else "")


class _Progress:
    """A `waiting: 1 of 3 answered, 7 s left` line on a terminal; nothing elsewhere."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.live = err.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.live:
            self.err.write(f"\r\033[K{text}")
            self.err.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self.shown = False


def await_acks(
    session: Session,
    target: Target,
    request_id: str,
    *,
    expect: int | None,
    timeout: float,
    ok: frozenset[str],
    out: TextIO,
    err: TextIO,
    pushed: tuple[str, int] | None = None,
) -> int:
    """Print each ack to `request_id` as it comes; exit 0 only if every expected node answered ok.

    A node's later ack replaces its first: with `pushed` (module, version), that includes the
    rollback a node makes by itself when the pushed version fails its probation.
    """
    wanted = 1 if target.node is not None else expect
    answers: dict[str, Ack] = {}
    progress = _Progress(err)
    deadline = time.monotonic() + timeout
    while wanted is None or len(answers) < wanted:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        count = f"{len(answers)} of {wanted}" if wanted is not None else f"{len(answers)}"
        progress.show(f"waiting for acks: {count} answered, {math.ceil(left)} s left")
        try:
            topic, payload, _ = session.messages.get(timeout=min(left, 0.25))
        except queue.Empty:
            continue
        ack = Ack.parse(target.node_of(topic), payload)
        if ack is None:
            continue
        if ack.request_id != request_id and not (
            pushed is not None
            and ack.node in answers
            and ack.result == "rolled_back"
            and (ack.module, ack.failed_version) == pushed
        ):
            continue  # another request's answer
        answers[ack.node] = ack
        progress.clear()
        print(ack.line(), file=out, flush=True)
    progress.clear()

    failed = [a for a in answers.values() if a.result not in ok]
    missing = max(0, (wanted or 1) - len(answers))
    if target.node is not None:
        if missing:
            print(f"{target.node}: no answer within {timeout:g} s", file=out)
    else:
        results: dict[str, int] = {}
        for ack in answers.values():
            results[ack.result] = results.get(ack.result, 0) + 1
        counts = ", ".join(f"{n} {r}" for r, n in sorted(results.items()))
        if wanted is None:
            head = f"{len(answers)} node{'s' if len(answers) != 1 else ''} of {target.describe()}"
            head += f" answered within {timeout:g} s"
        else:
            head = f"{len(answers)} of {wanted} expected nodes answered"
            if missing:
                head += f" within {timeout:g} s ({missing} missing)"
        print(head + (f": {counts}" if counts else ""), file=out)
    return EXIT_FAILED if failed or missing else EXIT_OK


# --- push, rollback, remove -------------------------------------------------------------------


def push(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.unsigned and args.key is not None:
        raise EdgedError("--unsigned and --key exclude each other")
    if not args.unsigned and args.key is None:
        raise EdgedError("--key KEY.pem is required (or --unsigned, for nodes that allow it)")
    if args.version < 1:
        raise EdgedError(f"--version must be at least 1, got {args.version}")
    try:
        wasm = args.file.read_bytes()
    except OSError as exc:
        raise EdgedError(f"cannot read {args.file}: {exc.strerror}") from None
    if not wasm.startswith(WASM_MAGIC):
        raise EdgedError(f"{args.file} is not a WebAssembly module")
    from edged.deploy import manifest
    from edged.keys import key_id

    key = None if args.unsigned else load_private_key(args.key)
    params = parse_params(args.param) if args.param else None
    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    request_id = uuid.uuid4().hex
    message = manifest.build(
        args.name, args.version, wasm, key=key, params=params, request_id=request_id
    )
    digest = manifest.parse(message)[0].sha256
    signed = "unsigned" if key is None else f"key {key_id(key.public_key())}"
    topic = target.request_topic("deploy")
    with Session(broker, "push", min(args.timeout, 10.0) + 5.0) as session:
        session.subscribe(target.topic_filter("ack"))
        session.publish(topic, message, qos=1, retain=args.retain)
        print(
            f"pushed {args.name} v{args.version} ({len(wasm)} bytes, sha256 {digest[:8]}…, "
            f"{signed}) to {topic}",
            file=err,
            flush=True,
        )
        return await_acks(
            session,
            target,
            request_id,
            expect=args.expect,
            timeout=args.timeout,
            ok=SUCCESS["push"],
            out=out,
            err=err,
            pushed=(args.name, args.version),
        )


def control(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`module rollback` and `module remove`: `{"module", "request_id"}` to the node(s)."""
    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    request_id = uuid.uuid4().hex
    kind = args.module_command
    topic = target.request_topic(kind)
    payload = json.dumps({"module": args.name, "request_id": request_id}).encode()
    with Session(broker, kind, min(args.timeout, 10.0) + 5.0) as session:
        session.subscribe(target.topic_filter("ack"))
        session.publish(topic, payload, qos=1)
        print(f"sent {kind} of {args.name} to {topic}", file=err, flush=True)
        return await_acks(
            session,
            target,
            request_id,
            expect=args.expect,
            timeout=args.timeout,
            ok=SUCCESS[kind],
            out=out,
            err=err,
        )


# --- status -----------------------------------------------------------------------------------


def fetch_status(session: Session, target: Target, timeout: float) -> dict[str, dict[str, Any]]:
    """The nodes' retained `modules` status, by node: for a group, only its members'."""
    session.subscribe(target.topic_filter("modules"))
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None  # retained messages come in one burst after the SUBACK
    while (left := deadline - time.monotonic()) > 0:
        if quiet_until is not None:
            left = min(left, quiet_until - time.monotonic())
            if left <= 0:
                break
        try:
            topic, payload, _ = session.messages.get(timeout=left)
        except queue.Empty:
            break
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        groups = data.get("groups")
        if target.group is not None and isinstance(groups, list) and target.group not in groups:
            continue
        found[target.node_of(topic)] = data
        if target.node is not None:
            break
        quiet_until = time.monotonic() + 0.5
    return found


def _module_rows(data: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(module, its entry) from a status: `{"node_id", "groups", "modules": {name: {...}}}`."""
    modules = data.get("modules")
    if not isinstance(modules, dict):
        return []
    return [(str(name), m) for name, m in modules.items() if isinstance(m, dict)]


def render_status(found: Mapping[str, Mapping[str, Any]], out: TextIO) -> None:
    rows = [("node", "module", "version", "digest", "source", "probation")]
    for node in sorted(found):
        for name, entry in sorted(_module_rows(found[node])):
            version = entry.get("version")
            digest = entry.get("digest")
            rows.append(
                (
                    node,
                    name,
                    "-" if version is None else str(version),
                    digest[:12] if isinstance(digest, str) and digest else "-",
                    str(entry.get("source") or "-"),
                    "yes" if entry.get("probation") else "-",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)


def status(args: argparse.Namespace, out: TextIO) -> int:
    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    with Session(broker, "status", min(args.timeout, 10.0) + 5.0) as session:
        found = fetch_status(session, target, args.timeout)
    if not found:
        raise BrokerError(
            f"no modules status on {target.topic_filter('modules')} within {args.timeout:g} s"
            + (f" from a member of group {target.group}" if target.group is not None else "")
            + ": is the node running, with a broker and prefix that match?"
        )
    if args.json:
        print(json.dumps(found[target.node] if target.node is not None else found), file=out)
    else:
        render_status(found, out)
    return EXIT_OK

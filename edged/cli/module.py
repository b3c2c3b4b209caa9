"""`edged module push|rollback|remove|status`: the operator's side of remote deploys.

    push        sign a module with manifest.build, publish it to a node or a group, wait for acks
    rollback    ask the node(s) to go back to the previous version of a module
    remove      ask the node(s) to drop the pushed version and go back to the config's file
    status      read the nodes' retained `modules` status and show it as a table

The topics, requests, acks and status are those of edged/deploy/protocol.py, which the nodes
use too; keys come from `edged keygen` (edged/cli/keygen.py). A usage mistake (a missing file,
a bad key, a wrong option) exits 2; a broker that cannot be reached, or refuses us, exits 69; a
deploy that a node refuses, or that some node never answers, exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edged.errors import EdgedError
from edged.topics import topic_name_error

# paho, cryptography, the config loader and even the protocol's dataclasses are imported where
# they are used: the parsers are built on every `edged` command, `edged run` included, and
# importing them here would add ~0.1 s to each (the protocol module alone ~10 ms).
if TYPE_CHECKING:
    from edged.config import BrokerConfig
    from edged.deploy.protocol import Ack, ModulesStatus, Target
    from edged.mqtt.session import Session

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_BROKER = "localhost:1883"
DEFAULT_PREFIX = "edged"

WASM_MAGIC = b"\0asm"


# --- arguments --------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--capability",
        action="append",
        default=None,
        metavar="NAME",
        help="a WASI capability the module needs (clock, random, log); repeatable; default: "
        "read from the module's imports",
    )
    push.add_argument(
        "--unsigned", action="store_true", help="no signature (nodes with allow_unsigned only)"
    )
    push.add_argument(
        "--retain", action="store_true", help="retain the deploy, for nodes that come later"
    )
    push.set_defaults(handler=_push)

    rollback = actions.add_parser("rollback", help="back to the previous version of a module")
    rollback.set_defaults(handler=_control, action="rollback")
    remove = actions.add_parser("remove", help="drop the pushed version, back to the config's")
    remove.set_defaults(handler=_control, action="remove")
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
    status.set_defaults(handler=_status)


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
        "--broker", metavar="HOST:PORT", help=f"a plain broker (default: {DEFAULT_BROKER})"
    )
    parser.add_argument(
        "--prefix", help=f"the nodes' topic_prefix (default: the config's, else {DEFAULT_PREFIX})"
    )


def _push(args: argparse.Namespace) -> int:
    return push(args, sys.stdout, sys.stderr)


def _control(args: argparse.Namespace) -> int:
    return control(args, sys.stdout, sys.stderr)


def _status(args: argparse.Namespace) -> int:
    return status(args, sys.stdout)


# --- targets and the broker -------------------------------------------------------------------


def _target(args: argparse.Namespace, prefix: str) -> Target:
    from edged.deploy.protocol import Target

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


def _describe(target: Target) -> str:
    return f"node {target.node}" if target.node is not None else f"group {target.group}"


def _parse_broker(text: str) -> BrokerConfig:
    from edged.config import BrokerConfig

    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "1883"
    host = host.removeprefix("[").removesuffix("]")  # [::1]:1883
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EdgedError(f"--broker {text!r}: expected HOST:PORT")
    return BrokerConfig(host=host, port=int(port_text))


def broker_and_prefix(args: argparse.Namespace) -> tuple[BrokerConfig, str]:
    """The broker from --config (its whole broker section) or --broker, and the topic prefix."""
    if args.config is not None:
        from edged.config import load_config

        config = load_config(args.config)
        broker, prefix = config.broker, config.topic_prefix
    else:
        broker, prefix = _parse_broker(args.broker or DEFAULT_BROKER), DEFAULT_PREFIX
    if args.prefix is not None:
        prefix = args.prefix
        if (error := topic_name_error(prefix)) is not None or prefix.endswith("/"):
            raise EdgedError(f"--prefix {prefix!r}: {error or 'must not end with /'}")
    return broker, prefix


def _session(broker: BrokerConfig, purpose: str, timeout: float) -> Session:
    from edged.mqtt.session import Session

    # Each wait for the broker (connect, subscribe, publish) gets 5 s more than --timeout, and
    # 15 s at most: --timeout is for the nodes' answers, a short one must not fail the connect.
    return Session(broker, purpose, min(timeout, 10.0) + 5.0)


# --- acks -------------------------------------------------------------------------------------


def ack_line(ack: Ack) -> str:
    """`gw-1: activated threshold v7 (sha256 1a2b3c4d…)` or `gw-2: refused: reason — detail`."""
    from edged.deploy import protocol

    if ack.result == protocol.REFUSED:
        line = f"{ack.node_id}: refused: {ack.reason or '?'}"
    else:
        line = f"{ack.node_id}: {ack.result}"
        if ack.module is not None:
            line += f" {ack.module}"
        if ack.version == 0:
            line += " (the config's file)"
        elif ack.version is not None:
            line += f" v{ack.version}"
        if ack.digest is not None:
            line += f" (sha256 {ack.digest[:8]}…)"
        if ack.reason is not None:
            line += f": {ack.reason}"
    return line + (f" — {ack.detail}" if ack.detail else "")


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
    from edged.deploy.protocol import ROLLED_BACK, Ack

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
        message = session.next(min(left, 0.25))
        if message is None:
            continue
        ack = Ack.parse(message.payload, target.node_of(message.topic))
        if ack is None:
            continue
        if ack.request_id != request_id and not (
            pushed is not None
            and ack.node_id in answers
            and ack.result == ROLLED_BACK
            and (ack.module, ack.failed_version) == pushed
        ):
            continue  # another request's answer
        answers[ack.node_id] = ack
        progress.clear()
        print(ack_line(ack), file=out, flush=True)
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
            head = f"{len(answers)} node{'s' if len(answers) != 1 else ''} of {_describe(target)}"
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
    from edged.cli.keygen import load_private_key
    from edged.cli.params import parse_params
    from edged.deploy import manifest, protocol
    from edged.keys import key_id

    key = None if args.unsigned else load_private_key(args.key)
    params = parse_params(args.param) if args.param else None
    capabilities = _capabilities(args.name, wasm, args.capability)
    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    request_id = uuid.uuid4().hex
    message = manifest.build(
        args.name,
        args.version,
        wasm,
        key=key,
        params=params,
        request_id=request_id,
        capabilities=capabilities or None,
    )
    digest = manifest.parse(message)[0].sha256
    signed = "unsigned" if key is None else f"key {key_id(key.public_key())}"
    topic = target.request_topic(protocol.DEPLOY)
    with _session(broker, "push", args.timeout) as session:
        session.subscribe(target.reply_filter(protocol.ACK))
        session.publish(topic, message, qos=1, retain=args.retain)
        needs = f", needs {', '.join(capabilities)}" if capabilities else ""
        print(
            f"pushed {args.name} v{args.version} ({len(wasm)} bytes, sha256 {digest[:8]}…, "
            f"{signed}{needs}) to {topic}",
            file=err,
            flush=True,
        )
        return await_acks(
            session,
            target,
            request_id,
            expect=args.expect,
            timeout=args.timeout,
            ok=protocol.SUCCESS[protocol.DEPLOY],
            out=out,
            err=err,
            pushed=(args.name, args.version),
        )


def _capabilities(name: str, wasm: bytes, given: list[str] | None) -> list[str]:
    """The WASI capabilities to ask for: `given` (checked), else what the module's imports
    need, read by compiling it as a node would. A module the engine refuses asks for none:
    the nodes refuse it, each with its reason in its ack."""
    from edged.config.model import CAPABILITIES

    if given is not None:
        unknown = sorted(set(given) - set(CAPABILITIES))
        if unknown:
            raise EdgedError(
                f"--capability {unknown[0]}: unknown; known: {', '.join(CAPABILITIES)}"
            )
        return sorted(set(given))
    from edged.engine import WasmtimeEngine
    from edged.errors import ModuleError

    engine = WasmtimeEngine()
    try:
        return sorted(engine.load(name, wasm).capabilities_needed)
    except ModuleError:
        return []
    finally:
        engine.close()


def control(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`module rollback` and `module remove`: a `Request` to the node(s), then their acks."""
    from edged.deploy import protocol

    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    request_id = uuid.uuid4().hex
    action: str = args.action
    topic = target.request_topic(action)
    with _session(broker, action, args.timeout) as session:
        session.subscribe(target.reply_filter(protocol.ACK))
        session.publish(topic, protocol.Request(args.name, request_id).encode(), qos=1)
        print(f"sent {action} of {args.name} to {topic}", file=err, flush=True)
        return await_acks(
            session,
            target,
            request_id,
            expect=args.expect,
            timeout=args.timeout,
            ok=protocol.SUCCESS[action],
            out=out,
            err=err,
        )


# --- status -----------------------------------------------------------------------------------


def fetch_status(
    session: Session, target: Target, timeout: float
) -> dict[str, tuple[dict[str, Any], ModulesStatus]]:
    """The nodes' retained `modules` status, by node, as sent and as read: for a group, only its
    members'."""
    from edged.deploy.protocol import MODULES, ModulesStatus

    session.subscribe(target.reply_filter(MODULES))
    found: dict[str, tuple[dict[str, Any], ModulesStatus]] = {}
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None  # retained messages come in one burst after the SUBACK
    while (left := deadline - time.monotonic()) > 0:
        if quiet_until is not None:
            left = min(left, quiet_until - time.monotonic())
            if left <= 0:
                break
        message = session.next(left)
        if message is None:
            break
        try:
            data = json.loads(message.payload)
        except ValueError:
            continue
        status = ModulesStatus.from_json(data)
        if status is None:
            continue
        if target.group is not None and not status.member_of(target.group):
            continue
        found[target.node_of(message.topic)] = (data, status)
        if target.node is not None:
            break
        quiet_until = time.monotonic() + 0.5
    return found


def render_status(found: Mapping[str, ModulesStatus], out: TextIO) -> None:
    rows = [("node", "module", "version", "digest", "source", "probation")]
    for node in sorted(found):
        for name, entry in sorted(found[node].modules.items()):
            rows.append(
                (
                    node,
                    name,
                    "-" if entry.version is None else str(entry.version),
                    entry.digest[:12] if entry.digest else "-",
                    entry.source or "-",
                    "yes" if entry.probation else "-",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)


def status(args: argparse.Namespace, out: TextIO) -> int:
    from edged.deploy.protocol import MODULES

    broker, prefix = broker_and_prefix(args)
    target = _target(args, prefix)
    with _session(broker, "status", args.timeout) as session:
        found = fetch_status(session, target, args.timeout)
    if not found:
        # The broker answered; no node did. A wrong node, group or prefix, like a wrong option.
        raise EdgedError(
            f"no modules status on {target.reply_filter(MODULES)} within "
            f"{args.timeout:g} s"
            + (f" from a member of group {target.group}" if target.group is not None else "")
            + ": is the node running, with a broker and prefix that match?"
        )
    if args.json:
        raw = {node: data for node, (data, _) in found.items()}
        print(json.dumps(raw[target.node] if target.node is not None else raw), file=out)
    else:
        render_status({node: status for node, (_, status) in found.items()}, out)
    return EXIT_OK

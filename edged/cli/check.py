"""`edged check`: validate a config and load its modules and pipelines, as `edged run` would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edged.config import Config


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="validate a config and load its modules")
    check.add_argument("--config", "-c", required=True, type=Path)
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    from edged.config import load_config
    from edged.config.model import DEFAULT_BROKER
    from edged.errors import CredentialsError
    from edged.mqtt.credentials import expiry_warnings, load_credentials
    from edged.mqtt.mosquitto import session_warnings
    from edged.pipeline.assembly import build_pipelines, make_engine

    path: Path = args.config
    config = load_config(path)
    pipelines = build_pipelines(config, make_engine(config), lambda *_: True)
    steps = sum(len(p.steps) for p in pipelines)
    for broker in config.brokers.values():
        # where the broker is in the config: `broker:` is the one named `default`
        key = "broker" if broker.name == DEFAULT_BROKER else f"brokers.{broker.name}"
        warnings = session_warnings(broker.host, broker.session_expiry, key=key, port=broker.port)
        for warning in warnings:
            print(f"edged: warning: {warning}", file=sys.stderr)
        # The daemon would start and retry these for ever: a broken pair is an error here.
        try:
            load_credentials(broker)
        except CredentialsError as exc:
            raise CredentialsError(f"{key}.{exc.key}", exc.path, exc.reason) from None
        for warning in expiry_warnings(broker, key):
            print(f"edged: warning: {warning}", file=sys.stderr)
    if config.http is not None and not config.http.loopback:
        print(
            f"edged: warning: http.listen is {config.http.listen}: /metrics, /healthz and "
            "/readyz are open to the network (no authentication); keep it on 127.0.0.1 or a "
            "socket unless a firewall limits who reaches it (systemd/README.md)",
            file=sys.stderr,
        )
    print(
        f"{path}: OK: {len(config.modules)} modules, {len(pipelines)} pipelines, "
        f"{steps} filter instances"
    )
    if len(config.brokers) > 1:
        print(_routes(config))
    return 0


def _routes(config: Config) -> str:
    """Which broker each subscription and output rule uses, and where the control topics are."""
    lines = [
        "brokers: "
        + ", ".join(f"{b.name} ({b.host}:{b.port})" for b in config.brokers.values())
        + f"; control topics on {config.control_broker}"
    ]
    for pc in config.pipelines:
        lines.append(f"pipeline {pc.name}:")
        lines += [f"  in  {s.topic} (QoS {s.qos}) from {s.broker}" for s in pc.subscribe]
        lines += [f"  out {o.match} -> {o.topic} (QoS {o.qos}) to {o.broker}" for o in pc.outputs]
    return "\n".join(lines)

"""`edged check`: validate a config and load its modules and pipelines, as `edged run` would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="validate a config and load its modules")
    check.add_argument("--config", "-c", required=True, type=Path)
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    from edged.config import load_config
    from edged.mqtt.mosquitto import session_warnings
    from edged.pipeline.assembly import build_pipelines, make_engine

    path: Path = args.config
    config = load_config(path)
    pipelines = build_pipelines(config, make_engine(config), lambda *_: True)
    steps = sum(len(p.steps) for p in pipelines)
    for warning in session_warnings(config.broker.host, config.broker.session_expiry):
        print(f"edged: warning: {warning}", file=sys.stderr)
    print(
        f"{path}: OK: {len(config.modules)} modules, {len(pipelines)} pipelines, "
        f"{steps} filter instances"
    )
    return 0

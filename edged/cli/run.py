"""`edged run`: the daemon, in the foreground (as systemd starts it)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", "-c", required=True, type=Path, help="the YAML config file")
    run.set_defaults(handler=run_daemon)


def run_daemon(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every other command builds this parser too, and the
    # daemon's imports (the config loader, paho, wasmtime) are most of a command's start-up.
    from edged.config import load_config
    from edged.daemon import logs as log
    from edged.daemon.daemon import Daemon

    path: Path = args.config
    config = load_config(path)
    log.configure(
        config.log.level,
        config.log.format,
        file=config.log.file,
        max_bytes=config.log.max_bytes,
        backups=config.log.backups,
    )
    Daemon(config, config_path=path).run()
    return 0

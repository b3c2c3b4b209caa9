"""The `edged` command. Every failure a user can cause ends in one clear message and exit 2;
anything else the daemon hits at run time ends in exit 1."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import edged
from edged.errors import ConfigError, EdgedError

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged", description="MQTT in, sandboxed WebAssembly filters, MQTT out."
    )
    parser.add_argument("--version", action="version", version=f"edged {edged.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", "-c", required=True, type=Path, help="the YAML config file")

    check = commands.add_parser("check", help="validate a config and load its modules")
    check.add_argument("--config", "-c", required=True, type=Path)

    stats = commands.add_parser("stats", help="show a node's metrics, read from the broker")
    stats.add_argument("--config", "-c", required=True, type=Path, help="for the broker settings")
    stats.add_argument("--node", help="the node to show (default: the config's node_id)")
    stats.add_argument("--json", action="store_true", help="print the metrics JSON as it is")
    stats.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")

    from edged.cli.logs import add_arguments as add_logs_arguments

    add_logs_arguments(commands.add_parser("logs", help="show the daemon's logs, filtered"))

    demo = commands.add_parser("demo", help="run the demo on a private broker")
    demo.add_argument("--rounds", type=int, default=12, help="readings per sensor")

    filt = commands.add_parser("filter", help="tools for filter authors")
    filter_commands = filt.add_subparsers(dest="filter_command", required=True, metavar="ACTION")
    frun = filter_commands.add_parser(
        "run", help="run one filter over JSON lines and print what it emits"
    )
    frun.add_argument("module", type=Path, help="the filter's .wasm file")
    frun.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    frun.add_argument("--input", "-i", type=Path, help="JSON lines file (default: stdin)")
    frun.add_argument(
        "--tick-at-end", action="store_true", help="call edged_on_tick once at the end"
    )

    from edged.authoring.scaffold import add_parsers as add_authoring_parsers

    add_authoring_parsers(filter_commands)

    from edged.cli.service import add_parsers as add_service_parsers

    add_service_parsers(commands)

    from edged.cli.module import add_parsers as add_deploy_parsers

    add_deploy_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.config)
        if args.command == "check":
            return _check(args.config)
        if args.command == "stats":
            return _stats(args)
        if args.command == "logs":
            from edged.cli.logs import run_logs

            return run_logs(args)
        if args.command == "demo":
            from edged.cli.demo import run_demo

            return run_demo(rounds=args.rounds)
        if args.command in ("install-service", "uninstall-service"):
            from edged.cli.service import run_command

            return run_command(args)
        if args.command in ("keygen", "module"):
            from edged.cli.module import run_command as run_deploy_command

            return run_deploy_command(args)
        if args.filter_command != "run":
            from edged.authoring.scaffold import run_command as run_authoring_command

            return run_authoring_command(args, sys.stdout, sys.stderr)
        return _filter_run(args)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"edged: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EdgedError as exc:
        print(f"edged: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug of ours: one line for the user, the traceback on request
        if os.environ.get("EDGED_DEBUG"):
            traceback.print_exc()
        print(
            f"edged: internal error: {type(exc).__name__}: {exc} "
            "(set EDGED_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _run(path: Path) -> int:
    from edged.config import load_config
    from edged.daemon import logs as log
    from edged.daemon.daemon import Daemon

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


def _check(path: Path) -> int:
    from edged.config import load_config
    from edged.pipeline.assembly import build_pipelines, make_engine

    config = load_config(path)
    pipelines = build_pipelines(config, make_engine(config), lambda *_: True)
    steps = sum(len(p.steps) for p in pipelines)
    print(
        f"{path}: OK: {len(config.modules)} modules, {len(pipelines)} pipelines, "
        f"{steps} filter instances"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from edged.cli.stats import fetch_metrics, render
    from edged.config import load_config

    config = load_config(args.config)
    metrics = fetch_metrics(config, args.node or config.node_id, args.timeout)
    if args.json:
        print(json.dumps(metrics))
    else:
        render(metrics, sys.stdout)
    return 0


def _filter_run(args: argparse.Namespace) -> int:
    from edged.authoring.runner import load_filter, parse_params, run_lines

    params = parse_params(args.param)
    filt = load_filter(args.module, params, sys.stderr)
    source: TextIO
    if args.input is not None:
        try:
            source = open(args.input, encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise EdgedError(f"cannot read {args.input}: {exc.strerror}") from None
    else:
        source = sys.stdin
    with source:
        totals = run_lines(filt, source, sys.stdout, sys.stderr, tick_at_end=args.tick_at_end)
    print(
        f"{totals.messages_in} in, {totals.messages_out} out, {totals.failures} failed, "
        f"{totals.bad_lines} bad lines",
        file=sys.stderr,
    )
    return EXIT_FAILURE if totals.failures or totals.bad_lines else 0


if __name__ == "__main__":
    sys.exit(main())

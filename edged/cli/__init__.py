"""The `edged` command: one parser, a module per command group, one table of exit codes.

Each command module has `register(commands)`, which adds its parser(s) and sets
`handler`, the function `main` calls with the parsed arguments. The modules import only what
building their parsers needs; what a command needs to run (the config loader, paho, PyYAML,
cryptography, wasmtime) is imported by its handler, so no command pays for another's imports.

Exit status, as `edged --help` shows it:

    0    done
    1    the command ran and failed: a deploy refused or not answered, a filter run with failed
         calls; or a bug in edged, which prints one "internal error" line
    2    a usage error: the command line, the config (ConfigError), its modules (SetupError), a
         file or a key is wrong (any other EdgedError); fix it and run again
    69   the MQTT broker cannot be reached or refused us (BrokerError); EX_UNAVAILABLE of
         sysexits.h, apart from 2 because running again later may well work
    130  interrupted (Ctrl-C)

`edged run` itself never exits 69: the daemon keeps reconnecting to its broker. systemd's unit
stops restarting it on 2 only (RestartPreventExitStatus=2).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import edged
from edged.cli import check, demo, keygen, logs, module, run, service, stats
from edged.cli import filter as filter_tools
from edged.errors import BrokerError, ConfigError, EdgedError, SetupError

Handler = Callable[[argparse.Namespace], int]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 69
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports it

#: The exit status for an exception that reaches `main`, by class; the most specific class in
#: the table wins, and any other Exception is a bug (EXIT_FAILURE, "internal error").
EXIT_CODES: Final[Mapping[type[BaseException], int]] = {
    KeyboardInterrupt: EXIT_INTERRUPTED,
    BrokerError: EXIT_UNAVAILABLE,
    ConfigError: EXIT_USAGE,
    SetupError: EXIT_USAGE,
    EdgedError: EXIT_USAGE,
}

#: The command groups, in the order `edged --help` lists them.
COMMANDS: Final = (run, check, stats, logs, demo, filter_tools, service, keygen, module)

EPILOG: Final = """\
exit status:
  0    done
  1    the command ran and failed (a deploy refused or not answered, a filter run with
       failed calls), or an internal error
  2    usage: the command line, the config, a module, a file or a key is wrong
  69   the MQTT broker cannot be reached or refused the connection: try again later
  130  interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged",
        description="MQTT in, sandboxed WebAssembly filters, MQTT out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edged {edged.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def exit_code(exc: BaseException) -> int | None:
    """The status `exc` exits with, from EXIT_CODES; None for an exception that is a bug."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (KeyboardInterrupt, Exception) as exc:
        code = exit_code(exc)
        if code is None:  # a bug of ours: one line for the user, the traceback on request
            if os.environ.get("EDGED_DEBUG"):
                traceback.print_exc()
            print(
                f"edged: internal error: {type(exc).__name__}: {exc} "
                "(set EDGED_DEBUG=1 for the traceback, and please report it)",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        if isinstance(exc, EdgedError):
            print(f"edged: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())

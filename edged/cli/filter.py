"""`edged filter run|new|test|inspect`: the filter author's tools, no broker needed.

The tools pass each `--param` value to the filter as the text given: `filter run -p limit=3e1`
hands the filter `3e1`, so what an author types is what their init parses. (`module push`
types its values instead, see edged.cli.params.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from edged.authoring.scaffold import LANGS
from edged.cli.params import split_params
from edged.errors import EdgedError

#: a run with failed calls or bad input lines (a usage error is 2, raised as EdgedError)
EXIT_FAILURE = 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`edged filter` and its actions run, new, test and inspect."""
    filt = commands.add_parser("filter", help="tools for filter authors")
    actions = filt.add_subparsers(dest="filter_command", required=True, metavar="ACTION")

    run = actions.add_parser("run", help="run one filter over JSON lines and print what it emits")
    run.add_argument("module", type=Path, help="the filter's .wasm file")
    run.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    _add_capability(run)
    run.add_argument("--input", "-i", type=Path, help="JSON lines file (default: stdin)")
    run.add_argument(
        "--tick-at-end", action="store_true", help="call edged_on_tick once at the end"
    )
    run.add_argument(
        "--load-state",
        type=Path,
        metavar="FILE",
        help="hand the filter the state in FILE (as --save-state writes it) before the input",
    )
    run.add_argument(
        "--save-state",
        type=Path,
        metavar="FILE",
        help='save the filter\'s state at the end to FILE, as {"format": N, "state_b64": ...}',
    )
    run.set_defaults(handler=_run)

    new = actions.add_parser("new", help="start a filter project from an SDK template")
    new.add_argument("name", help="the filter's name: a letter, then letters, digits, _ or -")
    new.add_argument("--lang", "-l", required=True, choices=LANGS, help="the SDK to use")
    new.add_argument("--dir", type=Path, help="the project folder (default: ./NAME)")
    new.set_defaults(handler=_new)

    test = actions.add_parser(
        "test", help="run a filter over JSON lines and compare with the expected output"
    )
    test.add_argument("module", type=Path, help="the filter's .wasm file")
    test.add_argument("--input", "-i", type=Path, required=True, help="JSON lines to feed it")
    test.add_argument("--expect", "-e", type=Path, required=True, help="JSON lines it must emit")
    test.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    _add_capability(test)
    test.add_argument(
        "--tick-at-end", action="store_true", help="call edged_on_tick once at the end"
    )
    test.set_defaults(handler=_test)

    inspect = actions.add_parser(
        "inspect", help="show a module's ABI, exports, memory, and whether a node would take it"
    )
    inspect.add_argument("module", type=Path, help="the filter's .wasm file")
    inspect.add_argument("--config", "-c", type=Path, help="a node config: its budgets and params")
    inspect.add_argument("--module", "-m", dest="module_name", help="the module in --config")
    inspect.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    _add_capability(inspect)
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(handler=_inspect)


def _add_capability(parser: argparse.ArgumentParser) -> None:
    from edged.config.model import CAPABILITIES

    parser.add_argument(
        "--capability",
        action="append",
        default=[],
        choices=CAPABILITIES,
        metavar="NAME",
        help="grant a WASI capability, as modules.<name>.capabilities does on a node "
        f"({', '.join(CAPABILITIES)}); repeatable",
    )


def _run(args: argparse.Namespace) -> int:
    from edged.authoring.runner import (
        load_filter,
        read_state_file,
        run_lines,
        state_problem,
        write_state_file,
    )
    from edged.errors import FilterCallError

    state = read_state_file(args.load_state) if args.load_state is not None else None
    filt = load_filter(
        args.module, split_params(args.param), sys.stderr, frozenset(args.capability)
    )
    if (args.load_state or args.save_state) and not filt.has_state:
        raise EdgedError(
            f"{args.module} has no state exports (edged_state_save, edged_state_buffer, "
            "edged_state_load): --load-state and --save-state need them"
        )
    if state is not None:
        try:
            filt.load_state(state)
        except FilterCallError as exc:
            print(f"{args.load_state}: {state_problem(exc, 'load')}", file=sys.stderr)
            return EXIT_FAILURE
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
        + (f"{totals.rejected} rejected, " if totals.rejected else "")
        + f"{totals.bad_lines} bad lines",
        file=sys.stderr,
    )
    if args.save_state is not None:
        try:
            saved = filt.save_state()
        except FilterCallError as exc:
            print(f"{args.save_state}: {state_problem(exc, 'save')}", file=sys.stderr)
            return EXIT_FAILURE
        assert saved is not None  # has_state, checked above
        write_state_file(args.save_state, saved)
        print(
            f"state: format {saved.format}, {len(saved.data)} bytes, saved to {args.save_state}",
            file=sys.stderr,
        )
    return EXIT_FAILURE if totals.failures or totals.bad_lines else 0


def _new(args: argparse.Namespace) -> int:
    from edged.authoring.scaffold import describe_scaffold, scaffold

    root = args.dir if args.dir is not None else Path(args.name)
    made = scaffold(args.name, args.lang, root)
    describe_scaffold(made, args.lang, sys.stdout)
    return 0


def _test(args: argparse.Namespace) -> int:
    from edged.authoring.golden import golden_test, print_outcome

    outcome = golden_test(
        args.module,
        args.input,
        args.expect,
        split_params(args.param),
        tick_at_end=args.tick_at_end,
        capabilities=frozenset(args.capability),
    )
    return print_outcome(outcome, sys.stdout, sys.stderr)


def _inspect(args: argparse.Namespace) -> int:
    from edged.authoring import inspect as module_info
    from edged.config.model import DEFAULT_BUDGETS, ParamValue

    if args.module_name and not args.config:
        raise EdgedError("--module needs --config")
    budgets, source, params = DEFAULT_BUDGETS, "defaults", dict[str, ParamValue]()
    if args.config:
        budgets, source, params = module_info.budgets_from_config(
            args.config, args.module_name, args.module
        )
    params.update(split_params(args.param))
    report = module_info.inspect_module(
        args.module,
        budgets=budgets,
        budgets_from=source,
        params=params,
        capabilities=frozenset(args.capability) if args.capability else None,
    )
    (module_info.render_json if args.json else module_info.render)(report, sys.stdout)
    return 0 if report.passes else EXIT_FAILURE

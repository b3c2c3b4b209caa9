"""`edged filter new` and `edged filter test`: start a filter project, golden-test a module.

The SDKs live in the repository's `sdk/` folder (or wherever EDGED_SDK points); a new project
gets a copy of its language's SDK files, so it builds on its own, anywhere.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edged.errors import EdgedError

LANGS = ("c", "rust", "as", "wat")
LANG_NAMES = {"c": "C", "rust": "Rust", "as": "AssemblyScript", "wat": "WAT"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def sdk_dir() -> Path:
    """The SDK folder: $EDGED_SDK, else `sdk/` of the checkout edged runs from."""
    env = os.environ.get("EDGED_SDK")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "sdk"
    if not (path / "c" / "edged.h").is_file():
        raise EdgedError(
            f"the filter SDKs are not at {path}: run edged from a clone of its repository, "
            "or set EDGED_SDK to its sdk/ folder"
        )
    return path


def find_rustc() -> str | None:
    """A rustc that can build for wasm32-unknown-unknown: $RUSTC, Debian's, then PATH's."""
    candidates = [os.environ.get("RUSTC", ""), "/usr/bin/rustc", shutil.which("rustc") or ""]
    for rustc in candidates:
        if not rustc or not os.access(rustc, os.X_OK):
            continue
        try:
            sysroot = subprocess.run(
                [rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        lib = Path(sysroot) / "lib" / "rustlib" / "wasm32-unknown-unknown" / "lib"
        if sysroot and any(lib.glob("libcore-*.rlib")):
            return rustc
    return None


# -- edged filter new -----------------------------------------------------------------------------

_READINGS_INPUT = """\
{"topic": "sensors/t1", "payload": {"value": 21.5}}
{"topic": "sensors/t1", "payload": {"value": -3}}
{"topic": "sensors/t2", "payload": "{\\"value\\": 0}"}
{"topic": "sensors/t2", "payload": "not JSON"}
{"topic": "sensors/t3", "payload": {"status": "ok"}}
"""
# A payload given as a string must match byte for byte; one given as a JSON value must parse
# to the same value.
_READINGS_EXPECTED = """\
{"topic": "sensors/t1", "payload": {"value": 21.5}}
{"topic": "sensors/t2", "payload": "{\\"value\\": 0}"}
"""
_COPY_EXPECTED = """\
{"topic": "copy/sensors/t1", "payload": {"value": 21.5}}
{"topic": "copy/sensors/t1", "payload": {"value": -3}}
{"topic": "copy/sensors/t2", "payload": "{\\"value\\": 0}"}
{"topic": "copy/sensors/t2", "payload": "not JSON"}
{"topic": "copy/sensors/t3", "payload": {"status": "ok"}}
"""

_READINGS_ABOUT = """\
Forwards readings at or above a minimum and drops everything else.

| param | default | meaning |
|---|---|---|
| `field` | `value` | field holding the reading |
| `min` | `0` | readings `>= min` go on unchanged; init fails (code 1) if it is not a number |
"""
_COPY_ABOUT = """\
Republishes every message under a topic prefix: `sensors/t1` goes on as `copy/sensors/t1`.

| param | default | meaning |
|---|---|---|
| `prefix` | `copy/` | put before the topic; init fails (code 1) if over 192 bytes or with `+`/`#` |
"""

_C_MAKEFILE = """\
# Builds {name}.wasm with clang and lld (see the C SDK's README for the flags).
CLANG ?= clang
CFLAGS = --target=wasm32 -mcpu=mvp -O2 -Wall -Wextra -nostdlib -I.
LDFLAGS = -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-all \\
          -Wl,--stack-first -Wl,-z,stack-size=16384

{name}.wasm: {name}.c edged.h
\t$(CLANG) $(CFLAGS) $(LDFLAGS) -o $@ {name}.c

clean:
\trm -f {name}.wasm

.PHONY: clean
"""

_RUST_MAKEFILE = """\
# Builds {name}.wasm with rustc alone (no cargo): the SDK crate as an rlib, then the filter.
RUSTC ?= $(shell ./find-rustc.sh)
RUSTFLAGS = --target wasm32-unknown-unknown --edition 2021 -O -C panic=abort \\
            -C codegen-units=1 -C lto -C strip=symbols

{name}.wasm: {name}.rs build/libedged.rlib
\t$(RUSTC) $(RUSTFLAGS) -C link-arg=-zstack-size=65536 --crate-type cdylib \\
\t    --crate-name {crate} --extern edged=build/libedged.rlib -o $@ {name}.rs

build/libedged.rlib: edged_sdk/lib.rs
\t@mkdir -p build
\t$(RUSTC) $(RUSTFLAGS) --crate-type rlib --crate-name edged -o $@ edged_sdk/lib.rs

clean:
\trm -rf build {name}.wasm

.PHONY: clean
"""

_AS_MAKEFILE = """\
# Builds {name}.wasm with the AssemblyScript compiler that `npm ci` installs.
ASC ?= node_modules/.bin/asc
ASCFLAGS = --runtime stub --use abort= --noAssert -O3 --shrinkLevel 0

{name}.wasm: assembly/{name}.ts assembly/edged.ts
\t$(ASC) assembly/{name}.ts $(ASCFLAGS) --outFile $@

clean:
\trm -f {name}.wasm

.PHONY: clean
"""

_WAT_MAKEFILE = """\
# Builds {name}.wasm with wabt's wat2wasm.
WAT2WASM ?= wat2wasm

{name}.wasm: {name}.wat
\t$(WAT2WASM) -o $@ {name}.wat

clean:
\trm -f {name}.wasm

.PHONY: clean
"""

_BUILD_NOTES = {
    "c": "Needs `clang` and `lld` (Debian: `apt install clang lld make`).",
    "rust": (
        "Needs a rustc with the `wasm32-unknown-unknown` target: Debian's `rustc` and\n"
        "`libstd-rust-dev-wasm32`, or rustup's with `rustup target add wasm32-unknown-unknown`.\n"
        "`find-rustc.sh` picks one; `make RUSTC=...` overrides it. No cargo needed."
    ),
    "as": (
        "Needs Node.js and npm; `npm ci` installs the AssemblyScript compiler into\n"
        "`node_modules` from `package-lock.json`."
    ),
    "wat": "Needs `wat2wasm` (Debian: `apt install wabt make`).",
}

_README = """\
# {name}

An edged filter in {lang}. {about}
## Build

```sh
{build}
```

{notes}

## Test

```sh
edged filter test {name}.wasm --input input.jsonl --expect expected.jsonl
```

`input.jsonl` holds one message per line (`{{"topic": ..., "payload": ...}}`; `{{"tick": MS}}`
calls the tick); `expected.jsonl` what the filter must emit, in order. A payload written as a
string must match byte for byte, one written as a JSON value must parse to the same value. A
mismatch prints a diff and exits 1, so the command can run in CI. `edged filter run` prints what
the filter emits, and `edged filter inspect {name}.wasm` shows its exports, memory and whether
it fits a node's budgets.

## Push

```sh
edged module push {name}.wasm --name {name} --version 1 --key ops.pem --node gw-1
```

Raise `--version` with every push. See edged's docs/writing-filters.md and docs/deploy.md.
"""


@dataclass(frozen=True)
class Scaffold:
    """What `edged filter new` made: the project folder and its files, relative to it."""

    name: str
    root: Path
    files: tuple[str, ...]
    build: tuple[str, ...]  # the commands that build it, run in `root`


def _fill(text: str, name: str) -> str:
    return text.replace("{{name}}", name)


def _as_package(name: str, sdk_as: Path) -> tuple[str, str]:
    """package.json and a package-lock.json pinned to the SDK's compiler version."""
    sdk_package = json.loads((sdk_as / "package.json").read_text())
    package = {
        "name": name.lower(),
        "version": "1.0.0",
        "private": True,
        "scripts": {"build": "make"},
        "devDependencies": sdk_package["devDependencies"],
    }
    lock = json.loads((sdk_as / "package-lock.json").read_text())
    lock["name"] = package["name"]
    lock["version"] = package["version"]
    root = lock["packages"][""]
    root.pop("license", None)
    root.update(name=package["name"], version=package["version"])
    return json.dumps(package, indent=2) + "\n", json.dumps(lock, indent=2) + "\n"


def scaffold(name: str, lang: str, root: Path, sdk: Path | None = None) -> Scaffold:
    """Write a buildable filter project for `lang` into `root` (which must be new or empty)."""
    if not _NAME.fullmatch(name):
        raise EdgedError(
            f"filter name {name!r}: use a letter, then letters, digits, '_' or '-' (at most 64)"
        )
    if lang not in LANGS:
        raise EdgedError(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise EdgedError(f"{root} already exists and is not an empty folder")
    sdk = sdk or sdk_dir()
    fmt = {"name": name, "crate": name.replace("-", "_")}
    files: dict[str, str] = {"input.jsonl": _READINGS_INPUT}
    about, expected = _READINGS_ABOUT, _READINGS_EXPECTED
    build: tuple[str, ...] = ("make",)
    if lang == "c":
        files[f"{name}.c"] = _fill((sdk / "c" / "template" / "filter.c").read_text(), name)
        files["edged.h"] = (sdk / "c" / "edged.h").read_text()
        files["Makefile"] = _C_MAKEFILE.format(**fmt)
    elif lang == "rust":
        files[f"{name}.rs"] = _fill((sdk / "rust" / "template" / "filter.rs").read_text(), name)
        files["edged_sdk/lib.rs"] = (sdk / "rust" / "src" / "lib.rs").read_text()
        files["find-rustc.sh"] = (sdk / "rust" / "find-rustc.sh").read_text()
        files["Makefile"] = _RUST_MAKEFILE.format(**fmt)
        files[".gitignore"] = "build/\n"
    elif lang == "as":
        template = sdk / "assemblyscript" / "template" / "filter.ts"
        files[f"assembly/{name}.ts"] = _fill(template.read_text(), name)
        files["assembly/edged.ts"] = (sdk / "assemblyscript" / "assembly" / "edged.ts").read_text()
        files["package.json"], files["package-lock.json"] = _as_package(
            name, sdk / "assemblyscript"
        )
        files["Makefile"] = _AS_MAKEFILE.format(**fmt)
        files[".gitignore"] = "node_modules/\n"
        build = ("npm ci", "make")
    else:
        files[f"{name}.wat"] = _fill((sdk / "wat" / "template.wat").read_text(), name)
        files["Makefile"] = _WAT_MAKEFILE.format(**fmt)
        about, expected = _COPY_ABOUT, _COPY_EXPECTED
    files["expected.jsonl"] = expected
    files["README.md"] = _README.format(
        name=name,
        lang=LANG_NAMES[lang],
        about=about,
        build="\n".join(build),
        notes=_BUILD_NOTES[lang],
    )
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if lang == "rust":
        (root / "find-rustc.sh").chmod(0o755)
    return Scaffold(name, root, tuple(sorted(files)), build)


# -- edged filter test ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One record of the expected file: topic and either exact payload bytes or a JSON value."""

    line: int
    topic: str
    payload: bytes | None  # exact bytes, or None when compared as a JSON value
    value: Any = None

    def render(self) -> str:
        if self.payload is None:
            return json.dumps({"topic": self.topic, "payload": self.value}, ensure_ascii=False)
        return _render(self.topic, self.payload)


def _render(topic: str, payload: bytes) -> str:
    record: dict[str, str] = {"topic": topic}
    try:
        record["payload"] = payload.decode()
    except UnicodeDecodeError:
        record["payload_b64"] = base64.b64encode(payload).decode()
    return json.dumps(record, ensure_ascii=False)


def read_expected(path: Path) -> list[Expected]:
    """The records of an expected-output file; EdgedError names the line of a bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EdgedError(f"cannot read {path}: {exc.strerror}") from None
    records: list[Expected] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise EdgedError(f"{where}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("topic"), str):
            raise EdgedError(f"{where}: expected an object with a string 'topic'")
        if "payload_b64" in record:
            try:
                raw = base64.b64decode(str(record["payload_b64"]), validate=True)
            except ValueError:
                raise EdgedError(f"{where}: 'payload_b64' is not base64") from None
            records.append(Expected(number, record["topic"], raw))
        elif isinstance(record.get("payload", ""), str):
            records.append(Expected(number, record["topic"], record.get("payload", "").encode()))
        else:
            records.append(Expected(number, record["topic"], None, record["payload"]))
    return records


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality that, unlike ==, tells true from 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _matches(want: Expected, topic: str, payload: bytes) -> bool:
    if want.topic != topic:
        return False
    if want.payload is not None:
        return want.payload == payload
    try:
        return _same_json(json.loads(payload), want.value)
    except ValueError:
        return False


def _render_like(want: Expected | None, topic: str, payload: bytes) -> str:
    """An emitted record written the way the expected one at its place is, so equal lines say
    equal records and a diff shows only what differs."""
    if want is not None and want.payload is None:
        try:
            value = json.loads(payload)
        except ValueError:
            pass
        else:
            return json.dumps({"topic": topic, "payload": value}, ensure_ascii=False)
    return _render(topic, payload)


@dataclass
class TestOutcome:
    passed: bool
    report: str


def golden_test(
    module: Path,
    input_path: Path,
    expect_path: Path,
    params: Mapping[str, str],
    *,
    tick_at_end: bool = False,
) -> TestOutcome:
    """Run `module` over `input_path` as `edged filter run` does; compare with `expect_path`."""
    from edged.authoring.runner import load_filter, run_lines

    expected = read_expected(expect_path)
    errors = io.StringIO()
    filt = load_filter(module, params, errors)
    emitted = io.StringIO()
    try:
        source = open(input_path, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise EdgedError(f"cannot read {input_path}: {exc.strerror}") from None
    with source:
        totals = run_lines(filt, source, emitted, errors, tick_at_end=tick_at_end)
    actual: list[tuple[str, bytes]] = []
    for line in emitted.getvalue().splitlines():
        record = json.loads(line)
        if "payload_b64" in record:
            actual.append((record["topic"], base64.b64decode(record["payload_b64"])))
        else:
            actual.append((record["topic"], record["payload"].encode()))

    lines: list[str] = []
    problems = errors.getvalue()
    if problems:
        lines.append(problems.rstrip("\n"))
    mismatch = next(
        (
            i
            for i in range(max(len(expected), len(actual)))
            if i >= len(expected) or i >= len(actual) or not _matches(expected[i], *actual[i])
        ),
        None,
    )
    summary = (
        f"{module.name}: {totals.messages_in} messages in, {len(actual)} out, "
        f"{len(expected)} expected"
    )
    if mismatch is None and not totals.failures and not totals.bad_lines:
        lines.append(f"PASS {summary}")
        return TestOutcome(True, "\n".join(lines) + "\n")
    if totals.failures or totals.bad_lines:
        lines.append(
            f"{totals.failures} failed calls and {totals.bad_lines} bad input lines (see above)"
        )
    if mismatch is not None:
        where = (
            f"expected line {expected[mismatch].line}"
            if mismatch < len(expected)
            else "past the end of the expected file"
        )
        lines.append(f"first difference at output record {mismatch + 1} ({where})")
        want = [e.render() for e in expected]
        got = [
            want[i]
            if i < len(expected) and _matches(expected[i], topic, payload)
            else _render_like(expected[i] if i < len(expected) else None, topic, payload)
            for i, (topic, payload) in enumerate(actual)
        ]
        # imported here: it costs ~110 KiB of RSS and only a failed `filter test` needs it
        import difflib

        diff = difflib.unified_diff(
            want, got, fromfile=str(expect_path), tofile=f"emitted by {module}", lineterm=""
        )
        lines.extend(diff)
    lines.append(f"FAIL {summary}")
    return TestOutcome(False, "\n".join(lines) + "\n")


def print_outcome(outcome: TestOutcome, out: TextIO, err: TextIO) -> int:
    (out if outcome.passed else err).write(outcome.report)
    return 0 if outcome.passed else 1


def describe_scaffold(made: Scaffold, lang: str, out: TextIO) -> None:
    out.write(f"created {made.root} ({LANG_NAMES[lang]}):\n")
    for rel in made.files:
        out.write(f"  {rel}\n")
    steps: Sequence[str] = (
        f"cd {made.root}",
        *made.build,
        f"edged filter test {made.name}.wasm --input input.jsonl --expect expected.jsonl",
    )
    out.write("next:\n" + "".join(f"  {step}\n" for step in steps))


# -- the CLI ----------------------------------------------------------------------------------


def add_parsers(filter_commands: Any) -> None:
    """`new`, `test` and `inspect` under `edged filter`."""
    new = filter_commands.add_parser("new", help="start a filter project from an SDK template")
    new.add_argument("name", help="the filter's name: a letter, then letters, digits, _ or -")
    new.add_argument("--lang", "-l", required=True, choices=LANGS, help="the SDK to use")
    new.add_argument("--dir", type=Path, help="the project folder (default: ./NAME)")

    test = filter_commands.add_parser(
        "test", help="run a filter over JSON lines and compare with the expected output"
    )
    test.add_argument("module", type=Path, help="the filter's .wasm file")
    test.add_argument("--input", "-i", type=Path, required=True, help="JSON lines to feed it")
    test.add_argument("--expect", "-e", type=Path, required=True, help="JSON lines it must emit")
    test.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    test.add_argument(
        "--tick-at-end", action="store_true", help="call edged_on_tick once at the end"
    )

    inspect = filter_commands.add_parser(
        "inspect", help="show a module's ABI, exports, memory, and whether a node would take it"
    )
    inspect.add_argument("module", type=Path, help="the filter's .wasm file")
    inspect.add_argument("--config", "-c", type=Path, help="a node config: its budgets and params")
    inspect.add_argument("--module", "-m", dest="module_name", help="the module in --config")
    inspect.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")


def run_command(args: Any, out: TextIO, err: TextIO) -> int:
    from edged.authoring.runner import parse_params

    if args.filter_command == "new":
        root = args.dir if args.dir is not None else Path(args.name)
        made = scaffold(args.name, args.lang, root)
        describe_scaffold(made, args.lang, out)
        return 0
    if args.filter_command == "test":
        outcome = golden_test(
            args.module,
            args.input,
            args.expect,
            parse_params(args.param),
            tick_at_end=args.tick_at_end,
        )
        return print_outcome(outcome, out, err)

    from edged.authoring import inspect as module_info
    from edged.config import DEFAULT_BUDGETS, ParamValue

    if args.module_name and not args.config:
        raise EdgedError("--module needs --config")
    budgets, source, params = DEFAULT_BUDGETS, "defaults", dict[str, ParamValue]()
    if args.config:
        budgets, source, params = module_info.budgets_from_config(
            args.config, args.module_name, args.module
        )
    params.update(parse_params(args.param))
    report = module_info.inspect_module(
        args.module, budgets=budgets, budgets_from=source, params=params
    )
    (module_info.render_json if args.json else module_info.render)(report, out)
    return 0 if report.passes else 1

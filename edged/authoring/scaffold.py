"""`edged filter new`: start a filter project from an SDK's template.

The SDKs live in the repository's `sdk/` folder (or wherever EDGED_SDK points). Each language's
`template/` folder is the project it makes, with `{{name}}` (and, for Rust's crate name,
`{{crate}}`) where the filter's name goes, as `{name}` does in the build commands; the project
also gets a copy of the language's SDK files, so it builds on its own, anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edged.errors import EdgedError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Language:
    """Where one SDK keeps what a project of its language is made of."""

    title: str
    folder: str  # under the SDK folder
    source: str  # the filter's template, relative to `folder`
    source_to: str  # where it goes in the project; {name} is the filter's name
    sdk_files: tuple[tuple[str, str], ...]  # (path in the project, path in `folder`), as they are
    build: tuple[str, ...]  # the commands that build the project, run in its folder
    executable: tuple[str, ...] = ()  # project files the build runs as programs
    npm: bool = False  # gets a package.json and lock pinned to the SDK's compiler


#: the Go SDK's module, copied into a project's sdk/ folder (its go.mod replaces edgedsdk with it)
_GO_SDK = (
    "go.mod",
    "edged/edged.go",
    "edged/json.go",
    "edged/buf.go",
    "edged/blob.go",
    "edged/tick/tick.go",
    "edged/state/state.go",
    "edged/binjson/binjson.go",
    "edged/binjson/cbor.go",
    "edged/props/props.go",
)

LANGUAGES = {
    "c": Language(
        "C",
        "c",
        "template/filter.c",
        "{name}.c",
        tuple((f, f) for f in ("edged.h", "edged_binary.h", "edged_json.h")),
        ("make",),
    ),
    "rust": Language(
        "Rust",
        "rust",
        "template/filter.rs",
        "{name}.rs",
        (
            *(
                (f"edged_sdk/{f}", f"src/{f}")
                for f in ("lib.rs", "binary.rs", "json.rs", "props.rs")
            ),
            ("find-rustc.sh", "find-rustc.sh"),
        ),
        ("make",),
        executable=("find-rustc.sh",),
    ),
    "as": Language(
        "AssemblyScript",
        "assemblyscript",
        "template/filter.ts",
        "assembly/{name}.ts",
        tuple(
            (f"assembly/{f}", f"assembly/{f}")
            for f in ("edged.ts", "state.ts", "binary.ts", "props.ts")
        ),
        ("npm ci", "make"),
        npm=True,
    ),
    "wat": Language("WAT", "wat", "template.wat", "{name}.wat", (), ("make",)),
    "go": Language(
        "Go",
        "go",
        "template/main.go",
        "main.go",
        tuple((f"sdk/{rel}", rel) for rel in _GO_SDK),
        ("GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o {name}.wasm .",),
    ),
    "zig": Language(
        "Zig",
        "zig",
        "template/filter.zig",
        "{name}.zig",
        (("edged.zig", "edged.zig"), ("binary.zig", "binary.zig")),
        ("make",),
    ),
}
LANGS = tuple(LANGUAGES)


def sdk_dir() -> Path:
    """The SDK folder: $EDGED_SDK, else `sdk/` of the checkout edged runs from."""
    env = os.environ.get("EDGED_SDK")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "sdk"
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


@dataclass(frozen=True)
class Scaffold:
    """What `edged filter new` made: the project folder and its files, relative to it."""

    name: str
    root: Path
    files: tuple[str, ...]
    build: tuple[str, ...]  # the commands that build it, run in `root`


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


def _project_files(name: str, lang: Language, sdk: Path) -> dict[str, str]:
    """Each file of the project: its path in the project, and its text."""
    folder = sdk / lang.folder
    values = {"{{name}}": name, "{{crate}}": name.replace("-", "_")}

    def fill(path: Path) -> str:
        text = path.read_text()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    source = folder / lang.source
    files = {lang.source_to.format(name=name): fill(source)}
    template = folder / "template"
    for path in sorted(template.rglob("*")):
        if path.is_file() and path != source:
            files[path.relative_to(template).as_posix()] = fill(path)
    for rel, sdk_rel in lang.sdk_files:
        files[rel] = (folder / sdk_rel).read_text()
    if lang.npm:
        files["package.json"], files["package-lock.json"] = _as_package(name, folder)
    return files


def scaffold(name: str, lang: str, root: Path, sdk: Path | None = None) -> Scaffold:
    """Write a buildable filter project for `lang` into `root` (which must be new or empty)."""
    if not _NAME.fullmatch(name):
        raise EdgedError(
            f"filter name {name!r}: use a letter, then letters, digits, '_' or '-' (at most 64)"
        )
    if lang not in LANGUAGES:
        raise EdgedError(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise EdgedError(f"{root} already exists and is not an empty folder")
    language = LANGUAGES[lang]
    files = _project_files(name, language, sdk or sdk_dir())
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in language.executable:
        (root / rel).chmod(0o755)
    build = tuple(command.replace("{name}", name) for command in language.build)
    return Scaffold(name, root, tuple(sorted(files)), build)


def describe_scaffold(made: Scaffold, lang: str, out: TextIO) -> None:
    """What was made and the commands that take it to a passing `edged filter test`."""
    out.write(f"created {made.root} ({LANGUAGES[lang].title}):\n")
    for rel in made.files:
        out.write(f"  {rel}\n")
    steps: Sequence[str] = (
        f"cd {made.root}",
        *made.build,
        f"edged filter test {made.name}.wasm --input input.jsonl --expect expected.jsonl",
    )
    out.write("next:\n" + "".join(f"  {step}\n" for step in steps))

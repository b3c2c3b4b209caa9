"""The Go and Zig SDKs: their templates build and pass their golden tests, their threshold and
average emit sdk/conformance's expected bytes, and average hands its state over mid-input.

The compilers come from `scripts/toolchains.sh`; a test whose compiler is missing skips and
says why. Builds are cached under ~/.cache/edged/toolchains (or $EDGED_CACHE): GOCACHE and Zig's
cache, and the example modules keyed by the hash of their sources and compiler, so a warm run
builds only the two templates. Select these tests with `pytest -m toolchains`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

from edged.authoring.runner import run_lines
from edged.authoring.scaffold import scaffold
from edged.config import Config, ParamValue, parse_config
from edged.engine import Filter, SavedState, WasmtimeEngine
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.errors import FilterCallError, ModuleError, SetupError
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonThread
from tests.helpers.mqtt import Client
from tests.helpers.paths import FILTERS, ROOT

pytestmark = pytest.mark.toolchains

SDK = ROOT / "sdk"
CONFORMANCE = SDK / "conformance"
# Per machine, outside the checkout (as scripts/brokers.sh does): CI's fresh clone reuses it.
CACHE = Path(
    os.environ.get("EDGED_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edged" / "toolchains"
)
LANGS = ("go", "zig")
FILTER_NAMES = ("threshold", "average")
#: what Go's runtime imports from WASI, so what a Go module must be granted
GO_GRANTS = frozenset({"clock", "random", "log"})
GO_MIN_MINOR = 24


# -- the toolchains -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolchain:
    lang: str
    command: tuple[str, ...]  # the compiler, as the build runs it
    version: str
    env: dict[str, str]


def _go() -> Toolchain | str:
    """Go 1.24 or newer ($GO, PATH, /usr/local/go/bin), or why there is none."""
    candidates = [os.environ.get("GO", ""), shutil.which("go") or "", "/usr/local/go/bin/go"]
    env = {
        **os.environ,
        "GOOS": "wasip1",
        "GOARCH": "wasm",
        "GOCACHE": str(CACHE / "go-build"),
        # a go.mod line must never make the go command fetch another Go behind the test's back
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
    }
    seen = []
    for go in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        version = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, env=env, check=False
        ).stdout.strip()
        match = re.fullmatch(r"go1\.(\d+)(\..*)?", version)
        if match and int(match.group(1)) >= GO_MIN_MINOR:
            return Toolchain("go", (go,), version, env)
        seen.append(f"{go} is {version or 'unusable'}")
    found = "; ".join(seen) or "no go on PATH, $GO or /usr/local/go/bin"
    return f"Go 1.{GO_MIN_MINOR}+ needed (scripts/toolchains.sh go): {found}"


def _zig() -> Toolchain | str:
    """The PyPI ziglang of this Python, or why there is none."""
    command = (sys.executable, "-m", "ziglang")
    env = {
        **os.environ,
        "ZIG_GLOBAL_CACHE_DIR": str(CACHE / "zig"),
        "ZIG_LOCAL_CACHE_DIR": str(CACHE / "zig-local"),
    }
    try:
        done = subprocess.run(
            [*command, "version"], capture_output=True, text=True, env=env, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"zig did not run: {exc}"
    if done.returncode != 0:
        return "zig not installed in this Python (scripts/toolchains.sh zig)"
    return Toolchain("zig", command, done.stdout.strip(), env)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}{done.stderr}"


def _make_env(tool: Toolchain) -> dict[str, str]:
    return {k: v for k, v in tool.env.items() if k not in ("MAKEFLAGS", "MFLAGS", "DEST")}


@pytest.fixture(scope="module")
def toolchains() -> dict[str, Toolchain | str]:
    return {"go": _go(), "zig": _zig()}


def toolchain(toolchains: dict[str, Toolchain | str], lang: str) -> Toolchain:
    tool = toolchains[lang]
    if isinstance(tool, str):
        pytest.skip(tool)
    return tool


# -- building the examples, cached --------------------------------------------------------------


def _sources(lang: str) -> list[Path]:
    folder = SDK / lang
    patterns = {"go": ["go.mod", "**/*.go"], "zig": ["Makefile", "*.zig", "examples/*.zig"]}
    found = {p for pattern in patterns[lang] for p in folder.glob(pattern)}
    return sorted(p for p in found if "template" not in p.relative_to(folder).parts)


def build_examples(tool: Toolchain) -> Path:
    """threshold.wasm and average.wasm of `tool.lang`, built once per source and compiler."""
    digest = hashlib.sha256(tool.version.encode())
    for path in _sources(tool.lang):
        digest.update(path.relative_to(SDK).as_posix().encode() + b"\0" + path.read_bytes())
    dest = CACHE / "sdk-builds" / f"{tool.lang}-{digest.hexdigest()[:16]}"
    if all((dest / f"{name}.wasm").is_file() for name in FILTER_NAMES):
        return dest
    work = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if tool.lang == "go":
        for name in FILTER_NAMES:
            args = ["build", "-trimpath", "-buildmode=c-shared", "-o", str(work / f"{name}.wasm")]
            _run([*tool.command, *args, f"./examples/{name}"], SDK / "go", tool.env)
    else:
        zig = " ".join(tool.command)
        _run(["make", "-C", str(SDK / "zig"), f"ZIG={zig}", f"DEST={work}"], ROOT, _make_env(tool))
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    return dest


@dataclass
class Built:
    engine: WasmtimeEngine
    dirs: dict[str, Path]
    modules: dict[tuple[str, str], WasmtimeModule]

    def instantiate(self, lang: str, name: str, params: dict[str, ParamValue]) -> Filter:
        grants = GO_GRANTS if lang == "go" else frozenset()
        return self.modules[lang, name].instantiate(params, lambda *_: None, capabilities=grants)


@pytest.fixture(scope="module")
def built(toolchains: dict[str, Toolchain | str]) -> Iterator[Built]:
    engine = WasmtimeEngine()
    out = Built(engine, {}, {})
    for lang in LANGS:
        tool = toolchains[lang]
        if isinstance(tool, str):
            continue
        folder = out.dirs[lang] = build_examples(tool)
        for name in FILTER_NAMES:
            path = folder / f"{name}.wasm"
            out.modules[lang, name] = engine.load_file(f"{lang}-{name}", path)
    yield out
    engine.close()


def need(built: Built, toolchains: dict[str, Toolchain | str], lang: str) -> None:
    toolchain(toolchains, lang)
    assert (lang, "threshold") in built.modules


# -- templates ----------------------------------------------------------------------------------


def edged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("lang", LANGS)
def test_template_builds_and_passes_its_golden_test(
    toolchains: dict[str, Toolchain | str],
    lang: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`edged filter new --lang go|zig` makes a project that builds with the command it prints
    and passes its own golden test (Go's with the capabilities its runtime needs)."""
    tool = toolchain(toolchains, lang)
    made = edged("filter", "new", "my-filter", "--lang", lang, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "my-filter"
    readme = (project / "README.md").read_text()
    assert "{{name}}" not in "".join(p.read_text() for p in project.rglob("*") if p.is_file())
    assert "edged filter test my-filter.wasm --input input.jsonl --expect expected.jsonl" in readme
    if lang == "go":
        command = (
            "GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o my-filter.wasm ."
        )
        assert command in made.stdout and command in readme
        _run([*tool.command, *command.split()[3:]], project, tool.env)
    else:
        assert "  make\n" in made.stdout
        _run(["make", f"ZIG={' '.join(tool.command)}"], project, _make_env(tool))
    module = project / "my-filter.wasm"
    # Zig imports nothing from WASI; Go's runtime needs clock, random and log, granted as a
    # node's config grants them
    grants = [] if lang == "zig" else [f"--capability={c}" for c in sorted(GO_GRANTS)]
    tested = edged(
        "filter", "test", module.name, "-i", "input.jsonl", "-e", "expected.jsonl", *grants,
        cwd=project,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.startswith("PASS my-filter.wasm: 5 messages in, 5 out")
    if lang == "go":
        refused = edged(
            "filter", "test", module.name, "-i", "input.jsonl", "-e", "expected.jsonl",
            cwd=project,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "needs the capability" in refused.stderr


# -- conformance --------------------------------------------------------------------------------


def read_cases() -> list[tuple[str, str, dict[str, str]]]:
    cases = []
    for line in (CONFORMANCE / "cases.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, filt, *pairs = shlex.split(line)
        cases.append((name, filt, dict(pair.split("=", 1) for pair in pairs)))
    return cases


CASES = read_cases()
INPUT = (CONFORMANCE / "input.jsonl").read_text().splitlines(keepends=True)


def run(filt: Filter, lines: list[str], out: io.StringIO | None = None) -> tuple[str, str]:
    out = out or io.StringIO()
    errors = io.StringIO()
    run_lines(filt, lines, out, errors, tick_at_end=False)
    return out.getvalue(), errors.getvalue()


def reference(name: str, params: dict[str, str]) -> tuple[str, str]:
    """What the C example prints for the conformance input, log lines included."""
    logs = io.StringIO()
    engine = WasmtimeEngine()
    filt = engine.load_file(name, FILTERS / f"{name}.wasm").instantiate(
        params, lambda lvl, text: print(f"[{lvl}] {text}", file=logs)
    )
    out, errors = run(filt, INPUT)
    return out, logs.getvalue() + errors


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("case", "name", "params"), CASES, ids=[c[0] for c in CASES])
def test_examples_emit_the_conformance_bytes(
    built: Built,
    toolchains: dict[str, Toolchain | str],
    lang: str,
    case: str,
    name: str,
    params: dict[str, str],
) -> None:
    """Go's and Zig's threshold and average print exactly the case's expected file, and the same
    log lines and problems as the C example."""
    need(built, toolchains, lang)
    logs = io.StringIO()
    grants = GO_GRANTS if lang == "go" else frozenset()
    filt = built.modules[lang, name].instantiate(
        params, lambda lvl, text: print(f"[{lvl}] {text}", file=logs), capabilities=grants
    )
    emitted, errors = run(filt, INPUT)
    assert emitted == (CONFORMANCE / f"{case}.expected.jsonl").read_text()
    assert (emitted, logs.getvalue() + errors) == reference(name, params)


@pytest.mark.parametrize("lang", LANGS)
def test_exports_match_the_c_examples(
    built: Built, toolchains: dict[str, Toolchain | str], lang: str
) -> None:
    """Both export edged_init, only average ticks and keeps state, and only Go imports WASI:
    clock, random and log, the grants a Go module needs."""
    need(built, toolchains, lang)
    for name in FILTER_NAMES:
        module = built.modules[lang, name]
        assert module.has_init
        assert module.has_tick == module.has_state == (name == "average")
        expected = GO_GRANTS if lang == "go" else frozenset()
        assert module.capabilities_needed == expected
        assert module.imports_wasi == (lang == "go")


# -- state --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_average_hands_its_windows_over_after_any_line(
    built: Built, toolchains: dict[str, Toolchain | str], lang: str
) -> None:
    """Saved after line N and loaded into a fresh instance that takes the rest, for every N,
    average prints exactly the expected file; the blob is C's format 1, the same bytes in
    every language (sdk/conformance/average.state.json pins it where that file exists)."""
    need(built, toolchains, lang)
    params: dict[str, ParamValue] = {"decimals": 20}
    expected = (CONFORMANCE / "average-exact.expected.jsonl").read_text()
    others = [other for other in LANGS if other != lang and (other, "average") in built.modules]
    c_average = WasmtimeEngine().load_file("c-average", FILTERS / "average.wasm")
    for n in range(len(INPUT) + 1):
        out = io.StringIO()
        first = built.instantiate(lang, "average", params)
        run(first, INPUT[:n], out)
        saved = first.save_state()
        assert saved is not None and saved.format == 1
        second = built.instantiate(lang, "average", params)
        second.load_state(saved)
        run(second, INPUT[n:], out)
        assert out.getvalue() == expected, f"state handed over after line {n}"
        for other in others:
            twin = built.instantiate(other, "average", params)
            run(twin, INPUT[:n])
            assert twin.save_state() == saved, f"{other} saved other bytes after line {n}"
        if c_average.has_state:
            c_filter = c_average.instantiate(params, lambda *_: None)
            run(c_filter, INPUT[:n])
            assert c_filter.save_state() == saved, f"C saved other bytes after line {n}"
    pinned = CONFORMANCE / "average.state.json"
    if pinned.is_file():
        want = json.loads(pinned.read_text())
        filt = built.instantiate(lang, "average", {})
        run(filt, INPUT[:31])
        assert filt.save_state() == SavedState(want["format"], base64.b64decode(want["state_b64"]))


@pytest.mark.parametrize("lang", LANGS)
def test_average_refuses_a_state_it_cannot_read(
    built: Built, toolchains: dict[str, Toolchain | str], lang: str
) -> None:
    """An unknown format, a truncated blob, bytes left over and a topic twice are refused
    (state_refused); the node then starts the filter fresh."""
    need(built, toolchains, lang)
    filt = built.instantiate(lang, "average", {})
    run(filt, INPUT[:5])
    saved = filt.save_state()
    assert saved is not None
    one = (1).to_bytes(4, "little") + saved.data[4 : 4 + 4 + 12 + 32]
    twice = (2).to_bytes(4, "little") + one[4:] * 2
    bad = {
        "format": SavedState(2, saved.data),
        "truncated": SavedState(1, saved.data[:-1]),
        "trailing": SavedState(1, saved.data + b"\0"),
        "twice": SavedState(1, twice),
    }
    codes = {}
    for what, state in bad.items():
        with pytest.raises(FilterCallError) as info:
            built.instantiate(lang, "average", {}).load_state(state)
        assert info.value.reason == "state_refused"
        codes[what] = str(info.value).rsplit("returned ", 1)[1]
    assert codes == {"format": "1", "truncated": "-1", "trailing": "-2", "twice": "3"}
    fresh = built.instantiate(lang, "average", {})
    fresh.load_state(SavedState(1, one))  # the same topic once is fine
    assert len(fresh.on_tick(1)) == 1


# -- Go on a node -------------------------------------------------------------------------------


def _node_config(
    broker: PrivateBroker, root: str, tmp_path: Path, module: Path, grants: list[str]
) -> Config:
    return parse_config(
        {
            "node_id": "gonode",
            "topic_prefix": root,
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "metrics": {"interval": 0},
            "modules": {
                "gofilter": {"file": str(module), "params": {"limit": 30}, "capabilities": grants}
            },
            "pipelines": [
                {
                    "name": "alerts",
                    "subscribe": [{"topic": f"{root}/in/#", "qos": 1}],
                    "filters": ["gofilter"],
                    "outputs": [{"topic": f"{root}/out/{{topic}}", "qos": 1}],
                }
            ],
        }
    )


def test_a_go_module_needs_its_grants_and_serves_with_them(
    built: Built,
    toolchains: dict[str, Toolchain | str],
    broker: PrivateBroker,
    client: Client,
    topic_root: str,
    tmp_path: Path,
) -> None:
    """Without `random` a node refuses the Go threshold, naming random_get and the capability;
    with clock, random and log it turns readings into alerts on the broker."""
    need(built, toolchains, "go")
    module = built.dirs["go"] / "threshold.wasm"
    with pytest.raises(ModuleError) as info:
        built.modules["go", "threshold"].instantiate(
            {"limit": 30}, lambda *_: None, capabilities=frozenset({"clock", "log"})
        )
    assert "wasi_snapshot_preview1.random_get" in info.value.reason
    assert "'random' (not granted)" in info.value.reason
    from edged.daemon import Daemon

    with pytest.raises(SetupError) as refused:
        Daemon(_node_config(broker, topic_root, tmp_path, module, ["clock", "log"]))
    assert (
        "modules.gofilter.capabilities: module 'gofilter' imports "
        "wasi_snapshot_preview1.random_get, which needs the capability 'random' (not granted)"
    ) in str(refused.value)

    config = _node_config(broker, topic_root, tmp_path, module, sorted(GO_GRANTS))
    client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        for value in (10, 31, 45.5):
            client.publish(f"{topic_root}/in/t1", json.dumps({"value": value}))
        got = client.collect(2)
    assert [json.loads(payload) for _, payload in got] == [
        {"topic": f"{topic_root}/in/t1", "field": "value", "value": v, "limit": 30}
        for v in (31, 45.5)
    ]


PANICKY_GO = """package main

import "edgedsdk/edged"

var table [4]int

func onMessage(topic, payload []byte) int {
	table[len(payload)]++ // a payload of 4 bytes or more is out of range
	return edged.Forward
}

func init() { edged.Handle(onMessage) }

func main() {}
"""


def test_a_go_panic_is_one_violation_and_the_instance_serves_on(
    toolchains: dict[str, Toolchain | str], tmp_path: Path
) -> None:
    """A panic in a Go filter is logged in one line and counted as a violation, and the same
    instance serves the next message, panic after panic (a panic left to Go's runtime would
    leave it mid-panic, and the next one would exit)."""
    tool = toolchain(toolchains, "go")
    project = scaffold("panicky", "go", tmp_path / "panicky").root
    (project / "main.go").write_text(PANICKY_GO)
    args = ["build", "-trimpath", "-buildmode=c-shared", "-o", "panicky.wasm", "."]
    _run([*tool.command, *args], project, tool.env)
    logs: list[tuple[str, str]] = []
    filt = (
        WasmtimeEngine()
        .load_file("panicky", project / "panicky.wasm")
        .instantiate({}, lambda lvl, text: logs.append((lvl, text)), capabilities=GO_GRANTS)
    )
    for _ in range(3):
        with pytest.raises(FilterCallError) as info:
            filt.on_message(b"t", b"12345")
        assert info.value.reason == "bad_result"
        assert "returned -100" in str(info.value)
        assert filt.on_message(b"t", b"123") == ((b"t", b"123"),)
    assert (
        logs == [("error", "edged: panic: runtime error: index out of range [5] with length 4")] * 3
    )


# -- C with wasi-libc, Rust with std ------------------------------------------------------------

#: what wasi-libc's stdio imports: fd_write needs `log`, fd_seek and fd_close answer from nothing
LIBC_STDIO = {"fd_write", "fd_seek", "fd_close"}


def _threshold_cases() -> list[tuple[str, dict[str, str]]]:
    return [(case, params) for case, name, params in CASES if name == "threshold"]


def _average_cases() -> list[tuple[str, dict[str, str]]]:
    return [(case, params) for case, name, params in CASES if name == "average"]


def _wasi_imports(path: Path) -> set[str]:
    imports = wasmtime.Module.from_file(wasmtime.Engine(), str(path)).imports
    return {imp.name or "" for imp in imports if imp.module == "wasi_snapshot_preview1"}


def _golden(
    module: Path, lines: list[str], expected: Path, params: dict[str, str], grants: list[str]
) -> subprocess.CompletedProcess[str]:
    """`edged filter test` of `module` on `lines`, with its params and `--capability` grants."""
    given = module.with_name(module.stem + ".input.jsonl")
    given.write_text("".join(lines))
    args = ["filter", "test", str(module), "-i", str(given), "-e", str(expected)]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    for grant in grants:
        args += ["--capability", grant]
    return edged(*args, cwd=module.parent)


@pytest.fixture(scope="module")
def c_libc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdk/c's WASI examples built by `make -C sdk/c wasi`, or a skip saying what is missing."""
    clang = shutil.which(os.environ.get("CLANG", "clang"))
    if clang is None:
        pytest.skip("no clang on PATH (scripts/setup.sh installs it)")
    dest = tmp_path_factory.mktemp("c-wasi")
    probe = dest / "probe.c"
    probe.write_text('#include <stdio.h>\nint probe(void) { return puts("x"); }\n')
    tried = subprocess.run(
        [clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-o", f"{probe}.wasm", str(probe)],
        capture_output=True,
        text=True,
        check=False,
    )
    if tried.returncode != 0:
        first = (tried.stderr.strip().splitlines() or ["failed"])[0]
        pytest.skip(
            "clang cannot build for wasm32-wasi (Debian: apt install wasi-libc "
            f"libclang-rt-14-dev-wasm32, as scripts/setup.sh does): {first}"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "DEST")}
    _run(["make", "-C", str(SDK / "c"), "wasi", f"DEST={dest}", f"CLANG={clang}"], ROOT, env)
    return dest


def test_c_with_wasi_libc_emits_the_threshold_bytes(c_libc: Path) -> None:
    """threshold-libc (strtod, snprintf, stderr) builds as a reactor whose one grant is `log`,
    passes `edged filter test` on every threshold conformance case with `--capability log`,
    and is refused without it."""
    path = c_libc / "threshold-libc.wasm"
    module = WasmtimeEngine().load_file("threshold-libc", path)
    assert module.has_initialize and module.has_init and not module.has_tick
    assert module.capabilities_needed == frozenset({"log"})
    assert _wasi_imports(path) == LIBC_STDIO
    messages = [line for line in INPUT if "tick" not in json.loads(line)]
    for case, params in _threshold_cases():
        expected = CONFORMANCE / f"{case}.expected.jsonl"
        tested = _golden(path, messages, expected, params, ["log"])
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert tested.stdout.startswith("PASS threshold-libc.wasm: 58 messages in")
        assert (
            run(
                module.instantiate(params, lambda *_: None, capabilities=frozenset({"log"})), INPUT
            )[0]
            == expected.read_text()
        )
    refused = _golden(path, messages, expected, {"limit": "30"}, [])
    assert refused.returncode != 0
    assert "needs the capability 'log' (not granted)" in refused.stdout + refused.stderr
    logs: list[tuple[str, str]] = []
    with pytest.raises(ModuleError):
        module.instantiate(
            {"limit": "x"}, lambda *line: logs.append(line), capabilities=frozenset({"log"})
        )
    assert logs == [("warning", "threshold: param 'limit' is required and must be a number")]


@pytest.fixture(scope="module")
def rust_std(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdk/rust's std examples built by `make -C sdk/rust std`, or a skip saying what is
    missing."""
    from edged.authoring.scaffold import find_rustc

    rustc = find_rustc()
    if rustc is None:
        pytest.skip("no rustc with the wasm32 targets (scripts/setup.sh installs Debian's)")
    sysroot = subprocess.run(
        [rustc, "--print", "sysroot"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not list(Path(sysroot).glob("lib/rustlib/wasm32-wasi/lib/libstd-*.rlib")):
        pytest.skip(
            f"{rustc} has no std for wasm32-wasi (Debian: apt install libstd-rust-dev-wasm32; "
            "rustup: rustup target add wasm32-wasi)"
        )
    out = tmp_path_factory.mktemp("rust-std")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "OUT")}
    _run(["make", "-C", str(SDK / "rust"), "std", f"OUT={out}", f"RUSTC={rustc}"], ROOT, env)
    return out


RUST_STD_GRANTS = frozenset({"log", "random"})


def test_rust_with_std_emits_the_average_bytes(rust_std: Path) -> None:
    """average-std (Vec, HashMap, format!, eprintln!) is a cdylib without `_initialize` that
    needs `log` and `random`; with them it passes `edged filter test` on every average
    conformance case, state hand-over included, and logs its warning through stderr."""
    path = rust_std / "average-std.wasm"
    module = WasmtimeEngine().load_file("average-std", path)
    assert not module.has_initialize
    assert module.has_init and module.has_tick and module.has_state
    assert module.capabilities_needed == RUST_STD_GRANTS
    assert {"fd_write", "random_get"} <= _wasi_imports(path)
    for case, params in _average_cases():
        expected = CONFORMANCE / f"{case}.expected.jsonl"
        tested = _golden(path, INPUT, expected, params, sorted(RUST_STD_GRANTS))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "and loaded into a fresh instance: same output" in tested.stdout
        assert tested.stdout.splitlines()[-1].startswith("PASS average-std.wasm: 58 messages in")
    logs: list[tuple[str, str]] = []
    filt = module.instantiate({}, lambda *line: logs.append(line), capabilities=RUST_STD_GRANTS)
    assert run(filt, INPUT)[0] == (CONFORMANCE / "average-default.expected.jsonl").read_text()
    assert logs == [("warning", "average: ignoring readings of magnitude 1e15 or more")]
    refused = _golden(path, INPUT, expected, {}, ["log"])
    assert refused.returncode != 0
    assert "needs the capability 'random' (not granted)" in refused.stdout + refused.stderr


def test_rust_with_std_saves_the_c_average_state(rust_std: Path) -> None:
    """The std average saves the blob every SDK's average saves (average.state.json), and a
    fresh C average that takes it goes on as the std one does."""
    module = WasmtimeEngine().load_file("average-std", rust_std / "average-std.wasm")
    filt = module.instantiate({}, lambda *_: None, capabilities=RUST_STD_GRANTS)
    run(filt, INPUT[:31])
    saved = filt.save_state()
    want = json.loads((CONFORMANCE / "average.state.json").read_text())
    assert saved == SavedState(want["format"], base64.b64decode(want["state_b64"]))
    c_average = WasmtimeEngine().load_file("c-average", FILTERS / "average.wasm")
    c_filter = c_average.instantiate({}, lambda *_: None)
    c_filter.load_state(saved)
    went_on = run(filt, INPUT[31:])[0]
    assert went_on and run(c_filter, INPUT[31:])[0] == went_on

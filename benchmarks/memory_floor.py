"""Where the daemon's resident memory goes: the interpreter, the chosen dependencies, edged itself.

    python -m benchmarks.memory_floor   # prints the rows as a Markdown table

Each step runs in a fresh interpreter (`sys.executable`, as `edged run` is started) that does
everything the steps before it did, then reads its own VmRSS: a bare CPython; + ssl; + structlog
(which brings asyncio in through structlog.stdlib); + PyYAML; + paho-mqtt (which imports
urllib.request, http.client and email itself); + wasmtime; + one wasmtime Engine configured as
edged configures it; + all of edged's daemon modules (`import edged.cli, edged.daemon`). The last
row is a real `edged run` with 4 threshold pipelines, read at READY=1 on a start that took its
compiled code from the cache.

What it shows: most of the daemon's RSS is a floor that any daemon written in CPython on the
dependencies the project has chosen (paho-mqtt, structlog, PyYAML, wasmtime) pays before it does
anything. edged's own share is the last two steps: its modules, then what a running daemon holds
(the config, compiled modules and filter instances, the CLI's parser, the broker connection, the
epoch and log threads).
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks import contenders as c
from benchmarks import procfs
from edged.engine.wasmtime_engine import MEMORY_GUARD, MEMORY_RESERVATION, EngineSettings
from edged.mqtt.mosquitto import PrivateBroker

_SETTINGS = EngineSettings()
# What WasmtimeEngine.__init__ sets, without importing edged into this step.
_ENGINE = f"""
config = wasmtime.Config()
config.consume_fuel = True
config.epoch_interruption = True
config.max_wasm_stack = {_SETTINGS.wasm_stack}
config.memory_reservation = {MEMORY_RESERVATION}
config.memory_guard_size = {MEMORY_GUARD}
config.memory_reservation_for_growth = {MEMORY_RESERVATION}
config.parallel_compilation = False
engine = wasmtime.Engine(config)
"""
#: (step, the code it adds to the steps before it)
STEPS = (
    ("bare interpreter", "pass"),
    ("+ ssl", "import ssl"),
    ("+ structlog (with asyncio)", "import structlog"),
    ("+ PyYAML", "import yaml"),
    ("+ paho-mqtt", "import paho.mqtt.client"),
    ("+ wasmtime", "import wasmtime"),
    ("+ wasmtime Engine, edged's settings", _ENGINE),
    ("+ edged's daemon modules", "import edged.cli, edged.daemon"),
)
EDGED_RUN = "edged run, 4 pipelines, ready (cache hit)"
_PRINT_RSS = """
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(line.split()[1])
"""


def _step_rss(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code + _PRINT_RSS],
        cwd=c.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out) / 1024


def _ready_rss(config: Path, workdir: Path) -> float:
    """Start `edged run --config CONFIG`, and its RSS when it sends READY=1."""
    address = workdir / f"notify-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(30)
        proc = c.Process(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            config.with_suffix(f".{address.name}.log"),
            {"NOTIFY_SOCKET": str(address)},
        )
        try:
            while b"READY=1" not in sock.recv(4096).split(b"\n"):
                pass
            return procfs.rss_mib(proc.pid)
        except TimeoutError:
            raise RuntimeError(f"no READY within 30 s:\n{proc.log_tail()}") from None
        finally:
            proc.stop()
            address.unlink(missing_ok=True)


def edged_run_rss(host: str, port: int, workdir: Path, repeats: int = 3) -> float:
    """RSS of `edged run` with 4 threshold pipelines once ready, median of `repeats` starts
    after one that fills the compiled cache."""
    workdir = workdir / "memory-floor"
    workdir.mkdir(exist_ok=True)
    run = c.Run("threshold", 0, "bench/memory-floor", host, port, workdir, "5", 0.1)
    pipelines = [
        c.workload_pipeline(run, name=f"threshold-{i}", topic=f"{run.prefix}/in/{i}/#")
        for i in range(4)
    ]
    config = c.edged_config(
        run, pipelines, {"threshold": {"file": str(c.FILTERS / "threshold.wasm")}}
    )
    _ready_rss(config, workdir)  # compiles into the state dir's cache
    return statistics.median(_ready_rss(config, workdir) for _ in range(repeats))


def memory_floor(
    host: str | None = None,
    port: int | None = None,
    workdir: Path | None = None,
    *,
    repeats: int = 3,
) -> list[dict[str, object]]:
    """One row per step, then the running daemon's (against a private broker and in a
    temporary directory unless given); each RSS is the median of `repeats` processes."""
    measured: list[tuple[str, float]] = []
    for i, (step, _) in enumerate(STEPS):
        program = "\n".join(code for _, code in STEPS[: i + 1])
        measured.append((step, statistics.median(_step_rss(program) for _ in range(repeats))))
    with contextlib.ExitStack() as stack:
        if host is None or port is None:
            broker = stack.enter_context(PrivateBroker())
            host, port = broker.host, broker.port
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edged-mem-")))
        measured.append((EDGED_RUN, edged_run_rss(host, port, workdir, repeats)))
    rows: list[dict[str, object]] = []
    previous = 0.0
    for step, rss in measured:
        rss = round(rss, 1)
        rows.append({"step": step, "rss_mib": rss, "added_mib": round(rss - previous, 1)})
        previous = rss
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| step | RSS (MiB) | added (MiB) |", "|---|---:|---:|"]
    lines += [f"| {r['step']} | {r['rss_mib']:.1f} | {r['added_mib']:+.1f} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(memory_floor()))

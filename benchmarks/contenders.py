"""The contenders, each started as its own process serving one workload at one QoS.

1. `ceiling-python`: paho receive → republish, the workload in plain Python (no Wasm);
2. `ceiling-wasm`: the same loop calling the filter module through wasmtime's raw path;
3. `edged`: `edged run` with one pipeline holding the workload's example filter;
4. `node-red`: Node-RED with mqtt in → function → mqtt out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks import nodered
from benchmarks.load import LIMIT

ROOT = Path(__file__).resolve().parent.parent
FILTERS = ROOT / "examples" / "filters"

CONTENDERS = ("ceiling-python", "ceiling-wasm", "edged", "node-red")
LABELS = {
    "ceiling-python": "ceiling 1: paho loop, Python logic",
    "ceiling-wasm": "ceiling 2: paho loop, raw Wasm call",
    "edged": "edged",
    "node-red": "Node-RED",
}
WORKLOADS = ("passthrough", "threshold", "average")
PARAMS: dict[str, dict[str, object]] = {"threshold": {"limit": LIMIT}}


@dataclass
class Run:
    """Where one contender process gets its messages and sends its outputs."""

    workload: str
    qos: int
    prefix: str  # reads PREFIX/in/#, publishes under PREFIX/out/
    host: str
    port: int
    workdir: Path
    mqtt_version: str
    tick: float
    env: dict[str, str] = field(default_factory=dict)


class Process:
    """A started contender; its output goes to a log file, read only when something fails."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._sink = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._sink.close()


def start_ceiling(run: Run, *, wasm: bool) -> Process:
    command = [
        sys.executable,
        "-m",
        "benchmarks.ceiling",
        "--port",
        str(run.port),
        "--host",
        run.host,
        "--mqtt-version",
        run.mqtt_version,
        "--workload",
        run.workload,
        "--qos",
        str(run.qos),
        "--prefix",
        run.prefix,
        "--tick",
        str(run.tick),
    ]
    if wasm:
        command.append("--wasm")
    name = "ceiling-wasm" if wasm else "ceiling-python"
    return Process(command, run.workdir / f"{name}-{run.prefix.replace('/', '-')}.log", run.env)


def edged_config(
    run: Run,
    pipelines: list[dict[str, object]],
    modules: dict[str, dict[str, object]],
    **extra: object,
) -> Path:
    """Write an edged config for this run; defaults everywhere else a user would leave them."""
    node = run.prefix.replace("/", "-")
    config: dict[str, object] = {
        "node_id": node,
        "state_dir": str(run.workdir / "state"),
        "broker": {"host": run.host, "port": run.port, "mqtt_version": run.mqtt_version},
        "modules": modules,
        "pipelines": pipelines,
        # Like every other contender, edged leaves what it cannot take yet at the broker. With the
        # default (drop_oldest) a flood that outruns the filters would be counted as drops once
        # the 10,000-message intake queue is full, and outputs would be missing.
        "daemon": {"overload": "block"},
    }
    config.update(extra)
    path = run.workdir / f"edged-{node}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def workload_pipeline(
    run: Run, *, name: str = "bench", topic: str | None = None
) -> dict[str, object]:
    step: dict[str, object] = {"module": run.workload}
    if run.workload in PARAMS:
        step["params"] = PARAMS[run.workload]
    if run.workload == "average":
        step["tick_interval"] = run.tick
    return {
        "name": name,
        "subscribe": [{"topic": topic or f"{run.prefix}/in/#", "qos": run.qos}],
        "filters": [step],
        "outputs": [{"topic": f"{run.prefix}/out/{{topic}}", "qos": run.qos}],
    }


def start_edged(run: Run, config: Path | None = None) -> Process:
    if config is None:
        config = edged_config(
            run,
            [workload_pipeline(run)],
            {run.workload: {"file": str(FILTERS / f"{run.workload}.wasm")}},
        )
    command = [sys.executable, "-m", "edged", "run", "--config", str(config)]
    return Process(command, config.with_suffix(".log"), run.env)


def start_nodered(run: Run, red: nodered.NodeRed, ui_port: int) -> Process:
    user_dir = run.workdir / f"node-red-{run.prefix.replace('/', '-')}"
    user_dir.mkdir()
    flows = user_dir / "flows.json"
    flows.write_text(
        nodered.flow(
            run.workload,
            host=run.host,
            port=run.port,
            prefix=run.prefix,
            qos=run.qos,
            tick_ms=int(run.tick * 1000),
        )
    )
    command = red.command(user_dir, ui_port, str(flows))
    return Process(command, user_dir / "node-red.log", run.env)

"""Every benchmark of edged in one run: edged next to the raw paho ceiling, the raw wasmtime
ceiling and Node-RED, plus cold start, hot swap, scale, several brokers and shared
subscriptions, edged on mosquitto, HiveMQ CE and Mochi MQTT, the cost of the HTTP endpoint and
of its scrapes, the cost of an output the cloud broker will never take, what filter state
costs (swaps with a state, checkpoints), and the per-call cost.

    python -m benchmarks            # the full run (~20 minutes on two cores)
    python -m benchmarks --quick    # everything on tiny counts, to check that it works

Writes results.json, results.md and results.png to benchmarks/results/ (--quick: to
benchmarks/.cache/quick/ unless --out is given) and prints the Markdown.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    brokers,
    budget_cost,
    endpoint,
    faults,
    implementations,
    memory_floor,
    nodered,
    properties,
    report,
    scenarios,
    sparkplug,
    state,
)
from benchmarks.contenders import CONTENDERS, WORKLOADS
from edged.mqtt.mosquitto import PrivateBroker, find_mosquitto

HERE = Path(__file__).resolve().parent
SECTIONS = (
    "matrix",
    "cold",
    "swap",
    "scale",
    "brokers",
    "implementations",
    "endpoint",
    "faults",
    "state",
    "properties",
    "sparkplug",
    "calls",
    "memory",
)


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores ({model})"


def _software(red: object) -> str:
    mosquitto = find_mosquitto() or "mosquitto"
    broker = subprocess.run([mosquitto, "-h"], capture_output=True, text=True, check=False)
    broker_version = broker.stdout.splitlines()[0].split()[-1] if broker.stdout else "?"
    parts = [
        f"CPython {platform.python_version()}",
        f"wasmtime {importlib.metadata.version('wasmtime')}",
        f"paho-mqtt {importlib.metadata.version('paho-mqtt')}",
        f"mosquitto {broker_version}",
    ]
    if isinstance(red, nodered.NodeRed):
        parts.append(f"Node.js {red.node_version}")
    return ", ".join(parts)


def _ensure_matplotlib(quick: bool, log: list[str]) -> None:
    """The chart's one dependency (the `bench` extra); a full run installs it when missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if quick:
            return
        log.append("installing matplotlib (the `bench` extra) for the chart")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "matplotlib>=3.7"],
            check=False,
        )


def call_cost(calls: int) -> dict[str, float]:
    payloads = budget_cost._payloads(calls)
    rows = {
        "raw call, no fuel, no epochs (ceiling 2's path)": budget_cost.raw_loop(
            payloads, budgets=False
        ),
        "raw call, fuel + epoch deadline re-armed": budget_cost.raw_loop(payloads, budgets=True),
        "edged WasmtimeFilter.on_message, all budgets": budget_cost.edged_loop(payloads),
        "the same, the module in a WASI store (linker, context, shims)": budget_cost.edged_loop(
            payloads, wasi=True
        ),
    }
    return {name: round(seconds / calls * 1e6, 2) for name, seconds in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks it all runs")
    parser.add_argument("--out", type=Path, help="where to write results.{json,md,png}")
    parser.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    parser.add_argument("--no-node-red", action="store_true", help="leave Node-RED out")
    parser.add_argument("--workload", choices=WORKLOADS, action="append", help="matrix: only these")
    parser.add_argument(
        "--qos", type=int, choices=(0, 1), action="append", help="matrix: only these"
    )
    parser.add_argument(
        "--contender", choices=CONTENDERS, action="append", help="matrix: only these"
    )
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    sizes = scenarios.Sizes.quick() if args.quick else scenarios.Sizes.full()
    out = args.out or (HERE / ".cache" / "quick" if args.quick else HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    if out.parent == HERE / ".cache":
        (out.parent / ".gitignore").write_text("*\n")
    log: list[str] = []
    began = time.monotonic()

    red: nodered.NodeRed | str = "left out (--no-node-red)"
    if not args.no_node_red and "node-red" in (args.contender or CONTENDERS):
        red = nodered.find_or_install(log)
    for line in log:
        print(line, file=sys.stderr)
    _ensure_matplotlib(args.quick, log)
    node_red_text = (
        f"node-red {red.version} on Node.js {red.node_version}"
        if isinstance(red, nodered.NodeRed)
        else f"skipped: {red}"
    )
    results: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "date": time.strftime("%Y-%m-%d"),
            "machine": _machine(),
            "software": _software(red),
            "mqtt_version": args.mqtt_version,
            "node_red": node_red_text,
            "flood": {str(size): n for size, n in sizes.flood.items()},
            "rate": sizes.rate,
            "latency_seconds": sizes.seconds,
        },
        "notes": [],
    }
    contenders = [
        n
        for n in args.contender or CONTENDERS
        if n != "node-red" or isinstance(red, nodered.NodeRed)
    ]
    with PrivateBroker() as broker, tempfile.TemporaryDirectory(prefix="edged-bench-") as tmp:
        ctx = scenarios.Context(
            broker.host,
            broker.port,
            Path(tmp),
            sizes,
            args.mqtt_version,
            red if isinstance(red, nodered.NodeRed) else None,
            broker.pid,
        )
        scenarios.prime_compiled_cache(ctx)
        if "matrix" in sections:
            rows: list[dict[str, Any]] = []
            for workload in args.workload or WORKLOADS:
                for qos in args.qos or (0, 1):
                    for name in contenders:
                        ctx.say(f"{workload} QoS {qos}: {name}")
                        rows += scenarios.workload_rows(ctx, name, workload, qos)
            results["matrix"] = rows
        if "cold" in sections:
            ctx.say("cold start")
            results["cold_start"] = scenarios.cold_start(ctx)
        if "swap" in sections:
            ctx.say("hot swap")
            results["hot_swap"] = scenarios.hot_swap(ctx)
        if "scale" in sections:
            results["scale"] = []
            for count in sizes.scale:
                ctx.say(f"scale: {count} pipelines")
                results["scale"].append(scenarios.scale(ctx, count))
        if "brokers" in sections:
            counts = brokers.Counts.quick() if args.quick else brokers.Counts.full()
            results["brokers"] = brokers.measure(ctx, counts)
        if "implementations" in sections:
            impl_counts = (
                implementations.Counts.quick() if args.quick else implementations.Counts.full()
            )
            results["implementations"] = implementations.measure(ctx, impl_counts)
        if "endpoint" in sections:
            http_counts = endpoint.Counts.quick() if args.quick else endpoint.Counts.full()
            results["endpoint"] = endpoint.measure(ctx, http_counts)
        if "faults" in sections:
            fault_counts = faults.Counts.quick() if args.quick else faults.Counts.full()
            results["faults"] = faults.measure(ctx, fault_counts)
        if "state" in sections:
            state_counts = state.Counts.quick() if args.quick else state.Counts.full()
            results["state"] = state.measure(ctx, state_counts)
        if "properties" in sections:
            ctx.say("MQTT 5 properties per message")
            results["properties"] = properties.measure(
                5_000 if args.quick else 50_000, 3 if args.quick else 7
            )
        if "sparkplug" in sections:
            spb_counts = sparkplug.Counts.quick() if args.quick else sparkplug.Counts.full()
            results["sparkplug"] = sparkplug.measure(ctx, spb_counts)
        if "calls" in sections:
            ctx.say("per-call cost")
            results["call_cost"] = call_cost(sizes.call_cost_calls)
        if "memory" in sections:
            ctx.say("memory floor")
            results["memory_floor"] = memory_floor.memory_floor(
                broker.host, broker.port, Path(tmp), repeats=1 if args.quick else 3
            )
        results["notes"] += ctx.notes
    if not isinstance(red, nodered.NodeRed):
        results["notes"].append(f"Node-RED {node_red_text}")
    results["meta"]["seconds"] = round(time.monotonic() - began)

    out.mkdir(parents=True, exist_ok=True)  # again: it may have gone during a long run
    why_not = report.chart(results, out / "results.png")
    if why_not is not None:
        results["notes"].append(f"chart skipped: {why_not}")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = report.markdown(results)
    (out / "results.md").write_text(text)
    print(text, end="")
    print(f"written to {out} in {results['meta']['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

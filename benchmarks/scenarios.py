"""Every measurement of the harness: the workload matrix, cold start, hot swap and scale."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from benchmarks import contenders as c
from benchmarks import nodered, procfs
from benchmarks.load import (
    SENSORS,
    PacketMaker,
    Payloads,
    Publisher,
    Receiver,
    passes,
    percentiles,
    sensor_topics,
)
from edged.deploy import manifest
from edged.mqtt.mosquitto import free_port

Row = dict[str, Any]

# A module with other bytes than passthrough.wasm that forwards every message all the same, so
# pushes can alternate between two real versions while every output stays checkable.
FORWARD_WAT = """
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\\40\\00\\00\\00\\c0\\ef\\00\\00\\00\\f0\\00\\00\\00\\10\\00\\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32)
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (i32.const 1)))
"""


@dataclass(frozen=True)
class Sizes:
    """How much of everything: the full run, or --quick's tiny counts."""

    flood: dict[int, int]  # payload bytes -> messages per flood
    rate: int  # the fixed offered rate of the latency phase, msgs/s
    seconds: float  # length of the latency phase
    warm_up: int
    tick: float
    cold_repeats: int
    swap_rate: int
    swap_seconds: float
    swaps: int
    scale: tuple[int, ...]
    scale_flood: int
    call_cost_calls: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            flood={64: 30_000, 1024: 15_000},
            rate=1000,
            seconds=3.0,
            warm_up=500,
            tick=0.1,
            cold_repeats=5,
            swap_rate=10_000,
            swap_seconds=5.0,
            swaps=4,
            scale=(1, 4, 16, 64),
            scale_flood=30_000,
            call_cost_calls=200_000,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            flood={64: 400, 1024: 200},
            rate=500,
            seconds=0.3,
            warm_up=20,
            tick=0.1,
            cold_repeats=1,
            swap_rate=1000,
            swap_seconds=1.0,
            swaps=1,
            scale=(1, 4, 16, 64),
            scale_flood=400,
            call_cost_calls=2_000,
        )


@dataclass
class Context:
    host: str
    port: int
    workdir: Path
    sizes: Sizes
    mqtt_version: str
    red: nodered.NodeRed | None
    broker_pid: int | None = None
    notes: list[str] = field(default_factory=list)
    _runs: itertools.count[int] = field(default_factory=itertools.count)

    def run(self, workload: str, qos: int, env: dict[str, str] | None = None) -> c.Run:
        prefix = f"bench/r{next(self._runs)}"
        return c.Run(
            workload,
            qos,
            prefix,
            self.host,
            self.port,
            self.workdir,
            self.mqtt_version,
            self.sizes.tick,
            env or {},
        )

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def expected_weight(workload: str, first: int, count: int) -> int:
    """What the outputs of messages first..first+count must add up to."""
    if workload == "threshold":
        return sum(passes(i) for i in range(first, first + count))
    return count  # pass-through: one each; average: the summaries' counts add up to the inputs


def _start(ctx: Context, name: str, run: c.Run) -> c.Process:
    if name == "ceiling-python":
        return c.start_ceiling(run, wasm=False)
    if name == "ceiling-wasm":
        return c.start_ceiling(run, wasm=True)
    if name == "edged":
        return c.start_edged(run)
    assert ctx.red is not None
    return c.start_nodered(run, ctx.red, free_port())


def _warm_up(
    ctx: Context,
    proc: c.Process,
    run: c.Run,
    pub: Publisher,
    recv: Receiver,
    timeout: float,
    topics: Callable[[int], bytes] | None = None,
) -> None:
    """Probe until the contender answers, then run a little traffic through it and settle."""
    maker = PacketMaker(pub, topics or sensor_topics(run.prefix), Payloads(64), run.qos)
    deadline = time.monotonic() + timeout
    probe = 10  # reading 40: passes the threshold
    while recv.count == 0:
        if not proc.alive():
            raise RuntimeError(f"{run.prefix} exited during start:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{run.prefix} did not answer within {timeout} s:\n{proc.log_tail()}"
            )
        pub.conn.send(maker(probe, 0))
        probe += 1
        recv.wait_for(1, 0.1)
    base = time.monotonic()
    pub.paced(ctx.sizes.rate, ctx.sizes.warm_up, maker, base)
    # Stragglers of the warm-up must not count in the first phase.
    recv.wait_quiet(3 * run.tick if run.workload == "average" else 0.15, 10)
    recv.reset()


def workload_rows(ctx: Context, name: str, workload: str, qos: int) -> list[Row]:
    """One contender on one workload at one QoS: a row per payload size."""
    run = ctx.run(workload, qos)
    recv = Receiver(ctx.host, ctx.port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", qos)
    recv.weigh_counts = workload == "average"
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    proc = _start(ctx, name, run)
    rows: dict[int, Row] = {}
    try:
        _warm_up(ctx, proc, run, pub, recv, 90 if name == "node-red" else 30)
        sizes = ctx.sizes
        for size in sizes.flood:
            payloads = Payloads(size)
            count = int(sizes.rate * sizes.seconds)
            maker = PacketMaker(pub, sensor_topics(run.prefix), payloads, qos)
            base = time.monotonic()
            pub.paced(sizes.rate, count, maker, base)
            steady = procfs.rss_mib(proc.pid)
            want = expected_weight(workload, 0, count)
            complete = recv.wait_for(want, 10 + count / 200)
            if not complete:
                ctx.notes.append(
                    f"{name} {workload} QoS {qos} {size} B: {recv.weight} of {want} outputs "
                    "arrived in the latency phase"
                )
                recv.wait_quiet(1.0, 10)
            lat = None if workload == "average" else percentiles(recv.latencies_ms(base))
            rows[size] = {
                "contender": name,
                "workload": workload,
                "qos": qos,
                "payload_bytes": len(payloads.example),
                "offered_rate": sizes.rate,
                "latency_ms": None if lat is None else {"p50": lat.p50, "p99": lat.p99},
                "latency_samples": 0 if lat is None else lat.samples,
                "latency_complete": complete,
                "steady_rss_mib": round(steady, 1),
            }
            recv.reset()
        for size, count in sizes.flood.items():
            payloads = Payloads(size)
            maker = PacketMaker(pub, sensor_topics(run.prefix), payloads, qos)
            packets = [maker(i, i) for i in range(count)]
            want = expected_weight(workload, 0, count)
            procfs.reset_peak(proc.pid)
            cpu0 = procfs.cpu_seconds(proc.pid)
            broker0 = procfs.cpu_seconds(ctx.broker_pid) if ctx.broker_pid else 0.0
            started = pub.flood(packets)
            complete = recv.wait_for(want, 30 + count / 300)
            finished = recv.last
            cpu = procfs.cpu_seconds(proc.pid) - cpu0
            broker = procfs.cpu_seconds(ctx.broker_pid) - broker0 if ctx.broker_pid else None
            peak = procfs.peak_rss_mib(proc.pid)
            if not complete:
                recv.wait_quiet(1.0, 10)
            got = recv.weight
            seconds = finished - started
            rows[size].update(
                {
                    "messages": count,
                    "expected_outputs": want,
                    "outputs": got,
                    "complete": complete and got == want,
                    "msgs_per_s": round(count / seconds) if complete and seconds > 0 else None,
                    "cpu_s_per_100k": round(cpu / count * 100_000, 2),
                    # The broker's own share: with two cores, broker + contender + load set a
                    # bound on msgs/s that no contender can pass.
                    "broker_cpu_s_per_100k": None
                    if broker is None
                    else round(broker / count * 100_000, 2),
                    "peak_rss_mib": round(peak, 1),
                }
            )
            if got != want:
                ctx.notes.append(
                    f"{name} {workload} QoS {qos} {size} B: {got} of {want} outputs arrived"
                )
            recv.reset()
    finally:
        proc.stop()
        pub.close()
        recv.close()
    return list(rows.values())


# -- cold start ------------------------------------------------------------------------------


_EXAMPLE_PARAMS: dict[str, dict[str, object]] = {
    "threshold": {"limit": 35},
    "convert": {"scale": 1.8, "offset": 32},
    "deadband": {"deadband": 0.5},
}


def _modules_config(run: c.Run, state: Path, names: tuple[str, ...]) -> Path:
    """A config with one pipeline per example module, keeping its compiled code in `state`."""
    pipelines: list[dict[str, object]] = []
    for name in names:
        step: dict[str, object] = {"module": name, "params": _EXAMPLE_PARAMS.get(name, {})}
        if name == "average":
            step["tick_interval"] = 1
        pipelines.append(
            {
                "name": name,
                "subscribe": [f"{run.prefix}/in/{name}/#"],
                "filters": [step],
                "outputs": [{"topic": f"{run.prefix}/out/{{topic}}"}],
            }
        )
    modules = {n: {"file": str(c.FILTERS / f"{n}.wasm")} for n in names}
    path = c.edged_config(run, pipelines, modules, state_dir=str(state))
    return path


def prime_compiled_cache(ctx: Context) -> None:
    """Compile every example module into the runs' state dir, as a gateway's first start does;
    the measured starts then take the compiled code from the cache."""
    run = ctx.run("passthrough", 0)
    names = ("passthrough", "threshold", "average", "convert", "deadband")
    config = _modules_config(run, ctx.workdir / "state", names)
    subprocess.run(
        [sys.executable, "-m", "edged", "check", "--config", str(config)],
        cwd=c.ROOT,
        check=True,
        capture_output=True,
    )


def _time_to_ready(config: Path, workdir: Path) -> tuple[float, float]:
    """Seconds from starting `edged run` to READY=1 on NOTIFY_SOCKET, and RSS at that moment."""
    address = workdir / f"notify-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(30)
        began = time.monotonic()
        proc = c.Process(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            config.with_suffix(f".{address.name}.log"),
            {"NOTIFY_SOCKET": str(address)},
        )
        try:
            while True:
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    raise RuntimeError(f"no READY within 30 s:\n{proc.log_tail()}") from None
                if b"READY=1" in data.split(b"\n"):
                    return time.monotonic() - began, procfs.rss_mib(proc.pid)
        finally:
            proc.stop()
            address.unlink(missing_ok=True)


def cold_start(ctx: Context) -> Row:
    """Process start → READY with 4 modules, with an empty and with a warm compiled cache."""
    run = ctx.run("threshold", 0)
    cold: list[float] = []
    warm: list[float] = []
    rss: list[float] = []
    for attempt in range(ctx.sizes.cold_repeats):
        state = ctx.workdir / f"cold-{attempt}"
        config = _modules_config(run, state, ("threshold", "average", "convert", "deadband"))
        seconds, _ = _time_to_ready(config, ctx.workdir)  # empty state dir: compiles
        cold.append(seconds)
        seconds, resident = _time_to_ready(config, ctx.workdir)  # the same one, now cached
        warm.append(seconds)
        rss.append(resident)
    return {
        "modules": 4,
        "repeats": len(cold),
        "no_cache_s": {"median": round(statistics.median(cold), 3), "max": round(max(cold), 3)},
        "cache_s": {"median": round(statistics.median(warm), 3), "max": round(max(warm), 3)},
        "rss_at_ready_mib": round(statistics.median(rss), 1),
    }


# -- hot swap --------------------------------------------------------------------------------


def hot_swap(
    ctx: Context,
    versions: tuple[bytes, bytes] | None = None,
    budgets: dict[str, object] | None = None,
) -> Row:
    """Push new versions while a 10k msg/s stream runs; count every output per message.

    `versions`: two modules that forward every message, pushed in turn (the second one is the
    config's file, the first pushed); by default FORWARD_WAT and passthrough.wasm. `budgets`:
    the module's own budgets. `state_loads` counts the swaps that handed a state over."""
    sizes = ctx.sizes
    run = ctx.run("passthrough", 1)
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    node = run.prefix.replace("/", "-")
    pipeline = c.workload_pipeline(run)
    extra: dict[str, object] = {}
    if versions is None:
        versions = (
            bytes(wasmtime.wat2wasm(FORWARD_WAT)),
            (c.FILTERS / "passthrough.wasm").read_bytes(),
        )
        first = c.FILTERS / "passthrough.wasm"
    else:
        first = run.workdir / f"{node}.wasm"
        first.write_bytes(versions[1])
        # a state dir of its own: another run's pushed module and checkpoint would be restored
        extra["state_dir"] = str(run.workdir / f"state-{node}")
    module: dict[str, object] = {"file": str(first)}
    if budgets:
        module["budgets"] = budgets
    config = c.edged_config(
        run, [pipeline], {"passthrough": module}, deploy={"trusted_keys": [public]}, **extra
    )
    deploy_topic = f"edged/{node}/deploy".encode()
    ack_pattern = f"edged/{node}/ack"
    recv = Receiver(ctx.host, ctx.port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", 1)
    acks = Receiver(ctx.host, ctx.port, f"acks-{uuid.uuid4().hex[:8]}", ack_pattern, 1)
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    proc = c.start_edged(run, config)
    try:
        _warm_up(ctx, proc, run, pub, recv, 30)
        total = int(sizes.swap_rate * sizes.swap_seconds)
        every = total // (sizes.swaps + 1)
        topic = f"{run.prefix}/in/stream".encode()
        pushed: dict[int, float] = {}

        def build(index: int, _stamp: int) -> bytes:
            packet = pub.packet(topic, b"seq=%07d" % index, 1)
            if index and index % every == 0 and len(pushed) < sizes.swaps:
                version = len(pushed) + 2
                message = manifest.build(
                    "passthrough",
                    version,
                    versions[version % 2],
                    key=key,
                    request_id=f"swap-{version}",
                )
                pushed[version] = time.monotonic()
                packet += pub.packet(deploy_topic, message, 1)
            return packet

        base = time.monotonic()
        pub.paced(sizes.swap_rate, total, build, base)
        publish_s = time.monotonic() - base
        complete = recv.wait_for(total, 30)
        acks.wait_for(len(pushed), 30)
        recv.wait_quiet(0.5, 5)
    finally:
        proc.stop()
        pub.close()
        recv.close()
        acks.close()
    state_loads = proc.log.read_text(errors="replace").count("state_loaded")
    # (a warm-up output that arrived after the reset, on a busy machine, is no stream message)
    seen = Counter(int(p[4:]) for p in recv.payloads() if p.startswith(b"seq="))
    ack_times: dict[int, float] = {}
    results: list[str] = []
    for arrived, messages in acks.chunks:
        for _, payload in messages:
            body = json.loads(payload)
            ack_times[int(body["version"])] = arrived
            results.append(str(body["result"]))
    latencies = [ack_times[v] - t for v, t in pushed.items() if v in ack_times]
    # The longest the output stream stalled, anywhere in the run; and during a swap (a gap that
    # overlaps a push's time to its ack, plus 50 ms for what follows the ack), apart from the
    # gaps a busy machine makes in a steady stream (the rest, shown for comparison).
    arrivals = sorted(t for t, messages in recv.chunks for _ in messages)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    spans = [(t, ack_times.get(v, t + 5) + 0.05) for v, t in pushed.items()]
    in_swap, elsewhere = [0.0], [0.0]
    for a, b in itertools.pairwise(arrivals):
        during = any(a < end and b > start for start, end in spans)
        (in_swap if during else elsewhere).append(b - a)
    return {
        "stream_rate": sizes.swap_rate,
        "achieved_rate": round(total / publish_s),
        "messages": total,
        "swaps": len(pushed),
        "acks": Counter(results),
        "swap_latency_ms": {
            "median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "max": round(max(latencies) * 1000, 1) if latencies else None,
        },
        "longest_output_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
        "swap_gap_ms": round(max(in_swap) * 1000, 1),
        "gap_elsewhere_ms": round(max(elsewhere) * 1000, 1),
        "state_loads": state_loads,
        "lost": sum(1 for i in range(total) if i not in seen),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "unexpected": sum(1 for i in seen if not 0 <= i < total),
        "complete": complete,
    }


# -- scale -----------------------------------------------------------------------------------


def scale(ctx: Context, pipelines: int) -> Row:
    """edged with N pipelines, each with its own threshold module; the load spread over all."""
    sizes = ctx.sizes
    run = ctx.run("threshold", 0)
    specs = []
    modules: dict[str, dict[str, object]] = {}
    for i in range(pipelines):
        spec = c.workload_pipeline(run, name=f"p{i}", topic=f"{run.prefix}/in/p{i}/#")
        spec["filters"] = [{"module": f"m{i}", "params": {"limit": 35}}]
        specs.append(spec)
        modules[f"m{i}"] = {"file": str(c.FILTERS / "threshold.wasm")}
    # 64 instances at the default 16 MiB cap would exceed the default 256 MiB memory budget.
    config = c.edged_config(run, specs, modules, budgets={"memory": "1 MiB"})
    recv = Receiver(ctx.host, ctx.port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", 0)
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    proc = c.start_edged(run, config)
    payloads = Payloads(64)

    topics = [
        f"{run.prefix}/in/p{p}/s{s}".encode() for s in range(SENSORS) for p in range(pipelines)
    ]

    def topic(i: int) -> bytes:
        return topics[i % len(topics)]

    maker = PacketMaker(pub, topic, payloads, 0)
    try:
        _warm_up(ctx, proc, run, pub, recv, 60, topic)
        count = int(sizes.rate * sizes.seconds)
        base = time.monotonic()
        pub.paced(sizes.rate, count, maker, base)
        steady = procfs.rss_mib(proc.pid)
        recv.wait_for(expected_weight("threshold", 0, count), 30)
        recv.wait_quiet(0.2, 5)
        recv.reset()
        n = sizes.scale_flood
        packets = [maker(i, i) for i in range(n)]
        want = expected_weight("threshold", 0, n)
        procfs.reset_peak(proc.pid)
        cpu0 = procfs.cpu_seconds(proc.pid)
        started = pub.flood(packets)
        complete = recv.wait_for(want, 30 + n / 300)
        seconds = recv.last - started
        cpu = procfs.cpu_seconds(proc.pid) - cpu0
        peak = procfs.peak_rss_mib(proc.pid)
    finally:
        proc.stop()
        pub.close()
        recv.close()
    return {
        "pipelines": pipelines,
        "modules": pipelines,
        "msgs_per_s": round(n / seconds) if complete else None,
        "outputs": recv.weight,
        "expected_outputs": want,
        "steady_rss_mib": round(steady, 1),
        "peak_rss_mib": round(peak, 1),
        "cpu_s_per_100k": round(cpu / n * 100_000, 2),
    }

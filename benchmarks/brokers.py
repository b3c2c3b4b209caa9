"""Several brokers and shared subscriptions: what a second broker and a second node cost.

1. two brokers: edged with its input and output on one mosquitto, against edged with
   `brokers: {local, cloud}`, reading from one mosquitto and publishing (`broker: cloud`) to a
   second one;
2. shared subscription: one edged node against two (different node ids) on
   `$share/bench/<prefix>/in/#` on one mosquitto, splitting one stream.

Both on the matrix's threshold workload at QoS 1 with 64-byte payloads. The processes of all
variants of a measurement run side by side, and the floods alternate between them (A B, B A,
A B, ...), so a drift of the machine during the run falls on every variant alike; the figures
are the medians. Besides edged, the CPU of the brokers and of the harness (the load generator
and the receiver, one process) is taken over each flood: on two cores they share, their sum
says whether the machine, not edged, set the rate.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from benchmarks import contenders as c
from benchmarks import procfs
from benchmarks.load import PacketMaker, Payloads, Publisher, Receiver, sensor_topics
from benchmarks.scenarios import Context, Row, _warm_up, expected_weight
from edged.config.model import TOPIC_PREFIX
from edged.mqtt.mosquitto import PrivateBroker

WORKLOAD = "threshold"
QOS = 1
PIPELINE = "bench"  # workload_pipeline's default name: the key in each node's metrics record
GROUP = "bench"  # the shared subscription's group
# Each node's split is read from its metrics record (`pipelines.bench.in`) before and after a
# flood; four records a second cost the daemon a JSON dump each, nothing next to ~20k msgs/s.
METRICS_INTERVAL = 0.25


@dataclass(frozen=True)
class Counts:
    """Messages per flood, and floods per variant (alternated between the variants)."""

    messages: int
    rounds: int

    @classmethod
    def full(cls) -> Counts:
        # 5 to 14 s a flood at 7k to 18k msgs/s. Compare within this section, not with the
        # matrix's 30k floods: a 100k flood costs more per message everywhere (on two cores,
        # edged 5.1-6.5 -> 7.6-8.6 CPU s per 100k, the broker 1.6-1.9 -> 2.1-2.6, the paho
        # ceiling likewise), so the backlog, not edged, adds it.
        return cls(messages=100_000, rounds=3)

    @classmethod
    def quick(cls) -> Counts:
        return cls(messages=400, rounds=1)


@dataclass
class Setup:
    """One variant: its edged nodes, the load on the input broker and the receiver of the
    outputs (on the output broker), and the brokers whose CPU counts."""

    name: str
    run: c.Run
    nodes: dict[str, c.Process]  # node_id -> its `edged run`
    pub: Publisher
    recv: Receiver
    brokers: dict[str, int]  # label -> pid
    floods: list[Row] = field(default_factory=list)

    def close(self) -> None:
        for proc in self.nodes.values():
            proc.stop()
        self.pub.close()
        self.recv.close()


def _node_run(ctx: Context, run: c.Run, node: str) -> c.Run:
    """The run as one node has it: a directory of its own for config, log and state (nodes on
    one state dir would share one outbox file), with the modules compiled by the primed cache."""
    workdir = ctx.workdir / node
    compiled = ctx.workdir / "state" / "compiled"
    if compiled.is_dir():
        shutil.copytree(compiled, workdir / "state" / "compiled", dirs_exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(run, workdir=workdir)


def _node_config(
    ctx: Context,
    run: c.Run,
    node: str,
    *,
    topic: str | None = None,
    output_broker: str | None = None,
    **extra: object,
) -> tuple[c.Run, Path]:
    """One node's config: the workload's pipeline (subscribed to `topic`, its outputs to
    `output_broker`), metrics often enough to read the split from."""
    node_run = _node_run(ctx, run, node)
    pipeline = c.workload_pipeline(node_run, topic=topic)
    if output_broker is not None:
        for rule in cast(list[dict[str, object]], pipeline["outputs"]):
            rule["broker"] = output_broker
    modules: dict[str, dict[str, object]] = {WORKLOAD: {"file": str(c.FILTERS / "threshold.wasm")}}
    config = c.edged_config(
        node_run,
        [pipeline],
        modules,
        node_id=node,
        metrics={"interval": METRICS_INTERVAL},
        **extra,
    )
    return node_run, config


def _setup(
    ctx: Context,
    name: str,
    run: c.Run,
    configs: dict[str, tuple[c.Run, Path]],
    out: PrivateBroker | None,
    brokers: dict[str, int],
) -> Setup:
    host, port = (ctx.host, ctx.port) if out is None else (out.host, out.port)
    recv = Receiver(host, port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", QOS)
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    nodes = {node: c.start_edged(r, config) for node, (r, config) in configs.items()}
    return Setup(name, run, nodes, pub, recv, brokers)


def _newest(watch: Receiver, topic: str) -> dict[str, Any] | None:
    """The newest record on `topic` the watcher has seen."""
    wanted = topic.encode()
    for _, messages in reversed(list(watch.chunks)):
        for got, payload in reversed(messages):
            if got == wanted:
                return cast(dict[str, Any], json.loads(payload))
    return None


def _wait_online(watch: Receiver, setup: Setup, timeout: float = 60) -> None:
    """Until every node says `online` (its subscriptions acknowledged, every link up): a second
    node that subscribed late would leave the first flood all to the first."""
    deadline = time.monotonic() + timeout
    for node, proc in setup.nodes.items():
        while (_newest(watch, f"{TOPIC_PREFIX}/{node}/status") or {}).get("state") != "online":
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{node} did not come online:\n{proc.log_tail()}")
            time.sleep(0.05)


def _machine_busy() -> float:
    """CPU seconds the whole machine has not had idle (every process, and what the hypervisor
    took: steal), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _inputs_handled(
    watch: Receiver, nodes: Sequence[str], since: float, at_least: int = 0, timeout: float = 10
) -> dict[str, int]:
    """Each node's `pipelines.bench.in` from its newest metrics record published after `since`
    (wall clock), once they add up to `at_least` (or as they are after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = {}
        for node in nodes:
            record = _newest(watch, f"{TOPIC_PREFIX}/{node}/metrics")
            if record is not None and record["ts"] >= since * 1000:
                counts[node] = int(record["pipelines"][PIPELINE]["in"])
        done = len(counts) == len(nodes) and sum(counts.values()) >= at_least
        if done or time.monotonic() > deadline:
            return counts
        time.sleep(METRICS_INTERVAL / 2)


def _flood(ctx: Context, setup: Setup, watch: Receiver, count: int) -> Row:
    """One flood of `count` messages through a setup: the rate, every process's CPU over it and
    how many inputs each node took."""
    maker = PacketMaker(setup.pub, sensor_topics(setup.run.prefix), Payloads(64), QOS)
    packets = [maker(i, i) for i in range(count)]
    want = expected_weight(WORKLOAD, 0, count)
    nodes = list(setup.nodes)
    before = _inputs_handled(watch, nodes, time.time(), at_least=0)
    pids = {
        **{f"edged {node}": proc.pid for node, proc in setup.nodes.items()},
        **{f"broker {name}": pid for name, pid in setup.brokers.items()},
        "harness": os.getpid(),
    }
    cpu0 = {label: procfs.cpu_seconds(pid) for label, pid in pids.items()}
    machine0 = _machine_busy()
    send0 = time.thread_time()
    started = setup.pub.flood(packets)
    send = time.thread_time() - send0
    complete = setup.recv.wait_for(want, 30 + count / 300)
    finished = setup.recv.last
    cpu = {label: procfs.cpu_seconds(pid) - cpu0[label] for label, pid in pids.items()}
    machine = _machine_busy() - machine0
    if not complete:
        setup.recv.wait_quiet(1.0, 10)
    got = setup.recv.weight
    setup.recv.reset()
    after = _inputs_handled(watch, nodes, time.time(), at_least=sum(before.values()) + count)
    handled = {n: after[n] - before[n] for n in nodes if n in after and n in before}
    seconds = finished - started
    complete = complete and got == want
    if not complete:
        ctx.notes.append(f"brokers, {setup.name}: {got} of {want} outputs arrived")
    if sum(handled.values()) != count:
        ctx.notes.append(
            f"brokers, {setup.name}: the nodes' metrics count {handled} inputs of {count}"
        )
    return {
        "seconds": seconds,
        "complete": complete,
        "outputs": got,
        "expected_outputs": want,
        "handled": handled,
        "cpu_s": cpu,
        "send_cpu_s": send,
        "machine_cpu_s": machine,
    }


def _alternate(ctx: Context, setups: Sequence[Setup], watch: Receiver, counts: Counts) -> None:
    for round_ in range(counts.rounds):
        for setup in setups if round_ % 2 == 0 else reversed(setups):
            ctx.say(f"brokers: {setup.name}, flood {round_ + 1} of {counts.rounds}")
            setup.floods.append(_flood(ctx, setup, watch, counts.messages))


def _per_100k(seconds: float, messages: int) -> float:
    return round(seconds / messages * 100_000, 2)


def _median(values: Iterable[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def _summary(setup: Setup, count: int) -> Row:
    """The medians over a setup's floods."""
    floods = setup.floods
    timed = [f for f in floods if f["seconds"] > 0]
    rates = [round(count / f["seconds"]) if f in timed and f["complete"] else 0 for f in floods]
    labels = list(floods[0]["cpu_s"])
    cpu = {label: _median(_per_100k(f["cpu_s"][label], count) for f in floods) for label in labels}
    edged = [sum(s for k, s in f["cpu_s"].items() if k.startswith("edged ")) for f in floods]
    nodes: dict[str, Row] = {}
    for node in setup.nodes:
        took = [f["handled"].get(node, 0) for f in floods]
        own = [
            _per_100k(f["cpu_s"][f"edged {node}"], n)
            for f, n in zip(floods, took, strict=True)
            if n
        ]
        nodes[node] = {
            "inputs": sum(took),
            "share": round(sum(took) / (count * len(floods)), 3),
            # per 100k of the inputs this node took, comparable with one node's figure
            "cpu_s_per_100k": _median(own) if own else None,
        }
    return {
        "setup": setup.name,
        "complete": all(f["complete"] for f in floods),
        "msgs_per_s": round(statistics.median(rates)) if all(rates) else None,
        "msgs_per_s_rounds": rates,
        "outputs_per_s": round(statistics.median(f["outputs"] / f["seconds"] for f in timed))
        if timed
        else None,
        "edged_cpu_s_per_100k": _median(_per_100k(s, count) for s in edged),
        "nodes": nodes,
        # every process's CPU per 100k inputs; `harness` is the load generator and the receiver
        "cpu_s_per_100k": cpu,
        "send_cpu_s_per_100k": _median(_per_100k(f["send_cpu_s"], count) for f in floods),
        # CPU seconds of all of them per second of the flood: 2.0 is both cores full
        "cores_busy": _median(sum(f["cpu_s"].values()) / f["seconds"] for f in timed)
        if timed
        else None,
        # the same for the whole machine: what else ran takes the cores from all of them
        "machine_cores_busy": _median(f["machine_cpu_s"] / f["seconds"] for f in timed)
        if timed
        else None,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _local(ctx: Context) -> dict[str, object]:
    return {"host": ctx.host, "port": ctx.port, "mqtt_version": ctx.mqtt_version}


def _measure(ctx: Context, setups: Sequence[Setup], watch: Receiver, counts: Counts) -> Row:
    """Bring every setup up, warm it, alternate the floods between them; their medians."""
    for setup in setups:
        _wait_online(watch, setup)
    for setup in setups:
        first = next(iter(setup.nodes.values()))
        _warm_up(ctx, first, setup.run, setup.pub, setup.recv, 30)
    _alternate(ctx, setups, watch, counts)
    return {setup.name: _summary(setup, counts.messages) for setup in setups}


def _node_id(run: c.Run, suffix: str = "") -> str:
    return run.prefix.replace("/", "-") + suffix


def two_brokers(ctx: Context, watch: Receiver, counts: Counts) -> Row:
    """In and out on one mosquitto against in on one, out on a second (`broker: cloud`)."""
    assert ctx.broker_pid is not None
    with PrivateBroker() as cloud:
        assert cloud.pid is not None
        setups: list[Setup] = []
        try:
            run = ctx.run(WORKLOAD, QOS)
            node = _node_id(run)
            configs = {node: _node_config(ctx, run, node)}
            setups.append(_setup(ctx, "one broker", run, configs, None, {"local": ctx.broker_pid}))
            run = ctx.run(WORKLOAD, QOS)
            node = _node_id(run)
            brokers = {
                "local": {"host": ctx.host, "port": ctx.port, "mqtt_version": ctx.mqtt_version},
                "cloud": {"host": cloud.host, "port": cloud.port, "mqtt_version": ctx.mqtt_version},
            }
            # broker=None: `brokers:` instead of edged_config's one-broker form
            config = _node_config(
                ctx, run, node, output_broker="cloud", broker=None, brokers=brokers
            )
            pids = {"local": ctx.broker_pid, "cloud": cloud.pid}
            setups.append(_setup(ctx, "two brokers", run, {node: config}, cloud, pids))
            rows = _measure(ctx, setups, watch, counts)
        finally:
            for setup in setups:
                setup.close()
    one, two = rows["one broker"], rows["two brokers"]
    rows["two ÷ one"] = {
        "msgs_per_s": _ratio(two["msgs_per_s"], one["msgs_per_s"]),
        "edged_cpu_s_per_100k": _ratio(two["edged_cpu_s_per_100k"], one["edged_cpu_s_per_100k"]),
    }
    return rows


def shared(ctx: Context, watch: Receiver, counts: Counts) -> Row:
    """One node against two nodes splitting `$share/bench/<prefix>/in/#` on one mosquitto.

    The one node subscribes the same way (a group of one), so the second node is the only
    difference."""
    assert ctx.broker_pid is not None
    pids = {"local": ctx.broker_pid}
    setups: list[Setup] = []
    try:
        for name, suffixes in (("one node", ("-a",)), ("two nodes", ("-a", "-b"))):
            run = ctx.run(WORKLOAD, QOS)
            topic = f"$share/{GROUP}/{run.prefix}/in/#"
            configs = {
                _node_id(run, s): _node_config(ctx, run, _node_id(run, s), topic=topic)
                for s in suffixes
            }
            setups.append(_setup(ctx, name, run, configs, None, pids))
        return _measure(ctx, setups, watch, counts)
    finally:
        for setup in setups:
            setup.close()


def measure(ctx: Context, counts: Counts) -> Row:
    """Both measurements, with what they share: the threshold workload at QoS 1, 64 B."""
    # Every node's status and metrics are on the input broker (its control broker).
    if ctx.mqtt_version != "5":
        ctx.notes.append("brokers: shared subscriptions left out, they need MQTT 5")
    watch = Receiver(ctx.host, ctx.port, f"watch-{uuid.uuid4().hex[:8]}", f"{TOPIC_PREFIX}/#", 0)
    try:
        return {
            "workload": WORKLOAD,
            "qos": QOS,
            "payload_bytes": len(Payloads(64).example),
            "messages": counts.messages,
            "rounds": counts.rounds,
            "two_brokers": two_brokers(ctx, watch, counts),
            "shared": shared(ctx, watch, counts) if ctx.mqtt_version == "5" else None,
        }
    finally:
        watch.close()

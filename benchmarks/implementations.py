"""Broker implementations: edged on mosquitto, HiveMQ CE and Mochi MQTT side by side.

For each broker, a broker process of its own (tests/helpers/otherbrokers.py, the brokers the
test suite checks edged against) and one edged with its input and its output on it: the
matrix's threshold workload at QoS 1 with 64-byte payloads, the load generator, the receiver of
the outputs and edged's status and metrics all on that broker. Every broker is started with
its limits off (queues as long as it allows, a Receive Maximum of 65535 towards its clients),
so that none is bounded by a default the others do not have (HiveMQ's default Receive Maximum
is 10).

The setups run side by side and the floods alternate between them (A B C, C B A, ...), after
one unmeasured flood each (a JVM compiles its hot paths during the first seconds of load);
the figures are the medians over the rounds: msgs/s (inputs per second from the first publish
to the last output), edged's CPU and the broker's own CPU per 100k inputs, and each as a ratio
to mosquitto's. A broker that is not built here (scripts/brokers.sh says why, in its cache) is
left out with that reason in the notes. A flood that yields no output for STALL_SECONDS is
taken as stalled: its broker's further floods are left out.

edged keeps its defaults on every broker but where CHANGES says otherwise, with the reason,
which the section's notes repeat: on Mochi MQTT 2.7.9 a flood is a backlog larger than edged's
default window, which Mochi does not honour (docs/brokers.md), and the subscription stalls.

Measured 2026-12-07 on a 2-core x86_64 VM (full counts: ~3 minutes; docs/brokers.md has the
table): mosquitto 18,684 msgs/s at 4.30 edged CPU s per 100k inputs; HiveMQ CE 733 msgs/s
(0.04 of mosquitto's; edged 1.67x the CPU), every process nearly idle: edged's socket has no
TCP_NODELAY, and Nagle's algorithm holds its acknowledgements; Mochi 774 msgs/s in its first
flood (inflight 65535; broker CPU 77x mosquitto's), then stalled. With `inflight` 100, 1,000
and 5,000 Mochi stalled in the first flood.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import contenders as c
from benchmarks import procfs
from benchmarks.brokers import (
    Setup,
    _inputs_handled,
    _machine_busy,
    _median,
    _node_config,
    _node_id,
    _per_100k,
    _ratio,
    _summary,
    _wait_online,
)
from benchmarks.load import PacketMaker, Payloads, Publisher, Receiver, sensor_topics
from benchmarks.scenarios import Context, Row, _warm_up, expected_weight
from edged.config.model import TOPIC_PREFIX
from edged.mqtt.mosquitto import find_mosquitto

WORKLOAD = "threshold"
QOS = 1
BROKERS = ("mosquitto", "hivemq", "mochi")
BASELINE = "mosquitto"
#: edged's link settings that differ from its defaults on a broker (under MQTT 5), and why
CHANGES: dict[str, tuple[dict[str, object], str]] = {
    "mochi": (
        {"inflight": 65535},
        "edged's `inflight` (the Receive Maximum it announces) 65535, the most MQTT allows, "
        "instead of 100: Mochi MQTT 2.7.9 does not honour it (what it held back for the window "
        "no longer counts as in flight once sent, so PUBACKs never reopen the window), and a "
        "backlog larger than the window, as a flood leaves at the broker, stalls the "
        "subscription for good (docs/brokers.md)",
    ),
}
#: a flood that yields no output for this long is taken as stalled, and the setup's further
#: floods are left out
STALL_SECONDS = 15.0


@dataclass(frozen=True)
class Counts:
    """Messages per flood, floods per broker (alternated), and the unmeasured first flood."""

    messages: int
    rounds: int
    warm_up: int

    @classmethod
    def full(cls) -> Counts:
        # On two cores, ~1 s a flood on mosquitto, ~27 s on HiveMQ and Mochi (~700 msgs/s:
        # see above), 15 s more for a stall; the section takes ~3 minutes.
        return cls(messages=20_000, rounds=3, warm_up=5_000)

    @classmethod
    def quick(cls) -> Counts:
        return cls(messages=400, rounds=1, warm_up=100)


def unavailable(name: str) -> str | None:
    """Why broker `name` cannot run here (None: it can); `need_build` without pytest."""
    if name == "mosquitto":
        return None if find_mosquitto() else "mosquitto is not installed"
    try:
        from tests.helpers import otherbrokers as ob
    except ImportError as exc:  # the tests' helpers need pytest (the `dev` extra)
        return f"the test brokers' helpers do not import: {exc}"
    what = ob.DESCRIPTIONS[name]
    if os.environ.get(ob.NO_OTHER_BROKERS_ENV):
        return f"{ob.NO_OTHER_BROKERS_ENV} is set: {what} left out"
    digest = ob.source_hash(name)
    why = ob.cache_dir() / f"{name}-{digest}.unavailable"
    if not (ob.cache_dir() / f"{name}-{digest}").is_dir():
        if why.is_file():
            return f"{what} could not be built here: {why.read_text().strip()}"
        return f"{what} is not built for these sources: run scripts/brokers.sh"
    if name == "hivemq" and shutil.which("java") is None:
        return f"{what} needs java (Java 11 or newer), which is not on PATH"
    return None


def describe(name: str) -> str:
    """The broker and its version."""
    if name == "mosquitto":
        mosquitto = find_mosquitto() or "mosquitto"
        out = subprocess.run([mosquitto, "-h"], capture_output=True, text=True, check=False)
        version = out.stdout.split("\n", 1)[0].split()[-1] if out.stdout else "?"
        return f"mosquitto {version}"
    from tests.helpers.otherbrokers import DESCRIPTIONS

    return DESCRIPTIONS[name]


@dataclass
class Bench:
    """One broker's setup, with the watcher of its node's status and metrics."""

    broker: Any  # tests.helpers.otherbrokers.Broker
    setup: Setup
    watch: Receiver
    stalled: bool = False

    def close(self) -> None:
        self.setup.close()
        self.watch.close()
        self.broker.stop()


def _start(ctx: Context, name: str) -> Bench:
    from tests.helpers.otherbrokers import make_broker

    broker = make_broker(name)
    broker.start()
    try:
        assert broker.pid is not None
        run = dataclasses.replace(ctx.run(WORKLOAD, QOS), host=broker.host, port=broker.port)
        node = _node_id(run)
        link: dict[str, object] = {
            "host": broker.host,
            "port": broker.port,
            "mqtt_version": ctx.mqtt_version,
        }
        if name in CHANGES and ctx.mqtt_version == "5":
            link.update(CHANGES[name][0])
        config = _node_config(ctx, run, node, broker=link)
        tag = uuid.uuid4().hex[:8]
        watch = Receiver(broker.host, broker.port, f"watch-{tag}", f"{TOPIC_PREFIX}/#", 0)
        recv = Receiver(broker.host, broker.port, f"recv-{tag}", f"{run.prefix}/out/#", QOS)
        pub = Publisher(broker.host, broker.port, f"pub-{tag}")
        proc = c.start_edged(*config)
        setup = Setup(name, run, {node: proc}, pub, recv, {name: broker.pid})
    except BaseException:
        broker.stop()
        raise
    return Bench(broker, setup, watch)


def _flood(ctx: Context, bench: Bench, count: int) -> Row:
    """One flood through a broker's setup: the rate, every process's CPU over it and how many
    inputs edged took; a flood that stalls marks the setup as stalled."""
    setup = bench.setup
    maker = PacketMaker(setup.pub, sensor_topics(setup.run.prefix), Payloads(64), QOS)
    packets = [maker(i, i) for i in range(count)]
    want = expected_weight(WORKLOAD, 0, count)
    nodes = list(setup.nodes)
    before = _inputs_handled(bench.watch, nodes, time.time())
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
    # Until every output is in, or none has come for STALL_SECONDS (a stalled subscription).
    reached = False
    while not reached:
        reached = setup.recv.wait_for(want, 1.0)
        if time.monotonic() - max(setup.recv.last, started) > STALL_SECONDS:
            break
    finished = setup.recv.last
    cpu = {label: procfs.cpu_seconds(pid) - cpu0[label] for label, pid in pids.items()}
    machine = _machine_busy() - machine0
    # Anything more (an output repeated) comes within a moment: it must not count in the next.
    setup.recv.wait_quiet(0.5 if reached else 1.0, 5)
    got = setup.recv.weight
    setup.recv.reset()
    after = _inputs_handled(
        bench.watch, nodes, time.time(), at_least=sum(before.values()) + count, timeout=5
    )
    handled = {n: after[n] - before[n] for n in nodes if n in after and n in before}
    complete = reached and got == want
    if not reached:
        bench.stalled = True
        ctx.notes.append(
            f"implementations, {setup.name}: {got} of {want} outputs arrived, then none for "
            f"{STALL_SECONDS:.0f} s; its further floods are left out, and it is stopped"
        )
    elif not complete:
        ctx.notes.append(f"implementations, {setup.name}: {got} outputs arrived, {want} expected")
    if not handled:
        ctx.notes.append(
            f"implementations, {setup.name}: no metrics record of edged's came within 5 s of "
            "the flood's end (the broker is behind)"
        )
    elif sum(handled.values()) != count:
        ctx.notes.append(
            f"implementations, {setup.name}: edged's metrics count {handled} inputs of {count}"
        )
    if bench.stalled:  # a stalled broker may spin: it must not take the others' CPU
        bench.close()
    return {
        "seconds": max(finished - started, 0.0),
        "complete": complete,
        "outputs": got,
        "expected_outputs": want,
        "handled": handled,
        "cpu_s": cpu,
        "send_cpu_s": send,
        "machine_cpu_s": machine,
    }


def _alternate(ctx: Context, benches: Sequence[Bench], counts: Counts) -> None:
    for round_ in range(counts.rounds):
        for bench in benches if round_ % 2 == 0 else reversed(benches):
            if bench.stalled:
                continue
            ctx.say(f"implementations: {bench.setup.name}, flood {round_ + 1} of {counts.rounds}")
            bench.setup.floods.append(_flood(ctx, bench, counts.messages))


def _row(bench: Bench, counts: Counts, version: str) -> Row:
    """The medians over the broker's complete floods (all of them, unless it stalled)."""
    name = bench.setup.name
    done = [f for f in bench.setup.floods if f["complete"]]
    head: Row = {
        "setup": name,
        "broker": version,
        "floods": len(bench.setup.floods),
        "complete_floods": len(done),
        "stalled": bench.stalled,
    }
    if not done:
        return {**head, "complete": False}
    row = _summary(dataclasses.replace(bench.setup, floods=done), counts.messages)
    row.update(head)
    row["broker_cpu_s_per_100k"] = _median(
        _per_100k(f["cpu_s"][f"broker {name}"], counts.messages) for f in done
    )
    return row


def measure(ctx: Context, counts: Counts) -> Row:
    """Every broker that is available here, side by side."""
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in BROKERS:
        why = unavailable(name)
        if why is None:
            versions[name] = describe(name)
        else:
            skipped[name] = why
            ctx.notes.append(f"implementations: {name} left out: {why}")
    changes = {
        name: CHANGES[name][1] for name in versions if name in CHANGES and ctx.mqtt_version == "5"
    }
    benches: list[Bench] = []
    try:
        for name in versions:
            ctx.say(f"implementations: starting {versions[name]}")
            benches.append(_start(ctx, name))
        for bench in benches:
            _wait_online(bench.watch, bench.setup)
        for bench in benches:
            setup = bench.setup
            first = next(iter(setup.nodes.values()))
            _warm_up(ctx, first, setup.run, setup.pub, setup.recv, 30)
            # On a slow broker the warm-up's last outputs may still be on their way.
            setup.recv.wait_quiet(1.0, 30)
            setup.recv.reset()
        for bench in benches:
            ctx.say(f"implementations: {bench.setup.name}, unmeasured first flood")
            _flood(ctx, bench, counts.warm_up)
        _alternate(ctx, benches, counts)
        rows = {b.setup.name: _row(b, counts, versions[b.setup.name]) for b in benches}
    finally:
        for bench in benches:
            bench.close()
    base = rows.get(BASELINE)
    for row in rows.values():
        row["ratio"] = {
            key: _ratio(row.get(key), base.get(key)) if base else None
            for key in ("msgs_per_s", "edged_cpu_s_per_100k", "broker_cpu_s_per_100k")
        }
    return {
        "workload": WORKLOAD,
        "qos": QOS,
        "payload_bytes": len(Payloads(64).example),
        "mqtt_version": ctx.mqtt_version,
        "messages": counts.messages,
        "rounds": counts.rounds,
        "warm_up": counts.warm_up,
        "baseline": BASELINE,
        "brokers": rows,
        "changes": changes,
        "skipped": skipped,
    }

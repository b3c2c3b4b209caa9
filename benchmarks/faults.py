"""Faults: what an output the cloud broker will never take costs a stream.

edged reads a local mosquitto and publishes, through a pass-through filter, to a second one
(`broker: cloud`) with `max_packet_size 2048`. Inputs are 64 bytes except one in a thousand,
padded to 3 KiB, whose output is over the cloud's limit (edged.mqtt.poison,
docs/delivery.md). Two edged side by side on one such cloud, a clean stream and the same
stream with the poison inputs, QoS 1, floods alternated between them (A B, B A, ...); medians:

1. **announced**: the cloud link on MQTT 5, whose CONNACK carries the Maximum Packet Size.
   The oversized outputs are dead-lettered (`broker_limit`) before they are sent: no
   reconnect, the ratio poison ÷ clean should be near 1.
2. **unannounced**: the cloud link on MQTT 3.1.1. Each distinct poison output costs three
   disconnects (with the default backoff, ~1 s each) before it is dead-lettered
   (`poison_output`), and one-at-a-time sending after each: smaller floods, as the rate
   collapses.

msgs/s: inputs of a flood per second from its first publish until every expected output
(every input's but the poison ones', each counted once: under 3.1.1 a disconnect may repeat
outputs whose acknowledgements it cut off) and every poison output's dead letter arrived.
Reconnects and dead letters from the node's own metrics (`links.cloud`). Each flood's inputs
are new (a later flood does not repeat an earlier one's poison, which edged would remember).

Measured 2026-12-07 on a 2-core x86_64 VM (full counts: 155 s for the section; medians of
three floods each):

- MQTT 5, 50,000-message floods: poison 5,654 msgs/s against clean 6,080, ratio 0.93 (the
  clean floods ranged 4,953 to 7,043: within the noise, both cores were busy throughout); edged
  CPU 10.3 s per 100k inputs in both (ratio 1.00); 150 of 150 poison outputs dead-lettered,
  no reconnect.
- MQTT 3.1.1, 5,000-message floods (five poison outputs each): poison 222 msgs/s against clean
  6,964, ratio 0.032; edged CPU per 100k inputs 4.0 times the clean stream's; 15 of 15
  dead-lettered after 56 reconnects (15, 21 and 20 a flood: most poison outputs cost the three
  of the design, some four to six); 6,589 outputs arrived more than once (of 14,985).
"""

from __future__ import annotations

import os
import re
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from benchmarks import contenders as c
from benchmarks.brokers import (
    METRICS_INTERVAL,
    PIPELINE,
    Setup,
    _machine_busy,
    _median,
    _newest,
    _node_run,
    _per_100k,
    _ratio,
    _wait_online,
)
from benchmarks.endpoint import cpu_seconds
from benchmarks.load import PacketMaker, Payloads, Publisher, Receiver, sensor_topics
from benchmarks.scenarios import Context, Row, _warm_up
from edged.config.model import TOPIC_PREFIX
from edged.mqtt.mosquitto import PrivateBroker

WORKLOAD = "passthrough"
QOS = 1
LIMIT = 2048  # the cloud's max_packet_size
SMALL = 64  # bytes of an ordinary input
BIG = 3072  # bytes of a poison input: its output is over LIMIT
# The flood's index is in every payload (the fraction digits of "value"), and so in its output.
_INDEX = re.compile(rb'"value":\d+\.(\d+)')


@dataclass(frozen=True)
class Counts:
    """Messages per flood and floods per setup, for each cloud link; one poison in `every`."""

    every: int
    announced: int
    announced_rounds: int
    unannounced: int
    unannounced_rounds: int

    @classmethod
    def full(cls) -> Counts:
        # On two cores, MQTT 5: 7 to 10 s a flood. 3.1.1: five poison outputs a flood at ~3 s
        # of reconnects each, 18 to 23 s. The section takes ~2.5 minutes.
        return cls(
            every=1000,
            announced=50_000,
            announced_rounds=3,
            unannounced=5_000,
            unannounced_rounds=3,
        )

    @classmethod
    def quick(cls) -> Counts:
        # one poison in a hundred, so that the tiny floods hold some
        return cls(
            every=100, announced=400, announced_rounds=1, unannounced=100, unannounced_rounds=1
        )


def poison(index: int, every: int) -> bool:
    """Whether input `index` is padded: mid-way through each `every`, so that every poison
    output of a flood has outputs behind it that wait for what it costs."""
    return index % every == every // 2


def _config(
    ctx: Context, run: c.Run, node: str, cloud: PrivateBroker, cloud_version: str
) -> tuple[c.Run, Path]:
    """One node's config: the pass-through pipeline from the local broker to the cloud."""
    node_run = _node_run(ctx, run, node)
    pipeline = c.workload_pipeline(node_run)
    for rule in cast(list[dict[str, object]], pipeline["outputs"]):
        rule["broker"] = "cloud"
    brokers = {
        "local": {"host": ctx.host, "port": ctx.port, "mqtt_version": ctx.mqtt_version},
        "cloud": {"host": cloud.host, "port": cloud.port, "mqtt_version": cloud_version},
    }
    modules: dict[str, dict[str, object]] = {
        WORKLOAD: {"file": str(c.FILTERS / "passthrough.wasm")}
    }
    config = c.edged_config(
        node_run,
        [pipeline],
        modules,
        node_id=node,
        broker=None,  # `brokers:` instead of edged_config's one-broker form
        brokers=brokers,
        metrics={"interval": METRICS_INTERVAL},
    )
    return node_run, config


def _setup(
    ctx: Context, name: str, cloud: PrivateBroker, cloud_version: str, pids: dict[str, int]
) -> Setup:
    run = ctx.run(WORKLOAD, QOS)
    node = run.prefix.replace("/", "-")
    node_run, config = _config(ctx, run, node, cloud, cloud_version)
    recv = Receiver(
        cloud.host, cloud.port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", QOS
    )
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    return Setup(name, node_run, {node: c.start_edged(node_run, config)}, pub, recv, pids)


def _figures(watch: Receiver, node: str, since: float, at_least: int, timeout: float = 10) -> Row:
    """The node's inputs handled and its cloud link's counters, from its newest metrics record
    published after `since` (wall clock), once it has handled `at_least` inputs."""
    deadline = time.monotonic() + timeout
    while True:
        record = _newest(watch, f"{TOPIC_PREFIX}/{node}/metrics")
        if record is not None and record["ts"] >= since * 1000:
            handled = int(record["pipelines"][PIPELINE]["in"])
            if handled >= at_least or time.monotonic() > deadline:
                link = record["links"]["cloud"]
                return {
                    "in": handled,
                    "reconnects": int(link["reconnects"]),
                    "dead_lettered": int(link["over_packet_size"]) + int(link["poison_outputs"]),
                }
        elif time.monotonic() > deadline:
            return {"in": 0, "reconnects": 0, "dead_lettered": 0}
        time.sleep(METRICS_INTERVAL / 2)


def _arrived(recv: Receiver, first: int, count: int) -> tuple[int, float]:
    """How many distinct outputs of inputs first..first+count arrived, and when the last of
    them (the first arrival of each) did."""
    seen: set[int] = set()
    last = 0.0
    for at, messages in list(recv.chunks):
        before = len(seen)
        for _, payload in messages:
            found = _INDEX.search(payload)
            if found is not None and first <= (index := int(found[1])) < first + count:
                seen.add(index)
        if len(seen) > before:
            last = at
    return len(seen), last


def _wait_all(recv: Receiver, first: int, count: int, want: int, deadline: float) -> bool:
    """Until the distinct outputs number `want` (repeats do not count), or `deadline`."""
    if not recv.wait_for(want, deadline - time.monotonic()):
        return False
    while _arrived(recv, first, count)[0] < want:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        recv.wait_for(recv.weight + 1, min(left, 0.5))
    return True


def _dead_letters(watch: Receiver, node: str, since: float) -> list[float]:
    """When each of the node's dead letters since `since` (monotonic) arrived."""
    topic = f"{TOPIC_PREFIX}/{node}/deadletter".encode()
    return [
        at for at, messages in list(watch.chunks) if at >= since for t, _ in messages if t == topic
    ]


def _wait_dead_letters(
    watch: Receiver, node: str, since: float, want: int, deadline: float
) -> list[float]:
    """Until `want` dead letters of the node arrived since `since`, or `deadline`."""
    while len(arrived := _dead_letters(watch, node, since)) < want:
        if time.monotonic() > deadline:
            break
        watch.wait_for(watch.weight + 1, min(max(0.0, deadline - time.monotonic()), 0.5))
    return arrived


def _flood(ctx: Context, setup: Setup, watch: Receiver, count: int, every: int | None) -> Row:
    """One flood through a setup, with a poison input in `every` (None: a clean one)."""
    first = len(setup.floods) * count  # new payloads each flood
    makers = {
        size: PacketMaker(setup.pub, sensor_topics(setup.run.prefix), Payloads(size), QOS)
        for size in (SMALL, BIG)
    }
    bad = {i for i in range(first, first + count) if every and poison(i, every)}
    packets = [makers[BIG if i in bad else SMALL](i, i) for i in range(first, first + count)]
    want = count - len(bad)
    ((node, proc),) = setup.nodes.items()
    before = _figures(watch, node, time.time(), 0)
    pids = {
        "edged": proc.pid,
        **{f"broker {name}": pid for name, pid in setup.brokers.items()},
        "harness": os.getpid(),
    }
    cpu0 = {label: cpu_seconds(pid) for label, pid in pids.items()}
    machine0 = _machine_busy()
    started = setup.pub.flood(packets)
    deadline = time.monotonic() + 60 + count / 300 + 30 * len(bad)
    complete = _wait_all(setup.recv, first, count, want, deadline)
    # the flood is over when the last poison output is dead-lettered too
    letters = _wait_dead_letters(watch, node, started, len(bad), deadline)
    cpu = {label: cpu_seconds(pid) - cpu0[label] for label, pid in pids.items()}
    machine = _machine_busy() - machine0
    if not complete:
        setup.recv.wait_quiet(1.0, 10)
    distinct, finished = _arrived(setup.recv, first, count)
    finished = max([finished, *letters])
    outputs = setup.recv.count
    setup.recv.reset()
    after = _figures(watch, node, time.time(), before["in"] + count)
    figures = {key: after[key] - before[key] for key in after}
    seconds = finished - started
    label = f"faults, {setup.name}"
    if distinct != want:
        ctx.notes.append(f"{label}: {distinct} of {want} outputs arrived")
    if figures["in"] != count:
        ctx.notes.append(f"{label}: the node's metrics count {figures['in']} inputs of {count}")
    if figures["dead_lettered"] != len(bad) or len(letters) != len(bad):
        ctx.notes.append(
            f"{label}: {figures['dead_lettered']} outputs dead-lettered ({len(letters)} dead "
            f"letters arrived), {len(bad)} poison"
        )
    return {
        "seconds": seconds,
        "complete": complete and distinct == want,
        "outputs": outputs,
        "expected_outputs": want,
        "poison": len(bad),
        "repeats": max(0, outputs - distinct),
        "handled": figures["in"],
        "reconnects": figures["reconnects"],
        "dead_lettered": figures["dead_lettered"],
        "cpu_s": cpu,
        "machine_cpu_s": machine,
    }


def _summary(setup: Setup, count: int) -> Row:
    floods = setup.floods
    rates = [
        round(count / f["seconds"]) if f["complete"] and f["seconds"] > 0 else 0 for f in floods
    ]
    timed = [f for f in floods if f["seconds"] > 0]
    labels = list(floods[0]["cpu_s"])
    return {
        "setup": setup.name,
        "complete": all(f["complete"] for f in floods),
        "msgs_per_s": round(statistics.median(rates)) if all(rates) else None,
        "msgs_per_s_rounds": rates,
        "seconds_rounds": [round(f["seconds"], 2) for f in floods],
        "edged_cpu_s_per_100k": _median(_per_100k(f["cpu_s"]["edged"], count) for f in floods),
        # every process's CPU per 100k inputs; `harness` is the load generator and the receiver
        "cpu_s_per_100k": {
            label: _median(_per_100k(f["cpu_s"][label], count) for f in floods) for label in labels
        },
        "machine_cores_busy": _median(f["machine_cpu_s"] / f["seconds"] for f in timed)
        if timed
        else None,
        "inputs": sum(f["handled"] for f in floods),
        "poison": sum(f["poison"] for f in floods),
        "poison_per_flood": floods[0]["poison"],
        "dead_lettered": sum(f["dead_lettered"] for f in floods),
        "reconnects": sum(f["reconnects"] for f in floods),
        "reconnects_rounds": [f["reconnects"] for f in floods],
        "repeats": sum(f["repeats"] for f in floods),
    }


def _measure(
    ctx: Context,
    watch: Receiver,
    cloud: PrivateBroker,
    version: str,
    count: int,
    rounds: int,
    every: int,
) -> Row:
    """A clean and a poisoned stream, their cloud link on `version`, floods alternated."""
    assert ctx.broker_pid is not None and cloud.pid is not None
    pids = {"local": ctx.broker_pid, "cloud": cloud.pid}
    setups: list[Setup] = []
    try:
        for name in ("clean", "poison"):
            setups.append(_setup(ctx, f"MQTT {version}, {name}", cloud, version, pids))
        for setup in setups:
            _wait_online(watch, setup)
        for setup in setups:
            proc = next(iter(setup.nodes.values()))
            _warm_up(ctx, proc, setup.run, setup.pub, setup.recv, 30)
        pairs = list(zip(setups, (None, every), strict=True))
        for round_ in range(rounds):
            for setup, one_in in pairs if round_ % 2 == 0 else reversed(pairs):
                ctx.say(f"faults: {setup.name}, flood {round_ + 1} of {rounds}")
                setup.floods.append(_flood(ctx, setup, watch, count, one_in))
        clean, poisoned = (_summary(s, count) for s in setups)
    finally:
        for setup in setups:
            setup.close()
    return {
        "mqtt_version": version,
        "messages": count,
        "rounds": rounds,
        "clean": clean,
        "poison": poisoned,
        "poison ÷ clean": {
            "msgs_per_s": _ratio(poisoned["msgs_per_s"], clean["msgs_per_s"]),
            "edged_cpu_s_per_100k": _ratio(
                poisoned["edged_cpu_s_per_100k"], clean["edged_cpu_s_per_100k"]
            ),
        },
    }


def measure(ctx: Context, counts: Counts) -> Row:
    """Both cloud links, announced (MQTT 5) then unannounced (3.1.1), on one cloud broker."""
    # Every node's status and metrics are on the input broker (its control broker).
    watch = Receiver(ctx.host, ctx.port, f"watch-{uuid.uuid4().hex[:8]}", f"{TOPIC_PREFIX}/#", 0)
    try:
        with PrivateBroker(extra_conf=f"max_packet_size {LIMIT}\n") as cloud:
            announced = _measure(
                ctx, watch, cloud, "5", counts.announced, counts.announced_rounds, counts.every
            )
            unannounced = _measure(
                ctx,
                watch,
                cloud,
                "3.1.1",
                counts.unannounced,
                counts.unannounced_rounds,
                counts.every,
            )
        return {
            "workload": WORKLOAD,
            "qos": QOS,
            "payload_bytes": len(Payloads(SMALL).example),
            "poison_bytes": len(Payloads(BIG).example),
            "limit": LIMIT,
            "every": counts.every,
            "announced": announced,
            "unannounced": unannounced,
        }
    finally:
        watch.close()

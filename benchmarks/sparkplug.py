"""Sparkplug B decode: edged with `sparkplug_decode` against Node-RED, on the same payloads.

One DBIRTH and a set of DDATA payloads of the device `E/D` (10 metrics of mixed datatypes, each
with an alias; the DDATA carry the aliases only) are encoded once, with the npm
`sparkplug-payload` codec, and both contenders are fed the identical bytes through the run's
mosquitto, each on a group of its own:

- **edged**: `edged run` with one pipeline, `sparkplug_decode` on `spBv1.0/<group>/#` and an
  output rule for its messages (one JSON message per metric, alias resolved to the name);
- **Node-RED**: `mqtt in` (binary) → a function node that decodes with `sparkplug-payload`,
  keeps the aliases of the BIRTHs and resolves them, and returns one JSON message per metric
  (the same fields as edged's) → `mqtt out`. `node-red-contrib-mqtt-sparkplug-plus`, which a
  Node-RED user would install, could not be installed (the npm registry answered 404 on
  2026-12-07: benchmarks/nodered.py); it decodes with this same codec.

Both run side by side; after one unmeasured flood each, the floods alternate (A B, B A, ...) and
the figures are the medians: DDATA inputs per second (first publish to last output; each input
makes 10 outputs) and CPU seconds per 100k inputs of the contender and of the broker, with
Node-RED's as ratios to edged's of the same run. QoS 0 in and out: the cost of decoding, not of
acknowledgements. Before the floods, one DDATA through each must give the same JSON (as parsed
values) from both, or the notes say how they differ.

    python -m benchmarks --only sparkplug            # ~1 minute on two cores
    python -m benchmarks --only sparkplug --quick    # ~10 s

`EDGED_SPARKPLUG_DECODE` names another build of the module (default
examples/filters/sparkplug_decode.wasm); without the module or Node-RED the section says why
in the notes.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import contenders as c
from benchmarks import nodered, procfs
from benchmarks.load import Publisher, Receiver
from benchmarks.scenarios import Context, Row
from edged.mqtt.mosquitto import free_port

QOS = 0
METRICS = 10
#: distinct DDATA payloads, sent round-robin (their seq runs 1..255, then wraps, as a peer's)
PAYLOADS = 255
#: a flood is over when no output has come for this long
QUIET_SECONDS = 5.0
#: QoS 0 may lose an output now and then (once, 10 of 200,000): a flood still counts, with a
#: note, when this much arrived; below it the contender is taken as stalled
USABLE = 0.99
#: edged and Node-RED get a `sparkplug-payload`-encoded copy of the same bytes
_ENCODE_JS = """\
const spb = require("sparkplug-payload").get("spBv1.0");
const [metrics, count, t0] = JSON.parse(process.argv[1]);
const b64 = (p) => Buffer.from(spb.encodePayload(p)).toString("base64");
const value = (type, i, k) => {
    switch (type) {
        case "Boolean": return (i + k) % 2 === 0;
        case "String": return "state-" + ((i * 7 + k) % 13);
        case "Float": return 20 + ((i * 37 + k) % 1000) / 8;
        case "Double": return 1000 + ((i * 53 + k) % 10000) / 100;
        case "DateTime": return t0 + i * 1000 + k;
        case "Int8": return ((i + k) % 200) - 100;
        case "Int32": return ((i * 911 + k) % 200000) - 100000;
        case "Int64": return 1e12 + i * 7919 + k;
        default: return (i * 31 + k) % 60000;
    }
};
const birth = (i) => metrics.map(([name, type, alias], k) =>
    ({name: name, type: type, alias: alias, timestamp: t0, value: value(type, i, k)}));
const out = {
    nbirth: b64({timestamp: t0, seq: 0, metrics: [
        {name: "bdSeq", type: "UInt64", value: 0},
        {name: "Node Control/Rebirth", type: "Boolean", alias: 1, value: false}]}),
    dbirth: b64({timestamp: t0, seq: 0, metrics: birth(0)}),
    ddata: [],
};
for (let i = 1; i <= count; i++) {
    out.ddata.push(b64({timestamp: t0 + i, seq: i % 256, metrics: metrics.map(
        ([name, type, alias], k) => ({type: type, alias: alias, timestamp: t0 + i,
                                      value: value(type, i, k)}))}));
}
process.stdout.write(JSON.stringify(out));
"""
#: the device's metrics: name, datatype, alias
DEVICE_METRICS = [
    ("Line/Temperature", "Float", 10),
    ("Line/Pressure", "Double", 11),
    ("Line/Speed", "Int32", 12),
    ("Line/Count", "Int64", 13),
    ("Line/Level", "UInt16", 14),
    ("Line/Offset", "Int8", 15),
    ("Line/Running", "Boolean", 16),
    ("Line/Mode", "String", 17),
    ("Line/Changed", "DateTime", 18),
    ("Line/Errors", "UInt32", 19),
]
assert len(DEVICE_METRICS) == METRICS

# The Node-RED side of the decode: what sparkplug_decode does, in JavaScript on the same codec.
_DECODE_JS = """\
const spb = global.get("sparkplugPayload");
const parts = msg.topic.split("/");
const type = parts[2], group = parts[1], edge = parts[3], device = parts[4];
if (type === "NCMD" || type === "DCMD" || type === "STATE") return null;
const tables = context.get("aliases");
const key = group + "/" + edge;
const payload = spb.decodePayload(msg.payload);
if (type === "NBIRTH") tables.set(key, new Map());
let table = tables.get(key);
if (!table) { table = new Map(); tables.set(key, table); }
const num = (v) => (v !== null && typeof v === "object" && v.toNumber) ? v.toNumber() : v;
const base = OUT + group + "/" + edge + (device ? "/" + device : "") + "/";
const out = [];
for (const m of payload.metrics || []) {
    let name = m.name, datatype = m.type;
    const alias = m.alias === undefined ? undefined : num(m.alias);
    if (type.endsWith("BIRTH")) {
        if (alias !== undefined) table.set(alias, {name: name, type: m.type});
    } else if (name === undefined) {
        const known = table.get(alias);
        if (!known) { node.warn("unknown alias " + alias); return null; }
        name = known.name; datatype = known.type;
    }
    const o = {group: group, edge_node: edge};
    if (device) o.device = device;
    o.type = type;
    if (payload.seq !== undefined) o.seq = num(payload.seq);
    o.metric = name;
    if (alias !== undefined) o.alias = alias;
    o.datatype = datatype;
    o.value = num(m.value);
    if (m.timestamp !== undefined) o.timestamp = num(m.timestamp);
    else if (payload.timestamp !== undefined) o.timestamp = num(payload.timestamp);
    out.push({topic: base + name, payload: JSON.stringify(o), qos: QOS});
}
return [out];
"""


@dataclass(frozen=True)
class Counts:
    """DDATA inputs per flood, floods per contender (alternated), the unmeasured first flood."""

    messages: int
    rounds: int
    warm_up: int

    @classmethod
    def full(cls) -> Counts:
        return cls(messages=20_000, rounds=3, warm_up=2_000)

    @classmethod
    def quick(cls) -> Counts:
        return cls(messages=300, rounds=1, warm_up=50)


@dataclass
class Payloads:
    nbirth: bytes
    dbirth: bytes
    ddata: list[bytes]


def decode_module() -> Path:
    return Path(os.environ.get("EDGED_SPARKPLUG_DECODE") or c.FILTERS / "sparkplug_decode.wasm")


def encode_payloads(red: nodered.NodeRed, modules: Path) -> Payloads:
    """The BIRTHs and DDATA payloads, encoded by `sparkplug-payload` under Node.js."""
    spec = json.dumps([DEVICE_METRICS, PAYLOADS, 1_765_000_000_000])
    result = subprocess.run(
        [red.node, "-e", _ENCODE_JS, spec],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    data = json.loads(result.stdout)
    return Payloads(
        base64.b64decode(data["nbirth"]),
        base64.b64decode(data["dbirth"]),
        [base64.b64decode(p) for p in data["ddata"]],
    )


def _flow(host: str, port: int, group: str, out: str) -> str:
    consts = f"const OUT = {json.dumps(out + '/')}; const QOS = {QOS};\n"
    nodes = [
        {"id": "spb.tab", "type": "tab", "label": "sparkplug", "disabled": False},
        {
            "id": "spb.broker",
            "type": "mqtt-broker",
            "name": "local",
            "broker": host,
            "port": str(port),
            "clientid": "",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "autoUnsubscribe": True,
        },
        {
            "id": "spb.in",
            "type": "mqtt in",
            "z": "spb.tab",
            "name": "",
            "topic": f"spBv1.0/{group}/#",
            "qos": str(QOS),
            "datatype": "buffer",
            "broker": "spb.broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 120,
            "y": 80,
            "wires": [["spb.decode"]],
        },
        {
            "id": "spb.decode",
            "type": "function",
            "z": "spb.tab",
            "name": "sparkplug decode",
            "func": consts + _DECODE_JS,
            "outputs": 1,
            "timeout": 0,
            "noerr": 0,
            "initialize": 'context.set("aliases", new Map());',
            "finalize": "",
            "libs": [],
            "x": 300,
            "y": 80,
            "wires": [["spb.out"]],
        },
        {
            "id": "spb.out",
            "type": "mqtt out",
            "z": "spb.tab",
            "name": "",
            "topic": "",
            "qos": str(QOS),
            "retain": "false",
            "broker": "spb.broker",
            "x": 480,
            "y": 80,
            "wires": [],
        },
    ]
    return json.dumps(nodes, indent=1)


@dataclass
class Bench:
    """One contender: its process, its group (input topics), its receiver and its floods."""

    name: str
    proc: c.Process
    group: str
    recv: Receiver
    floods: list[Row] = field(default_factory=list)
    stalled: bool = False

    def topic(self, kind: str) -> bytes:
        device = "/D" if kind in ("DBIRTH", "DDATA") else ""
        return f"spBv1.0/{self.group}/{kind}/E{device}".encode()

    def close(self) -> None:
        self.proc.stop()
        self.recv.close()


def _start(ctx: Context, name: str, modules: Path | None) -> Bench:
    run = ctx.run("sparkplug", QOS)
    tag = uuid.uuid4().hex[:6]
    group = f"bench{tag}"
    out = f"{run.prefix}/out"
    recv = Receiver(ctx.host, ctx.port, f"recv-{tag}", f"{out}/#", QOS)
    if name == "edged":
        pipeline: dict[str, object] = {
            "name": "sparkplug",
            "subscribe": [{"topic": f"spBv1.0/{group}/#", "qos": QOS}],
            "filters": [{"module": "sparkplug_decode", "params": {"prefix": out}}],
            "outputs": [{"match": f"{out}/#", "topic": "{topic}", "qos": QOS}],
        }
        config = c.edged_config(
            run, [pipeline], {"sparkplug_decode": {"file": str(decode_module())}}
        )
        proc = c.start_edged(run, config)
    else:
        assert ctx.red is not None and modules is not None
        user_dir = run.workdir / f"node-red-spb-{tag}"
        user_dir.mkdir()
        flows = user_dir / "flows.json"
        flows.write_text(_flow(ctx.host, ctx.port, group, out))
        settings = user_dir / "settings.js"
        settings.write_text(nodered.sparkplug_settings(modules))
        command = ctx.red.command(user_dir, free_port(), str(flows))
        command[-1:-1] = ["--settings", str(settings)]
        proc = c.Process(command, user_dir / "node-red.log")
    return Bench(name, proc, group, recv)


def _births(bench: Bench, pub: Publisher, payloads: Payloads, timeout: float) -> None:
    """Send the BIRTHs until the contender answers them (it may not be subscribed yet)."""
    want = 2 + METRICS  # bdSeq and Node Control/Rebirth, then the device's metrics
    deadline = time.monotonic() + timeout
    while not bench.recv.wait_for(want, 0.3):
        if not bench.proc.alive():
            raise RuntimeError(f"{bench.name} exited during start:\n{bench.proc.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{bench.name} did not decode a BIRTH in {timeout} s:\n{bench.proc.log_tail()}"
            )
        bench.recv.reset()
        pub.conn.send(
            pub.packet(bench.topic("NBIRTH"), payloads.nbirth, QOS)
            + pub.packet(bench.topic("DBIRTH"), payloads.dbirth, QOS)
        )
    bench.recv.wait_quiet(0.3, 5)
    bench.recv.reset()


def _sample(bench: Bench, pub: Publisher, payloads: Payloads) -> list[dict[str, Any]]:
    """The JSON messages of one DDATA, its group left out (each contender has its own)."""
    pub.conn.send(pub.packet(bench.topic("DDATA"), payloads.ddata[0], QOS))
    bench.recv.wait_for(METRICS, 10)
    bench.recv.wait_quiet(0.2, 5)
    out = [{**json.loads(p), "group": ""} for p in bench.recv.payloads()]
    bench.recv.reset()
    return sorted(out, key=lambda m: str(m.get("metric")))


def _flood(
    ctx: Context, bench: Bench, pub: Publisher, payloads: Payloads, count: int, label: str
) -> Row:
    topic = bench.topic("DDATA")
    data = payloads.ddata
    packets = [pub.packet(topic, data[i % len(data)], QOS) for i in range(count)]
    want = count * METRICS
    pids = {"contender": bench.proc.pid}
    if ctx.broker_pid is not None:
        pids["broker"] = ctx.broker_pid
    cpu0 = {k: procfs.cpu_seconds(pid) for k, pid in pids.items()}
    ctx.say(f"sparkplug: {bench.name}, {label}")
    started = pub.flood(packets)
    reached = False
    while not reached:
        reached = bench.recv.wait_for(want, 1.0)
        if time.monotonic() - max(bench.recv.last, started) > QUIET_SECONDS:
            break
    finished = bench.recv.last
    cpu = {k: procfs.cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
    bench.recv.wait_quiet(0.3, 5)
    got = bench.recv.count
    bench.recv.reset()
    if got < want * USABLE:
        bench.stalled = True
        ctx.notes.append(
            f"sparkplug, {bench.name}: {got} of {want} outputs arrived, then none for "
            f"{QUIET_SECONDS:.0f} s; its further floods are left out"
        )
    elif got != want:
        ctx.notes.append(
            f"sparkplug, {bench.name}, {label}: {got} of {want} outputs arrived (QoS 0)"
        )
    return {
        "seconds": max(finished - started, 0.0),
        "complete": got == want,
        "usable": got >= want * USABLE,
        "outputs": got,
        "cpu_s": cpu,
    }


def _median(values: Sequence[float], digits: int = 2) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _row(bench: Bench, count: int) -> Row:
    done = [f for f in bench.floods if f["usable"] and f["seconds"] > 0]
    row: Row = {
        "floods": len(bench.floods),
        "complete_floods": sum(f["complete"] for f in bench.floods),
        "lost_outputs": sum(count * METRICS - f["outputs"] for f in bench.floods),
    }
    if not done:
        return {**row, "complete": False}
    per_100k = 100_000 / count
    row.update(
        complete=True,
        msgs_per_s=round(statistics.median(count / f["seconds"] for f in done)),
        outputs_per_s=round(statistics.median(f["outputs"] / f["seconds"] for f in done)),
        cpu_s_per_100k=_median([f["cpu_s"]["contender"] * per_100k for f in done]),
        broker_cpu_s_per_100k=_median(
            [f["cpu_s"]["broker"] * per_100k for f in done if "broker" in f["cpu_s"]]
        ),
    )
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def measure(ctx: Context, counts: Counts) -> Row:
    """edged and, where it runs, Node-RED, side by side on the same Sparkplug B payloads."""
    wasm = decode_module()
    if not wasm.is_file():
        reason = f"{wasm.name} is not here (the Sparkplug B example filters)"
        ctx.notes.append(f"sparkplug: skipped: {reason}")
        return {"skipped": reason}
    if ctx.red is None:
        reason = "Node-RED is not available (its payload codec encodes the payloads)"
        ctx.notes.append(f"sparkplug: skipped: {reason}")
        return {"skipped": reason}
    log: list[str] = []
    modules = nodered.sparkplug_libraries(ctx.red, log)
    for line in log:
        ctx.say(line)
    if isinstance(modules, str):
        ctx.notes.append(f"sparkplug: skipped: {modules}")
        return {"skipped": modules}
    payloads = encode_payloads(ctx.red, modules)
    pub = Publisher(ctx.host, ctx.port, f"pub-spb-{uuid.uuid4().hex[:6]}")
    benches: list[Bench] = []
    try:
        for name in ("edged", "node-red"):
            ctx.say(f"sparkplug: starting {name}")
            benches.append(_start(ctx, name, modules))
        for bench in benches:
            _births(bench, pub, payloads, 90 if bench.name == "node-red" else 30)
        samples = [_sample(bench, pub, payloads) for bench in benches]
        same = all(sample == samples[0] for sample in samples) and len(samples[0]) == METRICS
        if not same:
            ctx.notes.append(f"sparkplug: the contenders' JSON for one DDATA differ: {samples}")
        for bench in benches:
            _flood(ctx, bench, pub, payloads, counts.warm_up, "unmeasured first flood")
        for round_ in range(counts.rounds):
            for bench in benches if round_ % 2 == 0 else reversed(benches):
                if not bench.stalled:
                    label = f"flood {round_ + 1} of {counts.rounds}"
                    bench.floods.append(_flood(ctx, bench, pub, payloads, counts.messages, label))
        rows = {b.name: _row(b, counts.messages) for b in benches}
    finally:
        for bench in benches:
            bench.close()
        pub.close()
    base = rows["edged"]
    for row in rows.values():
        row["ratio"] = {
            key: _ratio(row.get(key), base.get(key))
            for key in ("msgs_per_s", "cpu_s_per_100k", "broker_cpu_s_per_100k")
        }
    return {
        "qos": QOS,
        "metrics_per_message": METRICS,
        "ddata_bytes": round(statistics.mean(len(p) for p in payloads.ddata)),
        "messages": counts.messages,
        "rounds": counts.rounds,
        "warm_up": counts.warm_up,
        "node_red_packages": f"sparkplug-payload {nodered.SPARKPLUG_PACKAGES['sparkplug-payload']}",
        "same_json": same,
        "contenders": rows,
    }


def _cell(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(section: Row) -> list[str]:
    """The section as Markdown: a heading, what was run, one row per contender."""
    out = ["## Sparkplug B decode (edged sparkplug_decode vs Node-RED)", ""]
    if "skipped" in section:
        return [*out, f"Skipped: {section['skipped']}."]
    out += [
        f"DDATA of {section['metrics_per_message']} metrics by alias "
        f"(~{section['ddata_bytes']} B, identical bytes for both), QoS {section['qos']} in and "
        f"out, one JSON message per metric. Floods of {section['messages']:,} DDATA, "
        f"{section['rounds']} per contender, alternated after an unmeasured first flood of "
        f"{section['warm_up']:,}; medians. Node-RED: a function node on "
        f"{section['node_red_packages']}. Same JSON from both for one DDATA: "
        f"{'yes' if section['same_json'] else 'no (see the notes)'}.",
        "",
        "| contender | DDATA msgs/s | outputs/s | CPU s / 100k DDATA | broker CPU s / 100k "
        "| msgs/s ÷ edged | CPU ÷ edged |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in section["contenders"].items():
        label = "edged" if name == "edged" else "Node-RED"
        if not row.get("complete"):
            out.append(f"| {label} | stalled (no usable flood) | | | | | |")
            continue
        ratio = row["ratio"]
        out.append(
            f"| {label} | {_cell(row['msgs_per_s'])} | {_cell(row['outputs_per_s'])} | "
            f"{_cell(row['cpu_s_per_100k'], 2)} | {_cell(row['broker_cpu_s_per_100k'], 2)} | "
            f"{_cell(ratio['msgs_per_s'], 2)} | {_cell(ratio['cpu_s_per_100k'], 2)} |"
        )
    return out

"""Node-RED as the peer: installed from npm into a cached directory, one flow per workload.

The flow is what a Raspberry Pi user would build: `mqtt in` (output left at its default,
auto-detect, so JSON arrives parsed) → `function` node with the workload in JavaScript →
`mqtt out`, on a broker node with the defaults (MQTT 3.1.1, clean session, keepalive 60). It runs
the way `node-red-pi` starts it on a small board: `--max-old-space-size=256`, editor enabled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import LIMIT

CACHE = Path(__file__).resolve().parent / ".cache"

# The same logic as the filter modules; OUT is the output prefix, filled in per run.
_PASSTHROUGH = "msg.topic = OUT + msg.topic;\nreturn msg;"
_THRESHOLD = """\
const p = typeof msg.payload === "object" ? msg.payload : JSON.parse(msg.payload);
const v = p.value;
if (typeof v === "number" && v > LIMIT) {
    return {topic: OUT + "alert", qos: msg.qos,
            payload: JSON.stringify({topic: msg.topic, field: "value", value: v, limit: LIMIT})};
}
return null;"""
_AVERAGE = """\
const p = typeof msg.payload === "object" ? msg.payload : JSON.parse(msg.payload);
const v = p.value;
if (typeof v !== "number") return null;
const windows = context.get("windows");
let w = windows.get(msg.topic);
if (!w) { w = {count: 0, sum: 0, min: 0, max: 0}; windows.set(msg.topic, w); }
if (w.count === 0) { w.sum = 0; w.min = v; w.max = v; }
w.count++; w.sum += v;
if (v < w.min) w.min = v;
if (v > w.max) w.max = v;
return null;"""
_AVERAGE_START = """\
const windows = new Map();
context.set("windows", windows);
context.set("timer", setInterval(() => {
    const now = Date.now();
    for (const [topic, w] of windows) {
        if (w.count === 0) continue;
        node.send({topic: OUT + topic + "/avg", qos: QOS,
                   payload: `{"avg":${(w.sum / w.count).toFixed(2)},"min":${w.min.toFixed(2)},` +
                            `"max":${w.max.toFixed(2)},"count":${w.count},"ts":${now}}`});
        w.count = 0;
    }
}, TICK_MS));"""
_AVERAGE_STOP = 'clearInterval(context.get("timer"));'


@dataclass(frozen=True)
class NodeRed:
    """An installed Node-RED: how to start it, and which version it is."""

    node: str
    red_js: Path
    version: str
    node_version: str

    def command(self, user_dir: Path, port: int, flows: str) -> list[str]:
        # What `node-red-pi --max-old-space-size=256` runs (it execs node with that option).
        return [
            self.node,
            "--max-old-space-size=256",
            str(self.red_js),
            "--userDir",
            str(user_dir),
            "--port",
            str(port),
            flows,
        ]


def _node_major_minor(version: str) -> tuple[int, int]:
    found = re.match(r"v?(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def find_or_install(log: list[str], *, install: bool = True) -> NodeRed | str:
    """An installed Node-RED, or the reason there is none (the caller reports it as skipped)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are not installed (scripts/setup.sh installs them)"
    node_version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    # Node-RED 5 needs Node 22.9 or newer; 4.x runs on Node 18.5 and newer.
    major_minor = _node_major_minor(node_version)
    if major_minor >= (22, 9):
        wanted = "5"
    elif major_minor >= (18, 5):
        wanted = "4"
    else:
        return f"Node-RED needs Node.js 18.5 or newer; this node is {node_version}"
    target = CACHE / f"node-red-{wanted}"
    red_js = target / "node_modules" / "node-red" / "red.js"
    if not red_js.exists():
        if not install:
            return f"Node-RED {wanted} is not in {target} (a full run installs it)"
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        target.mkdir(exist_ok=True)
        log.append(f"installing node-red@{wanted} from npm into {target} (once; cached)")
        result = subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
                str(target),
                f"node-red@{wanted}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0 or not red_js.exists():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"npm install node-red@{wanted} failed: {' '.join(tail)}"
    package = json.loads((red_js.parent / "package.json").read_text())
    return NodeRed(node, red_js, str(package["version"]), node_version)


def flow(workload: str, *, host: str, port: int, prefix: str, qos: int, tick_ms: int) -> str:
    """The flow file (JSON) for one workload on one broker."""
    out = json.dumps(prefix + "/out/")
    func, start, stop = {
        "passthrough": (_PASSTHROUGH, "", ""),
        "threshold": (_THRESHOLD, "", ""),
        "average": (_AVERAGE, _AVERAGE_START, _AVERAGE_STOP),
    }[workload]

    def js(code: str) -> str:
        if not code:
            return ""
        consts = f"const OUT = {out}; const LIMIT = {LIMIT}; const QOS = {qos};"
        return consts + f" const TICK_MS = {tick_ms};\n" + code

    nodes = [
        {"id": "bench.tab", "type": "tab", "label": "bench", "disabled": False},
        {
            "id": "bench.broker",
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
            "id": "bench.in",
            "type": "mqtt in",
            "z": "bench.tab",
            "name": "",
            "topic": prefix + "/in/#",
            "qos": str(qos),
            "datatype": "auto-detect",
            "broker": "bench.broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 120,
            "y": 80,
            "wires": [["bench.fn"]],
        },
        {
            "id": "bench.fn",
            "type": "function",
            "z": "bench.tab",
            "name": workload,
            "func": js(func),
            "outputs": 1,
            "timeout": 0,
            "noerr": 0,
            "initialize": js(start),
            "finalize": stop,
            "libs": [],
            "x": 300,
            "y": 80,
            "wires": [["bench.out"]],
        },
        {
            "id": "bench.out",
            "type": "mqtt out",
            "z": "bench.tab",
            "name": "",
            "topic": "",
            "qos": str(qos),
            "retain": "false",
            "broker": "bench.broker",
            "x": 480,
            "y": 80,
            "wires": [],
        },
    ]
    return json.dumps(nodes, indent=1)


# Sparkplug B in Node-RED. `node-red-contrib-mqtt-sparkplug-plus` is what a Node-RED user would
# install, but the npm registry answered 404 for it on 2026-12-07 (and for Eclipse Tahu's older
# `node-red-contrib-sparkplug`). Its building blocks are there: Eclipse Tahu's edge node
# client (NBIRTH with bdSeq, NDEATH as the will, NCMD/DCMD as events) and the payload codec that
# both Node-RED packages use. Flows load them through `functionGlobalContext`.
SPARKPLUG_PACKAGES = {"sparkplug-client": "3.2.4", "sparkplug-payload": "1.0.3"}


def _installed_version(modules: Path, name: str) -> str | None:
    try:
        return str(json.loads((modules / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def sparkplug_libraries(red: NodeRed, log: list[str], *, install: bool = True) -> Path | str:
    """The node_modules folder holding SPARKPLUG_PACKAGES at their pinned versions, next to this
    Node-RED (installed there once), or the reason there is none."""
    target = red.red_js.parents[2]  # .cache/node-red-<major>, the --prefix Node-RED went into
    modules = target / "node_modules"
    missing = [
        f"{name}@{version}"
        for name, version in SPARKPLUG_PACKAGES.items()
        if _installed_version(modules, name) != version
    ]
    if not missing:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed (scripts/setup.sh installs it)"
    if not install:
        return f"{' and '.join(missing)} not in {target} (a full run installs them)"
    log.append(f"installing {' '.join(missing)} from npm into {target} (once; cached)")
    options = ["--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(target)]
    result = subprocess.run(
        [npm, "install", *options, *missing],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return f"npm install {' '.join(missing)} failed: {' '.join(tail)}"
    wrong = [n for n, v in SPARKPLUG_PACKAGES.items() if _installed_version(modules, n) != v]
    return f"npm left {', '.join(wrong)} at other versions" if wrong else modules


def sparkplug_versions() -> str:
    return ", ".join(f"{name} {version}" for name, version in SPARKPLUG_PACKAGES.items())


def sparkplug_settings(modules: Path, *, editor: bool = True) -> str:
    """A Node-RED settings file (JavaScript) whose flows find the Sparkplug packages as
    `global.get("sparkplugClient")` and `global.get("sparkplugPayload")`."""
    client = json.dumps(str(modules / "sparkplug-client"))
    codec = json.dumps(str(modules / "sparkplug-payload"))
    return (
        "module.exports = {\n"
        f"    functionGlobalContext: {{sparkplugClient: require({client}),\n"
        f'        sparkplugPayload: require({codec}).get("spBv1.0")}},\n'
        f"    disableEditor: {json.dumps(not editor)},\n"
        '    logging: {console: {level: "info", metrics: false, audit: false}},\n'
        "};\n"
    )

"""A real Sparkplug B edge node with one device, run by Node-RED, for end-to-end tests.

Node-RED (benchmarks/nodered.py installs it once per machine into benchmarks/.cache) runs a flow
whose function node drives Eclipse Tahu's edge node client (npm `sparkplug-client`, pinned in
`benchmarks.nodered.SPARKPLUG_PACKAGES`) against a given broker:

- on connecting, the client subscribes to its NCMD and DCMD topics and the flow publishes the
  NBIRTH (`Node Control/Rebirth`, `Node Info/Uptime` and the client's own `bdSeq`) and the
  device's DBIRTH (METRICS: one metric of each of seven datatypes), every metric with an alias;
- `POST /spb/ddata` with `{"values": {name: value, ...}}` publishes one DDATA whose metrics
  carry the alias only (no name), as aliases are meant to be used;
- an NCMD whose `Node Control/Rebirth` is true makes the flow publish the NBIRTH and DBIRTH
  again (the client leaves a rebirth to its application; the flow does what the spec asks);
- `GET /spb/state` tells what the peer did: births published, rebirth requests honoured, the
  NCMD metric names received, DDATA sent, whether its MQTT connection is up.

The client's will is the NDEATH, and stopping the peer publishes it too.

    with SparkplugPeer.start(host, port, group="G", edge_node="E", device="D", workdir=d) as peer:
        peer.ddata({"Temperature": 22.5})
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks import nodered
from edged.mqtt.mosquitto import free_port

#: the device's metrics: name -> (Sparkplug datatype, alias, value in the DBIRTH)
METRICS: dict[str, tuple[str, int, Any]] = {
    "Temperature": ("Float", 101, 21.5),
    "Pressure": ("Double", 102, 1013.25),
    "Count": ("Int64", 103, 123_456_789_012),
    "Level": ("UInt16", 104, 512),
    "Setpoint": ("Int32", 105, -40),
    "Running": ("Boolean", 106, True),
    "Mode": ("String", 107, "auto"),
}
#: the edge node's own metrics (the client adds bdSeq, without an alias)
NODE_METRICS: dict[str, tuple[str, int, Any]] = {
    "Node Control/Rebirth": ("Boolean", 1, False),
    "Node Info/Uptime": ("Int64", 2, 0),
}

_EDGE_INIT = """\
const spb = global.get("sparkplugClient");
const state = {connected: false, births: 0, rebirths: 0, ncmd: [], ddata: 0, errors: []};
const values = {};
for (const [name, m] of Object.entries(CONFIG.metrics)) values[name] = m[2];
const started = Date.now();
const client = spb.newClient({
    serverUrl: CONFIG.serverUrl, clientId: CONFIG.clientId, username: null, password: null,
    groupId: CONFIG.group, edgeNode: CONFIG.edgeNode, version: "spBv1.0",
    publishDeath: true, keepalive: 30,
});
function births() {
    const now = Date.now();
    const nodeMetrics = Object.entries(CONFIG.nodeMetrics).map(([name, m]) => (
        {name: name, type: m[0], alias: m[1], timestamp: now,
         value: name === "Node Info/Uptime" ? now - started : m[2]}));
    client.publishNodeBirth({timestamp: now, metrics: nodeMetrics});
    const deviceMetrics = Object.entries(CONFIG.metrics).map(([name, m]) => (
        {name: name, type: m[0], alias: m[1], timestamp: now, value: values[name]}));
    client.publishDeviceBirth(CONFIG.device, {timestamp: now, metrics: deviceMetrics});
    state.births++;
}
client.on("connect", () => { state.connected = true; });
client.on("close", () => { state.connected = false; });
client.on("error", (e) => { state.errors.push(String(e)); });
client.on("birth", births);
client.on("ncmd", (payload) => {
    for (const m of payload.metrics || []) {
        state.ncmd.push(m.name);
        if (m.name === "Node Control/Rebirth" && m.value === true) {
            state.rebirths++;
            births();
        }
    }
});
context.set("sparkplug", {client: client, state: state, values: values});
"""

_EDGE_MESSAGE = """\
const {client, state, values} = context.get("sparkplug");
if (msg.req.method === "GET") {
    msg.payload = state;
    return msg;
}
const given = (msg.payload && msg.payload.values) || {};
const metrics = [];
const now = Date.now();
for (const [name, value] of Object.entries(given)) {
    const m = CONFIG.metrics[name];
    if (!m) {
        msg.statusCode = 400;
        msg.payload = {error: "unknown metric " + name};
        return msg;
    }
    values[name] = value;
    metrics.push({type: m[0], alias: m[1], timestamp: now, value: value});
}
client.publishDeviceData(CONFIG.device, {timestamp: now, metrics: metrics});
state.ddata++;
msg.payload = {sent: metrics.length};
return msg;
"""

_EDGE_CLOSE = 'context.get("sparkplug").client.stop();'


def flow(*, host: str, port: int, group: str, edge_node: str, device: str) -> str:
    """The peer's flow file (JSON)."""
    config = {
        "serverUrl": f"mqtt://{host}:{port}",
        "clientId": f"spb-peer-{uuid.uuid4().hex[:8]}",
        "group": group,
        "edgeNode": edge_node,
        "device": device,
        "metrics": METRICS,
        "nodeMetrics": NODE_METRICS,
    }
    consts = f"const CONFIG = {json.dumps(config)};\n"
    tab = "peer.tab"

    def http_in(ident: str, method: str, url: str, y: int) -> dict[str, object]:
        return {
            "id": ident,
            "type": "http in",
            "z": tab,
            "name": "",
            "url": url,
            "method": method,
            "upload": False,
            "swaggerDoc": "",
            "x": 120,
            "y": y,
            "wires": [["peer.edge"]],
        }

    nodes: list[dict[str, object]] = [
        {"id": tab, "type": "tab", "label": "sparkplug peer", "disabled": False},
        http_in("peer.ddata", "post", "/spb/ddata", 60),
        http_in("peer.state", "get", "/spb/state", 120),
        {
            "id": "peer.edge",
            "type": "function",
            "z": tab,
            "name": "edge node",
            "func": consts + _EDGE_MESSAGE,
            "outputs": 1,
            "timeout": 0,
            "noerr": 0,
            "initialize": consts + _EDGE_INIT,
            "finalize": _EDGE_CLOSE,
            "libs": [],
            "x": 320,
            "y": 90,
            "wires": [["peer.reply"]],
        },
        {
            "id": "peer.reply",
            "type": "http response",
            "z": tab,
            "name": "",
            "statusCode": "",
            "headers": {},
            "x": 500,
            "y": 90,
            "wires": [],
        },
    ]
    return json.dumps(nodes, indent=1)


def unavailable(*, install: bool = True) -> str | None:
    """Why the peer cannot run here (None: it can); installs Node-RED and the Sparkplug
    packages into benchmarks/.cache the first time, unless `install` is False."""
    found = _libraries(install)
    return found if isinstance(found, str) else None


def _libraries(install: bool) -> tuple[nodered.NodeRed, Path] | str:
    log: list[str] = []
    red = nodered.find_or_install(log, install=install)
    if isinstance(red, str):
        return red
    modules = nodered.sparkplug_libraries(red, log, install=install)
    if isinstance(modules, str):
        return modules
    return red, modules


class SparkplugPeer:
    """A running Node-RED acting as a Sparkplug B edge node; `stop()` ends it (NDEATH)."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path, ids: tuple[str, ...]):
        self.proc = proc
        self.url = url
        self.log_path = log
        self.group, self.edge_node, self.device = ids

    @classmethod
    def start(
        cls,
        host: str,
        port: int,
        *,
        group: str,
        edge_node: str,
        device: str,
        workdir: Path,
        timeout: float = 60.0,
    ) -> SparkplugPeer:
        """Start Node-RED and wait until the edge node is connected and has born once."""
        found = _libraries(install=True)
        if isinstance(found, str):
            raise RuntimeError(f"no Sparkplug peer: {found}")
        red, modules = found
        user_dir = workdir / f"spb-peer-{uuid.uuid4().hex[:6]}"
        user_dir.mkdir(parents=True)
        flows = user_dir / "flows.json"
        flows.write_text(
            flow(host=host, port=port, group=group, edge_node=edge_node, device=device)
        )
        settings = user_dir / "settings.js"
        settings.write_text(nodered.sparkplug_settings(modules, editor=False))
        http_port = free_port()
        command = red.command(user_dir, http_port, str(flows))
        command[-1:-1] = ["--settings", str(settings)]
        log = user_dir / "node-red.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        peer = cls(proc, f"http://127.0.0.1:{http_port}", log, (group, edge_node, device))
        try:
            peer.wait(lambda s: bool(s["connected"]) and int(s["births"]) >= 1, timeout)
        except BaseException:
            peer.stop()
            raise
        return peer

    def _request(self, path: str, body: object | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return dict(json.loads(answer.read()))

    def state(self) -> dict[str, Any]:
        """What the peer did so far (births, rebirths, ncmd, ddata, connected, errors)."""
        return self._request("/spb/state")

    def ddata(self, values: Mapping[str, Any]) -> None:
        """Publish one DDATA of the device with these metric values (by alias)."""
        self._request("/spb/ddata", {"values": dict(values)})

    def wait(self, ready: Any, timeout: float = 20.0) -> dict[str, Any]:
        """Poll the state until `ready(state)` is true; fails with Node-RED's log otherwise."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Node-RED exited {self.proc.returncode}:\n{self.log()}")
            try:
                last = self.state()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
                continue
            if ready(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"Sparkplug peer not there after {timeout} s: {last}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SparkplugPeer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

"""End-to-end throughput and memory of edged next to a raw paho republish loop, in one run.

    python benchmarks/throughput.py [--messages N] [--quick]

Every contender runs as its own process against one private mosquitto: a publisher sends N
QoS 0 messages of ~53 bytes as fast as it can, a counter waits for the expected outputs, and the
rate is inputs handled per second from the first publish to the last output. Absolute numbers
depend on the machine; the ratios to the raw loop measured in the same run are what carry over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import paho.mqtt.client as paho
import yaml

from edged.broker import PrivateBroker

HERE = Path(__file__).resolve().parent
FILTERS = HERE.parent / "examples" / "filters"
RESULTS = HERE / "results"


@dataclass
class Result:
    name: str
    messages: int
    outputs: int
    seconds: float
    msgs_per_s: float
    peak_rss_mib: float


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Counter:
    def __init__(self, broker: PrivateBroker, pattern: str) -> None:
        self.count = 0
        self.done = threading.Event()
        self.expected = 0
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(pattern, 0)
        self.client.loop_start()
        self.subscribed.wait(5)

    def _on_message(self, *_: object) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _drive(broker: PrivateBroker, n: int, expected: int, tag: str) -> tuple[float, int]:
    counter = Counter(broker, f"bench/{tag}/out/#")
    counter.expected = expected
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    payloads = [
        json.dumps({"value": 20 + (i % 20), "ts": 1_700_000_000 + i}).encode() for i in range(n)
    ]
    start = time.perf_counter()
    for index, payload in enumerate(payloads):
        pub.publish(f"bench/{tag}/in/s{index % 8}", payload, 0)
    finished = counter.done.wait(max(60.0, n / 2000))
    elapsed = time.perf_counter() - start
    pub.loop_stop()
    pub.disconnect()
    counter.close()
    if not finished:
        print(f"  {tag}: only {counter.count} of {expected} outputs arrived", file=sys.stderr)
    return elapsed, counter.count


def _wait_line(proc: subprocess.Popen[str], want: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if want in line:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"process exited before {want!r}")
    raise RuntimeError(f"no {want!r} within {timeout} s")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_raw(broker: PrivateBroker, n: int, version: str) -> Result:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "raw_republish.py"),
            broker.host,
            str(broker.port),
            "bench/raw/in/#",
            "bench/raw/out/x",
            version,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_line(proc, "ready")
        seconds, outputs = _drive(broker, n, n, "raw")
        rss = _peak_rss_mib(proc.pid)
    finally:
        _stop(proc)
    return Result("raw paho republish (ceiling)", n, outputs, seconds, n / seconds, rss)


def bench_edged(
    broker: PrivateBroker,
    n: int,
    module: str,
    params: dict[str, object],
    expected: int,
    workdir: Path,
    version: str,
) -> Result:
    tag = f"edged-{module}"
    config = {
        "node_id": f"bench-{module}",
        "state_dir": str(workdir / "state"),
        "broker": {"host": broker.host, "port": broker.port, "mqtt_version": version},
        "modules": {module: {"file": str(FILTERS / f"{module}.wasm")}},
        "pipelines": [
            {
                "name": "bench",
                "subscribe": [f"bench/{tag}/in/#"],
                "filters": [{"module": module, "params": params}],
                "outputs": [{"topic": f"bench/{tag}/out/{{topic}}"}],
            }
        ],
        "log": {"level": "warning", "format": "json"},
    }
    path = workdir / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(config))
    status = f"edged/bench-{module}/status"
    online = threading.Event()
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    watcher.on_message = lambda _c, _u, m: (
        json.loads(m.payload).get("state") == "online" and online.set()
    )
    watcher.connect(broker.host, broker.port)
    watcher.subscribe(status, 1)
    watcher.loop_start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        if not online.wait(30):
            raise RuntimeError("edged did not come online")
        seconds, outputs = _drive(broker, n, expected, tag)
        rss = _peak_rss_mib(proc.pid)
    finally:
        _stop(proc)
        watcher.loop_stop()
        watcher.disconnect()
    return Result(f"edged, {module}", n, outputs, seconds, n / seconds, rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="tiny counts, to check it runs")
    parser.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5")
    args = parser.parse_args()
    n = 1_000 if args.quick else args.messages
    with PrivateBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # value cycles 20..39 and the limit is 29.5: exactly half the readings pass.
        results = [
            bench_raw(broker, n, args.mqtt_version),
            bench_edged(broker, n, "passthrough", {}, n, workdir, args.mqtt_version),
            bench_edged(
                broker, n, "threshold", {"limit": 29.5}, n // 2, workdir, args.mqtt_version
            ),
        ]
    ceiling = results[0].msgs_per_s
    print(f"{'contender':<32} {'msgs/s':>9} {'ratio':>6} {'peak RSS MiB':>13} {'outputs':>8}")
    for r in results:
        print(
            f"{r.name:<32} {r.msgs_per_s:>9.0f} {r.msgs_per_s / ceiling:>6.2f} "
            f"{r.peak_rss_mib:>13.1f} {r.outputs:>8}"
        )
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "messages": n,
            "mqtt_version": args.mqtt_version,
            "results": [asdict(r) | {"ratio_to_raw": r.msgs_per_s / ceiling} for r in results],
        }
        target = RESULTS / f"throughput-mqtt{args.mqtt_version.replace('.', '')}.json"
        target.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

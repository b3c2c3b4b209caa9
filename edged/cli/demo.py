"""`edged demo`: a private broker, the real daemon as a subprocess, simulated sensors, results.

Everything is real: mosquitto on a free loopback port, `edged run` in its own process, the
example Wasm filters from `examples/filters/`. Only the sensors are made up.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edged.errors import EdgedError
from edged.mqtt.mosquitto import PrivateBroker

ROOMS = ("kitchen", "cellar", "attic")


def demo_config_path() -> Path:
    """configs/demo.yaml of the source tree edged runs from or, for an installed edged, of the
    current directory (the unpacked offline bundle, which carries configs/ and examples/)."""
    tree = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
    here = Path.cwd() / "configs" / "demo.yaml"
    for path in (tree, here):
        if path.is_file():
            return path
    raise EdgedError(
        f"the demo config is missing: neither {tree} nor {here} exists; run `edged demo` in the "
        "source tree or in the unpacked offline bundle"
    )


def _write_config(source: Path, port: int, workdir: Path) -> Path:
    data = yaml.safe_load(source.read_text())
    data["broker"].update(host="127.0.0.1", port=port)
    data["state_dir"] = str(workdir / "state")
    for module in data["modules"].values():
        module["file"] = str((source.parent / module["file"]).resolve())
    target = workdir / "demo.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def _reading(room: str, step: int) -> float:
    # A slow wave per room, and the attic overheating for a while in the middle of the run.
    base = {"kitchen": 22.0, "cellar": 14.0, "attic": 27.0}[room]
    value = base + 1.5 * math.sin(step / 3.0)
    if room == "attic" and 5 <= step <= 8:
        value += 5.0
    return round(value, 2)


class _Collector:
    def __init__(self, status_topic: str, out: TextIO) -> None:
        self.status_topic = status_topic
        self.out = out
        self.online = threading.Event()
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()

    def on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.status_topic:
            try:
                state = json.loads(msg.payload).get("state")
            except ValueError:
                return
            if state == "online":
                self.online.set()
            return
        kind = msg.topic.split("/")[1] if msg.topic.count("/") >= 2 else msg.topic
        kind = {"alerts": "alerts", "fahrenheit": "fahrenheit", "raw": "humidity"}.get(
            kind, "averages"
        )
        with self.lock:
            self.received[kind] += 1
            print(f"  {msg.topic:<42} {msg.payload.decode(errors='replace')}", file=self.out)


def run_demo(*, rounds: int = 12, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    source = demo_config_path()
    with PrivateBroker() as broker, tempfile.TemporaryDirectory(prefix="edged-demo-") as tmp:
        workdir = Path(tmp)
        config = _write_config(source, broker.port, workdir)
        print(f"edged demo: mosquitto on 127.0.0.1:{broker.port}, config {source}", file=out)
        logfile = workdir / "edged.log"
        with open(logfile, "wb") as sink:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "edged", "run", "--config", str(config)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        collector = _Collector("edged/demo/status", out)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="edged-demo-sensors")
        client.on_message = collector.on_message
        client.connect(broker.host, broker.port)
        client.subscribe([("edged/demo/status", 1), ("out/#", 1)])
        client.loop_start()
        try:
            deadline = time.monotonic() + 20
            while not collector.online.wait(0.1):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise EdgedError(
                        "the daemon did not come online:\n" + logfile.read_text(errors="replace")
                    )
            print("edged is online; publishing readings:", file=out)
            published = 0
            for step in range(rounds):
                for room in ROOMS:
                    now_ms = int(time.time() * 1000)
                    reading = {"temp": _reading(room, step), "ts": now_ms}
                    client.publish(f"sensors/{room}/temperature", json.dumps(reading), qos=1)
                    humidity = {"rh": round(55 + 10 * math.cos(step / 4.0), 1), "ts": now_ms}
                    client.publish(f"sensors/{room}/humidity", json.dumps(humidity), qos=0)
                    published += 2
                time.sleep(0.1)
            time.sleep(1.6)  # one more one-second window, so the last averages come out
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
            client.loop_stop()
            client.disconnect()
        with collector.lock:
            got = dict(collector.received)
        total = sum(got.values())
        parts = ", ".join(
            f"{got.get(k, 0)} {k}" for k in ("alerts", "fahrenheit", "averages", "humidity")
        )
        print(
            f"summary: {published} readings in, {total} messages out ({parts}); "
            f"daemon exit {code}; {time.monotonic() - started:.1f} s",
            file=out,
        )
        if code != 0 or total == 0:
            print(logfile.read_text(errors="replace"), file=sys.stderr)
            return 1
    return 0

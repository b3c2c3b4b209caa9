"""`edged demo`: a private broker, the real daemon as a subprocess, simulated sensors, results.

Everything is real: mosquitto on a free loopback port, `edged run` in its own process, the
example Wasm filters from `examples/filters/`. Only the sensors are made up; they and the
collector that prints what comes out are one short-lived session (edged/mqtt/session.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from edged.errors import EdgedError

if TYPE_CHECKING:
    from edged.mqtt.session import Received, Session

ROOMS = ("kitchen", "cellar", "attic")
STATUS_TOPIC = "edged/demo/status"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="run the demo on a private broker")
    demo.add_argument("--rounds", type=int, default=12, help="readings per sensor")
    demo.set_defaults(handler=lambda args: run_demo(rounds=args.rounds))


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
    import yaml

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
    """What the daemon sends: whether it is online, and its outputs, printed and counted."""

    def __init__(self, session: Session, out: TextIO) -> None:
        self.session = session
        self.out = out
        self.online = False
        self.received: Counter[str] = Counter()

    def take(self, seconds: float) -> None:
        """Show what arrives in the next `seconds`."""
        deadline = time.monotonic() + seconds
        while (message := self.session.next(deadline - time.monotonic())) is not None:
            self._show(message)

    def _show(self, msg: Received) -> None:
        if msg.topic == STATUS_TOPIC:
            try:
                status = json.loads(msg.payload)
            except ValueError:
                return
            if isinstance(status, dict) and status.get("state") == "online":
                self.online = True
            return
        kind = msg.topic.split("/")[1] if msg.topic.count("/") >= 2 else msg.topic
        kind = {"alerts": "alerts", "fahrenheit": "fahrenheit", "raw": "humidity"}.get(
            kind, "averages"
        )
        self.received[kind] += 1
        print(f"  {msg.topic:<42} {msg.payload.decode(errors='replace')}", file=self.out)


def _stop(daemon: subprocess.Popen[bytes]) -> int:
    """Stop the daemon as systemd would, and its exit code."""
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()


def run_demo(*, rounds: int = 12, out: TextIO = sys.stdout) -> int:
    import tempfile

    from edged.config.model import BrokerConfig
    from edged.mqtt.mosquitto import PrivateBroker
    from edged.mqtt.session import Session

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
        code: int | None = None
        try:
            with Session(BrokerConfig(host=broker.host, port=broker.port), "demo") as session:
                collector = _Collector(session, out)
                session.subscribe(STATUS_TOPIC, 1)
                session.subscribe("out/#", 1)
                deadline = time.monotonic() + 20
                while not collector.online:
                    if daemon.poll() is not None or time.monotonic() > deadline:
                        raise EdgedError(
                            "the daemon did not come online:\n"
                            + logfile.read_text(errors="replace")
                        )
                    collector.take(0.1)
                print("edged is online; publishing readings:", file=out)
                published = 0
                for step in range(rounds):
                    for room in ROOMS:
                        now_ms = int(time.time() * 1000)
                        reading = {"temp": _reading(room, step), "ts": now_ms}
                        session.publish(
                            f"sensors/{room}/temperature", json.dumps(reading).encode(), qos=1
                        )
                        humidity = {"rh": round(55 + 10 * math.cos(step / 4.0), 1), "ts": now_ms}
                        session.publish(
                            f"sensors/{room}/humidity", json.dumps(humidity).encode(), qos=0
                        )
                        published += 2
                    collector.take(0.1)
                collector.take(1.6)  # one more one-second window, so the last averages come out
                code = _stop(daemon)
                collector.take(0.1)  # what it sent while stopping
        finally:
            if code is None:
                code = _stop(daemon)
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

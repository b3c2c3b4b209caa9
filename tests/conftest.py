"""Shared fixtures: one real mosquitto for the run, MQTT clients, the daemon as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml

from edged.broker import PrivateBroker

ROOT = Path(__file__).resolve().parent.parent
FILTERS = ROOT / "examples" / "filters"


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def topic_root() -> str:
    """A topic prefix no other test uses, so retained messages and subscriptions never mix."""
    return f"t/{uuid.uuid4().hex[:10]}"


class Client:
    """A test-side MQTT client that records what arrives, in order."""

    def __init__(self, broker: PrivateBroker, *, v5: bool = True) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._subacks: queue.Queue[int] = queue.Queue()
        self.paho = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        self.paho.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.paho.on_subscribe = lambda _c, _u, mid, *_: self._subacks.put(mid)
        self.paho.connect(broker.host, broker.port)
        self.paho.loop_start()

    def subscribe(self, pattern: str, qos: int = 1) -> None:
        _, mid = self.paho.subscribe(pattern, qos)
        while self._subacks.get(timeout=5) != mid:
            pass

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos, retain).wait_for_publish(5)

    def collect(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        """Exactly the next `count` messages; fails if fewer arrive in time."""
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(got)} of {count} messages: {got}")
            try:
                topic, payload, _ = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            got.append((topic, payload))
        return got

    def quiet(self, seconds: float = 0.5) -> list[tuple[str, bytes]]:
        """Whatever else arrives within `seconds`: for asserting that nothing more came."""
        extra: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload, _ = self.messages.get(timeout=left)
            except queue.Empty:
                break
            extra.append((topic, payload))
        return extra

    def close(self) -> None:
        self.paho.loop_stop()
        self.paho.disconnect()


@pytest.fixture
def client(broker: PrivateBroker) -> Iterator[Client]:
    c = Client(broker)
    yield c
    c.close()


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class DaemonProcess:
    """`edged run` in its own process, its JSON log lines kept for assertions."""

    def __init__(
        self,
        config: Path,
        status_topic: str,
        broker: PrivateBroker | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = config.with_suffix(".log")
        self._sink = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.status_topic = status_topic
        self.broker = broker

    def wait_online(self, timeout: float = 20.0) -> dict[str, object]:
        """Block until the daemon's retained status says online (it subscribes first)."""
        assert self.broker is not None, "no broker to watch the status on"
        watcher = Client(self.broker)
        try:
            watcher.subscribe(self.status_topic)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
                try:
                    _, payload, _ = watcher.messages.get(timeout=0.1)
                except queue.Empty:
                    continue
                status = json.loads(payload)
                if status.get("state") == "online":
                    return dict(status)
            raise AssertionError(f"daemon not online after {timeout} s:\n{self.log()}")
        finally:
            watcher.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, object]]:
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._sink.close()
        return self.proc.returncode


@pytest.fixture
def start_daemon(broker: PrivateBroker, tmp_path: Path) -> Iterator[object]:
    """Start `edged run` on a config dict (broker and state_dir filled in); stopped at the end."""
    started: list[DaemonProcess] = []
    counter = iter(range(1000))

    def start(config: dict[str, object], *, wait: bool = True) -> DaemonProcess:
        data = {"state_dir": str(tmp_path / "state"), **config}
        broker_cfg = dict(data.get("broker", {}))  # type: ignore[call-overload]
        broker_cfg.setdefault("host", broker.host)
        broker_cfg.setdefault("port", broker.port)
        data["broker"] = broker_cfg
        path = write_config(tmp_path / f"edged-{next(counter)}.yaml", data)
        prefix = data.get("topic_prefix", "edged")
        daemon = DaemonProcess(path, f"{prefix}/{data['node_id']}/status", broker)
        started.append(daemon)
        if wait:
            daemon.wait_online()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def wasm(name: str) -> str:
    return str(FILTERS / f"{name}.wasm")

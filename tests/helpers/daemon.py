"""`edged run` as a real subprocess, and the config files it runs on."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.mqtt import Client


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

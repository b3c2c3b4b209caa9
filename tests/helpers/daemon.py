"""`edged run` as a real subprocess or on a thread of the test process, and its config files."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from edged.config import Config
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


class DaemonThread:
    """The daemon in this process, on a thread of its own: for tests that want to look at its
    parts (counters, intake, link) while it runs against a real broker.

    Signals stay with the test process (the daemon installs handlers only on the main thread);
    `stop()` asks the loop to finish as SIGTERM would, and waits for it.
    """

    def __init__(self, config: Config) -> None:
        from edged.daemon import Daemon

        self.daemon = Daemon(config)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edged-daemon", daemon=True)

    def _run(self) -> None:
        try:
            self.daemon.run()
        except BaseException as exc:  # handed to the test in stop()
            self.error = exc

    def start(self, timeout: float = 20.0) -> DaemonThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.daemon.control.ready:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the daemon did not become ready: {self.error!r}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.daemon.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the daemon's loop did not stop within {timeout} s")
        if self.error is not None:
            raise self.error

    def __enter__(self) -> DaemonThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

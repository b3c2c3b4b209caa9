"""Shared fixtures: one real mosquitto for the run, MQTT clients, the daemon as a subprocess.

What the fixtures are built from lives in `tests.helpers`, which test modules import directly.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def topic_root() -> str:
    """A topic prefix no other test uses, so retained messages and subscriptions never mix."""
    return f"t/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(broker: PrivateBroker) -> Iterator[Client]:
    c = Client(broker)
    yield c
    c.close()


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


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A Unix datagram socket standing in for systemd's: its path, and the socket to read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(20)
    yield str(path), sock
    sock.close()

"""sd_notify against real Unix datagram sockets, and what the daemon tells systemd."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Client, DaemonProcess, wasm, write_config

from edged.broker import PrivateBroker
from edged.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(20)
    yield str(path), sock
    sock.close()


def test_notify_reaches_a_path_socket(notify_socket: tuple[str, socket.socket]) -> None:
    """With NOTIFY_SOCKET a file path, the fields arrive as one KEY=value datagram."""
    address, sock = notify_socket
    notifier = Notifier(address)
    assert notifier.notify(READY=1, STATUS="serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    notifier.close()


def test_notify_reaches_an_abstract_socket() -> None:
    """An address starting with '@' is the abstract namespace, as systemd writes it."""
    name = f"edged-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = Notifier(f"@{name}")
        assert notifier.notify(STOPPING=1)
        assert sock.recv(4096) == b"STOPPING=1"
        notifier.close()
    finally:
        sock.close()


def test_without_systemd_notify_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd (no NOTIFY_SOCKET) notifications are skipped, not errors."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.notify(READY=1) is False


def test_daemon_is_ready_only_once_subscribed_and_says_stopping(
    broker: PrivateBroker, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    """READY=1 comes after the subscriptions: a message sent right then is processed."""
    address, sock = notify_socket
    root = f"t/{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp_path / "edged.yaml",
        {
            "node_id": "notify",
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "modules": {"pass": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": [{"topic": f"{root}/in", "qos": 1}],
                    "filters": ["pass"],
                    "outputs": [{"topic": f"{root}/out", "qos": 1}],
                }
            ],
        },
    )
    client = Client(broker)
    client.subscribe(f"{root}/out")
    daemon = DaemonProcess(config, "edged/notify/status", broker, env={"NOTIFY_SOCKET": address})
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=1 pipelines, connected to")
        client.publish(f"{root}/in", json.dumps({"n": 1}))
        assert client.collect(1) == [(f"{root}/out", b'{"n": 1}')]
        assert daemon.stop() == 0
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    finally:
        daemon.stop()
        client.close()

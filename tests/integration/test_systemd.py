"""sd_notify against real Unix datagram sockets, and what the daemon tells systemd."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from pathlib import Path

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm


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


def _pass_config(tmp_path: Path, broker: PrivateBroker, root: str, names: list[str]) -> Path:
    return write_config(
        tmp_path / "edged.yaml",
        {
            "node_id": "signals",
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "modules": {"pass": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": name,
                    "subscribe": [{"topic": f"{root}/{name}/in", "qos": 1}],
                    "filters": ["pass"],
                    "outputs": [{"topic": f"{root}/{name}/out", "qos": 1}],
                }
                for name in names
            ],
        },
    )


def _datagrams(sock: socket.socket, seconds: float) -> list[bytes]:
    got: list[bytes] = []
    sock.settimeout(0.05)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096))
        except TimeoutError:
            continue
    return got


def test_watchdog_pings_at_half_the_interval(
    broker: PrivateBroker, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    """With WATCHDOG_USEC set, the running loop sends WATCHDOG=1 about twice per interval."""
    address, sock = notify_socket
    config = _pass_config(tmp_path, broker, "t/wd", ["a"])
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    daemon = DaemonProcess(config, "edged/signals/status", broker, env=env)
    try:
        got = _datagrams(sock, 1.5)
        assert any(d.startswith(b"READY=1") for d in got), got
        pings = [d for d in got if d == b"WATCHDOG=1"]
        assert 4 <= len(pings) <= 10, got
    finally:
        daemon.stop()


def test_sighup_reloads_a_good_config_and_keeps_the_old_one_on_errors(
    broker: PrivateBroker, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    """SIGHUP applies a valid new config (RELOADING, then READY); a broken one changes nothing."""
    address, sock = notify_socket
    root = f"t/{uuid.uuid4().hex[:8]}"
    config = _pass_config(tmp_path, broker, root, ["a"])
    client = Client(broker)
    client.subscribe(f"{root}/+/out")
    daemon = DaemonProcess(config, "edged/signals/status", broker, env={"NOTIFY_SOCKET": address})
    try:
        assert sock.recv(4096).startswith(b"READY=1")
        _pass_config(tmp_path, broker, root, ["a", "b"])
        daemon.proc.send_signal(signal.SIGHUP)
        assert sock.recv(4096).startswith(b"RELOADING=1")
        assert sock.recv(4096).startswith(b"READY=1\nSTATUS=2 pipelines (reloaded)")
        client.publish(f"{root}/a/in", "1")
        client.publish(f"{root}/b/in", "2")
        assert sorted(client.collect(2)) == [(f"{root}/a/out", b"1"), (f"{root}/b/out", b"2")]

        config.write_text("node_id: [oops\n")
        daemon.proc.send_signal(signal.SIGHUP)
        assert sock.recv(4096).startswith(b"RELOADING=1")
        assert sock.recv(4096).startswith(b"READY=1\nSTATUS=reload failed")
        client.publish(f"{root}/b/in", "3")
        assert client.collect(1) == [(f"{root}/b/out", b"3")]
        failed = [e for e in daemon.events() if e.get("event") == "reload_failed"]
        assert len(failed) == 1 and "invalid YAML" in str(failed[0]["reason"])
    finally:
        daemon.stop()
        client.close()


def test_sigterm_processes_what_was_published_before_it(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """Messages published just before SIGTERM are all filtered and published, none lost: what
    the daemon had taken in goes out before it exits, and what the broker had not sent it yet
    (it sends at most the Receive Maximum ahead of the acknowledgements) stays queued in the
    persistent session and goes out after the next start, in order."""
    root = f"t/{uuid.uuid4().hex[:8]}"
    config = _pass_config(tmp_path, broker, root, ["a"])
    client = Client(broker)
    client.subscribe(f"{root}/a/out")
    daemon = DaemonProcess(config, "edged/signals/status", broker)
    again: DaemonProcess | None = None
    want = [str(i).encode() for i in range(300)] + [b"last"]
    try:
        daemon.wait_online()
        for i in range(300):
            client.paho.publish(f"{root}/a/in", str(i), qos=1)
        client.publish(f"{root}/a/in", "last")  # waits for its PUBACK: the broker has them all
        assert daemon.stop(signal.SIGTERM) == 0
        got = [p for _, p in client.quiet(1.0)]
        if len(got) < len(want):
            again = DaemonProcess(config, "edged/signals/status", broker)
            again.wait_online()
            got += [p for _, p in client.collect(len(want) - len(got), timeout=15)]
        assert got == want
    finally:
        daemon.stop()
        if again is not None:
            again.stop()
        client.close()

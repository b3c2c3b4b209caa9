"""A cloud broker that does not answer must not hold up the local one.

The "cloud" here accepts TCP connections and then says nothing, as a firewall that lets SYNs
through to a dead host, or a TLS terminator that hangs, does: paho's TLS handshake then blocks
until its 5 s connect timeout, again at every retry. edged makes that attempt off its loop, so
the local broker's messages keep flowing through a local pipeline meanwhile.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.brokers import make_pki
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_cloud_does_not_stall_the_local_pipeline(
    broker: PrivateBroker, silent_port: int, tmp_path: Path
) -> None:
    """While every connection attempt to the cloud hangs in its TLS handshake, 100 local QoS 1
    messages go through a local-to-local pipeline, each well within the 5 s an attempt blocks
    for; the cloud is reported down with the reason."""
    pki = make_pki(tmp_path / "pki")
    node = f"i{uuid.uuid4().hex[:6]}"
    data = {
        "node_id": node,
        "state_dir": str(tmp_path / "state"),
        "brokers": {
            "local": {"host": broker.host, "port": broker.port},
            "cloud": {
                "host": "127.0.0.1",
                "port": silent_port,
                "tls": {"ca_file": str(pki.ca)},
                "reconnect_min_delay": 0.1,
                "reconnect_max_delay": 0.2,
            },
        },
        "modules": {"passthrough": {"file": wasm("passthrough")}},
        "pipelines": [
            {
                "name": "local",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1}],
            }
        ],
    }
    daemon = DaemonProcess(write_config(tmp_path / "iso.yaml", data), f"edged/{node}/status", None)
    watcher = Client(broker)
    watcher.subscribe(f"edged/{node}/status")
    deadline = time.monotonic() + 20
    while True:  # the local link is up: its status (degraded, the cloud not being there)
        _, payload, _ = watcher.messages.get(timeout=max(0.1, deadline - time.monotonic()))
        if b'"links_down":["cloud"]' in payload or b'"state":"online"' in payload:
            break
    receiver = Client(broker)
    receiver.subscribe(f"{node}/out/#")
    sender = Client(broker)
    worst = 0.0
    for i in range(100):
        sent = time.monotonic()
        sender.publish(f"{node}/in/t", str(i).encode(), qos=1)
        receiver.collect(1, timeout=10)
        worst = max(worst, time.monotonic() - sent)
        time.sleep(0.02)  # spread over ~2 s: several hanging attempts overlap the stream
    assert worst < 2.0, f"a local message waited {worst:.1f} s behind the cloud"
    deadline = time.monotonic() + 15  # the hanging attempt ends at paho's 5 s timeout
    while not (down := [e for e in daemon.events() if e.get("event") == "broker_unreachable"]):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    assert all(e["broker"] == "cloud" for e in down)
    assert "cannot connect to 127.0.0.1" in str(down[0]["reason"])
    daemon.stop()

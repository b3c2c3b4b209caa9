"""The daemon's broker connection: waiting for a broker, and coming back after it restarts."""

from __future__ import annotations

import time
from pathlib import Path

from edged.mqtt.mosquitto import PrivateBroker, free_port
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm


def _config(tmp_path: Path, port: int, version: str) -> Path:
    return write_config(
        tmp_path / "edged.yaml",
        {
            "node_id": "reconnect",
            "state_dir": str(tmp_path / "state"),
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "mqtt_version": version,
                "reconnect_min_delay": 0.2,
                "reconnect_max_delay": 0.5,
            },
            "modules": {"pass": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": [{"topic": "in/#", "qos": 1}],
                    "filters": ["pass"],
                    "outputs": [{"topic": "out/{topic}", "qos": 1}],
                }
            ],
        },
    )


def _round_trip(broker: PrivateBroker, daemon: DaemonProcess, tag: str) -> None:
    daemon.wait_online()
    client = Client(broker)
    try:
        client.subscribe("out/#")
        client.publish("in/x", tag)
        assert client.collect(1) == [("out/in/x", tag.encode())]
    finally:
        client.close()


def test_waits_for_a_broker_that_starts_later(tmp_path: Path) -> None:
    """A daemon started before its broker keeps retrying and serves once the broker is up."""
    port = free_port()
    daemon = DaemonProcess(_config(tmp_path, port, "5"), "edged/reconnect/status", None)
    try:
        time.sleep(1.0)
        assert daemon.proc.poll() is None, daemon.log()
        with PrivateBroker(port) as broker:
            daemon.broker = broker
            _round_trip(broker, daemon, "late")
        events = [e["event"] for e in daemon.events()]
        assert "broker_unreachable" in events
    finally:
        daemon.stop()


def test_resubscribes_after_the_broker_restarts(tmp_path: Path) -> None:
    """After the broker goes away and comes back, subscriptions are renewed and flow resumes."""
    port = free_port()
    for version in ("5", "3.1.1"):
        with PrivateBroker(port) as broker:
            daemon = DaemonProcess(
                _config(tmp_path, port, version), "edged/reconnect/status", broker
            )
            try:
                _round_trip(broker, daemon, "before")
                broker.stop()
                time.sleep(0.5)
                broker.start()
                _round_trip(broker, daemon, "after")
                connects = [e for e in daemon.events() if e.get("event") == "broker_connected"]
                assert len(connects) == 2 and connects[1]["reconnect"] is True
            finally:
                daemon.stop()
                summaries = [e for e in daemon.events() if e.get("event") == "summary"]
                assert summaries[-1]["pipelines"]["p"]["in"] == 2

"""At least once from a local broker to a cloud broker, across kill -9 (docs/brokers.md).

A local input is acknowledged only once its cloud output is acknowledged by the cloud or
committed to the cloud's outbox, so killing the daemon at any moment loses nothing: the local
broker sends again what was not acknowledged, and the outbox keeps what was.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.delivery import Stream, loss_and_repeats, received
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm

INFLIGHT = 100


@pytest.fixture
def local() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True, max_inflight_messages=INFLIGHT) as running:
        yield running


@pytest.fixture
def cloud() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True, max_inflight_messages=INFLIGHT) as running:
        yield running


def _start(path: Path, data: dict[str, Any], local: PrivateBroker) -> DaemonProcess:
    write_config(path, data)
    daemon = DaemonProcess(path, f"edged/{data['node_id']}/status", local)
    return daemon


def _config(
    node: str, local: PrivateBroker, cloud: PrivateBroker, tmp_path: Path
) -> dict[str, Any]:
    fast = {"reconnect_min_delay": 0.2, "reconnect_max_delay": 1.0}
    return {
        "node_id": node,
        "state_dir": str(tmp_path / "state"),
        "brokers": {
            "local": {"host": local.host, "port": local.port, **fast},
            "cloud": {"host": cloud.host, "port": cloud.port, **fast},
        },
        "modules": {"passthrough": {"file": wasm("passthrough")}},
        "pipelines": [
            {
                "name": "up",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{node}/out", "qos": 1, "broker": "cloud"}],
            }
        ],
    }


@pytest.mark.parametrize("cloud_up", [True, False], ids=["cloud-up", "cloud-down"])
def test_kill_9_between_local_and_cloud_loses_nothing(
    local: PrivateBroker, cloud: PrivateBroker, tmp_path: Path, cloud_up: bool
) -> None:
    """3,000 local inputs, the daemon killed with SIGKILL in the middle of them and started
    again: every one reaches the cloud. With the cloud up the outputs were in flight to it;
    with the cloud down they were being committed to its outbox when the daemon died, and
    arrive once the cloud is back."""
    node = f"k{uuid.uuid4().hex[:6]}"
    data = _config(node, local, cloud, tmp_path)
    collector = Client(cloud, persistent=True)
    collector.subscribe(f"{node}/out")
    daemon = _start(tmp_path / "k-0.yaml", data, local)
    daemon.wait_online()
    if not cloud_up:
        cloud.halt()
    total = 3000
    stream = Stream(
        Client(local, persistent=True, inflight=INFLIGHT), f"{node}/in/a", total, rate=2000
    )
    stream.start()
    time.sleep(0.8)  # well inside the stream
    daemon.proc.send_signal(signal.SIGKILL)
    assert 0 < stream.published < total  # killed with the stream under way
    daemon.proc.wait(10)
    stream.finish()
    again = _start(tmp_path / "k-1.yaml", data, local)
    if not cloud_up:
        time.sleep(2)  # the restarted daemon takes in the rest while the cloud is still away
        cloud.start()
    got = received(collector, total, timeout=60)  # its session outlives the cloud's restart
    missing, repeats = loss_and_repeats(got, total)
    assert missing == [], f"{len(missing)} lost, first {missing[:10]}; {again.log()[-2000:]}"
    # what the local broker sends again: at most its window of unacknowledged inputs, once
    # more for the outputs committed but not yet acknowledged locally when the daemon died
    assert repeats <= 2 * INFLIGHT, repeats
    assert again.stop() == 0

"""A broker's `limits.max_publish_rate`: edged never sends it more, and loses nothing for it.

Cloud brokers throttle or disconnect a client over their rate (AWS IoT Core: 100 publishes per
second per connection). With the limit set, QoS 1/2 outputs over it wait in that broker's
outbox and go out at the rate; QoS 0 outputs over it are dropped and counted.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm

RATE = 50  # publishes per second the "cloud" takes


@pytest.fixture
def cloud() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


def _start(local: PrivateBroker, cloud: PrivateBroker, tmp_path: Path, qos: int) -> DaemonProcess:
    node = f"r{uuid.uuid4().hex[:6]}"
    data = {
        "node_id": node,
        "state_dir": str(tmp_path / "state"),
        "metrics": {"interval": 0.5},
        "brokers": {
            "local": {"host": local.host, "port": local.port},
            "cloud": {
                "host": cloud.host,
                "port": cloud.port,
                "limits": {"max_publish_rate": RATE},
            },
        },
        "modules": {"passthrough": {"file": wasm("passthrough")}},
        "pipelines": [
            {
                "name": "up",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": qos, "broker": "cloud"}],
            }
        ],
    }
    daemon = DaemonProcess(
        write_config(tmp_path / "rate.yaml", data), f"edged/{node}/status", local
    )
    daemon.wait_online()
    return daemon


def test_a_burst_over_the_rate_arrives_whole_and_no_faster(
    broker: PrivateBroker, cloud: PrivateBroker, tmp_path: Path
) -> None:
    """300 QoS 1 inputs in one burst reach the cloud all, once each and in order, and in no
    second does the cloud get more than the rate (plus the one second's worth it may start
    with): the rest waited in the cloud's outbox instead of being throttled away."""
    daemon = _start(broker, cloud, tmp_path, qos=1)
    node = daemon.status_topic.split("/")[1]
    receiver = Client(cloud)
    receiver.subscribe(f"{node}/out/#")
    sender = Client(broker)
    count = 300
    for i in range(count):
        sender.publish(f"{node}/in/s", str(i).encode(), qos=1)
    arrivals: list[tuple[float, int]] = []
    deadline = time.monotonic() + 30
    while len(arrivals) < count and time.monotonic() < deadline:
        try:
            _, payload, _ = receiver.messages.get(timeout=0.5)
        except queue.Empty:
            continue
        arrivals.append((time.monotonic(), int(payload)))
    assert [n for _, n in arrivals] == list(range(count))
    times = [t for t, _ in arrivals]
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    # one second's worth at the start, then the rate; a loop round of slack
    assert busiest <= 2 * RATE + 5, busiest
    assert times[-1] - times[0] >= (count - 2 * RATE) / RATE * 0.8
    daemon.stop()


def test_qos0_outputs_over_the_rate_are_dropped_and_counted(
    broker: PrivateBroker, cloud: PrivateBroker, tmp_path: Path
) -> None:
    """QoS 0 outputs over the rate are not queued: they are dropped, and the cloud link's
    `rate_limited` counter and the pipeline's `publish_failed` say how many."""
    daemon = _start(broker, cloud, tmp_path, qos=0)
    node = daemon.status_topic.split("/")[1]
    receiver = Client(cloud)
    receiver.subscribe(f"{node}/out/#")
    watcher = Client(broker)
    watcher.subscribe(f"edged/{node}/metrics")
    sender = Client(broker)
    count = 400
    for i in range(count):
        sender.publish(f"{node}/in/s", str(i).encode(), qos=1)
    got = receiver.quiet(2.0)
    deadline = time.monotonic() + 10
    metrics: dict[str, object] = {}
    while time.monotonic() < deadline:
        _, payload, _ = watcher.messages.get(timeout=5)
        metrics = json.loads(payload)
        if metrics["pipelines"]["up"]["in"] == count:  # type: ignore[index]
            break
    limited = metrics["links"]["cloud"]["rate_limited"]  # type: ignore[index]
    assert 0 < len(got) < count
    assert limited == count - len(got)
    assert metrics["pipelines"]["up"]["dropped"]["publish_failed"] == limited  # type: ignore[index]
    daemon.stop()

"""The daemon on a thread of the test process, against the real broker: its parts can be read
while it runs, and its counters say exactly what happened to every message."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edged.config import parse_config
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonThread
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm


def test_counters_account_for_every_message(
    broker: PrivateBroker, client: Client, topic_root: str, tmp_path: Path
) -> None:
    """Readings above the limit go out as alerts, the rest are counted as filtered (a payload
    that is not JSON too: that is the filter's own decision); nothing is unaccounted for."""
    config = parse_config(
        {
            "node_id": "thread",
            "topic_prefix": topic_root,
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "metrics": {"interval": 0},
            "modules": {
                "threshold": {"file": wasm("threshold"), "params": {"limit": 30, "field": "temp"}}
            },
            "pipelines": [
                {
                    "name": "alerts",
                    "subscribe": [{"topic": f"{topic_root}/in/#", "qos": 1}],
                    "filters": ["threshold"],
                    "outputs": [{"topic": f"{topic_root}/out/{{topic}}", "qos": 1}],
                }
            ],
        }
    )
    client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config) as running:
        for value in (10, 31, 45, 29, 30.5):
            client.publish(f"{topic_root}/in/t1", json.dumps({"temp": value}))
        client.publish(f"{topic_root}/in/t2", b"not JSON")
        got = client.collect(3)
        pipeline = running.daemon.pipelines[0]
        deadline = time.monotonic() + 5  # the last, dropped, message may still be on its way
        # Until the last message is accounted for, not just received: the counters are read
        # from this thread while the daemon's may be in the middle of that message.
        c = pipeline.counters
        while c.published + c.filtered + sum(c.dropped.values()) < 6:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        counters = pipeline.counters.snapshot()
    assert [json.loads(payload)["value"] for _, payload in got] == [31, 45, 30.5]
    assert {topic for topic, _ in got} == {f"{topic_root}/out/alert"}
    assert counters == {"in": 6, "out": 3, "filtered": 3, "dropped": {}}

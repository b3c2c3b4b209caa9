"""The faults of a gateway's second month: an output the cloud broker will never take, and a
state directory whose disk fills up during a cloud outage.

Real parts only: mosquittos of each test's own (the "cloud" one with `max_packet_size`),
`edged run` as a subprocess, a real tmpfs of 3 MiB for the state directory (mounted when the
tests run as root, as CI does; skipped with the reason otherwise). Every input carries a
sequence number, so what is missing or repeated is counted exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from edged.mqtt.poison import STRIKES
from tests.helpers.daemon import DaemonProcess
from tests.helpers.delivery import Stream, loss_and_repeats
from tests.helpers.mqtt import Client
from tests.helpers.otherbrokers import make_broker
from tests.integration.conftest import Start
from tests.integration.test_brokers import (
    NODE,
    PREFIX,
    gateway,
    link,
    online,
    pipe,
    retained,
    sequence,
    until_all,
    wait_status,
)

STATUS = f"{PREFIX}/{NODE}/status"
DEAD = f"{PREFIX}/{NODE}/deadletter"
LIMIT = 2048  # the cloud's max_packet_size


@pytest.fixture
def local() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True, max_inflight_messages=100) as running:
        yield running


@pytest.fixture
def cloud() -> Iterator[PrivateBroker]:
    """mosquitto with `max_packet_size 2048`: announced as Maximum Packet Size in CONNACK under
    MQTT 5; under 3.1.1 unannounced, and a client sending more is disconnected."""
    conf = f"max_packet_size {LIMIT}\n"
    with PrivateBroker(persistence=True, max_inflight_messages=100, extra_conf=conf) as running:
        yield running


def _events(daemon: DaemonProcess, name: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in daemon.events()
        if e.get("event") == name and all(e.get(k) == v for k, v in match.items())
    ]


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_an_oversized_output_is_dead_lettered_and_the_rest_flows(
    local: PrivateBroker, cloud: PrivateBroker, tmp_path: Path, start: Start, version: str
) -> None:
    """200 QoS 1 inputs local -> cloud, input 100 padded to 3 KiB. Under MQTT 5 the cloud
    announced 2,048 bytes: the big output is dead-lettered before it is sent, the link never
    drops, and every other output arrives exactly once. Under 3.1.1 nothing is announced: the
    cloud disconnects edged each time it is sent, and after STRIKES + 1 disconnects edged knows
    it for poison and dead-letters it; no reconnect after that, nothing else lost (the
    disconnects may repeat a few outputs whose acknowledgements they cut off)."""
    _oversized(local, cloud, tmp_path, start, version, announced=version == "5")


@pytest.mark.other_brokers
@pytest.mark.parametrize("name", ["hivemq", "mochi"])
def test_an_oversized_output_to_another_broker_is_dead_lettered(
    local: PrivateBroker, tmp_path: Path, start: Start, name: str
) -> None:
    """The same against HiveMQ CE (announces its max-packet-size in CONNACK, DISCONNECT 0x95
    past it) and Mochi MQTT (announces nothing and closes the TCP connection), under MQTT 5."""
    with make_broker(name, persistence=True, max_packet_size=LIMIT) as cloud:
        _oversized(local, cloud, tmp_path, start, "5", announced=name == "hivemq")


def _oversized(
    local: PrivateBroker,
    cloud: Any,
    tmp_path: Path,
    start: Start,
    version: str,
    *,
    announced: bool,
) -> None:
    brokers = {"local": link(local), "cloud": link(cloud, mqtt_version=version)}
    data = gateway(tmp_path, brokers, pipe("up", "in/#", "out/{topic}", "local", "cloud"))
    watcher = Client(local)
    watcher.subscribe(STATUS)
    daemon = start(data, local)
    wait_status(watcher, STATUS, online, daemon=daemon)
    dead = Client(local)
    dead.subscribe(DEAD)
    collector = Client(cloud, v5=True, persistent=True)
    collector.subscribe("out/#")
    publisher = Client(local, persistent=True, inflight=100)
    for seq in range(200):
        body: dict[str, Any] = {"seq": seq}
        if seq == 100:
            body["pad"] = "x" * 3000
        publisher.paho.publish(f"in/s{seq % 4}", json.dumps(body), qos=1)
    got = until_all(collector, 199, timeout=30)  # all but the oversized one
    seqs = sequence(got)
    missing, repeats = loss_and_repeats(seqs, 200)
    assert missing == [100], daemon.log()[-3000:]
    [(_, letter)] = dead.collect(1, timeout=10)
    record = json.loads(letter)
    assert record["broker"] == "cloud" and record["output_topic"] == "out/in/s0"
    if announced:
        assert record["reason"] == "broker_limit"
        assert f"({LIMIT} bytes" in record["detail"] and "3" in record["detail"]
        assert repeats == 0
        assert len(_events(daemon, "broker_connected", broker="cloud")) == 1
        assert _events(daemon, "broker_unreachable", broker="cloud") == []
    else:
        assert record["reason"] == "poison_output", record
        found = _events(daemon, "poison_output_found", broker="cloud")
        assert len(found) == 1
        drops = _events(daemon, "broker_unreachable", broker="cloud")
        # STRIKES + 1 when the poison is the only publish in flight at each drop; on a loaded
        # machine more outputs are in flight at the first drops and it takes one or two more
        assert STRIKES + 1 <= len(drops) <= 2 * (STRIKES + 1), [d["reason"] for d in drops]
        # none after the one that found it (logged just after it)
        assert [d for d in drops if d["timestamp"] > found[0]["timestamp"]] == drops[-1:]
        assert repeats <= 100  # at most the broker's window, once per disconnect
    # the record keeps the payload, or its head when the control broker would refuse it whole
    assert "x" * 100 in record.get("payload", "")
    assert dead.quiet(0.5) == []
    for c in (watcher, dead, collector, publisher):
        c.close()
    assert daemon.stop() == 0


# -- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs for the state directory (grown later by `grow`), or a skip."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the state directory needs root")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def grow(where: Path, size: str = "64m") -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def test_a_full_disk_during_a_cloud_outage_holds_the_inputs_and_loses_nothing(
    local: PrivateBroker,
    cloud: PrivateBroker,
    small_disk: Path,
    tmp_path: Path,
    start: Start,
) -> None:
    """The cloud down, 4,000 QoS 1 inputs of 1 KiB, the state directory on 3 MiB: the outbox
    fills the disk, and from then on the inputs stay with the local broker (unacknowledged)
    instead of being lost; the status says why. The cloud comes back while the disk is still
    full (what is replayed cannot be deleted), then the space: every output arrives, none
    twice."""
    count = 4000
    brokers = {"local": link(local), "cloud": link(cloud)}
    data = gateway(tmp_path, brokers, pipe("up", "in/#", "out/{topic}", "local", "cloud"))
    data["state_dir"] = str(small_disk / "state")
    watcher = Client(local)
    watcher.subscribe(STATUS)
    daemon = start(data, local)
    wait_status(watcher, STATUS, online, daemon=daemon)
    collector = Client(cloud, v5=True, persistent=True, client_id="collector")
    collector.subscribe("out/#")
    collector.close()  # its session queues at the cloud while it is away
    cloud.halt()
    wait_status(watcher, STATUS, lambda s: "cloud unreachable" in s.get("reason", ""))
    stream = Stream(
        Client(local, persistent=True, inflight=100),
        lambda seq: f"in/s{seq % 4}",
        count,
        2000,
        1000,
    )
    stream.start()
    stream.finish(timeout=60)
    failing = wait_status(
        watcher, STATUS, lambda s: "outbox write failing" in s.get("reason", ""), timeout=30
    )[-1]
    assert failing["state"] == "degraded", failing
    time.sleep(1.0)
    unstored = _events(daemon, "outputs_unstored")
    assert unstored == [], unstored  # every output had an input behind it: none lost
    held = retained(local, "metrics")["links"]
    assert held["local"]["unacked_inputs"] > 0  # the inputs wait at the local broker
    errors = held["cloud"]["outbox"]["write_errors"]
    cloud.start()
    time.sleep(3.0)  # the replay goes out; its deletions fail on the full disk
    after = retained(local, "metrics")["links"]["cloud"]["outbox"]
    assert after["write_errors"] > errors and after["entries"] > 0, after
    grow(small_disk)
    collector = Client(cloud, v5=True, persistent=True, client_id="collector")
    collector.subscribe("out/#")
    got = sequence(until_all(collector, count, timeout=90))
    missing, repeats = loss_and_repeats(got, count)
    assert missing == [], f"{len(missing)} missing\n{retained(local, 'metrics')['links']}"
    assert repeats == 0
    wait_status(watcher, STATUS, online, daemon=daemon)
    for c in (watcher, collector):
        c.close()
    assert daemon.stop() == 0

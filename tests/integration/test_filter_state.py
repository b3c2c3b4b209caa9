"""Filters keep their state across a reload, a restart and a kill -9 (docs/state.md).

Real parts only: a mosquitto of each test's own (with persistence), `edged run` as a subprocess,
and tests/modules/seqstate.wat: a stateful filter that counts the inputs it applied and the
repeats among them (a sequence number not above the highest it saw), and says both with each
output. So what a reload or a restart kept, and whether any input was applied twice, is read
straight off the outputs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.delivery import Stream
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES, wasm

INFLIGHT = 100


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True, max_inflight_messages=INFLIGHT) as running:
        yield running


@pytest.fixture
def seqstate(tmp_path: Path) -> str:
    path = tmp_path / "seqstate.wasm"
    path.write_bytes(wasmtime.wat2wasm((MODULES / "seqstate.wat").read_text()))
    return str(path)


class Node:
    """One node's config, written anew for each start or reload, and its processes."""

    def __init__(self, broker: PrivateBroker, tmp_path: Path, module: str, **state: Any) -> None:
        self.broker = broker
        self.tmp = tmp_path
        self.root = f"s/{uuid.uuid4().hex[:8]}"
        self.path = tmp_path / "edged.yaml"
        self.data: dict[str, Any] = {
            "node_id": f"n{uuid.uuid4().hex[:6]}",
            "topic_prefix": self.root,
            "state_dir": str(tmp_path / "state"),
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "reconnect_min_delay": 0.2,
                "reconnect_max_delay": 1.0,
            },
            "state": state or {"checkpoint_interval": 60},
            "modules": {"seqstate": {"file": module}},
            "pipelines": [
                {
                    "name": "count",
                    "subscribe": [{"topic": f"{self.root}/in/#", "qos": 1}],
                    "filters": ["seqstate"],
                    "outputs": [{"topic": f"{self.root}/out/{{topic}}", "qos": 1}],
                }
            ],
        }
        self.process: DaemonProcess | None = None
        self.runs = 0

    def write(self) -> None:
        write_config(self.path, self.data)

    def start(self) -> DaemonProcess:
        # a config file (and so a log file) of its own for each process
        self.path = self.tmp / f"edged-{self.runs}.yaml"
        self.runs += 1
        self.write()
        status = f"{self.root}/{self.data['node_id']}/status"
        self.process = DaemonProcess(self.path, status, self.broker)
        self.process.wait_online()
        return self.process

    def reload(self) -> None:
        """Write the config and SIGHUP; returns once the daemon logged `reloaded`."""
        assert self.process is not None
        before = len(self._reloads())
        self.write()
        self.process.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while len(self._reloads()) == before:
            assert time.monotonic() < deadline, self.process.log()[-3000:]
            time.sleep(0.05)

    def _reloads(self) -> list[dict[str, object]]:
        assert self.process is not None
        return [e for e in self.process.events() if e.get("event") == "reloaded"]

    def events(self, name: str) -> list[dict[str, object]]:
        assert self.process is not None
        return [e for e in self.process.events() if e.get("event") == name]


def _outputs(collector: Client, want: int, timeout: float = 30) -> list[dict[str, int]]:
    """Every output record until one says `applied == want` (or the time is up), in order."""
    got: list[dict[str, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, payload in collector.quiet(0.2):
            got.append(json.loads(payload))
        if got and max(r["applied"] for r in got) >= want:
            break
    return got + [json.loads(p) for _, p in collector.quiet(0.3)]


def _publisher(broker: PrivateBroker) -> Client:
    return Client(broker, persistent=True, inflight=INFLIGHT)


def _collector(broker: PrivateBroker, node: Node) -> Client:
    collector = Client(broker, persistent=True)
    collector.subscribe(f"{node.root}/out/#")
    return collector


def test_a_reload_with_the_same_config_or_another_pipeline_keeps_the_filter(
    broker: PrivateBroker, tmp_path: Path, seqstate: str
) -> None:
    """600 inputs, a SIGHUP with the config unchanged after ~200 and one adding an unrelated
    pipeline after ~400: the filter counts every input once (applied 1..600 in order, no
    repeat), and the reloads made no new instance (nothing saved or loaded)."""
    node = Node(broker, tmp_path, seqstate)
    collector = _collector(broker, node)
    node.start()
    stream = Stream(_publisher(broker), f"{node.root}/in/a", 600, rate=300)
    stream.start()
    time.sleep(0.7)
    node.reload()
    time.sleep(0.7)
    node.data["modules"]["passthrough"] = {"file": wasm("passthrough")}
    node.data["pipelines"].append(
        {
            "name": "other",
            "subscribe": [f"{node.root}/other"],
            "filters": ["passthrough"],
            "outputs": [{"topic": f"{node.root}/other-out"}],
        }
    )
    node.reload()
    stream.finish()
    got = _outputs(collector, 600)
    assert [r["applied"] for r in got] == list(range(1, 601))
    assert [r["seq"] for r in got] == list(range(600))
    assert all(r["repeats"] == 0 for r in got)
    assert node.events("state_loaded") == []  # the same instance went on
    assert node.process is not None and node.process.stop() == 0


def test_a_changed_filter_on_reload_takes_over_the_state(
    broker: PrivateBroker, tmp_path: Path, seqstate: str
) -> None:
    """A SIGHUP that changes the filter's budgets makes a new instance: it takes the old one's
    state (saved then, loaded into the new), so the count goes on."""
    node = Node(broker, tmp_path, seqstate)
    collector = _collector(broker, node)
    node.start()
    stream = Stream(_publisher(broker), f"{node.root}/in/a", 400, rate=300)
    stream.start()
    time.sleep(0.6)
    node.data["modules"]["seqstate"]["budgets"] = {"fuel": 5_000_000}
    node.reload()
    stream.finish()
    got = _outputs(collector, 400)
    assert [r["applied"] for r in got] == list(range(1, 401))
    assert all(r["repeats"] == 0 for r in got)
    [loaded] = node.events("state_loaded")
    assert loaded["during"] == "reload" and loaded["bytes"] == 12
    assert node.process is not None and node.process.stop() == 0


def test_a_restart_restores_the_state(broker: PrivateBroker, tmp_path: Path, seqstate: str) -> None:
    """300 inputs, SIGTERM, start, 300 more: the count goes on from 300 (written at the stop),
    no input counted twice."""
    node = Node(broker, tmp_path, seqstate)
    collector = _collector(broker, node)
    node.start()
    stream = Stream(_publisher(broker), f"{node.root}/in/a", 300, rate=0)
    stream.start()
    stream.finish()
    first = _outputs(collector, 300)
    assert node.process is not None and node.process.stop() == 0
    node.start()
    publisher = _publisher(broker)
    for seq in range(300, 600):
        publisher.paho.publish(f"{node.root}/in/a", json.dumps({"seq": seq}), qos=1)
    got = first + _outputs(collector, 600)
    publisher.close()
    assert [r["applied"] for r in got] == list(range(1, 601))
    assert all(r["repeats"] == 0 for r in got)
    [loaded] = node.events("state_loaded")
    assert loaded["during"] == "restart"
    assert node.process.stop() == 0


def test_kill_9_applies_no_input_twice_and_loses_at_most_a_checkpoint_interval(
    broker: PrivateBroker, tmp_path: Path, seqstate: str
) -> None:
    """A steady stream of 3,000 QoS 1 inputs at 500/s from the local broker, outputs to a
    "cloud" broker, checkpoints every 0.5 s. Mid-stream the cloud stalls for 2 s (SIGSTOP: the
    connection stays up, no acknowledgement comes, so ~100 inputs stay unacknowledged while
    checkpoints fall due), edged is killed with -9 during the stall and started again, the
    cloud resumes. Every input the local broker sends again is applied once: no output ever
    counts a repeat, because a checkpoint holds only inputs already acknowledged (one taken
    during the stall would hold those 100, and they would count twice). What is lost is the
    effect of the inputs acknowledged after the last checkpoint: at most the interval's worth
    plus the wait for acknowledgements (0.5 s + 1 s at 500/s)."""
    count, rate, interval = 3000, 500, 0.5
    with PrivateBroker(persistence=True, max_inflight_messages=INFLIGHT) as cloud:
        node = Node(broker, tmp_path, seqstate, checkpoint_interval=interval)
        local = node.data.pop("broker")
        node.data["brokers"] = {
            "local": local,
            "cloud": {**local, "port": cloud.port, "client_id": "cloud-" + node.data["node_id"]},
        }
        node.data["pipelines"][0]["outputs"][0]["broker"] = "cloud"
        collector = Client(cloud, persistent=True)
        collector.subscribe(f"{node.root}/out/#")
        first = node.start()
        stream = Stream(_publisher(broker), f"{node.root}/in/a", count, rate=rate)
        stream.start()
        got: list[dict[str, int]] = []
        deadline = time.monotonic() + 20
        while (not got or got[-1]["seq"] < count // 2) and time.monotonic() < deadline:
            got += [json.loads(p) for _, p in collector.quiet(0.05)]
        assert cloud.pid is not None
        os.kill(cloud.pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
            first.stop(signal.SIGKILL)
        finally:
            os.kill(cloud.pid, signal.SIGCONT)
        node.start()
        stream.finish()
        deadline = time.monotonic() + 30
        while (not got or max(r["seq"] for r in got) < count - 1) and time.monotonic() < deadline:
            got += [json.loads(p) for _, p in collector.quiet(0.2)]
        got += [json.loads(p) for _, p in collector.quiet(0.5)]
        assert node.process is not None and node.process.stop() == 0
    assert got and max(r["seq"] for r in got) == count - 1
    assert [r for r in got if r["repeats"]] == []
    final = max(r["applied"] for r in got)
    lost = count - final
    print(f"kill -9: the effect of {lost} inputs lost")
    assert 0 <= lost <= rate * (interval + 1.0), f"lost the effect of {lost} inputs"
    deferred = [e for e in first.events() if e.get("event") == "checkpoint_deferred"]
    assert deferred, "no checkpoint fell due during the stall"


def test_a_damaged_state_store_is_set_aside_and_the_filters_start_fresh(
    broker: PrivateBroker, tmp_path: Path, seqstate: str
) -> None:
    """A state file that is not SQLite: moved aside with the reason logged; the daemon serves,
    the filter counts from 1."""
    node = Node(broker, tmp_path, seqstate)
    store = tmp_path / "state" / "filter-state.sqlite3"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    collector = _collector(broker, node)
    node.start()
    publisher = _publisher(broker)
    publisher.paho.publish(f"{node.root}/in/a", json.dumps({"seq": 0}), qos=1)
    [record] = _outputs(collector, 1)
    assert record["applied"] == 1
    [corrupt] = node.events("state_store_corrupt")
    assert "moved_to" in corrupt and list(store.parent.glob("filter-state.sqlite3.corrupt-*"))
    publisher.close()
    assert node.process is not None and node.process.stop() == 0
    with sqlite3.connect(store) as db:  # the new store took the state at the stop
        assert db.execute("SELECT count(*) FROM filter_state").fetchone()[0] == 1


def test_a_state_over_max_state_is_a_violation_and_the_filter_serves_on(
    broker: PrivateBroker, tmp_path: Path, seqstate: str
) -> None:
    """budgets.max_state of 8 bytes for a 12-byte state: each save is a violation with its
    reason, nothing is written, the filter keeps counting, and a restart starts it fresh."""
    node = Node(broker, tmp_path, seqstate)
    node.data["modules"]["seqstate"]["budgets"] = {"max_state": 8}
    collector = _collector(broker, node)
    node.start()
    publisher = _publisher(broker)
    for seq in range(5):
        publisher.paho.publish(f"{node.root}/in/a", json.dumps({"seq": seq}), qos=1)
    assert [r["applied"] for r in _outputs(collector, 5)] == [1, 2, 3, 4, 5]
    assert node.process is not None and node.process.stop() == 0
    [failed] = node.events("state_save_failed")
    assert failed["reason"] == "state" and "max_state" in str(failed["detail"])
    node.start()
    publisher.paho.publish(f"{node.root}/in/a", json.dumps({"seq": 5}), qos=1)
    assert [r["applied"] for r in _outputs(collector, 1)] == [1]
    publisher.close()
    assert node.process.stop() == 0


# -- the example filters: average and deadband ---------------------------------------------------


def _examples(broker: PrivateBroker, tmp_path: Path, tick: float) -> Node:
    """Pipelines `average` (tick_interval `tick`) and `deadband` (band 1.0) on one topic."""
    node = Node(broker, tmp_path, wasm("average"))
    node.data["modules"] = {
        "average": {"file": wasm("average")},
        "deadband": {"file": wasm("deadband"), "params": {"deadband": 1.0}},
    }
    node.data["pipelines"] = [
        {
            "name": "avg",
            "subscribe": [{"topic": f"{node.root}/s/+/t", "qos": 1}],
            "filters": [{"module": "average", "tick_interval": tick}],
            "outputs": [{"topic": f"{node.root}/out/{{topic}}", "qos": 1}],
        },
        {
            "name": "band",
            "subscribe": [{"topic": f"{node.root}/s/+/t", "qos": 1}],
            "filters": ["deadband"],
            "outputs": [{"topic": f"{node.root}/band/{{topic}}", "qos": 1}],
        },
    ]
    return node


def _readings(publisher: Client, node: Node, values: list[float]) -> None:
    for value in values:
        publisher.paho.publish(f"{node.root}/s/a/t", json.dumps({"value": value}), qos=1)


def _collect(client: Client, seconds: float) -> list[tuple[str, dict[str, Any]]]:
    return [(topic, json.loads(body)) for topic, body in client.quiet(seconds)]


@pytest.mark.parametrize("change", ["unchanged", "another pipeline"])
def test_a_reload_mid_window_keeps_the_average_and_the_deadband(
    broker: PrivateBroker, tmp_path: Path, change: str
) -> None:
    """Three readings, a SIGHUP (the config as it was, or with an unrelated pipeline added),
    three more, then the tick: one summary whose count, mean, min and max cover all six; the
    deadband forwards only the readings that left its band, across the reload."""
    node = _examples(broker, tmp_path, tick=4.0)
    watch = Client(broker)
    watch.subscribe(f"{node.root}/out/#")
    watch.subscribe(f"{node.root}/band/#")
    node.start()
    publisher = _publisher(broker)
    _readings(publisher, node, [20.0, 20.5, 21.5])  # band: 20.0, 21.5
    time.sleep(0.5)
    if change == "another pipeline":
        node.data["modules"]["passthrough"] = {"file": wasm("passthrough")}
        node.data["pipelines"].append(
            {
                "name": "other",
                "subscribe": [f"{node.root}/elsewhere"],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{node.root}/elsewhere-out"}],
            }
        )
    node.reload()
    _readings(publisher, node, [21.9, 19.0, 22.0])  # band: 19.0 (|19.0-21.5| >= 1), 22.0
    got = _collect(watch, 5.0)
    summaries = [body for topic, body in got if topic.endswith("/avg")]
    assert len(summaries) == 1, got
    summary = summaries[0]
    assert summary["count"] == 6
    assert (summary["min"], summary["max"]) == (19.0, 22.0)
    assert summary["avg"] == pytest.approx((20.0 + 20.5 + 21.5 + 21.9 + 19.0 + 22.0) / 6, abs=0.01)
    band = [body["value"] for topic, body in got if f"{node.root}/band/" in topic]
    assert band == [20.0, 21.5, 19.0, 22.0]
    publisher.close()
    assert node.process is not None and node.process.stop() == 0


def test_a_restart_mid_window_keeps_the_average_and_the_deadband(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """Readings, SIGTERM, start, readings: the window goes on (the summary counts all of them)
    and the deadband remembers 20.5 across the restart (20.6 is not forwarded again)."""
    node = _examples(broker, tmp_path, tick=3.0)
    watch = Client(broker)
    watch.subscribe(f"{node.root}/out/#")
    watch.subscribe(f"{node.root}/band/#")
    node.start()
    publisher = _publisher(broker)
    _readings(publisher, node, [20.5, 20.0])  # band: 20.5
    before = _collect(watch, 0.7)
    assert node.process is not None and node.process.stop() == 0
    node.start()
    _readings(publisher, node, [20.6, 21.4, 22.0])  # band: 22.0 only (20.6, 21.4 within 1.0)
    got = before + _collect(watch, 4.0)
    band = [body["value"] for topic, body in got if f"{node.root}/band/" in topic]
    assert band == [20.5, 22.0]
    summaries = [body for topic, body in got if topic.endswith("/avg")]
    assert [s["count"] for s in summaries] == [5], got
    assert (summaries[0]["min"], summaries[0]["max"]) == (20.0, 22.0)
    publisher.close()
    assert node.process.stop() == 0

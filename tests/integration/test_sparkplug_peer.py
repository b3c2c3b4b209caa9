"""edged's Sparkplug B decode filter against a real Sparkplug peer through a real mosquitto.

The peer is Node-RED running Eclipse Tahu's edge node client with one device
(tests/helpers/sparkplug_peer.py): it publishes NBIRTH and DBIRTH with aliases, DDATA by alias
on request, and re-births when an NCMD `Node Control/Rebirth` reaches it. edged runs
`sparkplug_decode` on `spBv1.0/#`, publishes one JSON message per metric, and sends its rebirth
requests back to the same broker.

Selected with `pytest -m nodered`; skipped with the reason when Node.js/npm or the decode module
is missing. `EDGED_SPARKPLUG_DECODE` names another build of the module to test.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import FILTERS
from tests.helpers.sparkplug_peer import METRICS, NODE_METRICS, SparkplugPeer, unavailable

pytestmark = pytest.mark.nodered

DECODE = Path(os.environ.get("EDGED_SPARKPLUG_DECODE") or FILTERS / "sparkplug_decode.wasm")
#: what one NBIRTH + DBIRTH of the peer decode to: its metrics, and the client's bdSeq
BIRTH_MESSAGES = len(NODE_METRICS) + 1 + len(METRICS)
#: a DDATA with a new value for every metric of the device
NEW_VALUES: dict[str, Any] = {
    "Temperature": 23.25,
    "Pressure": 998.5,
    "Count": 9_007_199_254_740_000,
    "Level": 65_000,
    "Setpoint": -2_000_000,
    "Running": False,
    "Mode": "manual \u00e9",
}


@pytest.fixture(scope="module")
def peer_available() -> None:
    if not DECODE.is_file():
        pytest.skip(f"{DECODE} is missing (the Sparkplug B example filters are not here)")
    why = unavailable(install=True)
    if why is not None:
        pytest.skip(f"no Node-RED Sparkplug peer: {why}")


@dataclass
class Setup:
    broker: PrivateBroker
    tmp: Path
    root: str
    group: str
    node_id: str
    config: Path
    watcher: Client
    daemons: list[DaemonProcess] = field(default_factory=list)

    @property
    def out(self) -> str:
        return f"{self.root}/spb/{self.group}/E/D"

    def daemon(self) -> DaemonProcess:
        daemon = DaemonProcess(self.config, f"{self.root}/{self.node_id}/status", self.broker)
        self.daemons.append(daemon)  # stopped at the end even when a test fails
        daemon.wait_online()
        return daemon

    def peer(self) -> SparkplugPeer:
        return SparkplugPeer.start(
            self.broker.host,
            self.broker.port,
            group=self.group,
            edge_node="E",
            device="D",
            workdir=self.tmp,
        )


@pytest.fixture
def setup(peer_available: None, broker: PrivateBroker, tmp_path: Path) -> Iterator[Setup]:
    root = f"t/{uuid.uuid4().hex[:8]}"
    group = f"G{uuid.uuid4().hex[:6]}"
    node_id = f"n{uuid.uuid4().hex[:6]}"
    config = write_config(
        tmp_path / "edged.yaml",
        {
            "node_id": node_id,
            "topic_prefix": root,
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port},
            "modules": {"sparkplug_decode": {"file": str(DECODE)}},
            "pipelines": [
                {
                    "name": "sparkplug",
                    "subscribe": [{"topic": "spBv1.0/#", "qos": 1}],
                    "filters": [
                        {"module": "sparkplug_decode", "params": {"prefix": f"{root}/spb"}}
                    ],
                    "outputs": [
                        {"match": "spBv1.0/+/NCMD/+", "topic": "{topic}", "qos": 1},
                        {"match": f"{root}/spb/#", "topic": "{topic}", "qos": 1},
                    ],
                }
            ],
        },
    )
    watcher = Client(broker, persistent=True)
    watcher.subscribe(f"{root}/spb/#")
    watcher.subscribe(f"{root}/{node_id}/deadletter")
    watcher.subscribe(f"spBv1.0/{group}/NCMD/#")
    made = Setup(broker, tmp_path, root, group, node_id, config, watcher)
    yield made
    for daemon in made.daemons:
        daemon.stop()
    watcher.close()


def decoded(got: list[tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    """The decode filter's outputs by metric name."""
    return {json.loads(p)["metric"]: json.loads(p) for _, p in got}


def same_value(datatype: str, got: Any, want: Any) -> bool:
    """Float travels as float32."""
    if datatype == "Float":
        return bool(struct.pack("<f", got) == struct.pack("<f", want))
    return bool(got == want)


def check_birth(
    s: Setup, got: list[tuple[str, bytes]], current: dict[str, Any] | None = None
) -> None:
    """The BIRTHs carry every metric with its current value (a rebirth sends the latest)."""
    metrics = decoded(got)
    assert set(metrics) == {*METRICS, *NODE_METRICS, "bdSeq"}, metrics
    for name, (datatype, alias, value) in METRICS.items():
        value = (current or {}).get(name, value)
        msg = metrics[name]
        assert (msg["type"], msg["device"], msg["alias"]) == ("DBIRTH", "D", alias), msg
        assert msg["datatype"] == datatype and same_value(datatype, msg["value"], value), msg
    assert metrics["Node Control/Rebirth"]["type"] == "NBIRTH"
    assert metrics["bdSeq"]["datatype"] == "UInt64"
    assert {t for t, _ in got} >= {f"{s.out}/{name}" for name in METRICS}


def check_data(s: Setup, got: list[tuple[str, bytes]], values: dict[str, Any]) -> None:
    metrics = decoded(got)
    assert set(metrics) == set(values), metrics
    for name, value in values.items():
        datatype, alias, _ = METRICS[name]
        msg = metrics[name]
        assert (msg["type"], msg["group"], msg["edge_node"]) == ("DDATA", s.group, "E"), msg
        assert (msg["alias"], msg["datatype"]) == (alias, datatype), msg
        assert same_value(datatype, msg["value"], value), (name, msg["value"], value)
    assert {t for t, _ in got} == {f"{s.out}/{name}" for name in values}


def test_birth_then_data_decode_to_what_the_peer_sent(setup: Setup) -> None:
    """A Node-RED edge node's NBIRTH/DBIRTH and then a DDATA by alias come out of edged as one
    JSON message per metric, with the names, datatypes and values the peer sent."""
    s = setup
    daemon = s.daemon()
    with s.peer() as peer:
        check_birth(s, s.watcher.collect(BIRTH_MESSAGES))
        peer.ddata(NEW_VALUES)
        check_data(s, s.watcher.collect(len(NEW_VALUES)), NEW_VALUES)
        peer.ddata({"Temperature": -5.5, "Running": True})
        check_data(s, s.watcher.collect(2), {"Temperature": -5.5, "Running": True})
        assert s.watcher.quiet(0.3) == []
        assert peer.state()["rebirths"] == 0
    assert daemon.stop() == 0


def test_a_restart_between_birth_and_data_keeps_the_aliases(setup: Setup) -> None:
    """edged stopped (SIGTERM) and started again after the peer's BIRTH still names the metrics
    of the peer's DDATA: the alias table is in the state directory. No rebirth is asked for."""
    s = setup
    daemon = s.daemon()
    with s.peer() as peer:
        check_birth(s, s.watcher.collect(BIRTH_MESSAGES))
        assert daemon.stop() == 0
        daemon = s.daemon()
        peer.ddata(NEW_VALUES)
        check_data(s, s.watcher.collect(len(NEW_VALUES)), NEW_VALUES)
        assert s.watcher.quiet(0.3) == []
        assert peer.state()["rebirths"] == 0
    assert daemon.stop() == 0


def test_a_late_start_asks_the_peer_to_rebirth_and_then_decodes(setup: Setup) -> None:
    """edged started after the peer's BIRTH does not know the aliases: the first DDATA goes to
    the dead-letter topic (reason `rejected`, naming the alias), edged's NCMD
    `Node Control/Rebirth` reaches the peer, which publishes NBIRTH and DBIRTH again, and from
    then on its DDATA decode."""
    s = setup
    with s.peer() as peer:
        daemon = s.daemon()
        peer.ddata({"Temperature": 30.5})
        dead, ncmd = None, None
        births: list[tuple[str, bytes]] = []
        # The dead letter, the NCMD and the births of the rebirth, in whatever order they come.
        for topic, payload in s.watcher.collect(2 + BIRTH_MESSAGES, timeout=20):
            if topic.endswith("/deadletter"):
                dead = json.loads(payload)
            elif "/NCMD/" in topic:
                ncmd = (topic, payload)
            else:
                births.append((topic, payload))
        assert dead is not None and dead["reason"] == "rejected", dead
        assert "unknown alias 101" in json.dumps(dead), dead
        assert ncmd is not None and ncmd[0] == f"spBv1.0/{s.group}/NCMD/E"
        state = peer.wait(lambda st: st["rebirths"] == 1 and st["births"] == 2)
        assert state["ncmd"] == ["Node Control/Rebirth"]
        check_birth(s, births, {"Temperature": 30.5})
        peer.ddata(NEW_VALUES)
        check_data(s, s.watcher.collect(len(NEW_VALUES)), NEW_VALUES)
        assert s.watcher.quiet(0.3) == []
    assert daemon.stop() == 0

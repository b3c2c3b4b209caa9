"""`control_broker:` decides where the node's own topics live, and a reload keeps the links.

Two plain mosquittos of the test's own, `local` (first, the sensors') and `cloud`, with
`control_broker: cloud`: the status, metrics, deploy requests and acks and the dead letters
are on the cloud, and a deploy request on the local broker is not taken at all.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES, wasm


@pytest.fixture
def local() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def cloud() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


def _config(
    node: str, local: PrivateBroker, cloud: PrivateBroker, trap: Path, out: str
) -> dict[str, Any]:
    return {
        "node_id": node,
        "brokers": {
            "local": {"host": local.host, "port": local.port},
            "cloud": {"host": cloud.host, "port": cloud.port},
        },
        "control_broker": "cloud",
        "metrics": {"interval": 0.5},
        "deploy": {"allow_unsigned": True},
        "violations": {"dead_letter_qos": 1},
        "modules": {"passthrough": {"file": wasm("passthrough")}, "trap": {"file": str(trap)}},
        "pipelines": [
            {
                "name": "up",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["trap"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1, "broker": out}],
            }
        ],
    }


def _first_on(client: Client, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    """The first JSON message on `topic` among whatever else `client` receives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got, payload, _ = client.messages.get(timeout=0.5)
            if got == topic:
                return dict(json.loads(payload))
    raise AssertionError(f"nothing on {topic} within {timeout} s")


def test_the_control_topics_live_on_the_control_broker(
    local: PrivateBroker, cloud: PrivateBroker, tmp_path: Path
) -> None:
    """With `control_broker: cloud`, the retained status and metrics are on the cloud, a
    malformed deploy request there is answered there, the same request on the local broker is
    ignored, and a trapping message's dead letter goes to the cloud; then a reload that moves
    the output rule to the local broker keeps both connections (no reconnect) and the next
    output arrives on the local broker."""
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(wasmtime.wat2wasm((MODULES / "trap.wat").read_text()))
    node = f"c{uuid.uuid4().hex[:6]}"
    data = {"state_dir": str(tmp_path / "state"), **_config(node, local, cloud, trap, "cloud")}
    path = write_config(tmp_path / "control.yaml", data)
    daemon = DaemonProcess(path, f"edged/{node}/status", cloud)
    status = daemon.wait_online()
    assert status["state"] == "online"

    on_cloud = Client(cloud)
    on_cloud.subscribe(f"edged/{node}/#")
    on_local = Client(local)
    on_local.subscribe(f"edged/{node}/#")
    time.sleep(1.0)  # a metrics publication or two, retained
    seen_cloud = {t for t, _ in on_cloud.quiet(0.5)}
    assert f"edged/{node}/metrics" in seen_cloud and f"edged/{node}/status" in seen_cloud
    local_control = {t for t, _ in on_local.quiet(0.5)} - {f"edged/{node}/status"}
    assert local_control == set()  # the local link has its own status, nothing else

    on_local.publish(f"edged/{node}/deploy", b"not a request", qos=1)
    on_cloud.publish(f"edged/{node}/deploy", b"not a request", qos=1)
    ack = _first_on(on_cloud, f"edged/{node}/ack")
    assert (ack["result"], ack["reason"]) == ("refused", "malformed")
    time.sleep(0.5)
    later_acks = [p for t, p in on_cloud.quiet(0.5) if t == f"edged/{node}/ack"]
    assert later_acks == []  # the local broker's request was never taken

    sender = Client(local)
    sender.publish(f"{node}/in/x", b"bad", qos=1)  # trap.wat traps on "b..."
    letter = _first_on(on_cloud, f"edged/{node}/deadletter")
    assert (letter["reason"], letter["topic"]) == ("trap", f"{node}/in/x")

    reader_local = Client(local)
    reader_local.subscribe(f"{node}/out/#")
    moved = _config(node, local, cloud, trap, "local")
    # New budgets make the filter a changed one, so a fresh instance (trap.wat has no state
    # exports); an unchanged filter would be kept whole by the reload, with the flag the bad
    # message set, and drop what follows (docs/state.md).
    moved["modules"]["trap"]["budgets"] = {"fuel": 10_000_000}
    write_config(path, {"state_dir": str(tmp_path / "state"), **moved})
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not any(e.get("event") == "reloaded" for e in daemon.events()):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.1)
    sender.publish(f"{node}/in/x", b"ok", qos=1)
    assert reader_local.collect(1, timeout=10) == [(f"{node}/out/{node}/in/x", b"ok")]
    connects = [e for e in daemon.events() if e.get("event") == "broker_connected"]
    assert sorted(str(e["broker"]) for e in connects) == ["cloud", "local"]  # none after reload
    assert daemon.stop() == 0

"""The HTTP endpoint of a running daemon: what a load balancer or a fleet monitor sees.

`edged run` as a subprocess with `http.listen` on a free loopback port, a real mosquitto of the
test's own (so it can be stopped), and a filter that can hold the loop (tests/modules/loop.wat
spins on payloads starting with "b" until its deadline).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from edged.mqtt.mosquitto import PrivateBroker, free_port
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES


@pytest.fixture
def own_broker() -> Iterator[PrivateBroker]:
    with PrivateBroker(persistence=True) as running:
        yield running


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_status(port: int, path: str, status: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        last = get(port, path)
        if last[0] == status:
            return last[1]
        time.sleep(0.1)
    raise AssertionError(f"{path} stayed {last} instead of {status}")


def start(broker: PrivateBroker, tmp_path: Path, **http: Any) -> tuple[DaemonProcess, int, str]:
    loop = tmp_path / "loop.wasm"
    loop.write_bytes(wasmtime.wat2wasm((MODULES / "loop.wat").read_text()))
    node = f"h{uuid.uuid4().hex[:6]}"
    port = free_port()
    data = {
        "node_id": node,
        "state_dir": str(tmp_path / "state"),
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "reconnect_min_delay": 0.2,
            "reconnect_max_delay": 0.5,
        },
        "http": {"listen": f"127.0.0.1:{port}", **http},
        # a spin of 3 s: far longer than alive_within below, well within the test's patience
        "budgets": {"deadline_ms": 3000, "fuel": 10**13},
        "modules": {"loop": {"file": str(loop)}},
        "pipelines": [
            {
                "name": "spin",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["loop"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1}],
            }
        ],
    }
    daemon = DaemonProcess(
        write_config(tmp_path / "http.yaml", data), f"edged/{node}/status", broker
    )
    daemon.wait_online()
    return daemon, port, node


def test_readyz_follows_the_broker(own_broker: PrivateBroker, tmp_path: Path) -> None:
    """/readyz is 200 while the broker link is up; with the broker stopped it is 503 naming
    `broker_down` for the link `default`, while /healthz stays 200 (the daemon itself is fine,
    a restart would not help); once the broker is back it is 200 again."""
    daemon, port, _ = start(own_broker, tmp_path)
    assert wait_status(port, "/readyz", 200)["ready"] is True
    own_broker.halt()
    body = wait_status(port, "/readyz", 503)
    assert body["ready"] is False
    down = [r for r in body["reasons"] if r["reason"] == "broker_down"]
    assert [r["broker"] for r in down] == ["default"]
    assert get(port, "/healthz")[0] == 200
    own_broker.start()
    assert wait_status(port, "/readyz", 200)["reasons"] == []
    daemon.stop()


def test_healthz_fails_while_the_loop_is_stuck(own_broker: PrivateBroker, tmp_path: Path) -> None:
    """A filter that holds the loop for 3 s, longer than `alive_within` (1 s), turns /healthz
    to 503 while it does (the endpoint's own thread still answers); when the deadline ends the
    call, the loop comes round and /healthz is 200 again."""
    daemon, port, node = start(own_broker, tmp_path, alive_within=1)
    assert get(port, "/healthz")[0] == 200
    sender = Client(own_broker)
    sender.publish(f"{node}/in/x", b"block", qos=1)
    body = wait_status(port, "/healthz", 503, timeout=5)
    assert body["alive"] is False and body["loop_last_round_s"] > 1
    ready = get(port, "/readyz")
    assert ready[0] == 503 and "loop_stalled" in [r["reason"] for r in ready[1]["reasons"]]
    assert wait_status(port, "/healthz", 200, timeout=10)["alive"] is True
    daemon.stop()

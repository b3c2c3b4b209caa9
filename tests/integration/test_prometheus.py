"""A real Prometheus scrapes a running daemon and sees what the test made it do.

`edged run` as a subprocess with `http.listen` on a free loopback port, the session's mosquitto,
and Prometheus (Debian's `prometheus`, installed by scripts/test) scraping it every second. The
test sends messages, provokes a trap and pushes a deploy that is refused, then asks
Prometheus's HTTP API for edged's series.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import wasmtime

from edged.mqtt.mosquitto import PrivateBroker, free_port
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES, wasm
from tests.helpers.prometheus import PrivatePrometheus, need_prometheus


def test_prometheus_sees_messages_violations_and_a_refused_deploy(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """50 messages through a pass-through pipeline, 3 trapping ones in another, and one
    malformed deploy request show up in Prometheus as received 50, trap violations 3 and a
    deploy refused `malformed`; the link to the broker is up and the build is labelled."""
    need_prometheus()
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(wasmtime.wat2wasm((MODULES / "trap.wat").read_text()))
    node = f"p{uuid.uuid4().hex[:6]}"
    port = free_port()
    data = {
        "node_id": node,
        "state_dir": str(tmp_path / "state"),
        "broker": {"host": broker.host, "port": broker.port},
        "http": {"listen": f"127.0.0.1:{port}"},
        "deploy": {"allow_unsigned": True},
        "modules": {"passthrough": {"file": wasm("passthrough")}, "trap": {"file": str(trap)}},
        "pipelines": [
            {
                "name": "pass",
                "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1}],
            },
            {
                "name": "traps",
                "subscribe": [{"topic": f"{node}/bad/#", "qos": 1}],
                "filters": ["trap"],
                "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1}],
            },
        ],
    }
    daemon = DaemonProcess(
        write_config(tmp_path / "prom.yaml", data), f"edged/{node}/status", broker
    )
    daemon.wait_online()
    sender = Client(broker)
    for i in range(50):
        sender.publish(f"{node}/in/t", str(i).encode(), qos=1)
    for _ in range(3):
        sender.publish(f"{node}/bad/t", b"boom", qos=1)
    sender.publish(f"edged/{node}/deploy", b"this is not a deploy request", qos=1)

    with PrivatePrometheus([f"127.0.0.1:{port}"]) as prometheus:
        job = '{job="edged"}'
        received = prometheus.wait_for(
            'edged_messages_received_total{job="edged",pipeline="pass"}',
            lambda r: bool(r) and float(r[0]["value"][1]) == 50,
            timeout=20,
        )
        assert received[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        traps = prometheus.wait_for(
            'edged_filter_violations_total{pipeline="traps",kind="trap"}',
            lambda r: bool(r) and float(r[0]["value"][1]) == 3,
        )
        assert traps[0]["metric"]["module"] == "trap" and traps[0]["metric"]["step"] == "0"
        refused = prometheus.wait_for('edged_deploys_total{result="refused"}')
        assert [r["metric"]["reason"] for r in refused] == ["malformed"]
        assert [float(r["value"][1]) for r in refused] == [1.0]
        assert prometheus.values('edged_broker_connected{broker="default"}') == [1.0]
        assert prometheus.values(f"edged_build_info{job}") == [1.0]
        assert prometheus.values(f"up{job}") == [1.0]
        assert prometheus.values(f"process_resident_memory_bytes{job}")[0] > 10 * 2**20
    daemon.stop()

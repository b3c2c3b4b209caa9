"""MQTT 5 properties through the daemon and a real broker: what a sensor sets on its message
arrives on the outputs (or not, with `properties: drop`), and what a filter sets arrives too.

The publishing and receiving client is paho's own, so the properties on the wire are read by
an implementation that is not edged's.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import wasmtime
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from edged.config import parse_config
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, DaemonThread, write_config
from tests.helpers.paths import MODULES, wasm

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
USER = [("traceparent", TRACEPARENT), ("site", "north"), ("measured_at", "1733580000123")]


class PropsClient:
    """paho MQTT 5: publishes with properties, records each message with its properties."""

    def __init__(self, broker: PrivateBroker, *, persistent: bool = False) -> None:
        """`persistent`: the broker keeps its session across its own restart."""
        self.got: queue.Queue[tuple[str, bytes, Any]] = queue.Queue()
        self.paho = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"props-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.paho.on_message = lambda _c, _u, m: self.got.put((m.topic, m.payload, m.properties))
        self.paho.reconnect_delay_set(0.1, 1)
        connect = None
        if persistent:
            connect = PahoProperties(PacketTypes.CONNECT)
            connect.SessionExpiryInterval = 3600
        self.paho.connect(broker.host, broker.port, clean_start=not persistent, properties=connect)
        self.paho.loop_start()

    def subscribe(self, pattern: str) -> None:
        self.paho.subscribe(pattern, 1)
        time.sleep(0.2)  # the SUBACK: nothing published before it would reach this client

    def publish(self, topic: str, payload: bytes, **props: Any) -> None:
        properties = PahoProperties(PacketTypes.PUBLISH)
        for name, value in props.items():
            setattr(properties, name, value)
        self.paho.publish(topic, payload, 1, properties=properties).wait_for_publish(5)

    def collect(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes, Any]]:
        return [self.got.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        self.paho.loop_stop()
        self.paho.disconnect()


@pytest.fixture
def props_client(broker: PrivateBroker) -> Iterator[PropsClient]:
    c = PropsClient(broker)
    yield c
    c.close()


@pytest.fixture
def setprops(tmp_path: Path) -> str:
    """tests/modules/setprops.wat, built: sets a content type, a correlation data and a user
    property on each message it passes on."""
    path = tmp_path / "setprops.wasm"
    path.write_bytes(wasmtime.wat2wasm((MODULES / "setprops.wat").read_text()))
    return str(path)


def _config(
    broker: PrivateBroker,
    root: str,
    tmp_path: Path,
    filters: list[str],
    modules: dict[str, object],
    properties: str = "pass",
    qos: int = 1,
    mqtt_version: str = "5",
) -> Any:
    return parse_config(
        {
            "node_id": f"props-{uuid.uuid4().hex[:6]}",
            "topic_prefix": root,
            "state_dir": str(tmp_path / "state"),
            "broker": {"host": broker.host, "port": broker.port, "mqtt_version": mqtt_version},
            "metrics": {"interval": 0},
            "modules": modules,
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": [{"topic": f"{root}/in/#", "qos": 1}],
                    "filters": filters,
                    "outputs": [
                        {"topic": f"{root}/out/{{topic}}", "qos": qos, "properties": properties}
                    ],
                }
            ],
        }
    )


THREE_FILTERS = {
    "passthrough": {"file": wasm("passthrough")},
    "convert": {"file": wasm("convert"), "params": {"field": "raw", "as": "temp", "scale": 0.5}},
    "threshold": {"file": wasm("threshold"), "params": {"limit": 10, "field": "temp"}},
}


def test_trace_context_and_user_properties_cross_three_filters(
    broker: PrivateBroker, props_client: PropsClient, topic_root: str, tmp_path: Path
) -> None:
    """A traceparent and two more user properties, a content type, a correlation data and a
    response topic, set by the sensor, arrive on the output of a three-filter chain unchanged
    (order kept), though the filters rewrote the payload; the message expiry and the payload
    format, which describe the input's payload, are not carried."""
    config = _config(
        broker, topic_root, tmp_path, ["passthrough", "convert", "threshold"], THREE_FILTERS
    )
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        props_client.publish(
            f"{topic_root}/in/s1",
            json.dumps({"raw": 60}).encode(),
            UserProperty=USER,
            ContentType="application/json",
            CorrelationData=b"\x00\x01req",
            ResponseTopic=f"{topic_root}/reply",
            MessageExpiryInterval=600,
            PayloadFormatIndicator=1,
        )
        ((topic, payload, props),) = props_client.collect(1)
    assert topic == f"{topic_root}/out/alert"
    assert json.loads(payload)["value"] == 30
    assert props.UserProperty == USER
    assert props.ContentType == "application/json"
    assert props.CorrelationData == b"\x00\x01req"
    assert props.ResponseTopic == f"{topic_root}/reply"
    assert not hasattr(props, "MessageExpiryInterval")
    assert not hasattr(props, "PayloadFormatIndicator")


@pytest.mark.parametrize("qos", [0, 2])
def test_properties_go_out_at_qos_0_and_2_too(
    broker: PrivateBroker, props_client: PropsClient, topic_root: str, tmp_path: Path, qos: int
) -> None:
    """QoS 0 goes out by edged's own encoder, QoS 2 by paho's: both carry the properties."""
    config = _config(broker, topic_root, tmp_path, ["passthrough"], THREE_FILTERS, qos=qos)
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        props_client.publish(f"{topic_root}/in/s1", b"x", UserProperty=USER, ContentType="a/b")
        ((_, payload, props),) = props_client.collect(1)
    assert payload == b"x"
    assert props.UserProperty == USER
    assert props.ContentType == "a/b"


def test_under_mqtt_311_there_are_no_properties(
    broker: PrivateBroker, props_client: PropsClient, topic_root: str, tmp_path: Path, setprops: str
) -> None:
    """A 3.1.1 link receives no properties and sends none, even those a filter sets: the
    message goes on without them, and nothing fails."""
    modules = {"setprops": {"file": setprops}, **THREE_FILTERS}
    config = _config(broker, topic_root, tmp_path, ["setprops"], modules, mqtt_version="3.1.1")
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config) as running:
        props_client.publish(f"{topic_root}/in/s1", b"x", UserProperty=USER)
        ((_, payload, props),) = props_client.collect(1)
        counters = running.daemon.pipelines[0].counters.snapshot()
    assert payload == b"x"
    assert props is None or not hasattr(props, "UserProperty")
    assert props is None or not hasattr(props, "ContentType")
    assert counters["out"] == 1 and counters["dropped"] == {}


def test_properties_drop_removes_them(
    broker: PrivateBroker, props_client: PropsClient, topic_root: str, tmp_path: Path
) -> None:
    config = _config(
        broker, topic_root, tmp_path, ["passthrough"], THREE_FILTERS, properties="drop"
    )
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        props_client.publish(
            f"{topic_root}/in/s1", b"x", UserProperty=USER, ContentType="text/plain"
        )
        ((_, payload, props),) = props_client.collect(1)
    assert payload == b"x"
    assert props is None or not hasattr(props, "UserProperty")
    assert props is None or not hasattr(props, "ContentType")


@pytest.mark.parametrize("rule", ["pass", "drop"])
def test_what_a_filter_sets_arrives(
    broker: PrivateBroker,
    props_client: PropsClient,
    topic_root: str,
    tmp_path: Path,
    setprops: str,
    rule: str,
) -> None:
    """A filter that sets a content type, a correlation data and a user property: they arrive
    whatever the rule; its content type replaces the input's, and under `pass` the input's
    user properties come first, then the filter's."""
    modules = {"setprops": {"file": setprops}, **THREE_FILTERS}
    config = _config(
        broker, topic_root, tmp_path, ["passthrough", "setprops"], modules, properties=rule
    )
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        props_client.publish(
            f"{topic_root}/in/s1", b"reading", UserProperty=USER, ContentType="text/plain"
        )
        ((_, payload, props),) = props_client.collect(1)
    assert payload == b"reading"
    assert props.ContentType == "application/json"
    assert props.CorrelationData == b"req-42"
    expected = [("stage", "gateway")]
    assert props.UserProperty == (USER + expected if rule == "pass" else expected)


def test_a_filter_reads_the_input_properties_and_a_dead_letter_names_the_trace(
    broker: PrivateBroker,
    props_client: PropsClient,
    topic_root: str,
    tmp_path: Path,
    setprops: str,
) -> None:
    """The properties area holds the input's properties as the ABI lays them out; a message
    dead-lettered by a filter carries its trace id and properties."""
    modules = {
        "setprops": {"file": setprops},
        "trap": {"file": str(_built(tmp_path, "trap"))},
    }
    config = _config(broker, topic_root, tmp_path, ["setprops"], modules)
    props_client.subscribe(f"{topic_root}/out/#")
    with DaemonThread(config):
        props_client.publish(f"{topic_root}/in/s1", b"props?", UserProperty=[("k", "v")])
        ((_, area, _),) = props_client.collect(1)
    # used (4 bytes), then one entry: id 38, name 1 byte, value 1 byte
    assert area == (14).to_bytes(4, "little") + bytes([38, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]) + b"kv"

    config = _config(broker, topic_root, tmp_path, ["trap"], modules)
    props_client.subscribe(config.dead_letter_topic)
    with DaemonThread(config):
        props_client.publish(f"{topic_root}/in/s2", b"boom", UserProperty=USER)
        ((_, letter, _),) = props_client.collect(1)
    record = json.loads(letter)
    assert record["reason"] == "trap"
    assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record["properties"]["user_properties"] == [list(kv) for kv in USER]


def _built(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))
    return path


def test_properties_survive_an_outage_in_the_outbox_and_a_restart(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """The cloud broker is down: outputs go to the outbox with their properties; the daemon
    is stopped and started again, the cloud comes back, and every output arrives with the
    properties its input had (read by paho on the cloud side)."""
    with PrivateBroker(persistence=True) as cloud:
        node = f"o{uuid.uuid4().hex[:6]}"
        fast = {"reconnect_min_delay": 0.2, "reconnect_max_delay": 1.0}
        data = {
            "node_id": node,
            "state_dir": str(tmp_path / "state"),
            "brokers": {
                "local": {"host": broker.host, "port": broker.port, **fast},
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
        collector = PropsClient(cloud, persistent=True)
        collector.subscribe(f"{node}/out")
        sensor = PropsClient(broker)
        config = write_config(tmp_path / "o.yaml", data)
        daemon = DaemonProcess(config, f"edged/{node}/status", broker)
        daemon.wait_online()
        cloud.halt()
        for seq in range(50):
            user = [("traceparent", TRACEPARENT), ("seq", str(seq))]
            sensor.publish(f"{node}/in/a", str(seq).encode(), UserProperty=user)
        time.sleep(1.0)  # taken in, and committed to the cloud's outbox
        assert daemon.stop() == 0
        again = DaemonProcess(config, f"edged/{node}/status", broker)
        cloud.start()
        got = collector.collect(50, timeout=30)
        assert again.stop() == 0
        sensor.close()
        collector.close()
    assert sorted(int(payload) for _, payload, _ in got) == list(range(50))
    for _, payload, props in got:
        assert props.UserProperty == [("traceparent", TRACEPARENT), ("seq", payload.decode())]

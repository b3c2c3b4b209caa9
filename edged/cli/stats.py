"""`edged stats`: read a node's retained metrics from the broker and show them."""

from __future__ import annotations

import json
import queue
import uuid
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edged.config import Config
from edged.errors import BrokerError
from edged.sizes import format_bytes


def fetch_metrics(config: Config, node_id: str, timeout: float) -> dict[str, Any]:
    """The latest metrics the node published (they are retained), or BrokerError."""
    topic = f"{config.topic_prefix}/{node_id}/metrics"
    b = config.broker
    arrived: queue.Queue[bytes] = queue.Queue()
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"edged-stats-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5 if b.mqtt_version == "5" else paho.MQTTv311,
    )
    if b.username is not None:
        client.username_pw_set(b.username, b.password)
    if b.tls is not None:
        client.tls_set(
            ca_certs=str(b.tls.ca_file) if b.tls.ca_file else None,
            certfile=str(b.tls.cert_file) if b.tls.cert_file else None,
            keyfile=str(b.tls.key_file) if b.tls.key_file else None,
        )
    client.on_message = lambda _c, _u, msg: arrived.put(bytes(msg.payload))
    client.on_connect = lambda c, *_: c.subscribe(topic, 0)
    try:
        client.connect(b.host, b.port, keepalive=b.keepalive)
    except OSError as exc:
        raise BrokerError(f"cannot connect to {b.host}:{b.port}: {exc}") from None
    client.loop_start()
    try:
        payload = arrived.get(timeout=timeout)
    except queue.Empty:
        raise BrokerError(
            f"no metrics on {topic} within {timeout:g} s: is node '{node_id}' running, "
            "with metrics.interval > 0?"
        ) from None
    finally:
        client.loop_stop()
        client.disconnect()
    try:
        data = json.loads(payload)
    except ValueError:
        raise BrokerError(f"{topic} does not hold edged metrics") from None
    if not isinstance(data, dict):
        raise BrokerError(f"{topic} does not hold edged metrics")
    return data


def render(metrics: dict[str, Any], out: TextIO) -> None:
    q = metrics.get("queue", {})
    print(
        f"node {metrics.get('node_id')}  rss {format_bytes(int(metrics.get('rss_bytes', 0)))}  "
        f"queue {q.get('depth', 0)}/{q.get('size', '?')} ({q.get('overload', '?')}, "
        f"dropped {q.get('dropped_oldest', 0)} oldest, {q.get('dropped_newest', 0)} newest)",
        file=out,
    )
    print(f"{'pipeline / filter':<28} {'in':>8} {'out':>8} {'filtered':>9}  dropped", file=out)
    for name, p in metrics.get("pipelines", {}).items():
        dropped = ", ".join(f"{k} {v}" for k, v in p.get("dropped", {}).items()) or "-"
        print(
            f"{name:<28} {p.get('in', 0):>8} {p.get('out', 0):>8} {p.get('filtered', 0):>9}"
            f"  {dropped}",
            file=out,
        )
        for f in p.get("filters", []):
            lat = f.get("latency_us", {})
            violations = ", ".join(f"{k} {v}" for k, v in f.get("violations", {}).items())
            state = "QUARANTINED" if f.get("quarantined") else "ok"
            print(
                f"  {f.get('module', '?'):<26} calls {f.get('calls', 0)}, "
                f"p50 <{lat.get('p50', 0)} µs, p99 <{lat.get('p99', 0)} µs, "
                f"fuel {f.get('fuel_used', 0)}, {state}"
                + (f", violations: {violations}" if violations else ""),
                file=out,
            )

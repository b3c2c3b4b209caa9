"""End to end: the daemon as a subprocess, a real mosquitto, the example Wasm filters."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from typing import Any

from tests.helpers.daemon import DaemonProcess
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm

StartDaemon = Callable[..., DaemonProcess]


def _node() -> str:
    return f"n{uuid.uuid4().hex[:8]}"


def _config(
    modules: list[str], *pipelines: dict[str, Any], node: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A daemon config: a fresh node id, the named example filters, these pipelines."""
    return {
        "node_id": node or _node(),
        "modules": {name: {"file": wasm(name)} for name in modules},
        "pipelines": list(pipelines),
        **extra,
    }


def _pipeline(
    name: str, subscribe: list[Any], filters: list[Any], outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"name": name, "subscribe": subscribe, "filters": filters, "outputs": outputs}


def test_threshold_alerts_exactly_the_readings_above_the_limit(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """Readings above the limit come out as alerts, in order, and nothing else comes out."""
    start_daemon(
        _config(
            ["threshold"],
            _pipeline(
                "hot",
                [{"topic": f"{topic_root}/in/+/temp", "qos": 1}],
                [{"module": "threshold", "params": {"field": "t", "limit": 30}}],
                [{"topic": f"{topic_root}/out/{{topic}}", "qos": 1}],
            ),
        )
    )
    client.subscribe(f"{topic_root}/out/#")
    values = [21.5, 30, 30.5, 12, 45, -3, 31]
    for value in values:
        client.publish(f"{topic_root}/in/s1/temp", json.dumps({"t": value}))
    got = client.collect(3)
    assert got == [
        (
            f"{topic_root}/out/alert",
            f'{{"topic":"{topic_root}/in/s1/temp","field":"t","value":{v},"limit":30}}'.encode(),
        )
        for v in ("30.5", "45", "31")
    ]
    assert client.quiet() == []


def test_chain_converts_then_suppresses_small_changes(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """Two filters in a chain: convert to °F, then deadband lets only changes of >= 1 °F out."""
    to_fahrenheit = {"field": "c", "as": "f", "scale": 1.8, "offset": 32, "decimals": 1}
    start_daemon(
        _config(
            ["convert", "deadband"],
            _pipeline(
                "f",
                [{"topic": f"{topic_root}/in/#", "qos": 1}],
                [
                    {"module": "convert", "params": to_fahrenheit},
                    {"module": "deadband", "params": {"field": "f", "deadband": 1.0}},
                ],
                [{"topic": f"{topic_root}/out/{{topic}}", "qos": 1}],
            ),
        )
    )
    client.subscribe(f"{topic_root}/out/#")
    for c in (20.0, 20.2, 20.6, 21.0, 25.0):
        client.publish(f"{topic_root}/in/a", json.dumps({"c": c}))
    got = client.collect(3)
    assert [p for _, p in got] == [b'{"f":68.0}', b'{"f":69.1}', b'{"f":77.0}']
    assert {t for t, _ in got} == {f"{topic_root}/out/{topic_root}/in/a"}
    assert client.quiet() == []


def test_average_is_emitted_on_tick(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """A ticking filter aggregates a window and its tick output is published."""
    start_daemon(
        _config(
            ["average"],
            _pipeline(
                "avg",
                [{"topic": f"{topic_root}/in/+", "qos": 1}],
                [{"module": "average", "params": {"field": "v"}, "tick_interval": 0.5}],
                [{"topic": f"{topic_root}/out/{{topic}}"}],
            ),
        )
    )
    client.subscribe(f"{topic_root}/out/#")
    for v in (1, 2, 3, 6):
        client.publish(f"{topic_root}/in/x", json.dumps({"v": v}))
    topic, payload = client.collect(1, timeout=5)[0]
    assert topic == f"{topic_root}/out/{topic_root}/in/x/avg"
    body = json.loads(payload)
    # All four may land in one window or be split across two; the sum of counts tells.
    counts = [body["count"]]
    while sum(counts) < 4:
        counts.append(json.loads(client.collect(1, timeout=5)[0][1])["count"])
    if len(counts) == 1:
        assert body == {"avg": 3.0, "min": 1.0, "max": 6.0, "count": 4, "ts": body["ts"]}


def test_output_rules_choose_topic_qos_and_retain(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """The first matching output rule decides; a message no rule matches is counted, not sent."""
    rules = [
        {
            "match": f"{topic_root}/in/keep/#",
            "topic": f"{topic_root}/kept",
            "retain": True,
            "qos": 1,
        },
        {"match": f"{topic_root}/in/+/x", "topic": f"{topic_root}/{{pipeline}}"},
    ]
    daemon = start_daemon(
        _config(
            ["passthrough"],
            _pipeline("route", [f"{topic_root}/in/#"], ["passthrough"], rules),
            log={"summary_interval": 0.2},
        )
    )
    client.subscribe(f"{topic_root}/kept")
    client.subscribe(f"{topic_root}/route")
    client.publish(f"{topic_root}/in/keep/1", b"retained")
    client.publish(f"{topic_root}/in/y/x", b"routed")
    client.publish(f"{topic_root}/in/nowhere", b"lost")
    got = sorted(client.collect(2))
    assert got == [(f"{topic_root}/kept", b"retained"), (f"{topic_root}/route", b"routed")]
    assert client.quiet() == []
    late = Client(daemon.broker)
    late.subscribe(f"{topic_root}/kept")
    assert late.messages.get(timeout=5) == (f"{topic_root}/kept", b"retained", True)
    late.close()
    assert daemon.stop() == 0
    summary = [e for e in daemon.events() if e.get("event") == "summary"][-1]
    counters: Any = summary["pipelines"]
    assert counters["route"]["dropped"] == {"no_output_rule": 1}
    assert counters["route"]["in"] == 3 and counters["route"]["out"] == 2


def test_two_pipelines_share_a_subscription_and_each_sees_every_message(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """Pipelines with the same and with overlapping filters each process a message once."""
    start_daemon(
        _config(
            ["passthrough"],
            *(
                _pipeline(name, [pattern], ["passthrough"], [{"topic": f"{topic_root}/out/{name}"}])
                for name, pattern in (
                    ("a", f"{topic_root}/in/#"),
                    ("b", f"{topic_root}/in/#"),
                    ("c", f"{topic_root}/in/+/z"),
                )
            ),
        )
    )
    client.subscribe(f"{topic_root}/out/#")
    for i in range(5):
        client.publish(f"{topic_root}/in/q/z", str(i))
    got = client.collect(15)
    assert client.quiet() == []
    for name in "abc":
        assert [p for t, p in got if t.endswith(f"/{name}")] == [str(i).encode() for i in range(5)]


def test_status_is_online_when_ready_and_offline_after_stop(
    start_daemon: StartDaemon, client: Client
) -> None:
    """The retained status topic says online with the pipelines, then offline on SIGTERM."""
    node = _node()
    daemon = start_daemon(
        _config(
            ["passthrough"],
            _pipeline("p", ["x/y"], ["passthrough"], [{"topic": "x/z"}]),
            node=node,
            topic_prefix="gw",
        )
    )
    client.subscribe(f"gw/{node}/status")
    status = json.loads(client.collect(1)[0][1])
    assert status["state"] == "online" and status["pipelines"] == ["p"]
    assert daemon.stop(signal.SIGTERM) == 0
    assert json.loads(client.collect(1)[0][1])["state"] == "offline"


def test_crash_leaves_the_offline_will(start_daemon: StartDaemon, client: Client) -> None:
    """When the daemon dies without saying goodbye, the broker publishes its offline will."""
    node = _node()
    daemon = start_daemon(
        _config(
            ["passthrough"],
            _pipeline("p", ["x/y"], ["passthrough"], [{"topic": "x/z"}]),
            node=node,
            broker={"keepalive": 5},
        )
    )
    client.subscribe(f"edged/{node}/status")
    assert json.loads(client.collect(1)[0][1])["state"] == "online"
    daemon.stop(signal.SIGKILL)
    assert json.loads(client.collect(1, timeout=15)[0][1])["state"] == "offline"


def test_per_message_events_only_at_debug_level(
    start_daemon: StartDaemon, client: Client, topic_root: str
) -> None:
    """At info level there is no log line per message; at debug level there is one each."""
    for level, expected in (("info", 0), ("debug", 3)):
        route = f"{topic_root}/{level}"
        daemon = start_daemon(
            _config(
                ["passthrough"],
                _pipeline("p", [f"{route}/in"], ["passthrough"], [{"topic": f"{route}/out"}]),
                log={"level": level},
            )
        )
        client.subscribe(f"{topic_root}/{level}/out")
        for i in range(3):
            client.publish(f"{topic_root}/{level}/in", str(i))
        assert len(client.collect(3)) == 3
        assert daemon.stop() == 0
        events = [e for e in daemon.events() if e.get("event") == "message"]
        assert len(events) == expected
        if expected:
            assert events[0]["pipeline"] == "p" and events[0]["level"] == "debug"

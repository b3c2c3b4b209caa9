"""Budgets (docs/budgets.md): misbehaving filters are dead-lettered, quarantined and released,
other pipelines never notice, the daemon's memory and queue stay bounded, and metrics tell.

The adversarial filters are WAT sources in tests/modules/; each misbehaves only on messages
whose payload starts with "b" and forwards the rest.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import wasmtime

from edged.config import Budgets
from edged.engine import WasmtimeEngine
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES, wasm

StartDaemon = Callable[..., DaemonProcess]
Json = dict[str, Any]


MiB = 1 << 20


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every tests/modules/*.wat compiled once: module name -> path of its .wasm."""
    out = tmp_path_factory.mktemp("wasm")
    paths: dict[str, str] = {}
    for source in sorted(MODULES.glob("*.wat")):
        target = out / f"{source.stem}.wasm"
        target.write_bytes(bytes(wasmtime.wat2wasm(source.read_text())))
        paths[source.stem] = str(target)
    paths["pass"] = wasm("passthrough")
    return paths


def _node() -> str:
    return f"n{uuid.uuid4().hex[:8]}"


def _pipeline(name: str, subscribe: str, modules: list[str], output: str, **extra: object) -> Json:
    return {
        "name": name,
        "subscribe": [{"topic": subscribe, "qos": 1}],
        "filters": modules,
        "outputs": [{"topic": output, "qos": 1}],
        **extra,
    }


def _config(
    node: str,
    modules: dict[str, tuple[str, Json]],
    pipelines: list[Json],
    *,
    quarantine_after: int = 100,
    cooldown: float = 60,
    daemon: Json | None = None,
    metrics_interval: float = 0,
) -> Json:
    """A daemon config; `modules` maps a name to (wasm path, its own budgets)."""
    return {
        "node_id": node,
        "modules": {
            name: {"file": path, "budgets": budgets} if budgets else {"file": path}
            for name, (path, budgets) in modules.items()
        },
        "pipelines": pipelines,
        "violations": {"quarantine_after": quarantine_after, "window": 10, "cooldown": cooldown},
        "daemon": daemon or {},
        "metrics": {"interval": metrics_interval},
        "log": {"summary_interval": 3600},
    }


def _dead_letter_topic(node: str) -> str:
    return f"edged/{node}/deadletter"


def _by_topic(got: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = {}
    for topic, payload in got:
        grouped.setdefault(topic, []).append(payload)
    return grouped


def _now_ms() -> int:
    return int(time.time() * 1000)


def _wait_json(
    watcher: Client, topic: str, predicate: Callable[[Json], bool], timeout: float = 10.0
) -> Json:
    """The first message on `topic` (JSON) that satisfies `predicate`; others are skipped."""
    deadline = time.monotonic() + timeout
    seen: list[Json] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            got_topic, payload, _ = watcher.messages.get(timeout=left)
        except queue.Empty:
            break
        if got_topic != topic:
            continue
        body = json.loads(payload)
        if predicate(body):
            return dict(body)
        seen.append(body)
    raise AssertionError(f"no matching message on {topic} within {timeout} s; saw {seen[-3:]}")


def _summary(daemon: DaemonProcess) -> Json:
    summaries = [e for e in daemon.events() if e.get("event") == "summary"]
    assert summaries, daemon.log()
    return summaries[-1]


def _proc_kib(pid: int | str, field: str) -> int:
    """A `field:  N kB` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _drain_until_quiet(client: Client, quiet_for: float = 1.0) -> list[tuple[str, bytes]]:
    """Everything that arrives until nothing has come for `quiet_for` seconds."""
    got: list[tuple[str, bytes]] = []
    while batch := client.quiet(quiet_for):
        got.extend(batch)
    return got


# -- 1. every kind of violation is dead-lettered; the other pipeline loses nothing -------------

VIOLATIONS = [
    # (reason, module, its budgets, a text the detail must contain)
    ("trap", "trap", {}, "unreachable"),
    ("fuel", "loop", {"deadline_ms": 1000}, "fuel"),
    ("deadline", "loop", {"fuel": 10**12, "deadline_ms": 50}, "interrupt"),
    ("memory", "grow", {"memory": "1 MiB"}, "unreachable"),
    ("stack", "recurse", {}, "stack"),
    ("too_many_emits", "flood", {"max_emits": 64}, "emitted 100 messages; the budget is 64"),
    ("emit_too_large", "huge", {"max_emit_bytes": 1024}, "the budget is 1024"),
    ("bad_result", "badresult", {}, "returned 7"),
]


@pytest.mark.parametrize(
    ("reason", "module", "budgets", "detail"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS]
)
def test_violation_is_dead_lettered_and_other_pipeline_loses_nothing(
    start_daemon: StartDaemon,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
    reason: str,
    module: str,
    budgets: Json,
    detail: str,
) -> None:
    """Each offending message is dead-lettered whole; the healthy pipeline loses nothing."""
    node = _node()
    bad_in, healthy_in = f"{topic_root}/in/bad", f"{topic_root}/in/healthy"
    bad_out, healthy_out = f"{topic_root}/out/bad", f"{topic_root}/out/healthy"
    daemon = start_daemon(
        _config(
            node,
            {module: (filters[module], budgets), "pass": (filters["pass"], {})},
            [
                _pipeline("bad", bad_in, [module], bad_out),
                _pipeline("healthy", healthy_in, ["pass"], healthy_out),
            ],
        )
    )
    dead_letters = _dead_letter_topic(node)
    client.subscribe(f"{topic_root}/out/#")
    client.subscribe(dead_letters)

    before = _now_ms()
    client.publish(bad_in, "good-0")
    client.publish(bad_in, "good-1")
    bad_payloads = [b"bad-0", b"bad-1", b"bad-\xff\xfe"]  # the last one is not UTF-8
    for i, payload in enumerate(bad_payloads):
        client.publish(bad_in, payload)
        client.publish(healthy_in, f"healthy-{i}")
    got = _by_topic(client.collect(2 + 2 * len(bad_payloads), timeout=15))
    after = _now_ms()
    assert client.quiet() == []

    assert got.pop(bad_out) == [b"good-0", b"good-1"]
    assert got.pop(healthy_out) == [b"healthy-0", b"healthy-1", b"healthy-2"]
    records = [json.loads(p) for p in got.pop(dead_letters)]
    assert got == {}
    for record, payload in zip(records, bad_payloads, strict=True):
        assert isinstance(record["detail"], str) and detail in record["detail"], record
        assert isinstance(record["ts"], int) and before <= record["ts"] <= after, record
        expected: Json = {
            "node_id": node,
            "pipeline": "bad",
            "module": module,
            "reason": reason,
            "detail": record["detail"],
            "topic": bad_in,
            "ts": record["ts"],
        }
        try:
            expected["payload"] = payload.decode()
        except UnicodeDecodeError:
            expected["payload_b64"] = base64.b64encode(payload).decode()
        assert record == expected

    assert daemon.stop() == 0
    warnings = [e for e in daemon.events() if e.get("event") == "filter_failed"]
    # One warning for the burst; the two repeats within 10 s are only counted.
    assert len(warnings) == 1, warnings
    assert (warnings[0]["pipeline"], warnings[0]["module"], warnings[0]["reason"]) == (
        "bad",
        module,
        reason,
    )
    counters = _summary(daemon)["pipelines"]
    assert counters["bad"] == {"in": 5, "out": 2, "filtered": 0, "dropped": {reason: 3}}
    assert counters["healthy"] == {"in": 3, "out": 3, "filtered": 0, "dropped": {}}


# -- 2. quarantine --------------------------------------------------------------------------


@pytest.mark.parametrize("on_quarantine", ["drop", "skip"])
def test_quarantine_applies_policy_shows_in_status_and_ends_with_fresh_instance(
    start_daemon: StartDaemon,
    broker: PrivateBroker,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
    on_quarantine: str,
) -> None:
    """K violations quarantine it (status; drop or skip); after the cooldown a fresh one runs."""
    node, cooldown = _node(), 2.0
    src, out = f"{topic_root}/in/q", f"{topic_root}/out/q"
    status_topic = f"edged/{node}/status"
    watcher = Client(broker)
    try:
        watcher.subscribe(status_topic)
        daemon = start_daemon(
            _config(
                node,
                {"trap": (filters["trap"], {})},
                [_pipeline("q", src, ["trap"], out, on_quarantine=on_quarantine)],
                quarantine_after=3,
                cooldown=cooldown,
            )
        )
        online = _wait_json(watcher, status_topic, lambda s: s.get("state") == "online")
        assert online["quarantined"] == []
        dead_letters = _dead_letter_topic(node)
        client.subscribe(out)
        client.subscribe(dead_letters)

        client.publish(src, "good-0")
        for i in range(3):
            client.publish(src, f"bad-{i}")
        got = _by_topic(client.collect(4))
        assert got[out] == [b"good-0"]
        assert [json.loads(p)["payload"] for p in got[dead_letters]] == ["bad-0", "bad-1", "bad-2"]

        status = _wait_json(watcher, status_topic, lambda s: s.get("quarantined") != [])
        quarantined_at = time.monotonic()
        assert status["state"] == "online"
        assert status["quarantined"] == [
            {"pipeline": "q", "module": "trap", "index": 0, "reason": "trap"}
        ]

        # While it is out: the filter is not called, so nothing is dead-lettered.
        client.publish(src, "good-1")
        client.publish(src, "bad-3")
        if on_quarantine == "skip":
            assert client.collect(2) == [(out, b"good-1"), (out, b"bad-3")]
        assert client.quiet(0.3) == []

        released = _wait_json(watcher, status_topic, lambda s: s.get("quarantined") == [])
        assert time.monotonic() - quarantined_at >= cooldown - 0.5
        assert released["state"] == "online"

        # A fresh instance: it ran edged_init and its memory has not seen a bad message, or
        # trap.wat would drop this one.
        client.publish(src, "good-2")
        assert client.collect(1) == [(out, b"good-2")]
        client.publish(src, "bad-4")
        ((_, payload),) = client.collect(1)
        assert json.loads(payload)["payload"] == "bad-4"
        assert client.quiet(0.3) == []
    finally:
        watcher.close()

    assert daemon.stop() == 0
    counters = _summary(daemon)["pipelines"]["q"]
    if on_quarantine == "drop":
        assert counters == {
            "in": 8,
            "out": 2,
            "filtered": 0,
            "dropped": {"quarantined": 2, "trap": 4},
        }
    else:
        assert counters == {"in": 8, "out": 4, "filtered": 0, "dropped": {"trap": 4}}
    quarantines = [e for e in daemon.events() if e.get("event") == "filter_quarantined"]
    assert len(quarantines) == 1, quarantines
    assert quarantines[0]["on_quarantine"] == on_quarantine


# -- 3. memory ----------------------------------------------------------------------------------


def test_memory_hog_is_held_to_its_cap_and_daemon_rss_stays_bounded(
    start_daemon: StartDaemon,
    broker: PrivateBroker,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
) -> None:
    """A filter that grows and fills memory forever stops at its cap; the daemon's RSS stays put."""
    node = _node()
    src, out = f"{topic_root}/in/hog", f"{topic_root}/out/hog"
    # Fuel and deadline generous: only the memory cap can stop the hog. Without the cap it
    # would fill hundreds of MiB within its 1 s deadline (~1 ms per MiB).
    daemon = start_daemon(
        _config(
            node,
            {"grow": (filters["grow"], {"memory": "2 MiB", "fuel": 10**10, "deadline_ms": 1000})},
            [_pipeline("hog", src, ["grow"], out)],
            quarantine_after=3,
            cooldown=0.5,
        )
    )
    client.subscribe(_dead_letter_topic(node))
    client.subscribe(out)
    client.publish(src, "good")
    assert client.collect(1) == [(out, b"good")]
    baseline = _proc_kib(daemon.proc.pid, "VmRSS")

    # Three violations quarantine it; after the cooldown a fresh instance hogs again.
    status_topic = f"edged/{node}/status"
    watcher = Client(broker)
    try:
        watcher.subscribe(status_topic)
        for i in range(3):
            client.publish(src, f"bad-{i}")
        first = [json.loads(p) for _, p in client.collect(3)]
        _wait_json(watcher, status_topic, lambda s: s.get("quarantined") != [])
        _wait_json(watcher, status_topic, lambda s: s.get("quarantined") == [])
    finally:
        watcher.close()
    for i in range(3, 6):
        client.publish(src, f"bad-{i}")
    second = [json.loads(p) for _, p in client.collect(3)]
    assert [r["reason"] for r in first + second] == ["memory"] * 6
    assert [r["payload"] for r in first + second] == [f"bad-{i}" for i in range(6)]
    grown = _proc_kib(daemon.proc.pid, "VmRSS") - baseline

    # At most two instances' 2 MiB memories (the quarantined one and its fresh successor) plus
    # the messages and Python's own allocations: 16 MiB leaves room for those, not for a hog.
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB"
    assert daemon.stop() == 0
    counters = _summary(daemon)["pipelines"]["hog"]
    assert counters == {"in": 7, "out": 1, "filtered": 0, "dropped": {"memory": 6}}


def _run_edged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _caps_config(tmp_path: Path, filters: dict[str, str], cap: str, budget: str) -> Path:
    """Two pipelines, each with one instance of a module whose memory cap is `cap`."""
    data = _config(
        _node(),
        {"big": (filters["pass"], {"memory": cap})},
        [
            _pipeline("one", "a/#", ["big"], "out/a"),
            _pipeline("two", "b/#", ["big"], "out/b"),
        ],
        daemon={"memory_budget": budget},
    )
    data["broker"] = {"host": "127.0.0.1", "port": 1}
    data["state_dir"] = str(tmp_path / "state")
    return write_config(tmp_path / f"caps-{cap.replace(' ', '')}.yaml", data)


def test_memory_caps_over_daemon_budget_are_refused_at_start(
    tmp_path: Path, filters: dict[str, str]
) -> None:
    """Caps summing past daemon.memory_budget: check and run exit 2, naming filter and numbers."""
    over = _caps_config(tmp_path, filters, "3 MiB", "4 MiB")
    for command in ("check", "run"):
        result = _run_edged(command, "--config", str(over))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        for part in (
            "pipelines[1].filters[0]",
            "'big'",
            "daemon.memory_budget",
            "3 MiB",  # the filter's cap
            "6 MiB",  # the total it would make
            "4 MiB",  # the budget
        ):
            assert part in result.stderr, (command, part, result.stderr)
        assert "pipelines[0]" not in result.stderr, result.stderr

    exactly = _caps_config(tmp_path, filters, "2 MiB", "4 MiB")
    result = _run_edged("check", "--config", str(exactly))
    assert result.returncode == 0, result.stderr
    assert "2 pipelines, 2 filter instances" in result.stdout


# -- 4. overload: a bounded queue and exact accounting -------------------------------------------


def _overload_daemon(
    start_daemon: StartDaemon,
    filters: dict[str, str],
    topic_root: str,
    daemon: Json,
    module: str = "slow",
    output_qos: int = 1,
    input_qos: int = 0,
) -> tuple[DaemonProcess, str, str, str]:
    """Pipeline "p": a subscription at `input_qos`, one filter, outputs at `output_qos`."""
    node = _node()
    src, out = f"{topic_root}/in/p", f"{topic_root}/out/p"
    # The slow filter gets budgets it cannot break: if it is ever dead-lettered, that is wrong.
    budgets: Json = {"fuel": 10**10, "deadline_ms": 1000} if module == "slow" else {}
    config = _config(
        node,
        {module: (filters[module], budgets)},
        [_pipeline("p", src, [module], out)],
        quarantine_after=1,
        daemon=daemon,
    )
    config["pipelines"][0]["subscribe"] = [{"topic": src, "qos": input_qos}]
    config["pipelines"][0]["outputs"] = [{"topic": out, "qos": output_qos}]
    return start_daemon(config), src, out, _dead_letter_topic(node)


def _flood(client: Client, topic: str, count: int) -> None:
    """`count` QoS 0 messages m-0.. as fast as paho sends them."""
    infos = [client.paho.publish(topic, f"m-{i}", qos=0) for i in range(count)]
    infos[-1].wait_for_publish(5)


@pytest.mark.parametrize("overload", ["drop_newest", "drop_oldest"])
def test_overload_drops_are_counted_exactly(
    start_daemon: StartDaemon,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
    overload: str,
) -> None:
    """A full queue drops by its policy and every message is either processed or counted dropped."""
    count = 100
    daemon, src, out, dead_letters = _overload_daemon(
        start_daemon, filters, topic_root, {"queue_size": 5, "overload": overload}
    )
    client.subscribe(out)
    client.subscribe(dead_letters)
    _flood(client, src, count)
    got = _drain_until_quiet(client)
    assert daemon.stop() == 0

    assert {t for t, _ in got} <= {out}, "the slow but legal filter was dead-lettered"
    indexes = [int(p.removeprefix(b"m-")) for _, p in got]
    assert indexes == sorted(set(indexes)), "outputs duplicated or out of order"
    summary = _summary(daemon)
    queue_stats, counters = summary["queue"], summary["pipelines"]["p"]
    dropped = queue_stats["dropped_newest"] + queue_stats["dropped_oldest"]
    assert counters["in"] + dropped == count, summary
    assert dropped > 0, summary
    assert queue_stats["refused"] == 0, summary
    assert queue_stats["high_water"] <= 5, summary  # never more than queue_size held
    assert counters == {"in": len(got), "out": len(got), "filtered": 0, "dropped": {}}
    if overload == "drop_newest":
        assert queue_stats["dropped_oldest"] == 0
        assert indexes[0] == 0  # the first arrival always finds room
    else:
        assert queue_stats["dropped_newest"] == 0
        assert indexes[-1] == count - 1  # the last arrival is never the oldest


@pytest.mark.parametrize(
    ("module", "output_qos"),
    [
        ("slow", 0),
        ("pass", 1),
    ],
)
def test_overload_block_loses_nothing(
    start_daemon: StartDaemon,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
    module: str,
    output_qos: int,
) -> None:
    """With `block` a full queue stops reading from the broker; every message comes out in order."""
    count = 40
    daemon, src, out, dead_letters = _overload_daemon(
        start_daemon,
        filters,
        topic_root,
        {"queue_size": 5, "overload": "block"},
        module,
        output_qos,
    )
    client.subscribe(out)
    client.subscribe(dead_letters)
    _flood(client, src, count)
    got = _drain_until_quiet(client)
    assert daemon.stop() == 0
    summary = _summary(daemon)
    assert got == [(out, f"m-{i}".encode()) for i in range(count)], summary
    assert summary["queue"]["dropped_newest"] == 0
    assert summary["queue"]["dropped_oldest"] == 0
    assert summary["pipelines"]["p"] == {"in": count, "out": count, "filtered": 0, "dropped": {}}


def test_qos1_flood_under_block_loses_no_output(
    start_daemon: StartDaemon,
    broker: PrivateBroker,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
) -> None:
    """A QoS 1 flood in and out under `block`: outputs outrun the broker's acks, and the daemon
    waits for them instead of having publishes refused; every message comes out once, in order."""
    count, queue_size = 12_000, 200
    daemon, src, out, _ = _overload_daemon(
        start_daemon,
        filters,
        topic_root,
        {"queue_size": queue_size, "overload": "block"},
        "pass",
        output_qos=1,
        input_qos=1,
    )
    client.subscribe(out, qos=1)
    sender = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    sender.max_inflight_messages_set(0)  # unlimited: the flood arrives as fast as it can
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    try:
        infos = [sender.publish(src, f"m-{i}", qos=1) for i in range(count)]
        infos[-1].wait_for_publish(30)
        got = client.collect(count, timeout=60)
    finally:
        sender.loop_stop()
        sender.disconnect()
    assert daemon.stop() == 0
    summary = _summary(daemon)
    assert got == [(out, f"m-{i}".encode()) for i in range(count)]
    assert summary["pipelines"]["p"] == {"in": count, "out": count, "filtered": 0, "dropped": {}}


def test_overload_block_holds_at_most_queue_size_messages(
    start_daemon: StartDaemon, client: Client, topic_root: str, filters: dict[str, str]
) -> None:
    """With `block` the daemon never holds more than queue_size received messages."""
    count = 40
    daemon, src, out, _ = _overload_daemon(
        start_daemon, filters, topic_root, {"queue_size": 5, "overload": "block"}, "slow", 0
    )
    client.subscribe(out)
    _flood(client, src, count)
    assert len(client.collect(count)) == count
    assert daemon.stop() == 0
    queue_stats = _summary(daemon)["queue"]
    assert queue_stats["high_water"] <= 5, queue_stats


# -- 5. metrics -------------------------------------------------------------------------------


def test_metrics_report_queue_memory_and_per_filter_figures(
    start_daemon: StartDaemon,
    broker: PrivateBroker,
    client: Client,
    topic_root: str,
    filters: dict[str, str],
) -> None:
    """The retained metrics give queue, RSS, counters and per-filter calls, violations and state."""
    node = _node()
    src, out = f"{topic_root}/in/m", f"{topic_root}/out/m"
    daemon = start_daemon(
        _config(
            node,
            {"pass": (filters["pass"], {}), "trap": (filters["trap"], {})},
            [_pipeline("m", src, ["pass", "trap"], out)],
            quarantine_after=2,
            metrics_interval=0.5,
        )
    )
    client.subscribe(out)
    client.subscribe(_dead_letter_topic(node))
    for payload in ("good-0", "good-1", "bad-0", "bad-1", "good-2"):
        client.publish(src, payload)
    assert len(client.collect(4)) == 4  # two outputs, two dead letters; good-2 is quarantined
    started = _now_ms()

    watcher = Client(broker)
    try:
        watcher.subscribe(f"edged/{node}/metrics")
        metrics = _wait_json(
            watcher,
            f"edged/{node}/metrics",
            lambda m: m["pipelines"]["m"]["in"] == 5 and m["ts"] >= started,
        )
    finally:
        watcher.close()
    rss_now = _proc_kib(daemon.proc.pid, "VmRSS") * 1024

    assert metrics["node_id"] == node
    assert isinstance(metrics["ts"], int) and started <= metrics["ts"] <= _now_ms()
    assert isinstance(metrics["rss_bytes"], int) and metrics["rss_bytes"] > 0
    assert abs(metrics["rss_bytes"] - rss_now) < rss_now / 2, (metrics["rss_bytes"], rss_now)
    queue_stats = metrics["queue"]
    assert {k: queue_stats[k] for k in ("size", "depth", "dropped_oldest", "dropped_newest")} == {
        "size": 10000,
        "depth": 0,
        "dropped_oldest": 0,
        "dropped_newest": 0,
    }
    assert list(metrics["pipelines"]) == ["m"]
    pipeline = metrics["pipelines"]["m"]
    first, second = pipeline.pop("filters")
    assert pipeline == {
        "in": 5,
        "out": 2,
        "filtered": 0,
        "dropped": {"quarantined": 1, "trap": 2},
    }
    for figures in (first, second):
        assert figures["fuel_used"] > 0, figures
        latency = figures.pop("latency_us")
        assert set(latency) == {"p50", "p99"}
        assert 0 <= latency["p50"] <= latency["p99"], latency
        del figures["fuel_used"]
    assert first == {
        "module": "pass",
        "calls": 5,
        "violations": {},
        "quarantined": False,
        "quarantines": 0,
    }
    assert second == {
        "module": "trap",
        "calls": 4,  # good-2 never reached it
        "violations": {"trap": 2},
        "quarantined": True,
        "quarantines": 1,
    }


# -- 6. address space ---------------------------------------------------------------------------


def test_each_instance_reserves_little_address_space(filters: dict[str, str]) -> None:
    """64 instances grow virtual memory by far less than wasmtime's default 6 GiB apiece."""
    engine = WasmtimeEngine()
    module = engine.load("pass", Path(filters["pass"]).read_bytes())
    module.instantiate({}, lambda _level, _text: None, Budgets())  # warm up lazy allocations
    before = _proc_kib("self", "VmSize")
    instances = [module.instantiate({}, lambda _level, _text: None, Budgets()) for _ in range(64)]
    growth_kib = _proc_kib("self", "VmSize") - before
    assert len(instances) == 64
    per_instance = growth_kib * 1024 / len(instances)
    # A 39-bit (512 GiB) address space must hold at least 32 modules with a wide margin:
    # 64 MiB each would allow ~8000.
    assert per_instance < 64 * MiB, f"{per_instance / MiB:.1f} MiB of address space per instance"

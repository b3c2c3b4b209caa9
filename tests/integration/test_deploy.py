"""Deploying filter modules over MQTT (docs/deploy.md): signed pushes and every refusal, a swap
under load that loses and repeats nothing, probation, rollback and remove, the module store across
restarts, crashes and damage, and group deploys.

Unless a test says otherwise, a node runs one pipeline whose only filter is the module `filt`,
and the config's file for it is examples/filters/passthrough.wasm. Pushes replace it with
threshold.wasm (its alerts name their limit, so versions pushed with different limits are told
apart by their output), tests/modules/forward.wat (forwards like passthrough, with other bytes)
or adversarial modules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edged.deploy import manifest
from edged.deploy.manifest import MAGIC
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import MODULES, wasm

Json = dict[str, Any]


def _wat(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))


PASSTHROUGH = Path(wasm("passthrough")).read_bytes()
THRESHOLD = Path(wasm("threshold")).read_bytes()
CONVERT = Path(wasm("convert")).read_bytes()  # 10047 bytes: over an 8 KiB max_module_bytes
FORWARD = _wat("forward")
TRAP = _wat("trap")
ABI2 = _wat("abi2")

# What a node's output for the probe message `{"t":45}` says about the version serving it.
FORWARDS = "forwards"  # passthrough (the config's file) or forward.wat


def _limit(n: int) -> dict[str, str | int]:
    """Params for threshold.wasm: alert on `t` above `n`."""
    return {"field": "t", "limit": n}


def _alerts(n: int) -> str:
    return f"alerts above {n}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _rid() -> str:
    return uuid.uuid4().hex


def _without(body: Json, *keys: str) -> Json:
    return {k: v for k, v in body.items() if k not in keys}


def _retained(broker: PrivateBroker, topic: str, timeout: float = 5.0) -> Json:
    """The retained message on `topic`, read by a fresh subscriber."""
    reader = Client(broker)
    try:
        reader.subscribe(topic)
        got_topic, payload, retain = reader.messages.get(timeout=timeout)
        assert (got_topic, retain) == (topic, True)
        return dict(json.loads(payload))
    finally:
        reader.close()


class Node:
    """One edged node under test: its config, its daemon, and watchers of its topics.

    `watch` records the node's acks and modules status in arrival order (the node publishes both
    on one connection at QoS 1, so an ack's status update is the next status after it); `data`
    receives the pipeline's outputs.
    """

    def __init__(
        self,
        broker: PrivateBroker,
        directory: Path,
        prefix: str,
        *,
        key: Ed25519PrivateKey | None = None,
        groups: tuple[str, ...] = (),
        deploy: Json | None = None,
        daemon: Json | None = None,
    ) -> None:
        self.broker = broker
        self.id = f"n{uuid.uuid4().hex[:8]}"
        self.prefix = prefix
        self.dir = directory
        self.state_dir = directory / f"state-{self.id}"
        self.store = self.state_dir / "modules"
        self.key = key or Ed25519PrivateKey.generate()
        self.config: Json = {
            "node_id": self.id,
            "topic_prefix": prefix,
            "state_dir": str(self.state_dir),
            "broker": {"host": broker.host, "port": broker.port},
            "modules": {"filt": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "main",
                    "subscribe": [{"topic": f"{prefix}/in/{self.id}/#", "qos": 1}],
                    "filters": ["filt"],
                    "outputs": [{"topic": f"{prefix}/out/{self.id}/{{topic}}", "qos": 1}],
                }
            ],
            "deploy": {
                "groups": list(groups),
                "trusted_keys": [_public_b64(self.key)],
                **(deploy or {}),
            },
            "daemon": daemon or {},
            "metrics": {"interval": 0},
            "log": {"summary_interval": 3600},
        }
        self.deploy_topic = f"{prefix}/{self.id}/deploy"
        self.ack_topic = f"{prefix}/{self.id}/ack"
        self.modules_topic = f"{prefix}/{self.id}/modules"
        self.seen: list[tuple[str, Json]] = []  # ("ack" | "modules", body), in arrival order
        self._ack_cursor = 0
        self.watch = Client(broker)
        self.watch.subscribe(self.ack_topic)
        self.watch.subscribe(self.modules_topic)
        self.data = Client(broker)
        self.data.subscribe(f"{prefix}/out/{self.id}/#")
        self.daemons: list[DaemonProcess] = []
        self._starts = 0

    # -- the daemon -----------------------------------------------------------------------

    @property
    def daemon(self) -> DaemonProcess:
        return self.daemons[-1]

    def start(self, env: dict[str, str] | None = None) -> DaemonProcess:
        """Start `edged run` on this node's config (same state_dir every time), wait for online."""
        self._starts += 1
        self.started_ms = int(time.time() * 1000)
        path = write_config(self.dir / f"{self.id}-{self._starts}.yaml", self.config)
        daemon = DaemonProcess(path, f"{self.prefix}/{self.id}/status", self.broker, env=env)
        self.daemons.append(daemon)
        daemon.wait_online()
        return daemon

    def stop(self) -> None:
        assert self.daemon.stop() == 0, self.daemon.log()

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop(signal.SIGKILL if daemon.proc.poll() is None else signal.SIGTERM)
        self.watch.close()
        self.data.close()

    # -- pushing --------------------------------------------------------------------------

    def push(self, message: bytes, *, retain: bool = False, topic: str | None = None) -> None:
        self.watch.publish(topic or self.deploy_topic, message, retain=retain)

    def message(
        self,
        version: int,
        wasm_bytes: bytes,
        params: dict[str, str | int] | None = None,
        *,
        request_id: str | None = None,
        module: str = "filt",
    ) -> bytes:
        return manifest.build(
            module, version, wasm_bytes, key=self.key, params=params, request_id=request_id
        )

    def deploy(
        self, version: int, wasm_bytes: bytes, params: dict[str, str | int] | None = None
    ) -> Json:
        """Push a signed version of `filt` and return the node's ack."""
        rid = _rid()
        self.push(self.message(version, wasm_bytes, params, request_id=rid))
        return self.ack(rid)

    def control(self, action: str, request_id: str) -> Json:
        payload = json.dumps({"module": "filt", "request_id": request_id})
        self.watch.publish(f"{self.prefix}/{self.id}/{action}", payload)
        return self.ack(request_id)

    # -- what the node says ---------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        try:
            topic, payload, _ = self.watch.messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        kind = "ack" if topic == self.ack_topic else "modules"
        self.seen.append((kind, json.loads(payload)))

    def find(self, kind: str, match: Callable[[Json], bool], after: int, timeout: float) -> int:
        """Index in `seen` of the first `kind` message at or after `after` that matches."""
        deadline = time.monotonic() + timeout
        index = after
        while True:
            while index < len(self.seen):
                if self.seen[index][0] == kind and match(self.seen[index][1]):
                    return index
                index += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no matching {kind} within {timeout} s; seen {self.seen[after:]}\n"
                    + (self.daemon.log()[-4000:] if self.daemons else "")
                )
            self._pump(left)

    def mark(self) -> int:
        """A position in `seen` after everything that has arrived so far."""
        while not self.watch.messages.empty():
            self._pump(0)
        return len(self.seen)

    def ack(self, request_id: str | None, timeout: float = 5.0) -> Json:
        """The next ack (after the last one returned) carrying `request_id`."""
        index = self.find("ack", lambda a: a["request_id"] == request_id, self._ack_cursor, timeout)
        self._ack_cursor = index + 1
        return self.seen[index][1]

    def status(self, after: int | None = None, timeout: float = 5.0) -> Json:
        """The first modules status published after position `after` (default: the last ack)."""
        start = self._ack_cursor if after is None else after
        return self.seen[self.find("modules", lambda _: True, start, timeout)][1]

    def status_since_start(self, timeout: float = 5.0) -> Json:
        """The first modules status the last-started daemon published (older ones are skipped)."""
        since = self.started_ms
        return self.seen[self.find("modules", lambda s: s["ts"] >= since, 0, timeout)][1]

    def retained_status(self) -> Json:
        return _retained(self.broker, self.modules_topic)

    def serving(self, timeout: float = 5.0) -> str:
        """Which code serves `filt` now, told by its output for one probe message `{"t":45}`."""
        source = f"{self.prefix}/in/{self.id}/p{uuid.uuid4().hex[:8]}"
        payload = b'{"t":45}'
        self.data.publish(source, payload)
        [(topic, body)] = self.data.collect(1, timeout)
        out = f"{self.prefix}/out/{self.id}/"
        if (topic, body) == (out + source, payload):
            return FORWARDS
        if topic == out + "alert":
            alert = json.loads(body)
            expected = {"topic": source, "field": "t", "value": 45, "limit": alert.get("limit")}
            if alert == expected and body == json.dumps(expected, separators=(",", ":")).encode():
                return _alerts(alert["limit"])
        raise AssertionError(f"unexpected output for the probe on {source}: {topic} {body!r}")

    def active_json(self) -> Json | None:
        """The store's active.json, parsed (it must be valid JSON), or None when absent.

        Activation times are checked to be recent and then left out, so the rest compares exactly.
        """
        path = self.store / "active.json"
        if not path.exists():
            return None
        table = dict(json.loads(path.read_text()))
        for entry in table.values():
            for version in (entry.get("current"), entry.get("previous")):
                if version and version.get("activated_at") is not None:
                    assert abs(time.time() - version.pop("activated_at")) < 600
                elif version:
                    version.pop("activated_at", None)
        return table

    def pushed_status(
        self, version: int, digest: str, previous: Json | None, probation: bool
    ) -> Json:
        return {
            "node_id": self.id,
            "groups": self.config["deploy"]["groups"],
            "modules": {
                "filt": {
                    "version": version,
                    "digest": digest,
                    "source": "pushed",
                    "previous": previous,
                    "probation": probation,
                }
            },
        }

    def config_status(self) -> Json:
        return {
            "node_id": self.id,
            "groups": self.config["deploy"]["groups"],
            "modules": {"filt": {"version": 0, "source": "config", "digest": _sha(PASSTHROUGH)}},
        }


NodeFactory = Callable[..., Node]


@pytest.fixture
def make_node(broker: PrivateBroker, tmp_path: Path, topic_root: str) -> Iterator[NodeFactory]:
    """Make a Node (not started) under this test's topic root; all are stopped at the end."""
    made: list[Node] = []

    def make(**options: Any) -> Node:
        node = Node(broker, tmp_path, topic_root, **options)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


def _activated(node: Node, version: int, wasm_bytes: bytes) -> Json:
    return {
        "node_id": node.id,
        "action": "deploy",
        "module": "filt",
        "result": "activated",
        "reason": None,
        "detail": None,
        "version": version,
        "digest": _sha(wasm_bytes),
    }


# -- activation ---------------------------------------------------------------------------------


def test_signed_push_activates_the_new_version(make_node: NodeFactory) -> None:
    """A signed push is acked `activated` within a second and its code filters what follows."""
    node = make_node()
    node.start()
    assert node.serving() == FORWARDS
    rid = _rid()
    message = node.message(2, THRESHOLD, _limit(30), request_id=rid)
    sent = time.monotonic()
    node.push(message)
    ack = node.ack(rid, timeout=5)
    took = time.monotonic() - sent
    assert _without(ack, "ts") == {**_activated(node, 2, THRESHOLD), "request_id": rid}
    assert took < 1.0, f"ack after {took:.3f} s"
    status = node.status()
    assert _without(status, "ts") == node.pushed_status(2, _sha(THRESHOLD), None, True)
    assert _without(node.retained_status(), "ts") == _without(status, "ts")
    late = Client(node.broker)  # acks are not retained
    try:
        late.subscribe(node.ack_topic)
        assert late.quiet(0.3) == []
    finally:
        late.close()

    # New code: a reading above 30 becomes an alert, one below is dropped.
    assert node.serving() == _alerts(30)
    node.data.publish(f"{node.prefix}/in/{node.id}/cold", b'{"t":10}')
    assert node.data.quiet(0.5) == []
    assert node.active_json() == {
        "filt": {
            "current": {"version": 2, "digest": _sha(THRESHOLD), "params": _limit(30)},
            "previous": None,
        }
    }
    assert (node.store / f"{_sha(THRESHOLD)}.wasm").read_bytes() == THRESHOLD


def test_swap_under_load_loses_and_repeats_nothing(
    make_node: NodeFactory, broker: PrivateBroker, client: Client
) -> None:
    """A push amid a 10k msg/s stream: every message comes out exactly once, in order."""
    node = make_node(daemon={"queue_size": 50_000})
    node.start()
    counter = Client(broker)
    try:
        counter.subscribe(f"{node.prefix}/out/{node.id}/#")
        counter.subscribe(node.ack_topic)
        source = f"{node.prefix}/in/{node.id}/stream"
        out = f"{node.prefix}/out/{node.id}/{source}"
        total, rate, push_at = 10_000, 10_000, 3_000
        rid = _rid()
        deploy = node.message(2, FORWARD, request_id=rid)
        sent = [b"seq=%05d" % i for i in range(total)]

        began = time.monotonic()
        for i, payload in enumerate(sent):
            if i == push_at:
                client.paho.publish(node.deploy_topic, deploy, qos=1)
            client.paho.publish(source, payload, qos=0)
            if i % 100 == 99 and (ahead := began + (i + 1) / rate - time.monotonic()) > 0:
                time.sleep(ahead)
        publish_s = time.monotonic() - began

        outputs: list[bytes] = []
        acks: list[tuple[int, Json]] = []  # (outputs received before the ack, ack)
        deadline = time.monotonic() + 15
        while len(outputs) < total or not acks:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(outputs)} of {total} outputs, acks {acks}")
            try:
                topic, payload, _ = counter.messages.get(timeout=left)
            except queue.Empty:
                continue
            if topic == node.ack_topic:
                acks.append((len(outputs), json.loads(payload)))
            else:
                assert topic == out
                outputs.append(payload)
        extra = counter.quiet(0.5)
    finally:
        counter.close()

    assert publish_s < 2.0, f"published {total} in {publish_s:.2f} s"
    assert extra == []
    assert len(outputs) == total
    assert outputs == sent  # each exactly once, none missing, none repeated, in order
    [(position, ack)] = acks
    assert _without(ack, "ts") == {**_activated(node, 2, FORWARD), "request_id": rid}
    # The ack went out between two messages of the stream: outputs before it came from the old
    # code, those after it from the new.
    assert 0 < position < total, position
    status = node.retained_status()
    assert status["modules"]["filt"]["version"] == 2
    assert status["modules"]["filt"]["digest"] == _sha(FORWARD)


def test_same_bytes_and_version_again_is_already_active(make_node: NodeFactory) -> None:
    """Pushing the very same bytes and version again is acked `already_active`; nothing changes."""
    node = make_node()
    node.start()
    first = node.deploy(2, THRESHOLD, _limit(30))
    assert first["result"] == "activated"
    status = node.status()
    store_before = (node.store / "active.json").read_bytes()
    files_before = sorted(p.name for p in node.store.iterdir())

    rid = _rid()
    node.push(node.message(2, THRESHOLD, _limit(30), request_id=rid))
    ack = node.ack(rid)
    assert _without(ack, "ts") == {
        **_activated(node, 2, THRESHOLD),
        "request_id": rid,
        "result": "already_active",
    }
    after_ack = node.mark()
    assert node.watch.quiet(0.5) == []  # no new status, no second ack
    assert node.mark() == after_ack
    assert (node.store / "active.json").read_bytes() == store_before
    assert sorted(p.name for p in node.store.iterdir()) == files_before
    assert node.retained_status() == status
    assert node.serving() == _alerts(30)


def _slow_to_compile() -> bytes:
    """A valid filter (it forwards) of about 940 KiB of straight-line code: slow to compile."""
    body = "(local.get 0)" + " (i32.const 7) (i32.mul) (i32.const 3) (i32.xor)" * 20_000
    funcs = "\n".join(f"(func $f{j} (param i32) (result i32) {body})" for j in range(8))
    wat = f"""(module
      (memory (export "memory") 1)
      (data (i32.const 0) "\\40\\00\\00\\00\\c0\\ef\\00\\00\\00\\f0\\00\\00\\00\\10\\00\\00")
      (func (export "edged_abi_version") (result i32) (i32.const 1))
      (func (export "edged_buffers") (result i32) (i32.const 0))
      {funcs}
      (func (export "edged_on_message") (param i32 i32) (result i32) (i32.const 1)))"""
    return bytes(wasmtime.wat2wasm(wat))


def test_messages_keep_flowing_while_a_push_compiles(make_node: NodeFactory) -> None:
    """While a big module compiles, messages keep going through the old version without delay."""
    node = make_node()
    node.start()
    big = _slow_to_compile()
    assert len(big) < 1024 * 1024  # under the default max_module_bytes
    rid = _rid()
    node.push(node.message(2, big, request_id=rid))
    pushed = node.mark()
    latencies: list[float] = []
    while not any(k == "ack" and a["request_id"] == rid for k, a in node.seen[pushed:]):
        sent = time.monotonic()
        assert node.serving() == FORWARDS
        latencies.append(time.monotonic() - sent)
        node.mark()
        assert len(latencies) < 500, "no ack"
    ack = node.ack(rid)
    assert _without(ack, "ts") == {**_activated(node, 2, big), "request_id": rid}
    [activated] = [e for e in node.daemon.events() if e.get("event") == "module_activated"]
    compile_s = activated["compile_s"]
    # Several messages were answered during the compile, none of them held up by it.
    assert len(latencies) >= 3, (latencies, compile_s)
    assert max(latencies) < min(0.15, compile_s / 2), (latencies, compile_s)


def test_pushes_arriving_during_a_compile_are_handled_in_order(make_node: NodeFactory) -> None:
    """A push that arrives while another compiles waits its turn; both are acked in order."""
    node = make_node()
    node.start()
    big = _slow_to_compile()
    first, second = _rid(), _rid()
    node.push(node.message(2, big, request_id=first))
    node.push(node.message(3, THRESHOLD, _limit(30), request_id=second))
    ack_first = node.ack(first)
    ack_second = node.ack(second)  # searched only after the first: arrival order
    assert _without(ack_first, "ts") == {**_activated(node, 2, big), "request_id": first}
    assert _without(ack_second, "ts") == {**_activated(node, 3, THRESHOLD), "request_id": second}
    assert node.serving() == _alerts(30)
    assert _without(node.retained_status(), "ts") == node.pushed_status(
        3, _sha(THRESHOLD), {"version": 2, "digest": _sha(big)}, True
    )


def test_unsigned_push_when_allowed_is_activated_and_warned_about(make_node: NodeFactory) -> None:
    """With allow_unsigned an unsigned push activates; every start and every such push warns."""
    node = make_node(deploy={"allow_unsigned": True})
    first = node.start()
    rid = _rid()
    node.push(manifest.build("filt", 2, THRESHOLD, key=None, params=_limit(30), request_id=rid))
    assert _without(node.ack(rid), "ts") == {
        **_activated(node, 2, THRESHOLD),
        "request_id": rid,
    }
    assert node.serving() == _alerts(30)
    node.stop()
    second = node.start()
    assert node.serving() == _alerts(30)

    def warnings(daemon: DaemonProcess) -> list[str]:
        return [
            str(e["event"])
            for e in daemon.events()
            if e.get("level") == "warning" and "unsigned" in str(e.get("event"))
        ]

    assert warnings(first) == ["unsigned_deploys_allowed", "unsigned_module_activated"]
    assert warnings(second) == ["unsigned_deploys_allowed"]


def _pipelines_node(make_node: NodeFactory, *, explicit_same: bool) -> Node:
    """A node whose module `filt` is threshold (limit 30) in pipelines `a` (module params) and
    `b` (its own limit 50), and with `explicit_same`, `c` (its own limit 30, the module's value).
    """
    node = make_node()
    p, n = node.prefix, node.id
    node.config["modules"] = {"filt": {"file": wasm("threshold"), "params": _limit(30)}}
    own = {"a": None, "b": 50, **({"c": 30} if explicit_same else {})}

    def filt(limit: int | None) -> str | Json:
        return "filt" if limit is None else {"module": "filt", "params": {"limit": limit}}

    node.config["pipelines"] = [
        {
            "name": name,
            "subscribe": [{"topic": f"{p}/{name}/{n}/#", "qos": 1}],
            "filters": [
                "filt" if limit is None else {"module": "filt", "params": {"limit": limit}}
            ],
            "outputs": [{"topic": f"{p}/out/{n}/{name}/{{topic}}", "qos": 1}],
        }
        for name, limit in own.items()
    ]
    return node


def _alert_from(node: Node, pipeline: str) -> tuple[str, int]:
    """(alert topic, limit) of the alert pipeline `pipeline` makes of a reading of 99."""
    source = f"{node.prefix}/{pipeline}/{node.id}/p{uuid.uuid4().hex[:8]}"
    node.data.publish(source, b'{"t":99}')
    [(topic, body)] = node.data.collect(1)
    prefix = f"{node.prefix}/out/{node.id}/{pipeline}/"
    assert topic.startswith(prefix), topic
    alert = json.loads(body)
    assert (alert["topic"], alert["field"], alert["value"]) == (source, "t", 99), alert
    return topic.removeprefix(prefix), alert["limit"]


def test_push_replaces_the_module_in_every_pipeline_under_pipeline_params(
    make_node: NodeFactory,
) -> None:
    """Pushed params replace the module's in every pipeline; a pipeline's own params still win."""
    node = _pipelines_node(make_node, explicit_same=False)
    node.start()
    assert [_alert_from(node, p) for p in "ab"] == [("alert", 30), ("alert", 50)]
    pushed = {"field": "t", "limit": 40, "topic": "pushed"}
    assert node.deploy(2, THRESHOLD, pushed)["result"] == "activated"
    assert [_alert_from(node, p) for p in "ab"] == [("pushed", 40), ("pushed", 50)]


def test_pipeline_param_equal_to_the_module_param_still_wins_over_a_push(
    make_node: NodeFactory,
) -> None:
    """A pipeline's own param wins over pushed params even when it equals the module's value."""
    node = _pipelines_node(make_node, explicit_same=True)
    node.start()
    assert _alert_from(node, "c") == ("alert", 30)
    assert node.deploy(2, THRESHOLD, {"field": "t", "limit": 40})["result"] == "activated"
    assert _alert_from(node, "c") == ("alert", 30)


# -- refusals -----------------------------------------------------------------------------------

REFUSALS = [
    "malformed",
    "too_large",
    "unknown_target",
    "unsigned",
    "unknown_key",
    "bad_signature",
    "digest_mismatch",
    "not_newer_same",
    "not_newer_lower",
    "wrong_abi",
    "wrong_abi_module",
    "invalid_module_not_wasm",
    "invalid_module_init",
]


def _tampered(message: bytes, **changes: object) -> bytes:
    """`message` with manifest fields changed after signing, the signature left as it was."""
    head, _, wasm_bytes = message[len(MAGIC) :].partition(b"\n")
    fields = {**json.loads(head), **changes}
    return MAGIC + json.dumps(fields, separators=(",", ":")).encode() + b"\n" + wasm_bytes


def _refused(case: str, node: Node, rid: str) -> tuple[bytes, Json]:
    """A deploy message the node must refuse (active: v5), and the ack fields it must send."""
    expect: Json = {"module": "filt", "request_id": rid, "version": 6, "reason": case}
    other = Ed25519PrivateKey.generate()
    if case == "malformed":
        return b"hello, this is no deploy message", {
            "module": None,
            "request_id": None,
            "version": None,
            "reason": "malformed",
        }
    if case == "too_large":
        return node.message(6, CONVERT, request_id=rid), expect
    if case == "unknown_target":
        message = node.message(6, THRESHOLD, _limit(30), request_id=rid, module="nosuch")
        return message, {**expect, "module": "nosuch"}
    if case == "unsigned":
        return manifest.build("filt", 6, THRESHOLD, key=None, request_id=rid), expect
    if case == "unknown_key":
        return manifest.build("filt", 6, THRESHOLD, key=other, request_id=rid), expect
    if case == "bad_signature":
        signed = node.message(6, THRESHOLD, _limit(30), request_id=rid)
        return _tampered(signed, version=7), {**expect, "version": 7}
    if case == "digest_mismatch":
        return node.message(6, THRESHOLD, _limit(30), request_id=rid) + b"\0", expect
    if case == "not_newer_same":
        message = node.message(5, FORWARD, request_id=rid)
        return message, {**expect, "version": 5, "reason": "not_newer"}
    if case == "not_newer_lower":
        message = node.message(4, THRESHOLD, _limit(30), request_id=rid)
        return message, {**expect, "version": 4, "reason": "not_newer"}
    if case == "wrong_abi":
        message = manifest.build("filt", 6, FORWARD, key=node.key, request_id=rid, abi=2)
        return message, expect
    if case == "wrong_abi_module":
        return node.message(6, ABI2, request_id=rid), {**expect, "reason": "wrong_abi"}
    if case == "invalid_module_not_wasm":
        message = node.message(6, b"this is not WebAssembly", request_id=rid)
        return message, {**expect, "reason": "invalid_module"}
    if case == "invalid_module_init":
        # threshold without `limit`: the push gives no params and the config gives none.
        return node.message(6, THRESHOLD, request_id=rid), {**expect, "reason": "invalid_module"}
    raise AssertionError(case)


@pytest.mark.parametrize("case", REFUSALS)
def test_refused_push_leaves_the_old_version_serving(make_node: NodeFactory, case: str) -> None:
    """Each refusal is acked with its documented reason and the old version goes on serving."""
    node = make_node(deploy={"max_module_bytes": "8 KiB"})
    node.start()
    assert node.deploy(5, THRESHOLD, _limit(30))["result"] == "activated"
    status = node.status()
    store = node.active_json()

    rid = _rid()
    message, expect = _refused(case, node, rid)
    node.push(message)
    ack = node.ack(expect["request_id"])
    assert isinstance(ack["detail"], str) and ack["detail"], ack
    assert _without(ack, "ts", "detail") == {
        "node_id": node.id,
        "action": "deploy",
        "result": "refused",
        **expect,
    }
    assert node.serving() == _alerts(30)
    assert node.retained_status() == status
    assert node.active_json() == store
    assert not [e for e in node.daemon.events() if e.get("event") == "internal_error"]


def test_refusal_reason_is_the_first_failed_check(make_node: NodeFactory) -> None:
    """A push failing several checks is refused for the first one in the documented order."""
    node = make_node(deploy={"max_module_bytes": "8 KiB"})
    node.start()
    assert node.deploy(5, THRESHOLD, _limit(30))["result"] == "activated"
    other = Ed25519PrivateKey.generate()
    garbage = b"this is not WebAssembly"
    cases: list[tuple[str, Callable[[str], bytes]]] = [
        # too_large before unknown_target
        ("too_large", lambda r: node.message(6, CONVERT, request_id=r, module="nosuch")),
        # unknown_target before unsigned
        (
            "unknown_target",
            lambda r: manifest.build("nosuch", 6, THRESHOLD, key=None, request_id=r),
        ),
        # unsigned before digest_mismatch
        ("unsigned", lambda r: manifest.build("filt", 6, FORWARD, key=None, request_id=r) + b"x"),
        # unknown_key before bad_signature
        (
            "unknown_key",
            lambda r: _tampered(
                manifest.build("filt", 6, FORWARD, key=other, request_id=r), version=8
            ),
        ),
        # bad_signature before digest_mismatch
        (
            "bad_signature",
            lambda r: _tampered(node.message(6, FORWARD, request_id=r), version=7) + b"x",
        ),
        # digest_mismatch before not_newer
        ("digest_mismatch", lambda r: node.message(4, FORWARD, request_id=r) + b"x"),
        # not_newer before invalid_module
        ("not_newer", lambda r: node.message(4, garbage, request_id=r)),
    ]
    got = {}
    for reason, make in cases:
        rid = _rid()
        node.push(make(rid))
        got[reason] = node.ack(rid)["reason"]
    assert got == {reason: reason for reason, _ in cases}
    assert node.serving() == _alerts(30)


def test_not_newer_is_checked_before_the_abi(make_node: NodeFactory) -> None:
    """A replayed old deploy with abi 2 is refused `not_newer`, the earlier check in the table."""
    node = make_node()
    node.start()
    assert node.deploy(5, THRESHOLD, _limit(30))["result"] == "activated"
    rid = _rid()
    node.push(manifest.build("filt", 4, FORWARD, key=node.key, request_id=rid, abi=2))
    assert node.ack(rid)["reason"] == "not_newer"


def test_malformed_manifest_ack_echoes_the_request_id(make_node: NodeFactory) -> None:
    """A manifest with a wrongly typed field is refused `malformed` with its request_id echoed."""
    node = make_node()
    node.start()
    rid = _rid()
    node.push(_tampered(node.message(2, THRESHOLD, _limit(30), request_id=rid), version="2"))
    malformed = node.find("ack", lambda a: a["reason"] == "malformed", 0, 5.0)
    assert node.seen[malformed][1]["request_id"] == rid


# -- restarts, retained replays, probation, rollback and remove ---------------------------------


@pytest.mark.parametrize("session_expiry", [86400, 0])
def test_retained_old_deploy_is_refused_after_restart(
    make_node: NodeFactory, session_expiry: int
) -> None:
    """After a restart v3 stays active, whatever the retained v2 on the deploy topic: with a
    persistent session the broker does not send it again (the subscription is not new); with
    a clean session it is replayed on subscribing, and refused."""
    node = make_node()
    node.config["broker"]["session_expiry"] = session_expiry
    node.start()
    rid2 = _rid()
    node.push(node.message(2, THRESHOLD, _limit(30), request_id=rid2), retain=True)
    assert node.ack(rid2)["result"] == "activated"
    assert node.deploy(3, THRESHOLD, _limit(40))["result"] == "activated"
    assert node.serving() == _alerts(40)
    node.stop()

    node.start()
    if session_expiry:
        with pytest.raises(AssertionError, match="no matching ack"):
            node.ack(rid2, timeout=2.0)
    else:
        ack = node.ack(rid2)
        assert isinstance(ack["detail"], str)
        assert _without(ack, "ts", "detail") == {
            "node_id": node.id,
            "request_id": rid2,
            "action": "deploy",
            "module": "filt",
            "result": "refused",
            "reason": "not_newer",
            "version": 2,
        }
    status = node.status_since_start()
    # Restarted well inside its probation period, v3 is still on probation.
    assert _without(status, "ts") == node.pushed_status(
        3, _sha(THRESHOLD), {"version": 2, "digest": _sha(THRESHOLD)}, True
    )
    assert node.serving() == _alerts(40)
    assert node.active_json() == {
        "filt": {
            "current": {"version": 3, "digest": _sha(THRESHOLD), "params": _limit(40)},
            "previous": {"version": 2, "digest": _sha(THRESHOLD), "params": _limit(30)},
        }
    }
    node.stop()
    node.push(b"", retain=True)  # clear the retained deploy


def test_restart_restores_the_pushed_version_from_the_store(make_node: NodeFactory) -> None:
    """After a restart the pushed version serves the very first message, with nobody re-pushing."""
    node = make_node()
    node.start()
    assert node.deploy(2, THRESHOLD, _limit(30))["result"] == "activated"
    node.stop()

    restart = node.mark()
    daemon = node.start()
    assert node.serving() == _alerts(30)
    status = node.status_since_start()
    assert _without(status, "ts") == node.pushed_status(2, _sha(THRESHOLD), None, False)
    assert [e for e in daemon.events() if e.get("event") == "deploy_ack"] == []
    assert [s for s in node.seen[restart:] if s[0] == "ack"] == []


def test_violation_during_probation_rolls_back(make_node: NodeFactory) -> None:
    """A new version that traps during probation is rolled back by itself to the previous one."""
    node = make_node()
    node.start()
    assert node.deploy(2, THRESHOLD, _limit(30))["result"] == "activated"
    assert node.deploy(3, TRAP)["result"] == "activated"
    assert node.serving() == FORWARDS  # trap.wat forwards good messages
    assert node.status()["modules"]["filt"]["probation"] is True

    node.data.publish(f"{node.prefix}/in/{node.id}/bad", b"bad reading")
    ack = node.ack(None)
    assert _without(ack, "ts") == {
        "node_id": node.id,
        "request_id": None,
        "action": "rollback",
        "module": "filt",
        "result": "rolled_back",
        "reason": "probation: trap",
        "detail": None,
        "version": 2,
        "digest": _sha(THRESHOLD),
        "failed_version": 3,
    }
    status = node.status()
    assert _without(status, "ts") == node.pushed_status(2, _sha(THRESHOLD), None, False)
    assert node.serving() == _alerts(30)
    assert node.data.quiet(0.3) == []  # the bad reading was dropped, nothing else came out
    events = [e for e in node.daemon.events() if e.get("event") == "module_rolled_back"]
    assert [(e["reason"], e["to_version"], e["failed_version"]) for e in events] == [
        ("probation: trap", 2, 3)
    ]


def test_probation_survives_a_restart(make_node: NodeFactory) -> None:
    """A version restarted inside its probation window is still rolled back on a violation."""
    node = make_node()
    node.start()
    assert node.deploy(2, THRESHOLD, _limit(30))["result"] == "activated"
    assert node.deploy(3, TRAP)["result"] == "activated"
    node.stop()
    node.start()
    node.data.publish(f"{node.prefix}/in/{node.id}/bad", b"bad reading")
    ack = node.ack(None, timeout=3)
    assert (ack["result"], ack["version"], ack["failed_version"]) == ("rolled_back", 2, 3)


def test_manual_rollback_then_remove(make_node: NodeFactory) -> None:
    """Rollback returns to the previous pushed version; remove returns to the config's file."""
    node = make_node()
    node.start()
    assert node.deploy(2, THRESHOLD, _limit(30))["result"] == "activated"
    assert node.deploy(3, THRESHOLD, _limit(40))["result"] == "activated"
    assert node.serving() == _alerts(40)

    rid = _rid()
    ack = node.control("rollback", rid)
    assert _without(ack, "ts") == {
        "node_id": node.id,
        "request_id": rid,
        "action": "rollback",
        "module": "filt",
        "result": "rolled_back",
        "reason": "requested",
        "detail": None,
        "version": 2,
        "digest": _sha(THRESHOLD),
        "failed_version": None,
    }
    assert _without(node.status(), "ts") == node.pushed_status(2, _sha(THRESHOLD), None, False)
    assert node.serving() == _alerts(30)

    rid = _rid()
    ack = node.control("remove", rid)
    assert _without(ack, "ts") == {
        "node_id": node.id,
        "request_id": rid,
        "action": "remove",
        "module": "filt",
        "result": "removed",
        "reason": None,
        "detail": None,
        "version": 0,
    }
    assert _without(node.status(), "ts") == node.config_status()
    assert node.serving() == FORWARDS
    assert node.active_json() == {}


def test_new_version_ends_a_quarantine_after_probation(make_node: NodeFactory) -> None:
    """Past probation a violation quarantines instead of rolling back; a new version ends it."""
    node = make_node(deploy={"probation_messages": 0, "probation_seconds": 0})
    node.config["violations"] = {"quarantine_after": 1, "window": 10, "cooldown": 600}
    node.start()
    assert node.deploy(2, TRAP)["result"] == "activated"
    assert node.status()["modules"]["filt"]["probation"] is True
    passed = node.find("modules", lambda s: s["modules"]["filt"].get("probation") is False, 0, 5.0)
    assert _without(node.seen[passed][1], "ts") == node.pushed_status(2, _sha(TRAP), None, False)

    node.data.publish(f"{node.prefix}/in/{node.id}/bad", b"bad reading")
    probe = f"{node.prefix}/in/{node.id}/quarantined"
    node.data.publish(probe, b'{"t":45}')
    assert node.data.quiet(0.5) == []  # quarantined: dropped
    assert not [a for k, a in node.seen if k == "ack" and a["result"] == "rolled_back"]

    assert node.deploy(3, THRESHOLD, _limit(30))["result"] == "activated"
    assert node.serving() == _alerts(30)
    node.mark()
    assert [a["result"] for k, a in node.seen if k == "ack"] == ["activated", "activated"]


# -- the module store: crashes and damage -------------------------------------------------------


@pytest.mark.parametrize("stage", ["after_temp_write", "after_rename"])
@pytest.mark.parametrize("push", ["new_bytes", "known_bytes"])
def test_kill_during_store_write_leaves_old_or_new_state(
    make_node: NodeFactory, stage: str, push: str
) -> None:
    """kill -9 in the middle of a store write: the store is never half-written, and the push is
    not lost: it was never acknowledged, so the broker delivers it again after the restart and
    it completes then (activated, or already active when the kill came after the rename).

    new_bytes: the kill hits the write of the module's bytes; known_bytes (bytes already stored,
    new params): it hits the write of active.json.
    """
    node = make_node()
    node.start()
    assert node.deploy(1, THRESHOLD, _limit(30))["result"] == "activated"
    node.stop()
    new_bytes, new_params, new = (
        (FORWARD, None, FORWARDS) if push == "new_bytes" else (THRESHOLD, _limit(40), _alerts(40))
    )

    faulty = node.start(env={"EDGED_FAULT": f"store:{stage}"})
    rid = _rid()
    node.push(node.message(2, new_bytes, new_params, request_id=rid))
    assert faulty.proc.wait(10) == -signal.SIGKILL, faulty.log()
    faulty.stop()

    active = node.active_json()  # parses: never half-written
    assert active is not None
    assert active["filt"]["current"]["version"] in (1, 2)
    if stage == "after_temp_write":
        assert active["filt"]["current"]["version"] == 1  # nothing was renamed into place

    daemon = node.start()
    ack = node.ack(rid)
    assert ack["result"] in ("activated", "already_active"), ack
    assert node.serving() == new
    status = node.status() if ack["result"] == "activated" else node.status_since_start()
    assert status["modules"]["filt"]["version"] == 2
    assert status["modules"]["filt"]["digest"] == _sha(new_bytes)
    assert node.deploy(2, new_bytes, new_params)["result"] == "already_active"
    assert daemon.proc.poll() is None
    assert node.active_json() == {
        "filt": {
            "current": {"version": 2, "digest": _sha(new_bytes), "params": new_params},
            "previous": {"version": 1, "digest": _sha(THRESHOLD), "params": _limit(30)},
        }
    }


@pytest.mark.parametrize("previous", [True, False], ids=["previous_version", "config_file"])
def test_corrupted_store_file_is_moved_aside(make_node: NodeFactory, previous: bool) -> None:
    """A stored module whose bytes no longer match is moved aside and the node falls back."""
    node = make_node()
    node.start()
    if previous:
        assert node.deploy(1, FORWARD)["result"] == "activated"
    assert node.deploy(2, THRESHOLD, _limit(30))["result"] == "activated"
    node.stop()

    digest = _sha(THRESHOLD)
    stored = node.store / f"{digest}.wasm"
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))

    daemon = node.start()
    assert node.serving() == FORWARDS
    assert not stored.exists()
    assert (node.store / f"{digest}.corrupt").read_bytes() == bytes(damaged)
    corrupt = [e for e in daemon.events() if e.get("event") == "module_store_corrupt"]
    assert [e["digest"] for e in corrupt] == [digest]
    status = _without(node.status_since_start(), "ts")
    if previous:
        assert status == node.pushed_status(1, _sha(FORWARD), None, False)
    else:
        assert status == node.config_status()
    assert daemon.proc.poll() is None


# -- groups -------------------------------------------------------------------------------------


def test_group_deploy_reaches_every_node_of_the_group(
    make_node: NodeFactory, topic_root: str, client: Client
) -> None:
    """One deploy on the group topic is activated by each of the group's three nodes."""
    key = Ed25519PrivateKey.generate()
    group = f"g{uuid.uuid4().hex[:6]}"
    nodes = [make_node(key=key, groups=(group,)) for _ in range(3)]
    for node in nodes:
        node.start()
    rid = _rid()
    message = manifest.build("filt", 2, THRESHOLD, key=key, params=_limit(30), request_id=rid)
    client.publish(f"{topic_root}/groups/{group}/deploy", message)
    for node in nodes:
        ack = node.ack(rid)
        assert _without(ack, "ts") == {**_activated(node, 2, THRESHOLD), "request_id": rid}
        assert node.status()["groups"] == [group]
    assert [node.serving() for node in nodes] == [_alerts(30)] * 3

    rid = _rid()
    remove = json.dumps({"module": "filt", "request_id": rid})
    client.publish(f"{topic_root}/groups/{group}/remove", remove)
    for node in nodes:
        assert node.ack(rid)["result"] == "removed"
    assert [node.serving() for node in nodes] == [FORWARDS] * 3
    assert len({node.state_dir for node in nodes}) == 3


# -- filter state -------------------------------------------------------------------------------
# tests/modules/seqstate.wat counts the inputs it applied and says the count with each output
# (state format 1). Pushed variants: the same format with other bytes (a new build that keeps
# the format), and format 2 (it saves format 2 and refuses format 1, as a version that changed
# its layout without a migration would). The rule they check: docs/state.md.

SEQSTATE_SOURCE = (MODULES / "seqstate.wat").read_text()
SEQSTATE = bytes(wasmtime.wat2wasm(SEQSTATE_SOURCE))
# the same state format, other code: one more (unused) function
SAME_FORMAT = bytes(
    wasmtime.wat2wasm(SEQSTATE_SOURCE.rstrip().removesuffix(")") + " (func $unused))")
)
# format 2: saved as 2, and only 2 is read back
_DESCRIPTOR = '"\\20\\00\\00\\00\\0c\\00\\00\\00\\0{}\\00\\00\\00"'
_CHECK = "(i32.ne (local.get $format) (i32.const {}))"
FORMAT_2 = bytes(
    wasmtime.wat2wasm(
        SEQSTATE_SOURCE.replace(_DESCRIPTOR.format(1), _DESCRIPTOR.format(2)).replace(
            _CHECK.format(1), _CHECK.format(2)
        )
    )
)


def _stateful_node(make_node: NodeFactory, tmp_path: Path) -> Node:
    node = make_node()
    first = tmp_path / "seqstate.wasm"
    first.write_bytes(SEQSTATE)
    node.config["modules"]["filt"]["file"] = str(first)
    return node


def _send(node: Node, first: int, count: int) -> list[int]:
    """Publish inputs `first`..`first+count-1`; the `applied` of each output, in order."""
    for seq in range(first, first + count):
        node.data.publish(f"{node.prefix}/in/{node.id}/a", json.dumps({"seq": seq}).encode())
    got = [json.loads(body) for _, body in node.data.collect(count, timeout=10)]
    assert [r["seq"] for r in got] == list(range(first, first + count))
    assert all(r["repeats"] == 0 for r in got)
    return [r["applied"] for r in got]


def test_a_pushed_version_that_keeps_the_format_goes_on_counting(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node = _stateful_node(make_node, tmp_path)
    node.start()
    assert _send(node, 0, 5) == [1, 2, 3, 4, 5]
    assert node.deploy(2, SAME_FORMAT)["result"] == "activated"
    assert _send(node, 5, 5) == [6, 7, 8, 9, 10]
    loaded = [e for e in node.daemon.events() if e.get("event") == "state_loaded"]
    assert [(e["during"], e["format"]) for e in loaded] == [("swap", 1)]


def test_a_version_that_refuses_the_format_starts_fresh_and_it_is_counted(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    node = _stateful_node(make_node, tmp_path)
    node.config["metrics"] = {"interval": 0.2}
    node.start()
    assert _send(node, 0, 3) == [1, 2, 3]
    assert node.deploy(2, FORMAT_2)["result"] == "activated"
    assert _send(node, 3, 2) == [1, 2]
    [refused] = [e for e in node.daemon.events() if e.get("event") == "state_load_refused"]
    assert (refused["format"], refused["reason"], refused["during"]) == (1, "state_refused", "swap")
    metrics = node.data
    metrics.subscribe(f"{node.prefix}/{node.id}/metrics")
    deadline = time.monotonic() + 5
    state: dict[str, object] = {}
    while time.monotonic() < deadline and state.get("loads_refused") != 1:
        for topic, body in metrics.quiet(0.3):
            if topic.endswith("/metrics"):
                state = json.loads(body)["pipelines"]["main"]["filters"][0]["state"]
    assert state.get("loads_refused") == 1, state


def test_a_rollback_gives_the_old_version_its_own_state_from_the_swap(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    """Version 2 (format 1) counts to 4; version 3 (format 2) refuses that and counts 1, 2;
    a rollback to 2: version 2 refuses version 3's format-2 state, and takes its own state as
    it was at the swap (4), so it goes on from 5. What version 3 applied is not in it: the
    documented rule (docs/state.md)."""
    node = _stateful_node(make_node, tmp_path)
    node.start()
    assert node.deploy(2, SAME_FORMAT)["result"] == "activated"
    assert _send(node, 0, 4) == [1, 2, 3, 4]
    assert node.deploy(3, FORMAT_2)["result"] == "activated"
    assert _send(node, 4, 2) == [1, 2]
    ack = node.control("rollback", "r1")
    assert (ack["result"], ack["version"]) == ("rolled_back", 2)
    assert _send(node, 6, 2) == [5, 6]
    during = [
        (e["event"], e["during"], e["format"])
        for e in node.daemon.events()
        if e.get("event") in ("state_loaded", "state_load_refused")
    ]
    assert during == [
        ("state_loaded", "swap", 1),  # version 2 took the config file's state
        ("state_load_refused", "swap", 1),  # version 3 refused format 1
        ("state_load_refused", "rollback", 2),  # version 2 refused version 3's format 2
        ("state_loaded", "rollback", 1),  # ... and took its own from the swap
    ]


# -- WASI capabilities travel with the push -----------------------------------------------------
# forward.wat with an import of WASI random_get: it needs the capability `random`.

WANTS_RANDOM = bytes(
    wasmtime.wat2wasm(
        (MODULES / "forward.wat")
        .read_text()
        .replace(
            "(module\n",
            '(module\n  (import "wasi_snapshot_preview1" "random_get"'
            " (func (param i32 i32) (result i32)))\n",
        )
    )
)


def _push_with(node: Node, version: int, capabilities: list[str] | None) -> Json:
    rid = _rid()
    node.push(
        manifest.build(
            "filt", version, WANTS_RANDOM, key=node.key, request_id=rid, capabilities=capabilities
        )
    )
    return node.ack(rid)


def test_a_push_asking_for_a_capability_the_node_does_not_allow_is_refused(
    make_node: NodeFactory,
) -> None:
    node = make_node(deploy={"allowed_capabilities": ["log"]})
    node.start()
    ack = _push_with(node, 2, ["random"])
    assert (ack["result"], ack["reason"]) == ("refused", "capability_not_allowed")
    assert ack["detail"] == "asks for random; deploy.allowed_capabilities here allows log"
    assert node.serving() == FORWARDS  # the old version serves on


def test_a_push_gets_what_its_manifest_asks_and_the_node_allows(make_node: NodeFactory) -> None:
    """Allowed `random`: a push asking for it is activated and serves; the same module pushed
    without asking for it is refused, naming the import and the capability."""
    node = make_node(deploy={"allowed_capabilities": ["random", "clock"]})
    node.start()
    refused = _push_with(node, 2, None)
    assert (refused["result"], refused["reason"]) == ("refused", "capability_not_granted")
    assert "wasi_snapshot_preview1.random_get" in refused["detail"]
    assert "'random'" in refused["detail"]
    assert _push_with(node, 3, ["random"])["result"] == "activated"
    assert node.serving() == FORWARDS
    node.stop()
    node.start()  # the grant was kept with the version in the store
    assert node.serving() == FORWARDS
    assert node.status_since_start()["modules"]["filt"]["version"] == 3

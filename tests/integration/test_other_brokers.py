"""At least once against MQTT 5 brokers other than mosquitto (docs/brokers.md, "Brokers
other than mosquitto"): Mochi MQTT and HiveMQ CE, each a real process of the test's own.

The cases of the delivery suite (test_delivery.py, test_delivery_brokers.py, test_brokers.py),
shortened to seconds: messages published while edged is stopped, kill -9 in a flood, a broker
restart under a stream, a cloud outage, the broker's Receive Maximum, a shared subscription
across two nodes, the retained status and its will, noLocal and retain handling. And what each
broker does with a packet over its Maximum Packet Size, measured with a bare MQTT 5 session.

Every payload carries a sequence number, so what is missing or repeated is counted exactly.
`pytest -m other_brokers` runs these alone; scripts/brokers.sh builds the brokers (see
tests/helpers/otherbrokers.py for why one may be skipped).
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.delivery import Stream, loss_and_repeats, out_of_order, received
from tests.helpers.mqtt import Client
from tests.helpers.otherbrokers import OTHER_BROKERS, Broker, make_broker
from tests.helpers.paths import wasm

pytestmark = pytest.mark.other_brokers

VERSIONS = ("5", "3.1.1")
#: the brokers' Receive Maximum, the publishers' window and edged's own
INFLIGHT = 100
FAST = {"reconnect_min_delay": 0.2, "reconnect_max_delay": 1.0}


# What Mochi MQTT 2.7.9 gets wrong, as measured here (each test that meets it says which).
MOCHI_QUEUE = (
    "Mochi MQTT 2.7.9 sends a resumed session everything queued for it at once, past the "
    "client's Receive Maximum (MQTT-3.3.4-9), in no set order (MQTT 4.6), and part of it again "
    "on the same connection (MQTT-4.4.0-1)"
)
MOCHI_WINDOW = (
    "Mochi MQTT 2.7.9 sends the messages it held back for a client's Receive Maximum later, but "
    "no longer as in flight: their PUBACKs never reopen the window, so a burst larger than "
    "edged's `inflight` (its Receive Maximum, 100 here) stalls the subscription for good "
    "(measured: 215 of 1,000 across two nodes; all 1,000 with inflight 1,000)"
)
MOCHI_FLOOD = (
    "Mochi MQTT 2.7.9, kill -9 in a 5,000-message flood: under MQTT 5 the subscription can stall "
    "for good (the Receive Maximum leak above; 106 of 5,000 in one run), and under 3.1.1 a "
    "contiguous run of messages published around edged's restart was lost (164 in one run; "
    "cause not isolated: mosquitto and HiveMQ lose none in the same test). Some runs pass"
)
MOCHI_RESTART = (
    "Mochi MQTT 2.7.9 with its bolt storage: after the broker's restart, a session that had "
    "messages in flight is refused on every reconnect ('resend inflight: protocol violation: "
    "missing packet id' in its log), so what was queued for it never arrives"
)


@pytest.fixture(scope="module", params=OTHER_BROKERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared_broker(kind: str) -> Iterator[Broker]:
    """One broker with persistence for the module's tests that never stop it (each test has
    topics of its own): a JVM's start is seconds."""
    broker = make_broker(kind, persistence=True, max_inflight_messages=INFLIGHT)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(kind: str) -> Iterator[Broker]:
    """A broker of the test's own with persistence: `halt()` and `start()` keep its sessions."""
    broker = make_broker(kind, persistence=True, max_inflight_messages=INFLIGHT)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def xfail_on(kind: str, request: pytest.FixtureRequest) -> Any:
    """`xfail_on({"mochi": reason})`: mark this test an expected failure (strict unless told)
    on those brokers, with the reason."""

    def mark(faults: dict[str, str], strict: bool = True) -> None:
        if kind in faults:
            request.applymarker(pytest.mark.xfail(strict=strict, reason=faults[kind]))

    return mark


def _client(broker: Broker, version: str = "5", **options: Any) -> Client:
    return Client(broker, v5=version == "5", **options)  # type: ignore[arg-type]


def _publisher(broker: Broker, version: str) -> Client:
    """A publisher whose session keeps what the broker has not acknowledged yet."""
    return _client(broker, version, persistent=True, inflight=INFLIGHT)


#: every daemon the running test started, stopped at its end whatever happened
_STARTED: list[DaemonProcess] = []


@pytest.fixture(autouse=True)
def _stop_daemons() -> Iterator[None]:
    yield
    while _STARTED:
        _STARTED.pop().stop()


def _daemon(path: Path, status_topic: str, broker: Broker) -> DaemonProcess:
    daemon = DaemonProcess(path, status_topic, broker)  # type: ignore[arg-type]
    _STARTED.append(daemon)
    return daemon


class Node:
    """One edged node on one broker, its config and its successive processes."""

    def __init__(self, broker: Broker, tmp_path: Path, version: str, **link: Any) -> None:
        self.broker = broker
        self.root = f"o/{uuid.uuid4().hex[:8]}"
        self.node_id = f"n{uuid.uuid4().hex[:6]}"
        self.tmp_path = tmp_path
        self.data: dict[str, Any] = {
            "node_id": self.node_id,
            "topic_prefix": self.root,
            "state_dir": str(tmp_path / "state"),
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "mqtt_version": version,
                **FAST,
                **link,
            },
            "metrics": {"interval": 0.5},
            "modules": {"passthrough": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "pass",
                    "subscribe": [{"topic": f"{self.root}/in/#", "qos": 1}],
                    "filters": ["passthrough"],
                    "outputs": [{"topic": f"{self.root}/out/{{topic}}", "qos": 1}],
                }
            ],
        }
        self.runs = 0
        self.process: DaemonProcess | None = None

    @property
    def status_topic(self) -> str:
        return f"{self.root}/{self.node_id}/status"

    def start(self, *, wait: bool = True) -> DaemonProcess:
        path = write_config(self.tmp_path / f"{self.node_id}-{self.runs}.yaml", self.data)
        self.runs += 1
        self.process = _daemon(path, self.status_topic, self.broker)
        if wait:
            self.process.wait_online()
        return self.process

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        return self.process.stop(sig)

    def metrics(self, timeout: float = 10.0) -> dict[str, Any]:
        """The node's latest retained metrics record, as a client subscribing now gets it."""
        return _retained(self.broker, f"{self.root}/{self.node_id}/metrics", timeout)


def _retained(broker: Broker, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    """The retained JSON record on `topic`, as a client that subscribes now gets it."""
    watcher = _client(broker)
    try:
        watcher.subscribe(topic)
        [(_, payload)] = watcher.collect(1, timeout)
        return dict(json.loads(payload))
    finally:
        watcher.close()


def _seqs(messages: list[tuple[str, bytes]]) -> list[int]:
    return [json.loads(payload)["seq"] for _, payload in messages]


# -- the delivery suite ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_messages_published_while_edged_is_stopped_all_come_out(
    shared_broker: Broker, tmp_path: Path, version: str, xfail_on: Any
) -> None:
    """1,000 QoS 1 messages published between a SIGTERM and the next start: every one comes
    out after the start, in order, none twice (the broker kept edged's session and queued
    them for it)."""
    xfail_on({"mochi": MOCHI_QUEUE})
    own_broker = shared_broker
    node = Node(own_broker, tmp_path, version)
    collector = _client(own_broker, version, persistent=True)
    collector.subscribe(f"{node.root}/out/#")
    node.start()
    assert node.stop() == 0
    stream = Stream(_publisher(own_broker, version), f"{node.root}/in/a", 1000, 0)
    stream.start()
    stream.finish()
    node.start()
    got = received(collector, 1000, timeout=30)
    assert node.stop() == 0
    collector.close()
    missing, repeats = loss_and_repeats(got, 1000)
    assert missing == [], f"{len(missing)} lost, first {missing[:10]}"
    assert repeats == 0
    assert got == list(range(1000))


@pytest.mark.parametrize("version", VERSIONS)
def test_kill_9_in_a_flood_loses_nothing(
    kind: str,
    shared_broker: Broker,
    tmp_path: Path,
    version: str,
    request: pytest.FixtureRequest,
) -> None:
    """kill -9 in the middle of a 5,000-message QoS 1 flood, started again at once: every
    message comes out; the repeats are the inputs unacknowledged at the kill."""
    if kind == "mochi":
        request.applymarker(pytest.mark.xfail(strict=False, reason=MOCHI_FLOOD))
    own_broker = shared_broker
    node = Node(own_broker, tmp_path, version, inflight=INFLIGHT)
    collector = _client(own_broker, version, persistent=True)
    collector.subscribe(f"{node.root}/out/#")
    inputs = _client(own_broker, version, persistent=True)  # what the broker received
    inputs.subscribe(f"{node.root}/in/#")
    total = 5000
    first = node.start()
    stream = Stream(_publisher(own_broker, version), f"{node.root}/in/a", total, 0)
    stream.start()
    got: list[int] = []
    deadline = time.monotonic() + 15
    while len(got) < 1500 and time.monotonic() < deadline:
        got += _seqs(collector.quiet(0.05))
    assert len(got) >= 1500, f"only {len(got)} outputs within 15 s"  # well before the end
    first.stop(signal.SIGKILL)
    node.start()
    stream.finish()
    got += received(collector, total, timeout=20, before=got)
    reference = received(inputs, total, timeout=10)
    assert node.stop() == 0
    collector.close()
    inputs.close()
    missing, repeats = loss_and_repeats(got, total)
    assert missing == [], f"{len(missing)} lost, first {missing[:10]}"
    _, sent_twice = loss_and_repeats(reference, total)
    assert repeats - sent_twice <= 2 * INFLIGHT, f"{repeats} repeats, {sent_twice} sent twice"
    assert out_of_order(got, reference)[:5] == []


@pytest.mark.parametrize("version", VERSIONS)
def test_a_broker_restart_under_a_stream_loses_nothing(
    kind: str, own_broker: Broker, tmp_path: Path, version: str, xfail_on: Any
) -> None:
    """The broker stopped for 3 s under a 1,000 msgs/s stream and started again from its
    files: every message comes out, first arrivals in the order the broker took them in; edged
    found its session again (no session lost) and its outbox is empty at the end."""
    if kind == "mochi" and version == "3.1.1":
        pytest.skip("the broker fault of mochi-5 (MOCHI_RESTART) again: one run documents it")
    xfail_on({"mochi": MOCHI_RESTART})
    node = Node(own_broker, tmp_path, version)
    collector = _client(own_broker, version, persistent=True)
    collector.subscribe(f"{node.root}/out/#")
    inputs = _client(own_broker, version, persistent=True)
    inputs.subscribe(f"{node.root}/in/#")
    node.start()
    total = 7000
    # The stream's publisher speaks 3.1.1 whatever edged speaks: a paho 2.1 MQTT 5 publisher
    # with a persistent session gets stuck sending again after HiveMQ's restart (measured: 383
    # of 7,000 through, the same ones over 26,000 times more), which is the test side's
    # trouble, not edged's; edged's own MQTT 5 outputs got through in the same run.
    stream = Stream(_publisher(own_broker, "3.1.1"), f"{node.root}/in/a", total, 1000)
    stream.start()
    time.sleep(2)
    own_broker.halt()
    time.sleep(3)
    own_broker.start()
    stream.finish()
    got = received(collector, total, timeout=15)
    collector.close()
    missing, _ = loss_and_repeats(got, total)
    if missing:
        inputs.close()
    assert missing == [], f"{len(missing)} missing, first {missing[:10]}"
    reference = received(inputs, total, timeout=10)
    inputs.close()
    time.sleep(1.5)  # a metrics record after the last output
    metrics = node.metrics()
    assert node.stop() == 0
    assert out_of_order(got, reference)[:5] == []
    link = metrics["links"]["default"]
    assert link["reconnects"] >= 1 and link["session_lost"] == 0, link
    assert link["outbox"]["entries"] == 0, link


def test_a_cloud_outage_loses_nothing(kind: str, tmp_path: Path, xfail_on: Any) -> None:
    """A local mosquitto in, the other broker as the cloud out: the cloud stopped for 4 s
    under a 1,000 msgs/s local stream and started again: every output reaches the cloud (a
    collector there with a persistent session), each topic's first arrivals in order, and the
    status is online again."""
    # Not strict: the fault needs the collector's session to have messages in flight at the
    # cloud's restart, which the 4 s outage does not always leave (seen passing once in CI).
    xfail_on({"mochi": MOCHI_RESTART}, strict=False)
    with (
        PrivateBroker(max_inflight_messages=INFLIGHT) as local,
        make_broker(kind, persistence=True, max_inflight_messages=INFLIGHT) as cloud,
    ):
        node = f"c{uuid.uuid4().hex[:6]}"
        data = {
            "node_id": node,
            "state_dir": str(tmp_path / "state"),
            "brokers": {
                "local": {"host": local.host, "port": local.port, **FAST},
                "cloud": {"host": cloud.host, "port": cloud.port, **FAST},
            },
            "modules": {"passthrough": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "up",
                    "subscribe": [{"topic": f"{node}/in/#", "qos": 1}],
                    "filters": ["passthrough"],
                    "outputs": [{"topic": f"{node}/out/{{topic}}", "qos": 1, "broker": "cloud"}],
                }
            ],
        }
        daemon = _daemon(write_config(tmp_path / "cloud.yaml", data), f"edged/{node}/status", local)
        daemon.wait_online()
        collector = _client(cloud, persistent=True)  # its session outlives the outage
        collector.subscribe(f"{node}/out/#")
        total = 8000
        stream = Stream(
            Client(local, persistent=True, inflight=INFLIGHT),
            lambda seq: f"{node}/in/{seq % 4}",
            total,
            1000,
        )
        stream.start()
        time.sleep(2)
        cloud.halt()
        time.sleep(4)
        cloud.start()
        stream.finish()
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + 15
        while len(set(_seqs(got))) < total and time.monotonic() < deadline:
            got += collector.quiet(0.2)
        got += collector.quiet(0.5)
        status = daemon.wait_online(20)
        collector.close()
        cloud_log = cloud.log
        assert daemon.stop() == 0
    missing, _ = loss_and_repeats(_seqs(got), total)
    assert missing == [], f"{len(missing)} missing on the cloud, first {missing[:10]}; {cloud_log}"
    for topic in {t for t, _ in got}:
        assert out_of_order(_seqs([m for m in got if m[0] == topic]))[:5] == [], topic
    assert status.get("links_down", []) == [], status


def test_outputs_keep_within_the_brokers_receive_maximum(kind: str, tmp_path: Path) -> None:
    """A cloud broker whose CONNACK says Receive Maximum 5 while edged's own window is 100:
    a burst of 2,000 local inputs comes out on the cloud, each once, and the cloud never cut
    the connection (both brokers disconnect a client that goes past it, reason 0x93)."""
    with (
        PrivateBroker(max_inflight_messages=INFLIGHT) as local,
        make_broker(kind, max_inflight_messages=5) as cloud,
    ):
        node = f"r{uuid.uuid4().hex[:6]}"
        data = {
            "node_id": node,
            "state_dir": str(tmp_path / "state"),
            "metrics": {"interval": 0.5},
            "brokers": {
                "local": {"host": local.host, "port": local.port, "inflight": INFLIGHT, **FAST},
                "cloud": {"host": cloud.host, "port": cloud.port, "inflight": INFLIGHT, **FAST},
            },
            "modules": {"passthrough": {"file": wasm("passthrough")}},
            "pipelines": [
                {
                    "name": "up",
                    "subscribe": [{"topic": f"{node}/in", "qos": 1}],
                    "filters": ["passthrough"],
                    "outputs": [{"topic": f"{node}/out", "qos": 1, "broker": "cloud"}],
                }
            ],
        }
        daemon = _daemon(write_config(tmp_path / "rm.yaml", data), f"edged/{node}/status", local)
        daemon.wait_online()
        collector = _client(cloud)
        collector.subscribe(f"{node}/out")
        stream = Stream(Client(local, inflight=INFLIGHT), f"{node}/in", 2000, 0)
        stream.start()
        stream.finish()
        got = received(collector, 2000, timeout=60)
        time.sleep(1)
        metrics = _retained(local, f"edged/{node}/metrics")
        collector.close()
        assert daemon.stop() == 0
        cloud_log = cloud.log
    assert loss_and_repeats(got, 2000) == ([], 0)
    assert metrics["links"]["cloud"]["reconnects"] == 0, (metrics["links"]["cloud"], cloud_log)
    unreachable = [e for e in daemon.events() if e.get("event") == "broker_unreachable"]
    assert unreachable == []


# Which member of a share group gets a message: Mochi 2.7.9 picks one at random among every
# session that holds the subscription, connected or not, and queues it for an offline one
# (as mosquitto 2.0.11 does: test_brokers.py); HiveMQ hands it to a connected member, not
# necessarily splitting a burst (measured: 1,000 of 1,000 to one node with persistent
# sessions). After one of two nodes is killed, HiveMQ gives the survivor all 500 jobs.
SURVIVOR_GETS_ALL = {"mochi": False, "hivemq": True}
SPLITS_A_BURST = {"mochi": True, "hivemq": False}


@pytest.mark.parametrize("session", ["persistent", "clean"])
def test_two_nodes_on_a_shared_subscription_split_the_stream_and_lose_nothing(
    kind: str, shared_broker: Broker, tmp_path: Path, session: str, xfail_on: Any
) -> None:
    """Two edged nodes subscribed to `$share/workers/<root>/jobs/#`: 1,000 jobs are each
    processed once across the two, both taking a share; after one is killed (SIGKILL), 500
    more are published. With clean sessions (session_expiry 0) the survivor takes them all.
    With persistent sessions, what the survivor gets depends on the broker
    (SURVIVOR_GETS_ALL); after the killed node starts again, every job has been processed."""
    xfail_on({"mochi": MOCHI_WINDOW})
    broker = shared_broker
    root = f"s{uuid.uuid4().hex[:6]}"
    nodes = []
    for name in ("a", "b"):
        node = Node(broker, tmp_path / name, "5")
        node.root = root
        node.node_id = f"worker-{name}-{root}"
        node.data["node_id"] = node.node_id
        node.data["topic_prefix"] = root
        if session == "clean":
            node.data["broker"]["session_expiry"] = 0
        node.data["pipelines"] = [
            {
                "name": "work",
                "subscribe": [{"topic": f"$share/workers/{root}/jobs/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": f"{root}/done/worker-{name}", "qos": 1}],
            }
        ]
        (tmp_path / name).mkdir()
        node.start()
        nodes.append(node)
    collector = _client(broker)
    collector.subscribe(f"{root}/done/#")
    sender = _client(broker, inflight=INFLIGHT)
    for seq in range(1000):
        sender.paho.publish(f"{root}/jobs/a", json.dumps({"seq": seq}), 1)
    got = collector.collect(1000, timeout=10) + collector.quiet(0.5)
    assert sorted(_seqs(got)) == list(range(1000))  # each once
    shares = Counter(topic.rsplit("/", 1)[1] for topic, _ in got)
    if SPLITS_A_BURST[kind]:
        assert shares["worker-a"] > 0 and shares["worker-b"] > 0, shares
    nodes[0].stop(signal.SIGKILL)
    time.sleep(0.5)
    for seq in range(1000, 1500):
        sender.paho.publish(f"{root}/jobs/a", json.dumps({"seq": seq}), 1)
    after = collector.quiet(3.0)
    survivor = Counter(topic.rsplit("/", 1)[1] for topic, _ in after)
    assert survivor["worker-a"] == 0
    if session == "clean" or SURVIVOR_GETS_ALL[kind]:
        assert sorted(_seqs(after)) == list(range(1000, 1500)), survivor
    else:
        assert 0 < survivor["worker-b"] < 500, survivor
        nodes[0].start()
        after += received_all(collector, set(range(1000, 1500)) - set(_seqs(after)))
        assert sorted(set(_seqs(after))) == list(range(1000, 1500))
    sender.close()
    collector.close()
    for node in nodes:
        node.stop()


def received_all(client: Client, want: set[int], timeout: float = 20) -> list[tuple[str, bytes]]:
    """What arrives until every number in `want` has, or the time is up."""
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while not want <= set(_seqs(got)) and time.monotonic() < deadline:
        got += client.quiet(0.2)
    return got


@pytest.mark.parametrize("version", VERSIONS)
def test_the_retained_status_says_online_and_the_will_says_offline(
    shared_broker: Broker, tmp_path: Path, version: str
) -> None:
    """A client that subscribes to the node's status gets `online` (retained) while it runs;
    after kill -9 the broker publishes the will, and a newcomer gets `offline`, retained;
    after a clean stop, `offline` too."""
    own_broker = shared_broker
    node = Node(own_broker, tmp_path, version, keepalive=5)
    node.start()
    assert _retained(own_broker, node.status_topic)["state"] == "online"
    node.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    state = None
    while time.monotonic() < deadline and state != "offline":
        state = _retained(own_broker, node.status_topic)["state"]
        time.sleep(0.2)
    assert state == "offline"
    node.start()
    assert _retained(own_broker, node.status_topic)["state"] == "online"
    assert node.stop() == 0
    assert _retained(own_broker, node.status_topic)["state"] == "offline"


def test_a_retained_input_is_taken_once_across_restarts_and_no_output_loops_back(
    shared_broker: Broker, tmp_path: Path
) -> None:
    """MQTT 5, a persistent session: a retained input is processed when edged first
    subscribes, not again after a restart (retain handling 1: only for a new subscription);
    an output onto edged's own input topics does not come back to it (noLocal)."""
    own_broker = shared_broker
    node = Node(own_broker, tmp_path, "5")
    node.data["pipelines"][0]["outputs"] = [{"topic": f"{node.root}/in/echo/{{topic}}", "qos": 1}]
    collector = _client(own_broker, persistent=True)
    collector.subscribe(f"{node.root}/in/echo/#")
    publisher = _client(own_broker)
    publisher.publish(f"{node.root}/in/r", json.dumps({"seq": 0}), retain=True)
    node.start()
    first = collector.collect(1) + collector.quiet(1.5)
    assert first == [(f"{node.root}/in/echo/{node.root}/in/r", b'{"seq": 0}')], first
    assert node.stop() == 0
    node.start()
    publisher.publish(f"{node.root}/in/p", json.dumps({"seq": 1}))
    second = collector.collect(1) + collector.quiet(1.5)
    assert _seqs(second) == [1], second
    assert node.stop() == 0
    publisher.publish(f"{node.root}/in/r", b"", retain=True)  # clear the retained input
    publisher.close()
    collector.close()


# -- what each broker does past its Maximum Packet Size (a bare MQTT 5 session) ----------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def _utf8(text: str) -> bytes:
    return struct.pack("!H", len(text)) + text.encode()


def _read_packet(sock: socket.socket) -> tuple[int, bytes] | None:
    """One packet (first byte, body), or None when the broker closed the connection."""
    head = sock.recv(1)
    if not head:
        return None
    length, shift = 0, 0
    while True:
        byte = sock.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


def _properties(body: bytes) -> dict[int, int]:
    """The integer properties (ids 0x21 Receive Maximum, 0x27 Maximum Packet Size, ...) of a
    CONNACK body; the others are skipped."""
    length, shift, at = 0, 0, 2
    while True:
        byte = body[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    props, end = {}, at + length
    sizes = {0x11: 4, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}
    while at < end:
        ident = body[at]
        at += 1
        if ident in sizes:
            props[ident] = int.from_bytes(body[at : at + sizes[ident]], "big")
            at += sizes[ident]
        elif ident in (0x12, 0x1A, 0x1C, 0x1F):  # strings
            at += 2 + int.from_bytes(body[at : at + 2], "big")
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                at += 2 + int.from_bytes(body[at : at + 2], "big")
        else:
            raise AssertionError(f"unexpected CONNACK property {ident:#x}")
    return props


def oversize_publish(broker: Broker, payload: int) -> tuple[dict[int, int], str]:
    """Connect (MQTT 5), then send one QoS 1 PUBLISH with `payload` bytes: the CONNACK's
    integer properties, and what came back: `puback 0x..`, `disconnect 0x..` or `closed` (the
    connection ended with no DISCONNECT)."""
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        connect = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + _utf8(f"probe-{uuid.uuid4().hex[:6]}")
        sock.sendall(_packet(0x10, connect))
        answer = _read_packet(sock)
        assert answer is not None and answer[0] == 0x20 and answer[1][1] == 0, answer
        props = _properties(answer[1])
        publish = _utf8("probe/big") + b"\x00\x01" + b"\x00" + b"x" * payload
        sock.sendall(_packet(0x32, publish))
        try:
            reply = _read_packet(sock)
        except (ConnectionResetError, TimeoutError):
            reply = None
    if reply is None:
        return props, "closed"
    if reply[0] == 0x40:
        return props, f"puback {reply[1][2] if len(reply[1]) > 2 else 0:#04x}"
    assert reply[0] == 0xE0, reply
    return props, f"disconnect {reply[1][0]:#04x}"


MAXIMUM_PACKET_SIZE = 0x27
RECEIVE_MAXIMUM = 0x21
#: measured: (Maximum Packet Size in CONNACK, what a larger PUBLISH gets)
PAST_THE_LIMIT = {
    # announced, and a DISCONNECT with 0x95 Packet too large (no reason string)
    "mosquitto": (1000, "disconnect 0x95"),
    # not announced in CONNACK (a client cannot know the limit); the connection is closed
    # with no DISCONNECT, and the will is sent
    "mochi": (None, "closed"),
    # announced, and a DISCONNECT with 0x95 and a reason string
    "hivemq": (1000, "disconnect 0x95"),
}


@pytest.mark.parametrize("name", ["mosquitto", *OTHER_BROKERS])
def test_what_each_broker_does_past_its_maximum_packet_size(name: str) -> None:
    """With a Maximum Packet Size of 1,000 bytes and a Receive Maximum of 5: what the broker
    says in CONNACK, and what it does with a 2,000-byte PUBLISH (PAST_THE_LIMIT)."""
    with make_broker(name, max_packet_size=1000, max_inflight_messages=5) as broker:
        props, small = oversize_publish(broker, 100)
        _, big = oversize_publish(broker, 2000)
    announced, outcome = PAST_THE_LIMIT[name]
    assert props.get(MAXIMUM_PACKET_SIZE) == announced, props
    assert props.get(RECEIVE_MAXIMUM) == 5, props
    assert small.startswith("puback"), small
    assert big == outcome


# -- what each broker sends a resumed session (a bare MQTT 5 session) --------------------------


def _connect(broker: Broker, client_id: str, clean: bool, receive_maximum: int) -> socket.socket:
    """A bare MQTT 5 connection: Session Expiry 3600 s and this Receive Maximum."""
    sock = socket.create_connection((broker.host, broker.port), timeout=5)
    props = b"\x11" + struct.pack("!I", 3600) + b"\x21" + struct.pack("!H", receive_maximum)
    body = (
        b"\x00\x04MQTT\x05"
        + bytes([0x02 if clean else 0x00])
        + b"\x00\x3c"
        + _varint(len(props))
        + props
        + _utf8(client_id)
    )
    sock.sendall(_packet(0x10, body))
    answer = _read_packet(sock)
    assert answer is not None and answer[0] == 0x20 and answer[1][1] == 0, answer
    return sock


def _publishes(sock: socket.socket, seconds: float) -> list[tuple[int, int]]:
    """The (packet id, seq) of each PUBLISH that arrives within `seconds`; none acknowledged."""
    got: list[tuple[int, int]] = []
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            packet = _read_packet(sock)
        except TimeoutError:
            continue
        if packet is None:
            break
        first, body = packet
        if first & 0xF0 == 0x30:
            end = 2 + int.from_bytes(body[:2], "big")
            ident = int.from_bytes(body[end : end + 2], "big")
            skip = end + 2 + 1 + body[end + 2]  # the properties' length, one byte here
            got.append((ident, json.loads(body[skip:])["seq"]))
    return got


@pytest.mark.parametrize(
    "name",
    [
        "mosquitto",
        pytest.param(
            "mochi",
            marks=pytest.mark.xfail(
                strict=True,
                reason="Mochi MQTT 2.7.9 sends a resumed session everything queued for it at "
                "once, past the client's Receive Maximum (MQTT-3.3.4-9), in no set order "
                "(MQTT 4.6), and sends part of it again on the same connection (MQTT-4.4.0-1)",
            ),
        ),
        "hivemq",
    ],
)
def test_a_resumed_session_gets_its_queue_within_its_receive_maximum_in_order_once(
    name: str,
) -> None:
    """50 QoS 1 messages queued for an offline session; it comes back with Receive Maximum
    10: the broker sends 10 and waits for acknowledgements, then the rest as they are
    acknowledged, in the order published, each once. What edged relies on for its window and
    for "first arrivals in order" after a stop."""
    with make_broker(name, persistence=True, max_inflight_messages=INFLIGHT) as broker:
        client_id = f"resume-{uuid.uuid4().hex[:6]}"
        topic = f"q/{uuid.uuid4().hex[:6]}"
        sock = _connect(broker, client_id, clean=True, receive_maximum=10)
        sock.sendall(_packet(0x82, b"\x00\x01\x00" + _utf8(topic) + b"\x01"))  # QoS 1
        suback = _read_packet(sock)
        assert suback is not None and suback[1][-1] == 1, suback
        sock.sendall(_packet(0xE0, b""))
        sock.close()
        publisher = _client(broker, inflight=INFLIGHT)
        for seq in range(50):
            publisher.publish(topic, json.dumps({"seq": seq}))
        publisher.close()
        with _connect(broker, client_id, clean=False, receive_maximum=10) as sock:
            burst = _publishes(sock, 1.0)
            got = list(burst)
            fresh = burst
            while fresh:
                for ident, _ in fresh:
                    sock.sendall(_packet(0x40, struct.pack("!H", ident)))
                fresh = _publishes(sock, 0.5)
                got += fresh
    assert len(burst) == 10, f"{len(burst)} sent before any acknowledgement"
    assert [seq for _, seq in got] == list(range(50))

"""Several brokers at once (`brokers:`): a local one and a cloud one with TLS and a client
certificate, each link with its own outbox and limits, shared subscriptions, and the old
`broker:` form unchanged.

Real parts only: mosquittos of each test's own (the cloud one with TLS and a client certificate
made by openssl, a local one with a password file), `edged run` as a subprocess.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.brokers import (
    GATEWAY_CN,
    TESTER_CN,
    Pki,
    make_pki,
    password_broker,
    tls_broker,
    tls_client,
)
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.delivery import Stream
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm
from tests.integration.conftest import Start

PREFIX = "edged"
NODE = "gw-1"
#: the cloud broker's ACL: the gateway's certificate may write its outputs and its own topics,
#: the tester's may read everything. mosquitto 2.0 disconnects a client that publishes where
#: the ACL does not let it (measured here, and mosquitto issue 2579), so a gateway connected
#: under any other name than its certificate's would get nothing through at all.
CLOUD_ACL = f"""\
user {GATEWAY_CN}
topic write out/#
topic readwrite {PREFIX}/#
user {TESTER_CN}
topic read #
"""
#: the local broker's users (a password file): the gateway's and the test side's own
LOCAL_USERS = {"gateway": "gw-secret", "tester": "t-secret"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def local() -> Iterator[PrivateBroker]:
    """A plain broker of the test's own: no retained status of another test on it."""
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def cloud(pki: Pki) -> Iterator[PrivateBroker]:
    """The cloud: TLS, a client certificate required and taken as user name, CLOUD_ACL, and
    persistence, so that `halt()` and `start()` keep the test side's session."""
    with tls_broker(pki, persistence=True, acl=CLOUD_ACL) as running:
        yield running


def link(broker: PrivateBroker, pki: Pki | None = None, **settings: Any) -> dict[str, Any]:
    """One entry of `brokers:` for a test broker (with the gateway's certificate if TLS)."""
    entry: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_delay": 0.2,
        "reconnect_max_delay": 1.0,
    }
    if broker.tls:
        assert pki is not None
        pair = pki.client(GATEWAY_CN)
        entry["tls"] = {
            "ca_file": str(pki.ca),
            "cert_file": str(pair.cert),
            "key_file": str(pair.key),
        }
    return {**entry, **settings}


def gateway(tmp_path: Path, brokers: dict[str, Any], *pipelines: dict[str, Any]) -> dict[str, Any]:
    """A config of the pass-through pipelines given, on these brokers."""
    return {
        "node_id": NODE,
        "topic_prefix": PREFIX,
        "state_dir": str(tmp_path / "state"),
        "brokers": brokers,
        "metrics": {"interval": 0.5},
        "modules": {"passthrough": {"file": wasm("passthrough")}},
        "pipelines": list(pipelines),
    }


def pipe(name: str, inputs: str, output: str, broker_in: str, broker_out: str) -> dict[str, Any]:
    """A pass-through pipeline: QoS 1 from `inputs` on one broker to `output` on another."""
    return {
        "name": name,
        "subscribe": [{"topic": inputs, "qos": 1, "broker": broker_in}],
        "filters": ["passthrough"],
        "outputs": [{"topic": output, "qos": 1, "broker": broker_out}],
    }


def local_client(broker: PrivateBroker, **options: Any) -> Client:
    """A test-side client of `broker`, logged in if it has a password file."""
    if broker.passwords is not None:
        options.setdefault("username", "tester")
        options.setdefault("password", LOCAL_USERS["tester"])
    return Client(broker, **options)


def latest(client: Client, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    """The retained record on `topic` (JSON), as a client subscribing now gets it."""
    client.subscribe(topic)
    for got, payload in client.collect(1, timeout):
        assert got == topic
        return dict(json.loads(payload))
    raise AssertionError("unreachable")


def wait_status(
    client: Client,
    topic: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
    daemon: DaemonProcess | None = None,
) -> list[dict[str, Any]]:
    """Every status record that arrives on `client` (subscribed to `topic`) until one satisfies
    `done`; fails after `timeout` seconds, with the daemon's log if given."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for got, payload in client.quiet(0.1):
            if got == topic:
                seen.append(json.loads(payload))
                if done(seen[-1]):
                    return seen
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log()}")
    log = daemon.log()[-4000:] if daemon is not None else ""
    raise AssertionError(f"no such status within {timeout} s; seen {seen}\n{log}")


def retained(broker: PrivateBroker, kind: str) -> dict[str, Any]:
    """The node's retained `status` or latest `metrics` record on `broker`, as a client that
    subscribes now gets it."""
    client = local_client(broker)
    try:
        return latest(client, f"{PREFIX}/{NODE}/{kind}")
    finally:
        client.close()


def drain(client: Client) -> list[tuple[str, bytes]]:
    """What arrived on `client` and was not taken yet."""
    got: list[tuple[str, bytes]] = []
    while True:
        try:
            topic, payload, _ = client.messages.get_nowait()
        except queue.Empty:
            return got
        got.append((topic, payload))


def drain_status(client: Client, topic: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for got, payload in drain(client) if got == topic]


def until_all(
    client: Client, count: int, timeout: float, before: Sequence[tuple[str, bytes]] = ()
) -> list[tuple[str, bytes]]:
    """What arrives on `client` until every seq of 0..count-1 has (counting `before`), or
    the time is up; repeats included."""
    got: list[tuple[str, bytes]] = []
    seen = set(sequence(before))
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        fresh = client.quiet(0.2)
        got += fresh
        seen.update(sequence(fresh))
    return got


def online(status: dict[str, Any]) -> bool:
    return status.get("state") == "online"


def sequence(messages: Sequence[tuple[str, bytes]]) -> list[int]:
    return [json.loads(payload)["seq"] for _, payload in messages]


def per_topic_breaks(messages: list[tuple[str, bytes]]) -> dict[str, list[int]]:
    """Per topic, the numbers whose first arrival came after a higher number's."""
    breaks: dict[str, list[int]] = defaultdict(list)
    highest: dict[str, int] = {}
    seen: set[int] = set()
    for topic, payload in messages:
        seq = json.loads(payload)["seq"]
        if seq in seen:
            continue
        seen.add(seq)
        if seq < highest.get(topic, -1):
            breaks[topic].append(seq)
        highest[topic] = max(seq, highest.get(topic, -1))
    return dict(breaks)


# -- the test brokers themselves ---------------------------------------------------------------


def test_the_tls_broker_admits_only_certificates_of_its_ca_under_their_common_name(
    cloud: PrivateBroker, pki: Pki, tmp_path: Path
) -> None:
    """The fixture the cloud tests rely on: a client with the gateway's certificate connects
    and is known by its Common Name (the ACL lets it write out/#, where the tester reads);
    without a certificate, or with one of another CA, the TLS handshake is refused."""
    gateway_client = tls_client(cloud, pki, GATEWAY_CN, client_id="cert-check")
    reader = tls_client(cloud, pki)
    assert (gateway_client.connack(), reader.connack()) == (0, 0)
    reader.subscribe("out/#")
    gateway_client.publish("out/x", "hello")
    assert reader.collect(1) == [("out/x", b"hello")]
    gateway_client.close()
    assert f"as cert-check (p5, c1, k60, u'{GATEWAY_CN}')" in cloud.log
    # The ACL holds: the tester's certificate may not write out/#, so it is cut off.
    forger = tls_client(cloud, pki, client_id="forger")
    assert forger.connack() == 0
    forger.paho.publish("out/x", "forged", 1)
    assert forger.connack() == 0  # paho reconnects: a second CONNACK after the cut
    assert reader.quiet(0.5) == []
    forger.close()
    other = make_pki(tmp_path / "other")
    for stranger in (
        Client(cloud, ca_file=pki.ca),  # no certificate
        Client(
            cloud,
            ca_file=pki.ca,
            cert_file=other.client(GATEWAY_CN).cert,
            key_file=other.client(GATEWAY_CN).key,
        ),  # the right name from the wrong CA
    ):
        assert stranger.connack() == -1
        stranger.close()
    reader.close()


def test_the_password_broker_admits_only_the_right_password() -> None:
    """The fixture of the password tests: the right password connects, a wrong one and none
    are refused with 'not authorized' (MQTT 5 reason 135), under MQTT 5 and 3.1.1."""
    with password_broker(LOCAL_USERS) as broker:
        for v5 in (True, False):
            right = Client(broker, v5=v5, username="tester", password="t-secret")
            wrong = Client(broker, v5=v5, username="tester", password="gw-secret")
            anonymous = Client(broker, v5=v5)
            # paho reports MQTT 3.1.1's return code 5, not authorized, as MQTT 5's 135
            assert [c.connack() for c in (right, wrong, anonymous)] == [0, 135, 135]
            right.subscribe("a/#")
            right.publish("a/b", "x")
            assert right.collect(1) == [("a/b", b"x")]
            for c in (right, wrong, anonymous):
                c.close()


# -- edged with several brokers ------------------------------------------------------------------


def test_local_inputs_reach_the_cloud_over_tls_under_the_gateway_certificate(
    cloud: PrivateBroker, pki: Pki, tmp_path: Path, start: Start
) -> None:
    """500 QoS 1 inputs on a local broker with a password file come out as 500 outputs on a TLS
    cloud broker, in order, none on the local one; the cloud knows the gateway by its
    certificate's name (its ACL lets only that name write out/#), and both brokers carry the
    node's retained status."""
    with password_broker(LOCAL_USERS) as local:
        secret = tmp_path / "local.password"
        secret.write_text(LOCAL_USERS["gateway"] + "\n")
        brokers = {
            "local": link(local, username="gateway", password_file=str(secret)),
            "cloud": link(cloud, pki, client_id="gw-1-cloud"),
        }
        data = gateway(tmp_path, brokers, pipe("up", "in/#", "out/{topic}", "local", "cloud"))
        data["control_broker"] = "local"  # the default (the first), said once here
        watcher = local_client(local)
        watcher.subscribe(f"{PREFIX}/{NODE}/status")
        daemon = start(data)
        wait_status(watcher, f"{PREFIX}/{NODE}/status", online, daemon=daemon)
        collector = tls_client(cloud, pki)
        collector.subscribe("out/#")
        stray = local_client(local)
        stray.subscribe("out/#")
        sender = local_client(local)
        for seq in range(500):
            sender.paho.publish("in/a", json.dumps({"seq": seq}), 1)
        got = collector.collect(500, timeout=30)
        assert {topic for topic, _ in got} == {"out/in/a"}
        assert sequence(got) == list(range(500))
        assert collector.quiet(0.5) == []
        assert stray.quiet(0.2) == []
        # mosquitto's log names each client's user: the certificate's CN on the cloud, the
        # password file's user on the local broker
        on_cloud = [line for line in cloud.log.splitlines() if " as gw-1-cloud (" in line]
        assert on_cloud and all(f"u'{GATEWAY_CN}')" in line for line in on_cloud), cloud.log
        on_local = [line for line in local.log.splitlines() if f" as edged-{NODE} (" in line]
        assert on_local and all("u'gateway')" in line for line in on_local), local.log
        assert latest(collector, f"{PREFIX}/{NODE}/status")["state"] == "online"
        for c in (watcher, collector, stray, sender):
            c.close()
        assert daemon.stop() == 0


def test_a_cloud_outage_under_a_stream_does_not_stall_the_local_link_and_loses_nothing(
    local: PrivateBroker, cloud: PrivateBroker, pki: Pki, tmp_path: Path, start: Start
) -> None:
    """The cloud broker stopped for 30 s under a 1,000 msgs/s local QoS 1 stream: the local
    pipeline's outputs keep coming meanwhile (the inputs are acknowledged once their cloud
    output is in the cloud outbox, which grows), the status on the local broker says degraded,
    cloud unreachable; after the cloud returns every output reaches it, each topic's first
    arrivals in order, and the status is online again."""
    brokers = {"local": link(local), "cloud": link(cloud, pki)}
    data = gateway(
        tmp_path,
        brokers,
        pipe("up", "in/#", "out/{topic}", "local", "cloud"),
        pipe("here", "in/#", "loc/{topic}", "local", "local"),
    )
    status_topic = f"{PREFIX}/{NODE}/status"
    watcher = local_client(local)
    watcher.subscribe(status_topic)
    daemon = start(data)
    wait_status(watcher, status_topic, online, daemon=daemon)
    collector = tls_client(cloud, pki, persistent=True)  # its session outlives the outage
    collector.subscribe("out/#")
    here = local_client(local)
    here.subscribe("loc/#")
    total = 36_000
    stream = Stream(local_client(local, inflight=100), lambda seq: f"in/{seq % 4}", total, 1000)
    stream.start()
    time.sleep(3)
    cloud.halt()
    outage = time.monotonic()
    # Down: degraded on the control broker, with the link's name.
    seen = wait_status(watcher, status_topic, lambda s: s.get("state") == "degraded", 15, daemon)
    assert "cloud unreachable" in seen[-1].get("reason", ""), seen[-1]
    assert seen[-1].get("links_down") == ["cloud"], seen[-1]
    time.sleep(max(0.0, outage + 10 - time.monotonic()))
    early = retained(local, "metrics")
    time.sleep(max(0.0, outage + 28 - time.monotonic()))
    late = retained(local, "metrics")
    local_outputs = drain(here)
    # The local pipeline kept up with the stream all along, so the local broker's queue for
    # edged stayed short (measured: 7 messages behind after 28 s; the bound allows 2 s of the
    # stream); the cloud's outputs piled up in its outbox instead (~1,000 more a second).
    behind = stream.published - len(local_outputs)
    assert behind < 2000, f"{behind} local outputs behind the stream after 28 s of outage"
    early_entries = early["links"]["cloud"]["outbox"]["entries"]
    late_entries = late["links"]["cloud"]["outbox"]["entries"]
    assert late_entries - early_entries > 10_000, (early["links"], late["links"])
    assert late["links"]["cloud"]["connected"] is False, late["links"]
    assert late["links"]["local"]["connected"] is True, late["links"]
    assert not any(s.get("state") == "online" for s in drain_status(watcher, status_topic))
    assert retained(local, "status")["links_down"] == ["cloud"]  # what a newcomer reads
    time.sleep(max(0.0, outage + 30 - time.monotonic()))
    cloud.start()
    stream.join(30)
    got = until_all(collector, total, timeout=120)
    missing = sorted(set(range(total)) - set(sequence(got)))
    assert missing == [], f"{len(missing)} missing on the cloud, first {missing[:10]}"
    assert per_topic_breaks(got) == {}
    local_outputs += until_all(here, total, timeout=30, before=local_outputs)
    assert sorted(set(sequence(local_outputs))) == list(range(total))
    final = wait_status(watcher, status_topic, online, 30, daemon)[-1]
    assert final.get("links_down", []) == [], final
    assert retained(local, "metrics")["links"]["cloud"]["outbox"]["entries"] == 0
    for c in (watcher, collector, here, stream.client):
        c.close()
    assert daemon.stop() == 0


def test_an_output_over_the_cloud_payload_limit_is_dead_lettered_not_sent(
    local: PrivateBroker, cloud: PrivateBroker, pki: Pki, tmp_path: Path, start: Start
) -> None:
    """With `limits: {max_payload: 1 KiB}` on the cloud link, a 2,000-byte output goes to the
    dead-letter topic on the control broker with reason broker_limit, never to the cloud; the
    small outputs around it arrive."""
    brokers = {"local": link(local), "cloud": link(cloud, pki, limits={"max_payload": "1 KiB"})}
    data = gateway(tmp_path, brokers, pipe("up", "in/#", "out/{topic}", "local", "cloud"))
    watcher = local_client(local)
    watcher.subscribe(f"{PREFIX}/{NODE}/status")
    daemon = start(data)
    wait_status(watcher, f"{PREFIX}/{NODE}/status", online, daemon=daemon)
    dead = local_client(local)
    dead.subscribe(f"{PREFIX}/{NODE}/deadletter")
    collector = tls_client(cloud, pki)
    collector.subscribe("out/#")
    sender = local_client(local)
    sender.publish("in/small", json.dumps({"seq": 0}))
    sender.publish("in/big", json.dumps({"seq": 1, "pad": "x" * 2000}))
    sender.publish("in/small", json.dumps({"seq": 2}))
    assert sequence(collector.collect(2)) == [0, 2]
    assert collector.quiet(0.5) == []
    [(_, body)] = dead.collect(1)
    record = json.loads(body)
    assert record["reason"] == "broker_limit", record
    assert "max_payload" in json.dumps(record) and "cloud" in json.dumps(record), record
    for c in (watcher, dead, collector, sender):
        c.close()
    assert daemon.stop() == 0


def test_two_nodes_on_one_shared_subscription_split_the_stream_and_one_takes_over(
    local: PrivateBroker, tmp_path: Path, start: Start
) -> None:
    """Two edged nodes subscribed to `$share/workers/jobs/#`: 1,000 jobs are each processed
    once across the two, both taking a share; after one is killed (SIGKILL), the other
    processes every job published after."""
    nodes = []
    for node_id in ("worker-a", "worker-b"):
        data = gateway(
            tmp_path / node_id,
            # session_expiry 0: mosquitto 2.0.11 goes on sharing out to an offline persistent
            # session of the group and queues its share there (measured: with edged's default
            # session the survivor got 250 of the 500 published after the kill, every other
            # one). With a clean session the killed node leaves the group when its connection
            # goes.
            {"local": link(local, session_expiry=0)},
            {
                "name": "work",
                "subscribe": [{"topic": "$share/workers/jobs/#", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": "done/{node_id}/{topic}", "qos": 1}],
            },
        )
        data["node_id"] = node_id
        nodes.append(start(data, local))
    for node in nodes:
        node.wait_online()
    collector = local_client(local)
    collector.subscribe("done/#")
    sender = local_client(local)
    for seq in range(1000):
        sender.paho.publish("jobs/a", json.dumps({"seq": seq}), 1)
    got = collector.collect(1000, timeout=30) + collector.quiet(0.5)
    assert sorted(sequence(got)) == list(range(1000))  # each once: none missing, none twice
    shares = Counter(topic.split("/")[1] for topic, _ in got)
    assert shares["worker-a"] > 0 and shares["worker-b"] > 0, shares
    nodes[0].stop(signal.SIGKILL)
    time.sleep(0.5)  # the broker sees the connection go at once; this is to be sure
    for seq in range(1000, 1500):
        sender.paho.publish("jobs/a", json.dumps({"seq": seq}), 1)
    after = collector.collect(500, timeout=30) + collector.quiet(0.5)
    assert sorted(sequence(after)) == list(range(1000, 1500))
    assert {topic for topic, _ in after} == {"done/worker-b/jobs/a"}
    collector.close()
    sender.close()


def test_the_old_broker_form_keeps_its_outbox_file_and_its_one_broker(
    local: PrivateBroker, tmp_path: Path, start: Start
) -> None:
    """A config with `broker:` as before: inputs pass through, the outbox file is still
    outbox.sqlite3 (no outbox-<name> file beside it), and the status and metrics are on that
    one broker, whose link is named `default`."""
    data = gateway(tmp_path, {}, pipe("p", "in/#", "out/{topic}", "default", "default"))
    del data["brokers"]
    data["broker"] = link(local)
    for rule in (*data["pipelines"][0]["subscribe"], *data["pipelines"][0]["outputs"]):
        del rule["broker"]
    daemon = start(data, local)
    status = daemon.wait_online()
    collector = local_client(local)
    collector.subscribe("out/#")
    for seq in range(20):
        collector.paho.publish("in/a", json.dumps({"seq": seq}), 1)
    assert sequence(collector.collect(20)) == list(range(20))
    metrics = latest(collector, f"{PREFIX}/{NODE}/metrics")
    collector.close()
    assert daemon.stop() == 0
    state = tmp_path / "state"
    assert sorted(p.name for p in state.glob("outbox*.sqlite3")) == ["outbox.sqlite3"]
    assert status["node_id"] == NODE
    assert list(metrics["links"]) == ["default"] and metrics["links"]["default"]["connected"]


def test_check_names_the_key_of_an_output_to_an_unknown_broker(
    local: PrivateBroker, tmp_path: Path
) -> None:
    """`edged check` on an output rule naming a broker the config does not have: exit 2, and
    the message gives the key path and the name."""
    cloud = {**link(local), "port": local.port + 1, "client_id": "gw-1-cloud"}  # never reached
    brokers = {"local": link(local), "cloud": cloud}
    data = gateway(tmp_path, brokers, pipe("up", "in/#", "out/{topic}", "local", "clowd"))
    path = write_config(tmp_path / "bad.yaml", data)
    result = subprocess.run(
        [sys.executable, "-m", "edged", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    [line] = [line for line in output.splitlines() if "pipelines[0].outputs[0].broker" in line]
    assert "clowd" in line, output
    assert "1 error" in output, output  # that one, nothing else
    assert "Traceback" not in output

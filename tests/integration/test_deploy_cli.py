"""`edged keygen` and `edged module push/rollback/remove/status` against a real broker.

The nodes here are fake: test MQTT clients that take requests on a node's topics, check deploys
with edged.deploy.manifest, and answer acks as docs/deploy.md and the node side do. The last
test pushes to a real `edged run`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from edged import keys as signing_keys
from edged.cli import main
from edged.deploy import manifest
from edged.errors import DeployRefused
from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm

THRESHOLD = Path(wasm("threshold"))
PASSTHROUGH = Path(wasm("passthrough"))

Answer = Callable[[str, bytes], list[dict[str, Any]]]


class FakeNode:
    """A node stand-in: subscribed to its request topics, answering each with acks."""

    def __init__(
        self,
        broker: PrivateBroker,
        prefix: str,
        node: str,
        *,
        groups: tuple[str, ...] = (),
        keys: tuple[Ed25519PrivateKey, ...] = (),
        active: int = 0,
        allow_unsigned: bool = False,
        answer: Answer | None = None,
    ) -> None:
        self.prefix, self.node = prefix, node
        self.trusted: dict[str, Ed25519PublicKey] = {
            signing_keys.key_id(k.public_key()): k.public_key() for k in keys
        }
        self.active = active
        self.active_digest: str | None = None
        self.allow_unsigned = allow_unsigned
        self.answer = answer or self.deploy_answer
        self.received: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        subacks: queue.Queue[int] = queue.Queue()
        self.paho = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"fake-{uuid.uuid4().hex[:8]}"
        )
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = lambda _c, _u, mid, *_: subacks.put(mid)
        self.paho.connect(broker.host, broker.port)
        self.paho.loop_start()
        for scope in (f"{prefix}/{node}", *(f"{prefix}/groups/{g}" for g in groups)):
            _, mid = self.paho.subscribe(f"{scope}/+", 1)
            assert subacks.get(timeout=5) == mid

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/ack") or msg.topic.endswith("/modules"):
            return
        self.received.put((msg.topic, bytes(msg.payload), bool(msg.retain)))
        for body in self.answer(msg.topic, bytes(msg.payload)):
            ack = {"node_id": self.node, "action": msg.topic.rpartition("/")[2], **body}
            self.paho.publish(f"{self.prefix}/{self.node}/ack", json.dumps(ack), 1)

    def deploy_answer(self, topic: str, payload: bytes) -> list[dict[str, Any]]:
        """What a node answers a deploy: manifest checks, then version against the active one."""
        try:
            m, code = manifest.parse(payload)
        except DeployRefused as exc:
            return [{"request_id": None, "result": "refused", "reason": exc.reason}]
        base = {"request_id": m.request_id, "module": m.module, "version": m.version}
        try:
            manifest.verify(m, code, self.trusted, allow_unsigned=self.allow_unsigned)
            if (m.version, m.sha256) == (self.active, self.active_digest):
                return [{**base, "result": "already_active", "digest": m.sha256}]
            if m.version <= self.active:
                raise DeployRefused(
                    "not_newer", f"version {m.version} is not newer than active {self.active}"
                )
        except DeployRefused as exc:
            return [{**base, "result": "refused", "reason": exc.reason, "detail": exc.detail}]
        self.active, self.active_digest = m.version, m.sha256
        return [{**base, "result": "activated", "reason": None, "digest": m.sha256}]

    def next_request(self, timeout: float = 5.0) -> tuple[str, bytes, bool]:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.paho.disconnect()  # first, so that the network thread ends at once
        self.paho.loop_stop()


@pytest.fixture
def fake_nodes(broker: PrivateBroker) -> Iterator[Callable[..., FakeNode]]:
    made: list[FakeNode] = []

    def make(prefix: str, node: str, **kwargs: Any) -> FakeNode:
        made.append(FakeNode(broker, prefix, node, **kwargs))
        return made[-1]

    yield make
    for node in made:
        node.close()


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    """A private key file as `edged keygen` writes it, and the key."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "deploy.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path, key


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """`edged ARGS` in this process: exit code, stdout lines, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def where(broker: PrivateBroker, prefix: str) -> list[str]:
    return ["--broker", f"{broker.host}:{broker.port}", "--prefix", prefix]


def short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


# --- keygen -----------------------------------------------------------------------------------


def test_keygen_writes_a_private_pem_and_a_base64_public_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """keygen writes PATH (PKCS8 PEM, 0600) and PATH.pub (base64 + newline) and prints the id."""
    out = tmp_path / "ops.pem"
    code, lines, _ = run(capsys, "keygen", "--out", str(out))
    assert code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    pem = out.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    pub_text = (tmp_path / "ops.pem.pub").read_text()
    assert pub_text.endswith("\n") and pub_text.count("\n") == 1
    raw = base64.b64decode(pub_text.strip(), validate=True)
    assert raw == private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = signing_keys.key_id(signing_keys.load_public_key(pub_text))
    assert lines[0] == f"key id {kid}"
    assert "deploy.trusted_keys" in "\n".join(lines)
    assert lines[-1].strip() == f'- "{pub_text.strip()}"'


def test_keygen_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """keygen never overwrites a key: an existing PATH or PATH.pub is exit 2, files untouched."""
    out = tmp_path / "ops.pem"
    assert run(capsys, "keygen", "--out", str(out))[0] == 0
    before = (out.read_bytes(), (tmp_path / "ops.pem.pub").read_bytes())
    code, _, err = run(capsys, "keygen", "--out", str(out))
    assert code == 2 and "already exists" in err
    assert (out.read_bytes(), (tmp_path / "ops.pem.pub").read_bytes()) == before
    lone = tmp_path / "lone.pem"
    (tmp_path / "lone.pem.pub").write_text("mine\n")
    code, _, err = run(capsys, "keygen", "--out", str(lone))
    assert code == 2 and "lone.pem.pub already exists" in err
    assert not lone.exists()
    assert (tmp_path / "lone.pem.pub").read_text() == "mine\n"


# --- push -------------------------------------------------------------------------------------


def test_push_signs_and_reports_the_activation(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """A push to a node sends a signed deploy with typed params, prints its ack and exits 0."""
    path, key = signing_key
    node = fake_nodes(topic_root, "gw-1", keys=(key,), active=6)
    code, lines, err = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "7",
        "--key", str(path), "--node", "gw-1", *where(broker, topic_root),
        "-p", "limit=30", "-p", "ratio=0.5", "-p", "on=true", "-p", "unit=°C", "-p", "n=-2",
        "-p", "ver=1.2.3",
    )  # fmt: skip
    assert code == 0, (lines, err)
    assert lines == [f"gw-1: activated threshold v7 (sha256 {short(THRESHOLD.read_bytes())}…)"]
    assert f"to {topic_root}/gw-1/deploy" in err
    topic, payload, retained = node.next_request()
    assert topic == f"{topic_root}/gw-1/deploy" and not retained
    m, code_bytes = manifest.parse(payload)
    assert code_bytes == THRESHOLD.read_bytes()
    assert manifest.verify(m, code_bytes, node.trusted, allow_unsigned=False) is False
    assert m.params == {
        "limit": 30,
        "ratio": 0.5,
        "on": True,
        "unit": "°C",
        "n": -2,
        "ver": "1.2.3",
    }
    assert m.request_id is not None and len(m.request_id) == 32
    int(m.request_id, 16)


def test_push_reports_a_refusal_and_exits_1(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """A node that refuses says why in one line: reason — detail; the push exits 1."""
    path, key = signing_key
    fake_nodes(topic_root, "gw-2", keys=(key,), active=7)
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "7",
        "--key", str(path), "--node", "gw-2", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines == ["gw-2: refused: not_newer — version 7 is not newer than active 7"]


def test_push_with_an_untrusted_key_is_refused(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """A node that does not trust the key answers unknown_key, and the push exits 1."""
    path, _ = signing_key
    fake_nodes(topic_root, "gw-3", keys=(Ed25519PrivateKey.generate(),))
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "1",
        "--key", str(path), "--node", "gw-3", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines[0].startswith("gw-3: refused: unknown_key — key '")


def test_push_of_the_active_version_is_already_active(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """Pushing the same bytes and version twice: activated, then already_active, both exit 0."""
    path, key = signing_key
    fake_nodes(topic_root, "gw-1", keys=(key,))
    args = [
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "3",
        "--key", str(path), "--node", "gw-1", *where(broker, topic_root),
    ]  # fmt: skip
    digest = short(THRESHOLD.read_bytes())
    assert run(capsys, *args)[:2] == (0, [f"gw-1: activated threshold v3 (sha256 {digest}…)"])
    code, lines, _ = run(capsys, *args)
    assert code == 0
    assert lines == [f"gw-1: already_active threshold v3 (sha256 {digest}…)"]


def test_push_without_an_answer_times_out_with_exit_1(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """No ack within --timeout: the node is named as not answering, and the push exits 1."""
    path, _ = signing_key
    started = time.monotonic()
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "1",
        "--key", str(path), "--node", "gw-9", "--timeout", "0.5", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines == ["gw-9: no answer within 0.5 s"]
    assert time.monotonic() - started < 5


def test_push_unsigned_and_retained(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    client: Client,
) -> None:
    """--unsigned sends no signature (for allow_unsigned nodes); --retain keeps the deploy."""
    fake_nodes(topic_root, "dev", allow_unsigned=True)
    code, lines, err = run(
        capsys,
        "module", "push", str(PASSTHROUGH), "--name", "pass", "--version", "2",
        "--unsigned", "--retain", "--node", "dev", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 0, err
    assert lines[0].startswith("dev: activated pass v2")
    assert "unsigned" in err
    client.subscribe(f"{topic_root}/dev/deploy")
    _, payload, retained = client.messages.get(timeout=5)
    assert retained
    m, _ = manifest.parse(payload)
    assert (m.module, m.version, m.signature, m.key_id) == ("pass", 2, None, None)
    client.publish(f"{topic_root}/dev/deploy", b"", retain=True)  # clear it


def test_group_push_waits_for_the_expected_number_of_nodes(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """--group --expect 3 prints three nodes' acks (no one else's) and ends once all answered."""
    path, key = signing_key
    nodes = [fake_nodes(topic_root, f"gw-{i}", groups=("hall",), keys=(key,)) for i in (1, 2, 3)]

    def stranger(topic: str, payload: bytes) -> list[dict[str, Any]]:
        return [{"request_id": "someone-else", "result": "refused", "reason": "not_newer"}]

    fake_nodes(topic_root, "gw-x", groups=("hall",), answer=stranger)
    started = time.monotonic()
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "4",
        "--key", str(path), "--group", "hall", "--expect", "3", "--timeout", "20",
        *where(broker, topic_root),
    )  # fmt: skip
    assert code == 0, lines
    assert time.monotonic() - started < 10
    digest = short(THRESHOLD.read_bytes())
    assert sorted(lines[:3]) == [
        f"gw-{i}: activated threshold v4 (sha256 {digest}…)" for i in (1, 2, 3)
    ]
    assert lines[3] == "3 of 3 expected nodes answered: 3 activated"
    for node in nodes:
        assert node.next_request()[0] == f"{topic_root}/groups/hall/deploy"


def test_group_push_with_a_missing_node_exits_1(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """--expect 3 with two nodes answering ends at the timeout, one missing, exit 1."""
    path, key = signing_key
    for i in (1, 2):
        fake_nodes(topic_root, f"gw-{i}", groups=("hall",), keys=(key,))
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "4",
        "--key", str(path), "--group", "hall", "--expect", "3", "--timeout", "1",
        *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines[-1] == "2 of 3 expected nodes answered within 1 s (1 missing): 2 activated"


def test_group_push_without_expect_reports_who_answered(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """Without --expect a group push waits the whole timeout; one refusal among them is exit 1."""
    path, key = signing_key
    fake_nodes(topic_root, "gw-1", groups=("hall",), keys=(key,))
    fake_nodes(topic_root, "gw-2", groups=("hall",), keys=(key,), active=9)
    fake_nodes(topic_root, "gw-3", groups=("yard",), keys=(key,))
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "5",
        "--key", str(path), "--group", "hall", "--timeout", "1", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert "gw-2: refused: not_newer — version 5 is not newer than active 9" in lines
    assert not any(line.startswith("gw-3") for line in lines)
    assert lines[-1] == "2 nodes of group hall answered within 1 s: 1 activated, 1 refused"


def test_group_push_that_fails_probation_exits_1(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """A node that activates the push and then rolls it back in probation counts as failed."""
    path, _ = signing_key

    def activate_then_fail(topic: str, payload: bytes) -> list[dict[str, Any]]:
        m, _ = manifest.parse(payload)
        return [
            {"request_id": m.request_id, "result": "activated", "module": m.module, "version": 5},
            {
                "request_id": None,
                "result": "rolled_back",
                "module": m.module,
                "version": 4,
                "reason": "probation: trap",
                "failed_version": 5,
            },
        ]

    fake_nodes(topic_root, "gw-1", groups=("hall",), answer=activate_then_fail)
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "5",
        "--key", str(path), "--group", "hall", "--timeout", "1", *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines == [
        "gw-1: activated threshold v5",
        "gw-1: rolled_back threshold v4: probation: trap",
        "1 node of group hall answered within 1 s: 1 rolled_back",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing.wasm", "--key", "KEY"], "cannot read missing.wasm"),
        ([str(THRESHOLD), "--key", "nokey.pem"], "cannot read the key nokey.pem"),
        ([str(THRESHOLD), "--key", str(THRESHOLD)], "not an unencrypted PEM private key"),
        ([str(THRESHOLD), "--key", "EC"], "not an ed25519 key"),
        ([str(THRESHOLD)], "--key KEY.pem is required"),
        ([str(THRESHOLD), "--key", "KEY", "--unsigned"], "exclude each other"),
        ([str(Path(__file__)), "--key", "KEY"], "is not a WebAssembly module"),
        ([str(THRESHOLD), "--key", "KEY", "-p", "limit"], "expected KEY=VALUE"),
        ([str(THRESHOLD), "--key", "KEY", "--expect", "2"], "--expect is for --group"),
        ([str(THRESHOLD), "--key", "KEY", "--broker", "host:port"], "expected HOST:PORT"),
    ],
)
def test_push_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    signing_key: tuple[Path, Ed25519PrivateKey],
    args: list[str],
    says: str,
) -> None:
    """A missing file, a bad key or a wrong option is one message on stderr and exit 2."""
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    swap = {"KEY": str(signing_key[0]), "EC": str(ec_key)}
    args = [swap.get(a, a) for a in args]
    code, lines, err = run(
        capsys, "module", "push", *args, "--name", "t", "--version", "1", "--node", "gw"
    )
    assert code == 2
    assert lines == []
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["push", "THRESHOLD", "--key", "KEY", "--name", "t", "--version", "1", "--node", "gw"],
        ["rollback", "--name", "t", "--group", "hall"],
        ["remove", "--name", "t", "--node", "gw"],
        ["status", "--node", "gw"],
    ],
)
def test_an_unreachable_broker_exits_69(
    capsys: pytest.CaptureFixture[str],
    signing_key: tuple[Path, Ed25519PrivateKey],
    args: list[str],
) -> None:
    """No broker at --broker is one message and exit 69 (EX_UNAVAILABLE), apart from the usage
    errors' 2, so a script can tell "try again later" from "fix the command"."""
    swap = {"KEY": str(signing_key[0]), "THRESHOLD": str(THRESHOLD)}
    args = [swap.get(a, a) for a in args]
    code, lines, err = run(capsys, "module", *args, "--broker", "127.0.0.1:1", "--timeout", "1")
    assert code == 69
    assert lines == []
    assert "edged: cannot connect to 127.0.0.1:1" in err and "Traceback" not in err


def test_push_takes_broker_and_prefix_from_a_config(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
    signing_key: tuple[Path, Ed25519PrivateKey],
    tmp_path: Path,
) -> None:
    """--config reads the broker section and topic_prefix of a node config."""
    from tests.helpers.daemon import write_config

    path, key = signing_key
    fake_nodes(topic_root, "gw-1", keys=(key,))
    config = write_config(
        tmp_path / "ops.yaml",
        {
            "node_id": "ops",
            "topic_prefix": topic_root,
            "broker": {"host": broker.host, "port": broker.port, "mqtt_version": "3.1.1"},
            "modules": {"t": {"file": str(THRESHOLD)}},
            "pipelines": [
                {"name": "p", "subscribe": ["a"], "filters": ["t"], "outputs": [{"topic": "b"}]}
            ],
        },
    )
    code, lines, _ = run(
        capsys,
        "module", "push", str(THRESHOLD), "--name", "threshold", "--version", "1",
        "--key", str(path), "--node", "gw-1", "--config", str(config),
    )  # fmt: skip
    assert code == 0
    assert lines[0].startswith("gw-1: activated threshold v1")


# --- rollback and remove ----------------------------------------------------------------------


def test_rollback_and_remove_send_the_documented_messages(
    capsys: pytest.CaptureFixture[str],
    broker: PrivateBroker,
    topic_root: str,
    fake_nodes: Callable[..., FakeNode],
) -> None:
    """rollback and remove publish {module, request_id} and report the node's answer."""

    def answer(topic: str, payload: bytes) -> list[dict[str, Any]]:
        request = json.loads(payload)
        base = {"request_id": request["request_id"], "module": request["module"]}
        if topic.endswith("/rollback"):
            return [{**base, "result": "rolled_back", "reason": "requested", "version": 6}]
        return [{**base, "result": "refused", "reason": "not_pushed", "detail": "config's file"}]

    node = fake_nodes(topic_root, "gw-1", groups=("hall",), answer=answer)
    code, lines, err = run(
        capsys, "module", "rollback", "--name", "threshold", "--node", "gw-1",
        *where(broker, topic_root),
    )  # fmt: skip
    assert code == 0, err
    assert lines == ["gw-1: rolled_back threshold v6: requested"]
    topic, payload, _ = node.next_request()
    request = json.loads(payload)
    assert topic == f"{topic_root}/gw-1/rollback"
    assert set(request) == {"module", "request_id"} and request["module"] == "threshold"

    code, lines, _ = run(
        capsys, "module", "remove", "--name", "threshold", "--group", "hall", "--expect", "1",
        *where(broker, topic_root),
    )  # fmt: skip
    assert code == 1
    assert lines[0] == "gw-1: refused: not_pushed — config's file"
    topic, payload, _ = node.next_request()
    assert topic == f"{topic_root}/groups/hall/remove"
    assert set(json.loads(payload)) == {"module", "request_id"}


# --- status -----------------------------------------------------------------------------------


def status_body(node: str, groups: list[str] | None, probation: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_id": node,
        "modules": {
            "threshold": {
                "version": 7,
                "digest": "1a2b3c4d5e6f" + "0" * 52,
                "source": "pushed",
                "previous": {"version": 6, "digest": "f" * 64},
                "probation": probation,
            },
            "avg": {"version": 0, "source": "config", "digest": "9" * 64},
        },
    }
    if groups is not None:
        body["groups"] = groups
    return body


def test_status_reads_the_retained_modules_status(
    capsys: pytest.CaptureFixture[str], broker: PrivateBroker, topic_root: str, client: Client
) -> None:
    """status shows a node's (or a group's) retained modules status as a table, or the JSON."""
    for node, groups, probation in (
        ("gw-1", None, True),
        ("gw-2", ["hall"], False),
        ("gw-3", ["yard"], False),
    ):
        body = json.dumps(status_body(node, groups, probation))
        client.publish(f"{topic_root}/{node}/modules", body, retain=True)

    code, lines, _ = run(capsys, "module", "status", "--node", "gw-2", "--json",
                         *where(broker, topic_root))  # fmt: skip
    assert code == 0
    assert json.loads(lines[0]) == status_body("gw-2", ["hall"], False)

    code, lines, _ = run(capsys, "module", "status", "--group", "hall",
                         *where(broker, topic_root))  # fmt: skip
    assert code == 0
    assert lines[0].split() == ["node", "module", "version", "digest", "source", "probation"]
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        ["gw-1", "avg", "0", "999999999999", "config", "-"],
        ["gw-1", "threshold", "7", "1a2b3c4d5e6f", "pushed", "yes"],
        ["gw-2", "avg", "0", "999999999999", "config", "-"],
        ["gw-2", "threshold", "7", "1a2b3c4d5e6f", "pushed", "-"],
    ]

    code, _, err = run(capsys, "module", "status", "--node", "nobody", "--timeout", "0.3",
                       *where(broker, topic_root))  # fmt: skip
    assert code == 2
    assert f"no modules status on {topic_root}/nobody/modules within 0.3 s" in err
    for node in ("gw-1", "gw-2", "gw-3"):
        client.publish(f"{topic_root}/{node}/modules", b"", retain=True)


# --- against a real node ----------------------------------------------------------------------


def test_push_to_a_running_daemon_activates_the_new_version(
    capsys: pytest.CaptureFixture[str],
    start_daemon: Any,
    client: Client,
    topic_root: str,
    signing_key: tuple[Path, Ed25519PrivateKey],
) -> None:
    """A real node activates a trusted push, refuses an older one, shows it, rolls it back."""
    path, key = signing_key
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    daemon = start_daemon(
        {
            "node_id": "gw-real",
            "topic_prefix": topic_root,
            "modules": {"relay": {"file": str(PASSTHROUGH)}},
            "pipelines": [
                {
                    "name": "p",
                    "subscribe": [f"{topic_root}/in"],
                    "filters": ["relay"],
                    "outputs": [{"topic": f"{topic_root}/out"}],
                }
            ],
            "deploy": {"trusted_keys": [public.decode()], "groups": ["hall"]},
        }
    )
    code, lines, err = run(
        capsys,
        "module", "push", str(PASSTHROUGH), "--name", "relay", "--version", "2",
        "--key", str(path), "--node", "gw-real", *where(daemon.broker, topic_root),
    )  # fmt: skip
    assert code == 0, (lines, err, daemon.log())
    assert lines == [f"gw-real: activated relay v2 (sha256 {short(PASSTHROUGH.read_bytes())}…)"]

    code, lines, _ = run(
        capsys,
        "module", "push", str(PASSTHROUGH), "--name", "relay", "--version", "2",
        "--key", str(path), "--group", "hall", "--expect", "1",
        *where(daemon.broker, topic_root),
    )  # fmt: skip
    assert code == 0
    assert lines[0].startswith("gw-real: already_active relay v2")

    code, lines, _ = run(
        capsys,
        "module", "push", str(PASSTHROUGH), "--name", "relay", "--version", "1",
        "--key", str(path), "--node", "gw-real", *where(daemon.broker, topic_root),
    )  # fmt: skip
    assert (code, lines) == (
        1,
        ["gw-real: refused: not_newer — version 1 is not newer than active 2"],
    )

    client.subscribe(f"{topic_root}/out")
    client.publish(f"{topic_root}/in", b'{"value": 1}')
    assert client.collect(1)[0][1] == b'{"value": 1}'

    code, lines, _ = run(capsys, "module", "status", "--node", "gw-real",
                         *where(daemon.broker, topic_root))  # fmt: skip
    assert code == 0
    assert lines[1].split()[:5] == [
        "gw-real", "relay", "2", hashlib.sha256(PASSTHROUGH.read_bytes()).hexdigest()[:12],
        "pushed",
    ]  # fmt: skip

    code, lines, _ = run(capsys, "module", "rollback", "--name", "relay", "--node", "gw-real",
                         *where(daemon.broker, topic_root))  # fmt: skip
    assert (code, lines) == (0, ["gw-real: rolled_back relay (the config's file): requested"])

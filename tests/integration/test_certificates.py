"""Renewed client certificates, revoked ones and broken ones, with a TLS cloud broker that
requires a client certificate: a local mosquitto in, the cloud out, `edged run` as a subprocess
and a numbered QoS 1 stream, so every loss is counted exactly.

The cloud's own log shows each connection (`connection_messages`); after a CRL revoking the
old certificate is loaded (mosquitto's `crlfile`, read at its start), only the new pair gets in.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.brokers import GATEWAY_CN, Pki, make_pki, renew_client, revoke, tls_broker
from tests.helpers.brokers import tls_client as _tls_client
from tests.helpers.certs import Authority, pem_key
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.delivery import Stream, loss_and_repeats, received
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm
from tests.integration.test_brokers import CLOUD_ACL, NODE, PREFIX

CLOUD_ID = "gw-1-cloud"
#: how the cloud logs each accepted connection of the gateway
ACCEPTED = f" as {CLOUD_ID} ("


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def local() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


@pytest.fixture
def cloud(pki: Pki) -> Iterator[PrivateBroker]:
    """TLS with a client certificate required, CLOUD_ACL, and persistence, so that a restart
    keeps the test side's and the gateway's sessions."""
    with tls_broker(pki, persistence=True, acl=CLOUD_ACL) as running:
        yield running


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> dict[str, Path]:
    """The gateway's certificate and key, copied where the test can renew them in place."""
    cert, key = tmp_path / "gw.pem", tmp_path / "gw.key"
    shutil.copy(pki.client(GATEWAY_CN).cert, cert)
    shutil.copy(pki.client(GATEWAY_CN).key, key)
    return {"cert": cert, "key": key}


def start(
    tmp_path: Path, pki: Pki, local: PrivateBroker, cloud: PrivateBroker, files: dict[str, Path]
) -> DaemonProcess:
    """edged with a QoS 1 pass-through from `in/#` on the local broker to `out/...` on the
    cloud, reconnecting after 0.2 s doubling up to 1 s; online on the local broker."""
    common = {"reconnect_min_delay": 0.2, "reconnect_max_delay": 1.0}
    tls = {"ca_file": str(pki.ca), "cert_file": str(files["cert"]), "key_file": str(files["key"])}
    data: dict[str, Any] = {
        "node_id": NODE,
        "topic_prefix": PREFIX,
        "state_dir": str(tmp_path / "state"),
        "brokers": {
            "local": {"host": local.host, "port": local.port, **common},
            "cloud": {
                "host": cloud.host,
                "port": cloud.port,
                "client_id": CLOUD_ID,
                "tls": tls,
                **common,
            },
        },
        "modules": {"passthrough": {"file": wasm("passthrough")}},
        "pipelines": [
            {
                "name": "up",
                "subscribe": [{"topic": "in/#", "qos": 1, "broker": "local"}],
                "filters": ["passthrough"],
                "outputs": [{"topic": "out/{topic}", "qos": 1, "broker": "cloud"}],
            }
        ],
    }
    path = write_config(tmp_path / "edged.yaml", data)
    return DaemonProcess(path, f"{PREFIX}/{NODE}/status", local)


def events(daemon: DaemonProcess, name: str, broker: str = "cloud") -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == name and e.get("broker") == broker]


def wait_for(check: Any, timeout: float, daemon: DaemonProcess, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{daemon.log()[-4000:]}")
        time.sleep(0.05)


def tls_client(cloud: PrivateBroker, pki: Pki, **options: Any) -> Client:
    client = _tls_client(cloud, pki, **options)
    assert client.connack() == 0
    return client


def renew_in_place(pki: Pki, files: dict[str, Path], tmp_path: Path) -> Path:
    """Write a new pair for the gateway's name over the old files; the old certificate, kept
    aside, is returned for revoking."""
    old = tmp_path / "old-gw.pem"
    shutil.copy(files["cert"], old)
    new = renew_client(pki, GATEWAY_CN, tmp_path / "renewed")
    shutil.copy(new.key, files["key"])
    shutil.copy(new.cert, files["cert"])
    return old


def restart_revoking(cloud: PrivateBroker, pki: Pki, old: Path, tmp_path: Path) -> None:
    """Restart the cloud with a CRL that revokes `old`."""
    crl = revoke(pki, [old], tmp_path / "crl.pem")
    cloud.halt()
    cloud.extra_conf = f"crlfile {crl}\n"
    cloud.start()


@pytest.mark.parametrize("sighup", [True, False], ids=["sighup", "next-reconnect"])
def test_a_renewed_certificate_is_used_and_nothing_is_lost(
    sighup: bool,
    local: PrivateBroker,
    cloud: PrivateBroker,
    pki: Pki,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Under a 200 msgs/s QoS 1 stream, a new pair is written over the gateway's certificate
    and key, the cloud restarts with a CRL revoking the old certificate, and (one variant)
    edged gets SIGHUP first: edged reconnects with the new pair (the revoked one could not get
    in), and every one of the 3,000 inputs reaches the cloud."""
    daemon = start(tmp_path, pki, local, cloud, files)
    try:
        daemon.wait_online()
        collector = tls_client(cloud, pki, persistent=True)
        collector.subscribe("out/#")
        total = 3000
        stream = Stream(Client(local, persistent=True), "in/a", total, 200)
        stream.start()
        time.sleep(3)
        old = renew_in_place(pki, files, tmp_path)
        if sighup:
            accepted = cloud.log.count(ACCEPTED)
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: cloud.log.count(ACCEPTED) > accepted,
                10,
                daemon,
                "a new connection after SIGHUP",
            )
            [changed] = events(daemon, "broker_credentials_changed")
            assert changed["action"] == "reconnecting", changed
            time.sleep(1)
        restart_revoking(cloud, pki, old, tmp_path)
        wait_for(
            lambda: ACCEPTED in cloud.log, 15, daemon, "the gateway back on the restarted cloud"
        )
        stream.finish()
        got = received(collector, total, timeout=60)
        missing, repeats = loss_and_repeats(got, total)
        assert missing == [], f"{len(missing)} lost, first {missing[:10]}"
        print(f"renewal ({'SIGHUP' if sighup else 'no SIGHUP'}): 0 lost, {repeats} repeats")
        assert "revoked" not in cloud.log, cloud.log  # the old certificate never came back
        assert events(daemon, "broker_credentials_invalid") == []
        if not sighup:
            assert events(daemon, "broker_credentials_changed") == []
        collector.close()
    finally:
        assert daemon.stop() == 0, daemon.log()[-4000:]


def test_a_broker_refusing_the_certificate_sees_the_backoff_schedule(
    local: PrivateBroker,
    cloud: PrivateBroker,
    pki: Pki,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """The cloud revokes the gateway's certificate: TLS 1.3 lets the client finish its side of
    the handshake and the broker's alert comes on the first read. Over 6 s with delays of 0.2 s
    doubling up to 1 s the cloud sees the schedule's attempts (at most 10; edged made ~27 a
    second before), each logged as `broker_unreachable` with the alert as the reason."""
    restart_revoking(cloud, pki, files["cert"], tmp_path)
    daemon = start(tmp_path, pki, local, cloud, files)
    try:
        wait_for(lambda: events(daemon, "broker_unreachable"), 20, daemon, "a first refusal")
        time.sleep(6)
        daemon.stop()  # no attempt after this: what the cloud saw and edged logged, complete
        time.sleep(0.2)  # for the cloud's log of the last one
        # one line per refused handshake: "OpenSSL Error[0]: ... certificate verify failed"
        # after "New connection from", or "Client connection from ... failed: ... certificate
        # verify failed" when it failed while the broker was still accepting it
        attempts = cloud.log.count("certificate verify failed")
        failures = events(daemon, "broker_unreachable")
        print(f"refused certificate: {attempts} attempts in ~6 s after the first")
        # after the first failure at t=0 the waits are 0.2, 0.4, 0.8, then 1.0 each (+-20 %):
        # 8 to 10 attempts, 11 at the most with the shortest waits and 0.7 s more
        assert 5 <= attempts <= 11, attempts
        # every attempt ended in a logged failure (the last may have been cut by the stop)
        assert abs(attempts - len(failures)) <= 1, (attempts, failures)
        # the broker's alert as the reason, also when it closed before CONNECT was written
        reasons = Counter(e["reason"] for e in failures)
        assert reasons == {
            "connection closed before CONNACK: sslv3 alert certificate revoked": len(failures)
        }, reasons
        assert ACCEPTED not in cloud.log
        delays = [e["retry_in_s"] for e in failures]
        for delay, nominal in zip(delays, [0.2, 0.4, 0.8] + [1.0] * len(delays), strict=False):
            assert 0.8 * nominal - 0.05 <= delay <= 1.2 * nominal + 0.05, delays
    finally:
        daemon.stop()


def test_sighup_with_a_broken_pair_keeps_the_connection_and_delivering(
    local: PrivateBroker,
    cloud: PrivateBroker,
    pki: Pki,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A key that does not match the certificate is written, then SIGHUP: edged logs
    `broker_credentials_invalid` naming the key file and why, keeps its connection (the cloud
    sees no new one) and every input of a stream across it arrives."""
    daemon = start(tmp_path, pki, local, cloud, files)
    try:
        daemon.wait_online()
        collector = tls_client(cloud, pki, persistent=True)
        collector.subscribe("out/#")
        total = 1000
        stream = Stream(Client(local, persistent=True), "in/a", total, 200)
        stream.start()
        time.sleep(1)
        accepted = cloud.log.count(ACCEPTED)
        files["key"].write_bytes(pem_key(Authority().issue(GATEWAY_CN).key))  # another pair's
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: events(daemon, "broker_credentials_invalid"), 10, daemon, "the error logged"
        )
        [error] = events(daemon, "broker_credentials_invalid")
        assert error["key"] == "tls.key_file" and error["file"] == str(files["key"]), error
        assert "does not match the certificate" in error["reason"], error
        assert error["keeping"] == "the current connection"
        stream.finish()
        got = received(collector, total, timeout=30)
        missing, _ = loss_and_repeats(got, total)
        assert missing == [], f"{len(missing)} lost, first {missing[:10]}"
        assert cloud.log.count(ACCEPTED) == accepted, cloud.log
        assert events(daemon, "broker_unreachable") == []
        collector.close()
    finally:
        assert daemon.stop() == 0

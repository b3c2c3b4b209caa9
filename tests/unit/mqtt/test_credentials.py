"""A broker's certificates, key and password are read from their files for each attempt: a
renewed pair is what the next connection presents, a broken one is an error naming the file,
and `edged check` names certificates about to expire. Real certificates (made with
`cryptography`) and real TLS handshakes in memory."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from edged.config.model import BrokerConfig, TLSConfig
from edged.errors import CredentialsError
from edged.mqtt.credentials import expiry_warnings, files_digest, load_credentials
from tests.helpers.certs import Authority, handshake, pem_cert, pem_key


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority()


def tls_broker(tmp_path: Path, **settings: object) -> BrokerConfig:
    tls = TLSConfig(
        ca_file=tmp_path / "ca.pem", cert_file=tmp_path / "gw.pem", key_file=tmp_path / "gw.key"
    )
    return BrokerConfig(host="broker.test", tls=tls, **settings)  # type: ignore[arg-type]


def test_each_load_presents_the_pair_now_in_the_files(ca: Authority, tmp_path: Path) -> None:
    """A pair renewed at the same paths is what the next load presents in its handshake."""
    broker = tls_broker(tmp_path)
    ca.write_ca(tmp_path / "ca.pem")
    ca.issue("gw-old").write(tmp_path / "gw.pem", tmp_path / "gw.key")
    first = load_credentials(broker)
    assert first.tls is not None
    assert handshake(first.tls, ca) == "gw-old"
    ca.issue("gw-new").write(tmp_path / "gw.pem", tmp_path / "gw.key")
    second = load_credentials(broker)
    assert second.tls is not None
    assert handshake(second.tls, ca) == "gw-new"
    assert first.digest != second.digest


def test_the_server_name_and_ca_are_checked(ca: Authority, tmp_path: Path) -> None:
    """The context checks the server's certificate against the CA file and the host name, as
    paho's own `tls_set` did: a server of another CA fails the handshake."""
    import ssl

    broker = tls_broker(tmp_path)
    ca.write_ca(tmp_path / "ca.pem")
    ca.issue("gw").write(tmp_path / "gw.pem", tmp_path / "gw.key")
    context = load_credentials(broker).tls
    assert context is not None
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLError):
        handshake(context, Authority("another CA"))


def test_the_digest_follows_contents_not_writes(ca: Authority, tmp_path: Path) -> None:
    """Writing the same bytes again is no change; a new password or key is."""
    broker = tls_broker(tmp_path, username="gw", password_file=tmp_path / "pw")
    ca.write_ca(tmp_path / "ca.pem")
    pair = ca.issue("gw")
    pair.write(tmp_path / "gw.pem", tmp_path / "gw.key")
    (tmp_path / "pw").write_text("one\n")
    before = files_digest(broker)
    pair.write(tmp_path / "gw.pem", tmp_path / "gw.key")
    assert files_digest(broker) == before
    (tmp_path / "pw").write_text("two\n")
    assert files_digest(broker) != before
    assert load_credentials(broker).password == "two"
    assert files_digest(BrokerConfig()) == files_digest(BrokerConfig(host="elsewhere"))


@pytest.mark.parametrize(
    ("breakage", "key", "reason"),
    [
        ("mismatch", "tls.key_file", "the key does not match the certificate"),
        ("cert_garbage", "tls.cert_file", "no PEM certificate in it"),
        ("key_garbage", "tls.key_file", "not a usable PEM private key"),
        ("key_encrypted", "tls.key_file", "the key is encrypted"),
        ("cert_missing", "tls.cert_file", "No such file or directory"),
        ("ca_garbage", "tls.ca_file", "no PEM certificate in it"),
        ("password_missing", "password_file", "No such file or directory"),
    ],
)
def test_a_pair_that_does_not_load_names_the_file_and_why(
    ca: Authority, tmp_path: Path, breakage: str, key: str, reason: str
) -> None:
    """A key that does not match its certificate, a file without PEM, an encrypted key, a
    missing file: a CredentialsError with the key, the file and the reason."""
    broker = tls_broker(tmp_path, username="gw", password_file=tmp_path / "pw")
    ca.write_ca(tmp_path / "ca.pem")
    pair = ca.issue("gw")
    pair.write(tmp_path / "gw.pem", tmp_path / "gw.key")
    (tmp_path / "pw").write_text("pw\n")
    load_credentials(broker)  # the unbroken set loads
    files = {
        "tls.cert_file": tmp_path / "gw.pem",
        "tls.key_file": tmp_path / "gw.key",
        "tls.ca_file": tmp_path / "ca.pem",
        "password_file": tmp_path / "pw",
    }
    if breakage == "mismatch":
        (tmp_path / "gw.key").write_bytes(pem_key(ca.issue("gw").key))
    elif breakage.endswith("_garbage"):
        files[key].write_text("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n")
    elif breakage == "key_encrypted":
        (tmp_path / "gw.key").write_bytes(pem_key(pair.key, b"secret"))
    elif breakage.endswith("_missing"):
        files[key].unlink()
    with pytest.raises(CredentialsError) as caught:
        load_credentials(broker)
    error = caught.value
    assert (error.key, error.path) == (key, files[key])
    assert reason in error.reason, error.reason
    assert str(files[key]) in str(error)


def test_expiry_warnings_name_the_key_the_file_and_the_date(tmp_path: Path) -> None:
    """A client certificate ending in 3 days and a CA file whose second certificate has expired
    are named with their key path, file and date; one of 30 days is not."""
    now = datetime.datetime.now(datetime.UTC)
    ca = Authority(days=365)
    old_ca = Authority("old CA", not_after=now - datetime.timedelta(days=2))
    broker = tls_broker(tmp_path)
    (tmp_path / "ca.pem").write_bytes(pem_cert(ca.cert) + pem_cert(old_ca.cert))
    soon = ca.issue("gw", days=3)
    soon.write(tmp_path / "gw.pem", tmp_path / "gw.key")
    cert_line, ca_line = expiry_warnings(broker, "brokers.cloud")
    assert cert_line.startswith(f"brokers.cloud.tls.cert_file: {tmp_path / 'gw.pem'} (CN=gw)")
    ends = soon.cert.not_valid_after_utc.strftime("%Y-%m-%d")
    assert f"expires on {ends}" in cert_line and "in 3 days" in cert_line, cert_line
    assert ca_line.startswith(
        f"brokers.cloud.tls.ca_file: {tmp_path / 'ca.pem'} (certificate 2) (CN=old CA) expired on"
    ), ca_line
    ca.issue("gw", days=30).write(tmp_path / "gw.pem", tmp_path / "gw.key")
    (tmp_path / "ca.pem").write_bytes(pem_cert(ca.cert))
    assert expiry_warnings(broker, "broker") == []
    assert expiry_warnings(BrokerConfig(), "broker") == []


def test_a_reload_retries_a_down_link_at_once_with_new_files_and_not_with_broken_ones(
    ca: Authority, tmp_path: Path
) -> None:
    """A link that is down (its broker unreachable, backing off) tries again at once after a
    reload that found new files that load; new files that do not load are logged as
    `broker_credentials_invalid` with the key and file, and change nothing."""
    import time

    from structlog.testing import capture_logs

    from edged.mqtt.link import BrokerLink

    broker = tls_broker(tmp_path, port=1, reconnect_min_delay=30.0, reconnect_max_delay=60.0)
    ca.write_ca(tmp_path / "ca.pem")
    ca.issue("gw").write(tmp_path / "gw.pem", tmp_path / "gw.key")
    link = BrokerLink(
        broker, client_id="gw", status_topic="s", status={}, subscriptions=[],
        on_message=lambda _m: None,
    )  # fmt: skip
    with capture_logs() as logs:
        link.step(0)  # the first attempt: port 1 refuses
        deadline = time.monotonic() + 5
        while link.down is None and time.monotonic() < deadline:
            link.step(0.05)
        assert link.down is not None and "cannot connect" in link.down
        assert link.next_event(time.monotonic()) > 20  # backing off
        assert link.refresh_credentials() is False  # nothing changed
        (tmp_path / "gw.key").write_bytes(pem_key(ca.issue("gw").key))
        assert link.refresh_credentials() is False
        assert link.next_event(time.monotonic()) > 20
        ca.issue("gw").write(tmp_path / "gw.pem", tmp_path / "gw.key")
        assert link.refresh_credentials() is True
        assert link.next_event(time.monotonic()) == 0
    [invalid] = [e for e in logs if e["event"] == "broker_credentials_invalid"]
    assert invalid["key"] == "tls.key_file" and invalid["file"] == str(tmp_path / "gw.key")
    assert [e["action"] for e in logs if e["event"] == "broker_credentials_changed"] == [
        "trying them now"
    ]


def test_the_daemon_does_not_import_cryptography_until_a_file_is_checked() -> None:
    """cryptography costs ~9 MiB of RSS: a daemon without TLS files must not pay for it."""
    import subprocess
    import sys

    code = "import sys, edged.daemon.daemon; print('cryptography' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

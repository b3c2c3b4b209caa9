"""Brokers that check who connects: a throwaway PKI made with `openssl`, a mosquitto with TLS
and client certificates, and one with a password file.

make_pki        a CA, a server certificate for 127.0.0.1 and client certificates, in a directory
tls_broker      a PrivateBroker (not started) whose listener wants a client certificate
password_broker a PrivateBroker (not started) that admits only the users it is given
tls_client      a test-side Client of a TLS broker, with a client certificate of the PKI
renew_client    a new key and certificate for a client's Common Name (the old pair unchanged)
revoke          a CRL of the PKI's CA revoking certificates, for mosquitto's `crlfile`
"""

from __future__ import annotations

import datetime
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from edged.mqtt.mosquitto import PrivateBroker
from tests.helpers.mqtt import Client

#: the Common Name of the gateway's client certificate, which the TLS broker takes as user name
GATEWAY_CN = "gw-1"
#: the Common Name of the test side's own client certificate (collectors, watchers)
TESTER_CN = "tester"


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """The files of a throwaway PKI: the CA, the server's pair and one pair per client CN."""

    ca: Path
    ca_key: Path
    server: CertPair
    clients: Mapping[str, CertPair]

    def client(self, cn: str) -> CertPair:
        return self.clients[cn]


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _key_and_request(directory: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A P-256 key (fast to make, unlike RSA) and a request for `cn` signed by it."""
    key, csr = directory / f"{name}.key", directory / f"{name}.csr"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
    return key, csr


def _sign(directory: Path, name: str, csr: Path, ca: Path, ca_key: Path, ext: str) -> Path:
    cert, extfile = directory / f"{name}.pem", directory / f"{name}.ext"
    # The key identifiers and key usages are what a strict verifier (Python 3.13's
    # VERIFY_X509_STRICT) asks of a chain; -set_serial leaves no serial file behind.
    extfile.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n" + ext
    )
    serial = str(secrets.randbits(63))
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", serial,
        "-days", "2", "-sha256", "-extfile", extfile, "-out", cert,
    )  # fmt: skip
    return cert


def make_pki(directory: Path, clients: Iterable[str] = (GATEWAY_CN, TESTER_CN)) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate for
    each Common Name in `clients`, all valid for two days, in `directory` (~0.1 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", ca_key, "-out", ca, "-days", "2", "-sha256",
        "-subj", "/CN=edged test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    key, csr = _key_and_request(directory, "server", "127.0.0.1")
    server = _sign(
        directory,
        "server",
        csr,
        ca,
        ca_key,
        "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    pairs = {}
    for cn in clients:
        name = f"client-{cn}"
        client_key, client_csr = _key_and_request(directory, name, cn)
        cert = _sign(directory, name, client_csr, ca, ca_key, "extendedKeyUsage = clientAuth\n")
        pairs[cn] = CertPair(cert, client_key)
    return Pki(ca=ca, ca_key=ca_key, server=CertPair(server, key), clients=pairs)


def tls_broker(pki: Pki, **options: Any) -> PrivateBroker:
    """A broker (start it, or use it in `with`) whose one listener speaks TLS with the PKI's
    server certificate and admits only clients with a certificate of the PKI's CA, each under
    its certificate's Common Name as user name. It logs every connection with that name.
    `options` go to PrivateBroker (persistence, acl, ...)."""
    return PrivateBroker(
        cafile=pki.ca,
        certfile=pki.server.cert,
        keyfile=pki.server.key,
        log_connections=True,
        **options,
    )


def password_broker(passwords: Mapping[str, str], **options: Any) -> PrivateBroker:
    """A broker (start it, or use it in `with`) that admits only these users with these
    passwords, and logs every connection. `options` go to PrivateBroker."""
    return PrivateBroker(passwords=passwords, log_connections=True, **options)


def tls_client(broker: PrivateBroker, pki: Pki, cn: str = TESTER_CN, **options: Any) -> Client:
    """A test-side client of a TLS broker, showing the PKI's certificate for `cn`."""
    pair = pki.client(cn)
    return Client(broker, ca_file=pki.ca, cert_file=pair.cert, key_file=pair.key, **options)


def renew_client(pki: Pki, cn: str, directory: Path) -> CertPair:
    """A new key and certificate for `cn`, signed by the PKI's CA, in `directory` (the pair in
    `pki` stays as it is: copy the new files over it to renew in place)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"client-{cn}-renewed"
    key, csr = _key_and_request(directory, name, cn)
    cert = _sign(directory, name, csr, pki.ca, pki.ca_key, "extendedKeyUsage = clientAuth\n")
    return CertPair(cert, key)


def revoke(pki: Pki, certs: Iterable[Path], path: Path) -> Path:
    """Write to `path` a CRL of the PKI's CA (valid for a day) that revokes these certificates;
    mosquitto refuses them once its listener has `crlfile <path>` (read at its start)."""
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(minutes=1))
        .next_update(now + datetime.timedelta(days=1))
    )
    for cert_file in certs:
        serial = x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    path.write_bytes(crl.public_bytes(Encoding.PEM))
    return path

"""Certificates made in-process with `cryptography` (P-256, milliseconds each), for tests that
need exact validity dates (an expired certificate, one that expires in three days) or many pairs,
without openssl subprocesses.

Authority   a CA: `issue(cn, ...)` makes a client pair it signed, `write_*` put PEM files down
handshake   a TLS handshake in memory between a client context and a server that wants a
            client certificate; returns the client certificate's Common Name the server saw
"""

from __future__ import annotations

import datetime
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = datetime.UTC


#: what a strict verifier (Python 3.13's VERIFY_X509_STRICT) asks of a CA
_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Pair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, cert_file: Path, key_file: Path) -> None:
        cert_file.write_bytes(pem_cert(self.cert))
        key_file.write_bytes(pem_key(self.key))


class Authority:
    """A CA of its own, valid from yesterday for `days`."""

    def __init__(
        self, cn: str = "test CA", days: float = 30, not_after: datetime.datetime | None = None
    ) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after or now) - datetime.timedelta(days=10))
            .not_valid_after(not_after or now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        cn: str,
        *,
        days: float = 30,
        not_after: datetime.datetime | None = None,
        server: bool = False,
    ) -> Pair:
        """A pair for `cn` signed by this CA, ending `days` from now (or at `not_after`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, not_after or now) - datetime.timedelta(days=2))
            .not_valid_after(not_after or now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False
            )
        return Pair(builder.sign(self.key, hashes.SHA256()), key)

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(pem_cert(self.cert))
        return path


def handshake(client: ssl.SSLContext, ca: Authority, host: str = "broker.test") -> str | None:
    """Run a TLS handshake in memory: `client` against a server of `ca` that requires a client
    certificate of `ca`. The Common Name of the certificate the client presented, as the server
    saw it; ssl.SSLError when the handshake fails."""
    server_pair = ca.issue(host, server=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, cafile = Path(tmp, "s.pem"), Path(tmp, "s.key"), Path(tmp, "ca.pem")
        server_pair.write(cert, key)
        ca.write_ca(cafile)
        server.load_cert_chain(cert, key)
        server.load_verify_locations(cafile)
    server.verify_mode = ssl.CERT_REQUIRED
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, side, out, peer_in in (("c", c, c_out, s_in), ("s", s, s_out, c_in)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done.values()):
            break
    # Under TLS 1.3 the client is done before the server has judged its certificate (a real
    # client hears of a refusal on its first read); the server's side raised above if it refused.
    peer = s.getpeercert()
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for pair in rdn:
            if pair[0] == "commonName":
                return str(pair[1])
    return None

"""A broker's certificates, key and password, read from their files for every connection attempt.

Certificates are renewed in place: a new client certificate and key written to the same paths,
often with the old one revoked at the broker. A TLS context made once, when the link's client was
made, kept presenting the old certificate, and the broker refused it at every reconnect until
edged restarted (measured: 304 of 387 inputs lost in 60 s after a renewal and a SIGHUP). So the
link loads them anew for each attempt (`load_credentials`), and on SIGHUP compares their contents
(`files_digest`) with what its current connection was made from.

A pair that does not load is a `CredentialsError` naming the config key, the file and the
reason, found before anything is sent to the broker. The files are checked with `cryptography`
first, so the reason names the file at fault (OpenSSL's own says "PEM lib"), and an encrypted key
is refused rather than left to OpenSSL, which would ask for its passphrase on the terminal.

`expiry_warnings` is what `edged check` says about certificates that expire soon.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edged.config.model import BrokerConfig
from edged.errors import CredentialsError

if TYPE_CHECKING:
    from cryptography import x509

# cryptography is imported where a file is checked, not here: it costs ~9 MiB of RSS (the
# daemon's modules went from 2.5 to 12.9 MiB with it at the top), and a link without TLS
# files never needs it.

#: `edged check` warns about a certificate that expires within this many days
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one connection attempt presents: the password (from `password` or `password_file`)
    and the TLS context (None without `tls:`), with the digest of the files they came from."""

    password: str | None = field(repr=False)
    tls: ssl.SSLContext | None
    digest: str


def files(broker: BrokerConfig) -> Iterator[tuple[str, Path]]:
    """The broker's credential files, each with its key under the broker's config section."""
    tls = broker.tls
    if tls is not None:
        for key, path in (
            ("tls.ca_file", tls.ca_file),
            ("tls.cert_file", tls.cert_file),
            ("tls.key_file", tls.key_file),
        ):
            if path is not None:
                yield key, path
    if broker.password_file is not None:
        yield "password_file", broker.password_file


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialsError(key, path, exc.strerror or "cannot be read") from None


def files_digest(broker: BrokerConfig) -> str:
    """A digest of the contents of the broker's credential files: it changes when any of them
    does (a file that cannot be read counts with its error). Reading a few small files and
    hashing them costs microseconds, once per attempt or reload, and, unlike a file's mtime,
    does not take a file written again with the same bytes for a change."""
    h = hashlib.sha256()
    for key, path in files(broker):
        try:
            data = path.read_bytes()
        except OSError as exc:
            data = f"unreadable: {exc.strerror}".encode()
        h.update(f"{key}\0{path}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def password_text(data: bytes) -> str:
    """A password file's text without its one line ending, as config/load.py reads it."""
    text = data.decode("utf-8")
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _certificates(key: str, path: Path, data: bytes) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CredentialsError(key, path, "no PEM certificate in it")
    return certs


def _check_key(key: str, path: Path, data: bytes) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(data, password=None)
    except TypeError:
        raise CredentialsError(
            key, path, "the key is encrypted; edged needs it unencrypted (readable by edged only)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "not a PEM private key"
        raise CredentialsError(key, path, f"not a usable PEM private key: {reason}") from None


def load_credentials(broker: BrokerConfig) -> Credentials:
    """Read and check the broker's password file and TLS files, and build the TLS context
    (as paho's `tls_set` would: the given CA, else the system's; the certificate required and
    the host name checked). CredentialsError when any of them cannot be used."""
    digest = files_digest(broker)
    password = broker.password
    if broker.password_file is not None:
        data = _read("password_file", broker.password_file)
        try:
            password = password_text(data)
        except UnicodeDecodeError:  # never the text: it may be part of a password
            raise CredentialsError("password_file", broker.password_file, "not UTF-8") from None
    tls = broker.tls
    if tls is None:
        return Credentials(password, None, digest)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        _certificates("tls.ca_file", tls.ca_file, _read("tls.ca_file", tls.ca_file))
        try:
            context.load_verify_locations(cafile=str(tls.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise CredentialsError("tls.ca_file", tls.ca_file, str(exc)) from None
    else:
        context.load_default_certs()
    if tls.cert_file is not None and tls.key_file is not None:
        _certificates("tls.cert_file", tls.cert_file, _read("tls.cert_file", tls.cert_file))
        _check_key("tls.key_file", tls.key_file, _read("tls.key_file", tls.key_file))
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except ssl.SSLError as exc:
            reason = str(exc)
            if "KEY_VALUES_MISMATCH" in reason or "values mismatch" in reason:
                reason = f"the key does not match the certificate {tls.cert_file}"
            raise CredentialsError("tls.key_file", tls.key_file, reason) from None
        except OSError as exc:
            raise CredentialsError("tls.cert_file", tls.cert_file, str(exc)) from None
    return Credentials(password, context, digest)


def expiry_warnings(
    broker: BrokerConfig,
    section: str,
    now: datetime.datetime | None = None,
    days: int = EXPIRY_WARNING_DAYS,
) -> list[str]:
    """A line for each certificate in the broker's CA and client certificate files that has
    expired or expires within `days`, naming the key path (`section` is the broker's, such as
    `brokers.cloud`), the file and the date. Files that cannot be read are left to
    `load_credentials` to report."""
    now = now or datetime.datetime.now(datetime.UTC)
    tls = broker.tls
    if tls is None:
        return []
    from cryptography import x509

    out = []
    for key, path in (("tls.cert_file", tls.cert_file), ("tls.ca_file", tls.ca_file)):
        if path is None:
            continue
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError):
            continue
        for index, cert in enumerate(certs):
            ends = cert.not_valid_after_utc
            which = f"{path}" if len(certs) == 1 else f"{path} (certificate {index + 1})"
            subject = cert.subject.rfc4514_string() or "no subject"
            when = ends.strftime("%Y-%m-%d %H:%M UTC")
            if ends <= now:
                out.append(f"{section}.{key}: {which} ({subject}) expired on {when}")
            elif ends - now <= datetime.timedelta(days=days):
                hours = round((ends - now).total_seconds() / 3600)
                left = f"{hours} hours" if hours < 48 else f"{round(hours / 24)} days"
                out.append(f"{section}.{key}: {which} ({subject}) expires on {when}, in {left}")
    return out

"""`edged keygen`: an ed25519 key pair for signed deploys, and reading the private key back.

The private key (PKCS8 PEM, mode 0600) is for `edged module push --key`; the public key (base64
of its 32 raw bytes, one line) goes under each node's `deploy.trusted_keys`. A key is never
written over an existing file. cryptography is imported only here, when a key is made or read.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from edged.errors import EdgedError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keygen = commands.add_parser("keygen", help="make a key pair for signing module deploys")
    keygen.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PATH",
        help="the private key goes to PATH (mode 0600), the public key to PATH.pub",
    )
    keygen.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    return keygen(args.out, sys.stdout)


def keygen(out: Path, stdout: TextIO) -> int:
    """Write a new key pair to `out` and `out.pub`, never over an existing file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from edged.keys import key_id

    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists() or path.is_symlink():
            raise EdgedError(f"{path} already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    line = base64.b64encode(raw).decode()
    _write_new(out, pem, 0o600)
    try:
        _write_new(pub, (line + "\n").encode(), 0o644)
    except EdgedError:
        out.unlink()
        raise
    print(f"key id {key_id(key.public_key())}", file=stdout)
    print(f"private key: {out} (keep it secret; for `edged module push --key`)", file=stdout)
    print(f"public key:  {pub}", file=stdout)
    print("add this line under deploy.trusted_keys in each node's config:", file=stdout)
    print(f'    - "{line}"', file=stdout)
    return 0


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise EdgedError(f"{path} already exists; not overwriting a key") from None
    except OSError as exc:
        raise EdgedError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The key `edged keygen` wrote to `path`; EdgedError for anything else."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgedError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: encrypted, and no password given
        raise EdgedError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgedError(f"{path} is not an ed25519 key (make one with `edged keygen`)")
    return key

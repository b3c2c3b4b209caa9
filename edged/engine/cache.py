"""A directory of compiled filter modules, so a restart skips the compiler.

Deserialising compiled code trusts its bytes completely (it is machine code), so the cache only
uses a directory that we own and that nobody else can write, checks a digest of every artifact
before it is handed to the engine, and writes with temp file + rename so a crash never leaves a
half-written artifact under a real name.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_DIGEST = 32


class CompiledCache:
    """Compiled artifacts keyed by the module's bytes and everything that shapes the code."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self._fingerprint = fingerprint.encode()
        self.problem: str | None = None
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.stat()
        except OSError as exc:
            self.problem = f"cannot create {directory}: {exc.strerror}"
            return
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            self.problem = f"{directory} is writable by others; compiled code there is not trusted"

    @property
    def usable(self) -> bool:
        return self.problem is None

    def key(self, wasm: bytes) -> str:
        return hashlib.sha256(self._fingerprint + b"\0" + wasm).hexdigest()

    def get(self, key: str) -> bytes | None:
        """The artifact stored under `key`, or None when missing or damaged."""
        if not self.usable:
            return None
        try:
            blob = (self.directory / f"{key}.cwasm").read_bytes()
        except OSError:
            return None
        digest, artifact = blob[:_DIGEST], blob[_DIGEST:]
        if hashlib.sha256(artifact).digest() != digest:
            return None
        return artifact

    def put(self, key: str, artifact: bytes) -> None:
        if not self.usable:
            return
        final = self.directory / f"{key}.cwasm"
        temp = self.directory / f".{key}.{os.getpid()}.tmp"
        try:
            with open(temp, "wb") as fh:
                fh.write(hashlib.sha256(artifact).digest())
                fh.write(artifact)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, final)
        except OSError as exc:
            self.problem = f"cannot write {final}: {exc.strerror}"
            temp.unlink(missing_ok=True)

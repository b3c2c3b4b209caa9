"""The on-disk module store: content-addressed bytes and the active/previous version per module.

Every write is temp file → fsync → rename → fsync of the directory, so a power cut or a kill at
any instant leaves the old state or the new one, never half of either. Bytes are checked against
their digest on every read; a file that no longer matches is moved aside, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from edged.config.model import ParamValue

log = structlog.get_logger("edged.deploy")


@dataclass(frozen=True, kw_only=True, slots=True)
class Version:
    version: int
    digest: str
    params: dict[str, ParamValue] | None = None
    activated_at: float | None = None  # Unix time; probation outlives a restart
    capabilities: list[str] | None = None  # the WASI capabilities granted (its manifest's)


@dataclass(frozen=True, kw_only=True, slots=True)
class Active:
    current: Version
    previous: Version | None = None


def _without_none_capabilities(entry: dict[str, Any]) -> dict[str, Any]:
    """A version that asked for no capabilities is written as before capabilities existed."""
    for version in entry.values():
        if isinstance(version, dict) and version.get("capabilities") is None:
            version.pop("capabilities", None)
    return entry


def _fault(stage: str) -> None:
    """Die on the spot at `stage` when a test asks for it, to prove the writes are crash-safe."""
    if os.environ.get("EDGED_FAULT") == f"store:{stage}":
        os.kill(os.getpid(), signal.SIGKILL)


class ModuleStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._active_file = directory / "active.json"
        self._pending_file = directory / "pending.json"
        # A crash between writing a temp file and renaming it leaves the temp file behind.
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)

    # -- bytes ----------------------------------------------------------------------------

    def put(self, wasm: bytes) -> str:
        digest = hashlib.sha256(wasm).hexdigest()
        target = self.directory / f"{digest}.wasm"
        if not target.exists() or self.get(digest) is None:
            self._write(target, wasm)
        return digest

    def get(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, or None (missing, or damaged and moved aside)."""
        path = self.directory / f"{digest}.wasm"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            aside = path.with_suffix(".corrupt")
            os.replace(path, aside)
            log.error("module_store_corrupt", digest=digest, moved_to=str(aside))
            return None
        return data

    # -- which version is active ----------------------------------------------------------

    def active(self) -> dict[str, Active]:
        try:
            raw: dict[str, Any] = json.loads(self._active_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("module_store_unreadable", file=str(self._active_file), reason=str(exc))
            return {}
        out: dict[str, Active] = {}
        for name, entry in raw.items():
            try:
                previous = entry.get("previous")
                out[name] = Active(
                    current=Version(**entry["current"]),
                    previous=Version(**previous) if previous else None,
                )
            except (TypeError, KeyError, AttributeError):
                log.error("module_store_entry_unreadable", module=name)
        return out

    def set_active(self, name: str, entry: Active | None) -> None:
        table = self.active()
        if entry is None:
            table.pop(name, None)
        else:
            table[name] = entry
        body = {n: _without_none_capabilities(asdict(a)) for n, a in sorted(table.items())}
        self._write(self._active_file, json.dumps(body, indent=1).encode())

    # -- a deploy acknowledged but not yet carried out ------------------------------------

    def pending(self) -> dict[str, Any] | None:
        """The deploy recorded by `set_pending` and not yet cleared (None when there is none, or
        the record cannot be read: then it is logged)."""
        try:
            raw = json.loads(self._pending_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("module_store_unreadable", file=str(self._pending_file), reason=str(exc))
            return None
        return raw if isinstance(raw, dict) else None

    def set_pending(self, record: dict[str, Any] | None) -> None:
        """Record the one deploy under way (its manifest, the bytes being stored already), or
        clear it once it is carried out or refused.

        Clearing needs no fsync: a record that comes back after a power cut finds its version
        active (the ack says `already_active`) or is refused again, as the first time."""
        if record is not None:
            self._write(self._pending_file, json.dumps(record, sort_keys=True).encode())
            return
        self._pending_file.unlink(missing_ok=True)

    # -- the one way anything is written --------------------------------------------------

    def _write(self, target: Path, data: bytes) -> None:
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            _fault("after_temp_write")
            os.fsync(fh.fileno())
        os.replace(temp, target)
        _fault("after_rename")
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

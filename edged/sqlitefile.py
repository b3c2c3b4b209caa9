"""The one way edged opens an SQLite file it keeps in the state directory (the outboxes, the
filters' states): WAL mode with `synchronous=FULL` (a commit that returned is on disk), its own
schema and version, an integrity check, and a file SQLite cannot read moved aside rather than
trusted.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

from edged.errors import StateError

log = structlog.get_logger("edged.state")


def open_store(
    path: Path,
    schema: str,
    version: int,
    *,
    what: str,
    event: str,
    upgrades: Mapping[int, str] | None = None,
) -> sqlite3.Connection:
    """Open (or create) `path` with `schema` (CREATE TABLE IF NOT EXISTS ...) at `version`.

    A file that is not SQLite, fails the integrity check or has another schema version is moved
    aside as `<name>.corrupt-<unix time>` (with its -wal and -shm), logged as `event` with the
    reason, and created anew, except a file at a version `upgrades` names: that statement brings
    it to the next version, in place. `what` names the file in errors ("the outbox").
    StateError when the directory or the file cannot be made at all."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise StateError(f"the directory of {what}, {path.parent}, is not writable")
    try:
        return _connect(path, schema, version, upgrades or {})
    except sqlite3.DatabaseError as exc:
        if not path.exists():
            raise StateError(f"cannot create {what} {path}: {exc}") from None
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(path) + suffix)
            if source.exists():
                source.replace(Path(str(aside) + suffix))
        log.error(event, path=str(path), moved_to=str(aside), reason=str(exc))
        try:
            return _connect(path, schema, version, {})
        except sqlite3.DatabaseError as again:
            raise StateError(f"cannot create {what} {path}: {again}") from None


def _connect(
    path: Path, schema: str, version: int, upgrades: Mapping[int, str]
) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # A commit must be on disk when it returns: an outbox entry may stand in for an input
        # already acknowledged, a state for inputs that will not come again. NORMAL may lose
        # the last commits at a power cut.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        while found in upgrades and found != version:
            db.execute(upgrades[found])
            found += 1
            db.execute(f"PRAGMA user_version={found}")
        if found not in (0, version):
            raise sqlite3.DatabaseError(f"schema version {found}, expected {version}")
        db.execute(schema)
        db.execute(f"PRAGMA user_version={version}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
    except BaseException:
        db.close()
        raise
    return db

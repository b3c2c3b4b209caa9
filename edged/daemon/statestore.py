"""Filters' saved states on disk: one SQLite file in the state directory, one row per filter.

Written by checkpoints (`Daemon._checkpoint`): every `state.checkpoint_interval` for the filters
called since their last save whose state changed, and at a clean stop, a reload, a swap and a
rollback. WAL mode with `synchronous=FULL`, like the outbox: a checkpoint that returned is on
disk, and a kill -9 or a power cut leaves the last whole one. A file SQLite cannot read is moved
aside with the reason logged, and the filters start fresh: the daemon serves either way.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from edged.engine import SavedState
from edged.sqlitefile import open_store

log = structlog.get_logger("edged.state")

_SCHEMA = 1
_TABLE = (
    "CREATE TABLE IF NOT EXISTS filter_state ("
    " key TEXT PRIMARY KEY, module TEXT NOT NULL, digest TEXT NOT NULL,"
    " format INTEGER NOT NULL, data BLOB NOT NULL, saved REAL NOT NULL)"
)


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None  # the last write error, until a write succeeds
        self.write_errors = 0
        self.bytes_written = 0  # blob bytes committed (SQLite's own pages come on top)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        return open_store(
            self.path, _TABLE, _SCHEMA, what="the state store", event="state_store_corrupt"
        )

    def get(self, key: str) -> SavedState | None:
        try:
            row = self._db.execute(
                "SELECT format, data FROM filter_state WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            log.error("state_store_read_failed", path=str(self.path), reason=str(exc))
            return None
        return None if row is None else SavedState(int(row[0]), bytes(row[1]))

    def put(
        self, rows: Iterable[tuple[str, str, str, SavedState]], now: float | None = None
    ) -> bool:
        """Write `(key, module, digest, state)` rows in one transaction; False (counted and
        logged once per reason) when the disk refuses."""
        batch = [
            (key, module, digest, state.format, state.data, now or time.time())
            for key, module, digest, state in rows
        ]
        if not batch:
            return True
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO filter_state VALUES (?, ?, ?, ?, ?, ?)", batch
                )
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.write_errors += 1
            problem = f"cannot write the state store {self.path}: {exc}"
            if problem != self.problem:
                log.error("state_store_write_failed", path=str(self.path), reason=str(exc))
            self.problem = problem
            return False
        self.problem = None
        self.bytes_written += sum(len(row[4]) for row in batch)
        return True

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

"""The outbox: outgoing publishes that cannot reach the broker now, kept on disk until they do.

One SQLite file per broker link under the state directory, in WAL mode with `synchronous=FULL`:
a transaction that returned is on disk, so an input whose output is stored here may be
acknowledged, and neither kill -9 nor a power cut loses a stored entry or leaves a half-written
one (SQLite's journal takes care of that; nothing here has a checksum of its own). An entry is
deleted only once the broker acknowledged it after a replay.

SD cards wear out, so the outbox is written only while publishes cannot be delivered: nothing is
written while the broker is connected and acknowledges in time.

Bounded by bytes (`max_bytes`) and age (`max_age`); when full, `drop_oldest` deletes the oldest
entries to make room, `drop_newest` refuses what arrives, `block` refuses it too and tells the
daemon to stop reading until there is room. Every entry the bounds force out is counted.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from edged.config.model import Overload
from edged.sqlitefile import open_store

log = structlog.get_logger("edged.outbox")


#: what one stored entry costs beyond its topic and payload: the row's other columns and the
#: b-tree's own bookkeeping, rounded up (measured: ~26 bytes a row in a 10,000-row file)
ENTRY_OVERHEAD = 32
_SCHEMA = 2
_TABLE = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " topic TEXT NOT NULL, payload BLOB NOT NULL,"
    " qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
    " created REAL NOT NULL, size INTEGER NOT NULL,"
    " properties BLOB NOT NULL DEFAULT x'')"
)
#: version 1 (before MQTT 5 properties were kept) gains their column, its entries none
_UPGRADES = {1: "ALTER TABLE outbox ADD COLUMN properties BLOB NOT NULL DEFAULT x''"}
# sequence numbers per statement: well below SQLite's 32,766 host parameters
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored publish; `seq` orders them (oldest first) and names one for deletion."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float  # Unix seconds
    properties: bytes = b""  # MQTT 5, as `Properties.wire` writes them


@dataclass(slots=True)
class OutboxCounters:
    stored: int = 0  # entries written
    replayed: int = 0  # entries the broker acknowledged after a replay (and then deleted)
    expired: int = 0  # entries older than max_age, deleted unsent
    dropped_oldest: int = 0  # deleted to make room (drop_oldest)
    dropped_newest: int = 0  # refused for want of room (drop_newest, block)
    write_errors: int = 0  # writes the disk refused (full, read-only, I/O error)
    unstored: int = 0  # entries those writes could not store


def entry_size(topic: str, payload: bytes, properties: bytes = b"") -> int:
    return len(topic.encode()) + len(payload) + len(properties) + ENTRY_OVERHEAD


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age: float | None = None,
        when_full: Overload = "drop_oldest",
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.when_full = when_full
        self.counters = OutboxCounters()
        self.problem: str | None = None  # the last write error, until a write succeeds again
        self._db = self._open()
        count, size, oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0), min(created) FROM outbox"
        ).fetchone()
        self.entries: int = count
        self.bytes: int = size
        self._oldest: float | None = oldest
        if count:
            log.info("outbox_restored", path=str(path), entries=count, bytes=size)

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the file; one that SQLite cannot read is moved aside, not trusted."""
        return open_store(
            self.path,
            _TABLE,
            _SCHEMA,
            what="the outbox",
            event="outbox_corrupt",
            upgrades=_UPGRADES,
        )

    # -- writing ---------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def put(
        self,
        items: Sequence[tuple[str, bytes, int, bool] | tuple[str, bytes, int, bool, bytes]],
        now: float | None = None,
        *,
        sent_through: int = 0,
    ) -> int:
        """Store `items` (topic, payload, qos, retain[, properties]) in one transaction, in
        order.

        Returns how many were stored: the first ones that fit. Under `drop_oldest` older entries
        are deleted to make room instead, except those up to `sent_through`, already sent in a
        replay and awaiting the broker's acknowledgement (dropping them would count as lost what
        still arrives); an item larger than the whole bound is never stored. A disk that refuses
        the write stores none (counted, and kept in `problem`).
        """
        if not items:
            return 0
        created = time.time() if now is None else now
        rows: list[tuple[str, bytes, int, int, float, int, bytes]] = []
        room = self.max_bytes - self.bytes
        need = 0
        for item in items:
            topic, payload, qos, retain = item[:4]
            props = item[4] if len(item) > 4 else b""
            size = entry_size(topic, payload, props)
            if size > self.max_bytes or (self.when_full != "drop_oldest" and need + size > room):
                break
            rows.append((topic, payload, qos, int(retain), created, size, props))
            need += size
        try:
            with self._transaction() as db:
                evicted, freed = 0, 0
                if need > room:  # drop_oldest: delete the oldest until the new ones fit
                    evicted, freed = self._evict(db, need - room, sent_through)
                    while rows and need > room + freed:  # the rest is on its way: no room
                        need -= rows.pop()[5]
                db.executemany(
                    "INSERT INTO outbox (topic, payload, qos, retain, created, size, properties)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            # Nothing stored: the caller decides what becomes of them (BrokerLink holds the
            # outputs inputs wait for and counts the rest as `unstored`).
            self._failed(exc)
            return 0
        self.problem = None
        refused = len(items) - len(rows)
        if evicted:
            self.counters.dropped_oldest += evicted
            log.warning("outbox_full", dropped="oldest", entries=evicted, bytes=freed)
            self._oldest = self._min_created()
        if refused:
            self.counters.dropped_newest += refused
            log.warning("outbox_full", dropped="newest", entries=refused, policy=self.when_full)
        self.counters.stored += len(rows)
        self.entries += len(rows) - evicted
        self.bytes += need - freed
        if rows and self._oldest is None:
            self._oldest = created
        return len(rows)

    def _evict(self, db: sqlite3.Connection, at_least: int, after: int) -> tuple[int, int]:
        """Delete the oldest entries past `after` until `at_least` bytes are free: (entries,
        bytes)."""
        seqs: list[int] = []
        freed = 0
        rows = db.execute("SELECT seq, size FROM outbox WHERE seq > ? ORDER BY seq", (after,))
        for seq, size in rows:
            if freed >= at_least:
                break
            seqs.append(seq)
            freed += size
        db.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s in seqs))
        return len(seqs), freed

    def delete(self, seqs: Iterable[int]) -> bool:
        """Forget entries the broker acknowledged after their replay; False when the disk
        refused (they are still here)."""
        wanted = sorted(set(seqs))
        if not wanted:
            return True
        gone, size = 0, 0
        try:
            with self._transaction() as db:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    count, freed = db.execute(
                        "SELECT count(*), coalesce(sum(size), 0) FROM outbox"
                        f" WHERE seq IN ({marks})",
                        chunk,
                    ).fetchone()
                    db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)
                    gone, size = gone + count, size + freed
        except sqlite3.Error as exc:
            self._failed(exc)  # they stay; the caller keeps them out of the replays
            return False
        self.problem = None
        self.counters.replayed += gone
        self.entries -= gone
        self.bytes -= size
        self._oldest = self._min_created() if self.entries else None
        return True

    def expire(self, now: float | None = None) -> int:
        """Delete the entries older than `max_age`; how many went."""
        if self.max_age is None or self._oldest is None:
            return 0
        now = time.time() if now is None else now
        cutoff = now - self.max_age
        if self._oldest > cutoff:
            return 0
        try:
            with self._transaction() as db:
                count, size = db.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM outbox WHERE created <= ?",
                    (cutoff,),
                ).fetchone()
                db.execute("DELETE FROM outbox WHERE created <= ?", (cutoff,))
        except sqlite3.Error as exc:
            self._failed(exc)
            return 0
        if count:
            log.warning("outbox_expired", entries=count, bytes=size, max_age_s=self.max_age)
        self.counters.expired += count
        self.entries -= count
        self.bytes -= size
        self._oldest = self._min_created() if self.entries else None
        return int(count)

    # -- reading ---------------------------------------------------------------------------

    def oldest(self, limit: int, after: int = 0) -> list[Entry]:
        """Up to `limit` entries with a sequence number above `after`, oldest first."""
        rows = self._db.execute(
            "SELECT seq, topic, payload, qos, retain, created, properties FROM outbox"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Entry(s, t, bytes(p), q, bool(r), c, bytes(pr)) for s, t, p, q, r, c, pr in rows]

    def oldest_age(self, now: float | None = None) -> float | None:
        if self._oldest is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self._oldest)

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        age = self.oldest_age(now)
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "oldest_age_s": None if age is None else round(age, 1),
            "stored": self.counters.stored,
            "replayed": self.counters.replayed,
            "expired": self.counters.expired,
            "dropped_oldest": self.counters.dropped_oldest,
            "dropped_newest": self.counters.dropped_newest,
            "write_errors": self.counters.write_errors,
            "unstored": self.counters.unstored,
        }

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- the rest --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _min_created(self) -> float | None:
        value = self._db.execute("SELECT min(created) FROM outbox").fetchone()[0]
        return None if value is None else float(value)

    def _failed(self, exc: sqlite3.Error) -> None:
        self.counters.write_errors += 1
        problem = f"cannot write the outbox {self.path}: {exc}"
        if problem != self.problem:
            log.error("outbox_write_failed", path=str(self.path), reason=str(exc))
        self.problem = problem

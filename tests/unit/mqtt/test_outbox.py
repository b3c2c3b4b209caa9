"""The outbox on real SQLite files: order, bounds, expiry, crashes and broken files."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edged.errors import StateError
from edged.mqtt.outbox import ENTRY_OVERHEAD, Outbox, entry_size


def items(n: int, start: int = 0, size: int = 10) -> list[tuple[str, bytes, int, bool]]:
    return [(f"out/{i:04d}", b"x" * size, 1, False) for i in range(start, start + n)]


def test_entries_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    """What was stored is there after the process opens the file again, oldest first."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 20)
    assert outbox.put(items(3)) == 3
    assert outbox.put([("retained/t", b"r", 2, True)]) == 1
    outbox.close()
    again = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 20)
    got = again.oldest(10)
    assert [(e.topic, e.qos, e.retain) for e in got] == [
        ("out/0000", 1, False),
        ("out/0001", 1, False),
        ("out/0002", 1, False),
        ("retained/t", 2, True),
    ]
    assert again.entries == 4
    assert again.bytes == sum(entry_size(e.topic, e.payload) for e in got)
    assert [e.topic for e in again.oldest(10, after=got[1].seq)] == ["out/0002", "retained/t"]


def test_deleted_entries_count_as_replayed(tmp_path: Path) -> None:
    """Entries the broker acknowledged go, and their bytes with them."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 20)
    outbox.put(items(5))
    first = outbox.oldest(3)
    outbox.delete(e.seq for e in first)
    outbox.delete([first[0].seq])  # acknowledged twice: counted once
    assert outbox.counters.replayed == 3
    assert [e.topic for e in outbox.oldest(10)] == ["out/0003", "out/0004"]
    assert outbox.entries == 2 and outbox.bytes == 2 * entry_size("out/0003", b"x" * 10)


def test_drop_oldest_makes_exactly_the_room_needed(tmp_path: Path) -> None:
    """At the bound, the oldest entries go, as few as fit the new ones, each one counted."""
    one = entry_size("out/0000", b"x" * 10)
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10 * one, when_full="drop_oldest")
    assert outbox.put(items(10)) == 10
    with capture_logs() as logs:
        assert outbox.put(items(3, start=10)) == 3
    assert outbox.counters.dropped_oldest == 3
    assert [e.topic for e in outbox.oldest(20)] == [f"out/{i:04d}" for i in range(3, 13)]
    assert outbox.bytes == 10 * one
    assert [e["event"] for e in logs] == ["outbox_full"]


@pytest.mark.parametrize("policy", ["drop_newest", "block"])
def test_drop_newest_and_block_refuse_what_does_not_fit(tmp_path: Path, policy: str) -> None:
    """What arrives when there is no room is refused and counted; what is stored stays."""
    one = entry_size("out/0000", b"x" * 10)
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10 * one, when_full=policy)  # type: ignore[arg-type]
    assert outbox.put(items(8)) == 8
    assert outbox.put(items(5, start=8)) == 2
    assert outbox.full
    assert outbox.counters.dropped_newest == 3
    assert [e.topic for e in outbox.oldest(20)] == [f"out/{i:04d}" for i in range(10)]


def test_an_entry_larger_than_the_bound_is_never_stored(tmp_path: Path) -> None:
    """It could never fit: refused, counted, and nothing older is deleted for it."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1000, when_full="drop_oldest")
    outbox.put(items(2))
    assert outbox.put([("big", b"x" * 1000, 1, False)]) == 0
    assert outbox.counters.dropped_newest == 1 and outbox.entries == 2


def test_entries_past_max_age_expire(tmp_path: Path) -> None:
    """Only what is older than max_age goes; the age of the oldest entry follows."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 20, max_age=60)
    outbox.put(items(2), now=1000.0)
    outbox.put(items(1, start=2), now=1050.0)
    assert outbox.oldest_age(now=1070.0) == 70.0
    assert outbox.expire(now=1070.0) == 2
    assert outbox.counters.expired == 2
    assert [e.topic for e in outbox.oldest(10)] == ["out/0002"]
    assert outbox.oldest_age(now=1070.0) == 20.0
    assert outbox.expire(now=1070.0) == 0


def test_a_full_disk_is_counted_not_raised(tmp_path: Path) -> None:
    """A write the disk refuses stores nothing, is counted and logged once; what was stored
    before stays, and writing works again once there is room. What becomes of the refused
    entries is the link's to decide (and count): none is `unstored` here."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 30)
    outbox.put(items(2))
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count={pages}")  # the file cannot grow: SQLITE_FULL
    with capture_logs() as logs:
        assert outbox.put(items(2000, size=1000)) == 0
        assert outbox.put(items(2000, size=1000)) == 0
    assert outbox.counters.write_errors == 2
    assert outbox.counters.unstored == 0
    assert [e["event"] for e in logs] == ["outbox_write_failed"]
    assert outbox.problem is not None and "full" in outbox.problem
    assert outbox.entries == 2 and len(outbox.oldest(10)) == 2
    outbox._db.execute("PRAGMA max_page_count=1073741823")
    assert outbox.put(items(1, start=2)) == 1 and outbox.problem is None


def test_kill_during_writes_leaves_every_committed_entry(tmp_path: Path) -> None:
    """kill -9 in the middle of a stream of transactions: the file opens, passes SQLite's
    integrity check, and holds whole transactions only, in order."""
    path = tmp_path / "o.sqlite3"
    writer = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from edged.mqtt.outbox import Outbox
        outbox = Outbox(Path({str(path)!r}), max_bytes=1 << 30)
        batch = 0
        while True:
            outbox.put([(f"b{{batch}}/{{i}}", b"p" * 200, 1, False) for i in range(50)])
            batch += 1
            if batch == 20:
                print("going", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"going\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    outbox = Outbox(path, max_bytes=1 << 30)
    topics = [e.topic for e in outbox.oldest(10**6)]
    assert len(topics) % 50 == 0 and len(topics) >= 1000  # whole batches only
    batches = len(topics) // 50
    assert topics == [f"b{b}/{i}" for b in range(batches) for i in range(50)]
    assert outbox._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_corrupt_file_is_moved_aside_and_a_fresh_one_used(tmp_path: Path) -> None:
    """A file SQLite cannot read is never trusted nor deleted: it is kept beside, and said."""
    path = tmp_path / "o.sqlite3"
    Outbox(path, max_bytes=1 << 20).put(items(3))
    data = bytearray(path.read_bytes())
    data[0:100] = b"\xff" * 100  # the header is gone
    path.write_bytes(bytes(data))
    (tmp_path / "o.sqlite3-wal").unlink(missing_ok=True)
    with capture_logs() as logs:
        outbox = Outbox(path, max_bytes=1 << 20)
    assert outbox.entries == 0 and outbox.put(items(1)) == 1
    (event,) = [e for e in logs if e["event"] == "outbox_corrupt"]
    assert Path(event["moved_to"]).read_bytes()[:100] == b"\xff" * 100


def test_an_unusable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A state directory that cannot be created names the path, at start."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StateError, match="not-a-dir"):
        Outbox(blocker / "outbox.sqlite3", max_bytes=1 << 20)


def test_entry_overhead_is_what_the_file_spends(tmp_path: Path) -> None:
    """The size the bound counts per entry is no less than what SQLite spends beyond the
    topic and payload (measured on 10,000 rows, after a checkpoint)."""
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, max_bytes=1 << 30)
    empty = path.stat().st_size
    outbox.put(items(10_000, size=64))
    outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    per_row = (path.stat().st_size - empty) / 10_000 - len("out/0000") - 64
    assert per_row <= ENTRY_OVERHEAD + 8  # within a page's rounding
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 10_000


def test_a_deletion_the_disk_refuses_says_so_and_keeps_the_entries(tmp_path: Path) -> None:
    """Deleting needs room too (the WAL): refused, the entries stay, `delete` says False, and
    a later deletion goes through."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 30)
    outbox.put(items(3))
    seqs = [e.seq for e in outbox.oldest(3)]
    outbox._db.execute("PRAGMA query_only=1")  # every write refused, as on a read-only disk
    assert outbox.delete(seqs[:2]) is False
    assert outbox.entries == 3 and outbox.problem is not None
    outbox._db.execute("PRAGMA query_only=0")
    assert outbox.delete(seqs[:2]) is True
    assert [e.seq for e in outbox.oldest(3)] == seqs[2:] and outbox.problem is None


def test_properties_are_kept_with_their_entry(tmp_path: Path) -> None:
    """An output's MQTT 5 properties come back with it after a restart (and count towards
    its size)."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 20)
    wire = b"\x03\x00\x10application/json"
    assert outbox.put([("a", b"1", 1, False, wire), ("b", b"2", 1, False)]) == 2
    assert outbox.bytes == entry_size("a", b"1", wire) + entry_size("b", b"2")
    outbox.close()
    got = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 20).oldest(10)
    assert [(e.topic, e.properties) for e in got] == [("a", wire), ("b", b"")]


def test_an_outbox_from_before_properties_is_upgraded_in_place(tmp_path: Path) -> None:
    """A version-1 file (no properties column) keeps its entries: they replay without
    properties, and new ones keep theirs."""
    path = tmp_path / "outbox.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
        " created REAL NOT NULL, size INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO outbox VALUES (1, 'old', x'01', 1, 0, 1.0, 34)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    outbox = Outbox(path, max_bytes=1 << 20)
    assert outbox.put([("new", b"2", 1, False, b"\x09\x00\x01z")]) == 1
    got = outbox.oldest(10)
    assert [(e.topic, e.payload, e.properties) for e in got] == [
        ("old", b"\x01", b""),
        ("new", b"2", b"\x09\x00\x01z"),
    ]
    assert not list(tmp_path.glob("*.corrupt-*"))

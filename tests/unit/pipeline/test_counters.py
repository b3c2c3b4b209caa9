"""Pipeline counters and the once-per-burst warning."""

from __future__ import annotations

from edged.pipeline.counters import BurstWarning, PipelineCounters


def test_burst_logs_its_first_event_and_counts_the_rest() -> None:
    """Of a burst of events within the interval only the first is logged; the rest are counted
    and handed, once, to the next warning after the interval."""
    warning = BurstWarning(interval=10.0)
    assert warning.should_log(100.0)
    assert [warning.should_log(100.0 + t) for t in (0.0, 1.0, 9.99)] == [False] * 3
    assert warning.suppressed == 3
    assert warning.should_log(110.0)
    assert warning.take_suppressed() == 3
    assert warning.take_suppressed() == 0


def test_burst_interval_starts_at_the_last_logged_event() -> None:
    """The quiet interval runs from the event that was logged, not from the suppressed ones."""
    warning = BurstWarning(interval=5.0)
    assert warning.should_log(1.0)
    assert not warning.should_log(5.9)
    assert warning.should_log(6.0)
    assert not warning.should_log(10.9)
    assert warning.should_log(11.0)
    assert warning.take_suppressed() == 2


def test_the_first_event_ever_is_logged() -> None:
    """However early the clock reads, the very first event is logged, with nothing suppressed."""
    warning = BurstWarning()
    assert warning.should_log(0.0)
    assert warning.take_suppressed() == 0


def test_events_further_apart_than_the_interval_are_all_logged() -> None:
    """A slow trickle of events is never suppressed."""
    warning = BurstWarning(interval=1.0)
    assert all(warning.should_log(float(t)) for t in range(0, 20, 2))
    assert warning.suppressed == 0


def test_counter_snapshot_shape() -> None:
    """The snapshot names the counters as the metrics show them, reasons sorted by name."""
    counters = PipelineCounters()
    assert counters.snapshot() == {"in": 0, "out": 0, "filtered": 0, "dropped": {}}
    counters.received = 7
    counters.published = 3
    counters.filtered = 1
    counters.dropped["trap"] += 2
    counters.dropped["fuel"] += 1
    snap = counters.snapshot()
    assert snap == {"in": 7, "out": 3, "filtered": 1, "dropped": {"fuel": 1, "trap": 2}}
    dropped = snap["dropped"]
    assert isinstance(dropped, dict)
    assert list(dropped) == ["fuel", "trap"]


def test_counter_snapshot_is_a_copy() -> None:
    """A snapshot taken for publishing does not change as the counters go on."""
    counters = PipelineCounters()
    counters.dropped["trap"] += 1
    snap = counters.snapshot()
    counters.dropped["trap"] += 1
    assert snap["dropped"] == {"trap": 1}

"""The violation policy: when a filter is quarantined, when it comes back, and the dead letter."""

from __future__ import annotations

import base64
import time

from edged.pipeline.violations import Guard, ViolationPolicy, dead_letter_record

POLICY = ViolationPolicy(quarantine_after=3, window=10.0, cooldown=60.0)


def test_k_violations_within_the_window_quarantine() -> None:
    """The third violation within 10 s is the one that starts the quarantine."""
    guard = Guard()
    assert not guard.record("trap", 100.0, POLICY)
    assert not guard.record("fuel", 101.0, POLICY)
    assert guard.record("trap", 109.9, POLICY)
    assert guard.out
    assert guard.reason == "trap"
    assert guard.quarantines == 1
    assert guard.counts == {"trap": 2, "fuel": 1}


def test_violations_spread_wider_than_the_window_do_not_quarantine() -> None:
    """Violations more than the window apart never add up to a quarantine."""
    guard = Guard()
    for n in range(10):
        assert not guard.record("trap", 100.0 + 5.0 * n, POLICY)
    assert not guard.out
    assert guard.counts["trap"] == 10


def test_a_violation_exactly_one_window_old_no_longer_counts() -> None:
    """The window is open at its old end: one at t=0 and two at t=10 are not three within 10 s."""
    guard = Guard()
    guard.record("trap", 0.0, POLICY)
    guard.record("trap", 5.0, POLICY)
    assert not guard.record("trap", 10.0, POLICY)
    assert guard.record("trap", 10.5, POLICY)


def test_input_too_large_never_quarantines() -> None:
    """Messages too large for the filter are counted but are not the filter's fault."""
    guard = Guard()
    for n in range(50):
        assert not guard.record("input_too_large", 100.0 + n / 100, POLICY)
    assert not guard.out
    assert guard.counts == {"input_too_large": 50}
    # nor do they fill the window for the real violations that follow
    assert not guard.record("trap", 101.0, POLICY)
    assert not guard.record("trap", 101.0, POLICY)
    assert guard.record("trap", 101.0, POLICY)


def test_violations_during_quarantine_are_counted_but_do_not_extend_it() -> None:
    """While out, violations are still counted, but no second quarantine starts and the
    cool-down is not pushed back."""
    guard = Guard()
    for _ in range(3):
        guard.record("trap", 100.0, POLICY)
    until = guard.until
    for _ in range(5):
        assert not guard.record("fuel", 120.0, POLICY)
    assert (guard.until, guard.quarantines, guard.reason) == (until, 1, "trap")
    assert guard.counts == {"trap": 3, "fuel": 5}


def test_release_after_the_cooldown() -> None:
    """A quarantine lasts the cool-down; after release the filter needs K fresh violations."""
    guard = Guard()
    for _ in range(3):
        guard.record("trap", 100.0, POLICY)
    assert not guard.due_for_release(159.9)
    assert guard.due_for_release(160.0)
    guard.release()
    assert not guard.out
    assert guard.reason == ""
    assert not guard.due_for_release(1000.0)
    assert not guard.record("trap", 161.0, POLICY)  # the old violations are forgotten
    assert not guard.record("trap", 161.0, POLICY)
    assert guard.record("trap", 161.0, POLICY)
    assert guard.quarantines == 2
    assert guard.counts["trap"] == 6


def test_dead_letter_record_with_a_text_payload() -> None:
    """A UTF-8 payload is in the record as text, with the pipeline, module, reason and detail."""
    before = int(time.time() * 1000)
    record = dead_letter_record(
        "temps",
        "threshold",
        "trap",
        "wasm trap: unreachable",
        b"room/1",
        '{"t": "21 °C"}'.encode(),
    )
    after = int(time.time() * 1000)
    ts = record.pop("ts")
    assert isinstance(ts, int)
    assert before <= ts <= after
    assert record == {
        "pipeline": "temps",
        "module": "threshold",
        "reason": "trap",
        "detail": "wasm trap: unreachable",
        "topic": "room/1",
        "payload": '{"t": "21 °C"}',
    }


def test_dead_letter_record_with_a_binary_payload() -> None:
    """A payload that is not UTF-8 is carried as base64, byte for byte, and not as text."""
    payload = bytes(range(256))
    record = dead_letter_record("p", "m", "fuel", "out of fuel", b"t", payload)
    assert "payload" not in record
    assert base64.b64decode(str(record["payload_b64"])) == payload


def test_dead_letter_record_of_an_empty_payload_is_text() -> None:
    """An empty payload (a tick's violation) is the empty text."""
    record = dead_letter_record("p", "m", "trap", "x", b"", b"")
    assert (record["topic"], record["payload"]) == ("", "")

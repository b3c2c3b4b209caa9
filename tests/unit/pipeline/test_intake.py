"""The intake queue: what each overload policy does at its bound, and what it counts."""

from __future__ import annotations

import pytest

from edged.config.model import Overload
from edged.pipeline.intake import Intake


def filled(size: int, overload: Overload) -> Intake[int]:
    """An intake of `size` holding 0 .. size-1."""
    intake: Intake[int] = Intake(size, overload)
    for item in range(size):
        assert intake.put(item) == (True, None)
    assert intake.full
    return intake


@pytest.mark.parametrize("overload", ["drop_oldest", "drop_newest", "block"])
def test_below_the_bound_every_policy_takes_without_evicting(overload: Overload) -> None:
    """Until the queue is full, each policy takes every item in order and evicts nothing."""
    intake = filled(3, overload)
    assert list(intake.items) == [0, 1, 2]
    snap = intake.snapshot()
    assert (snap["dropped_oldest"], snap["dropped_newest"], snap["refused"]) == (0, 0, 0)


def test_drop_oldest_evicts_and_returns_the_oldest() -> None:
    """drop_oldest at the bound takes the new item and hands back the one it pushed out."""
    intake = filled(3, "drop_oldest")
    assert intake.put(3) == (True, 0)
    assert intake.put(4) == (True, 1)
    assert list(intake.items) == [2, 3, 4]
    assert intake.dropped_oldest == 2
    assert intake.dropped_newest == 0


def test_drop_newest_refuses_the_arriving_item() -> None:
    """drop_newest at the bound refuses the new item and keeps the queue as it was."""
    intake = filled(3, "drop_newest")
    assert intake.put(3) == (False, None)
    assert intake.put(4) == (False, None)
    assert list(intake.items) == [0, 1, 2]
    assert intake.dropped_newest == 2
    assert intake.dropped_oldest == 0


def test_block_takes_an_item_offered_at_the_bound() -> None:
    """block never loses an item offered past the bound: it is taken, nothing is evicted."""
    intake = filled(2, "block")
    assert intake.put(2) == (True, None)
    assert list(intake.items) == [0, 1, 2]
    assert intake.high_water == 3
    snap = intake.snapshot()
    assert (snap["dropped_oldest"], snap["dropped_newest"], snap["refused"]) == (0, 0, 0)


def test_high_water_is_the_deepest_the_queue_has_been() -> None:
    """high_water keeps the largest depth seen, after the queue has been drained again."""
    intake: Intake[str] = Intake(10, "drop_oldest")
    for item in "abcd":
        intake.put(item)
    for _ in range(3):
        intake.items.popleft()
    intake.put("e")
    assert intake.snapshot()["depth"] == 2
    assert intake.high_water == 4


def test_a_closed_intake_refuses_and_counts_but_keeps_what_it_holds() -> None:
    """After close every offer is refused and counted; what was queued can still be taken."""
    intake: Intake[str] = Intake(5, "drop_oldest")
    intake.put("kept")
    intake.close()
    assert intake.put("late") == (False, None)
    assert intake.put("later") == (False, None)
    assert intake.refused == 2
    assert intake.items.popleft() == "kept"
    assert not intake.items


def test_a_closed_full_intake_refuses_rather_than_evicting() -> None:
    """Closing wins over drop_oldest: a late item never pushes out a queued one."""
    intake = filled(2, "drop_oldest")
    intake.close()
    assert intake.put(9) == (False, None)
    assert list(intake.items) == [0, 1]
    assert (intake.refused, intake.dropped_oldest) == (1, 0)


def test_snapshot_shape() -> None:
    """The snapshot (metrics, `edged stats`) shows the settings and every counter."""
    intake = filled(2, "drop_newest")
    intake.put(2)
    assert intake.snapshot() == {
        "size": 2,
        "overload": "drop_newest",
        "depth": 2,
        "high_water": 2,
        "dropped_oldest": 0,
        "dropped_newest": 1,
        "refused": 0,
    }

"""Carrying a filter over, one rule for every way a filter is replaced (docs/state.md).

- **The same filter** (the same module bytes, parameters, budgets and tick interval) in a new
  config: a reload keeps its `Step` whole, the instance with its memory, call figures,
  violation record, quarantine and tick phase. Nothing is saved or loaded.
- **Anything else** (a hot swap, a rollback, the end of a quarantine, a filter whose parameters
  or budgets changed, a restart) makes a new instance and hands it the state explicitly: the
  old instance's state saved now, or the last good one, loaded into the new instance with the
  format it was saved in (`resume`). A module that refuses it, or a load that fails, leaves the
  filter fresh; that is counted and logged with the module, the format and the reason. A module
  without state exports is simply fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from edged.engine import Filter, SavedState
from edged.errors import FilterCallError

log = structlog.get_logger("edged.state")


@dataclass(slots=True)
class StateRecord:
    """One filter's state as the host knows it: the last good save, and its figures."""

    saved: SavedState | None = None  # the last state saved without a violation
    calls_at_save: int = -1  # the instance's call count then (-1: never saved)
    checkpoints: int = 0  # saves written to the state store
    checkpoint_at: float | None = None  # Unix seconds of the last one written
    written: SavedState | None = None  # what the store holds for this filter
    loads_refused: int = 0  # states a new instance refused (it started fresh)
    violations: int = 0  # saves and loads that broke the ABI or the budget, or trapped

    @property
    def bytes(self) -> int:
        return 0 if self.saved is None else len(self.saved.data)

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        """The figures for the metrics record and `edged stats`."""
        at = self.checkpoint_at
        return {
            "bytes": self.bytes,
            "checkpoints": self.checkpoints,
            "checkpoint_age_s": None if at is None else round((now or time.time()) - at, 1),
            "loads_refused": self.loads_refused,
            "violations": self.violations,
        }

    def changed_since_save(self, filter_: Filter) -> bool:
        """The instance was called since its state was last saved."""
        return filter_.stats.calls != self.calls_at_save


def save(filter_: Filter, record: StateRecord, *, pipeline: str, module: str) -> SavedState | None:
    """The filter's state now, kept in `record` as the last good one; when the save fails (a
    violation, counted and logged) the last good one. None without state exports."""
    if not filter_.has_state:
        return None
    try:
        state = filter_.save_state()
    except FilterCallError as exc:
        record.violations += 1
        log.warning(
            "state_save_failed",
            pipeline=pipeline,
            module=module,
            reason=exc.reason,
            detail=exc.detail,
            keeping="the last good state" if record.saved is not None else "no state",
        )
        return record.saved
    record.saved = state
    record.calls_at_save = filter_.stats.calls
    return state


def resume(
    fresh: Callable[[], Filter],
    states: Iterable[SavedState | None],
    record: StateRecord,
    *,
    pipeline: str,
    module: str,
    why: str,
    instance: Filter | None = None,
) -> Filter:
    """A new instance that took the first of `states` it accepts, or a fresh one when it takes
    none: `instance` if given (just made, never called), else one from `fresh`. Raises
    ModuleError when `fresh` fails."""
    if instance is None:
        instance = fresh()
    if not instance.has_state:
        return instance
    for state in states:
        if state is None:
            continue
        try:
            instance.load_state(state)
        except FilterCallError as exc:
            if exc.reason == "state_refused":
                record.loads_refused += 1
            else:
                record.violations += 1
            log.warning(
                "state_load_refused",
                pipeline=pipeline,
                module=module,
                format=state.format,
                bytes=len(state.data),
                reason=exc.reason,
                detail=exc.detail,
                during=why,
            )
            instance = fresh()  # whatever the refused load left behind goes with the old one
            continue
        record.saved = state
        record.calls_at_save = instance.stats.calls
        log.info(
            "state_loaded",
            pipeline=pipeline,
            module=module,
            format=state.format,
            bytes=len(state.data),
            during=why,
        )
        return instance
    return instance

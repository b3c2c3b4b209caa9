"""What is wrong with a running daemon, in one place: `/readyz` and the retained status both say
it from `problems()`.

`/readyz` answers 503 with every problem but a replay (a link replaying its outbox serves); the
retained status on every broker says `degraded` for the problems of `DEGRADING`, with their
reasons in one line. Both read the daemon through `DaemonView`: what the loop keeps, never
locked (a problem may be one loop round old).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edged.mqtt.link import BrokerLink
    from edged.pipeline import Pipeline

#: the problems the retained status says `degraded` for
DEGRADING = frozenset({"broker_down", "replaying", "outbox_write_failing"})


class DaemonView(Protocol):
    """What the health answers read of the daemon."""

    @property
    def links(self) -> Sequence[BrokerLink]: ...
    @property
    def pipelines(self) -> Sequence[Pipeline]: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def loop_at(self) -> float: ...
    def catching_up(self, index: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    broker: str | None = None
    pipeline: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"reason": self.reason}
        for key in ("broker", "pipeline", "detail"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def text(self, several: bool) -> str:
        """The problem in the retained status's `reason` line."""
        if self.reason == "broker_down":
            return f"{self.broker} unreachable"
        what = {"replaying": self.detail, "outbox_write_failing": "outbox write failing"}.get(
            self.reason, self.reason
        )
        return f"{self.broker}: {what}" if several and self.broker else str(what)


def problems(
    daemon: DaemonView, *, outbox_fill: float | None = None, alive_within: float | None = None
) -> list[Problem]:
    """Every problem, links first in config order; `outbox_fill` (a fraction of max_bytes)
    and `alive_within` (seconds) add the checks only `/readyz` makes."""
    found: list[Problem] = []
    if alive_within is not None:
        since = max(0.0, time.monotonic() - daemon.loop_at)
        if since > alive_within:
            detail = f"the loop last came round {since:.1f} s ago"
            found.append(Problem("loop_stalled", detail=detail))
    if daemon.stopping:
        found.append(Problem("stopping"))
    for index, link in enumerate(daemon.links):
        if not link.connected:
            detail = link.down or "not connected yet"
            found.append(Problem("broker_down", link.name, detail=detail))
        elif not link.ready:
            found.append(Problem("subscriptions_pending", link.name))
        box = link.outbox
        failing = link.write_failing
        if failing is not None:
            found.append(Problem("outbox_write_failing", link.name, detail=failing))
        if box is None:
            continue
        if daemon.catching_up(index):
            found.append(
                Problem("replaying", link.name, detail=f"replaying {box.entries} outbox entries")
            )
        if outbox_fill is not None and box.bytes > outbox_fill * box.max_bytes:
            detail = f"{box.bytes} of {box.max_bytes} bytes ({box.entries} entries)"
            found.append(Problem("outbox_filling", link.name, detail=detail))
    for pipeline in daemon.pipelines:
        steps = pipeline.steps
        if steps and all(step.guard.out for step in steps):
            found.append(Problem("all_filters_quarantined", pipeline=pipeline.name))
    return found


def readiness(daemon: DaemonView, outbox_fill: float, alive_within: float) -> list[dict[str, str]]:
    """Why the daemon is not ready (`/readyz`), one dict per reason; empty when it is."""
    return [
        p.as_dict()
        for p in problems(daemon, outbox_fill=outbox_fill, alive_within=alive_within)
        if p.reason != "replaying"
    ]


def status(daemon: DaemonView) -> tuple[str, str | None, list[str]]:
    """The retained status's state, reason and the links down: `("online", None, [])` or
    `("degraded", "cloud unreachable; ...", ["cloud"])`."""
    # A link still making its first attempt is not said to be down: only one that failed.
    failed = {link.name for link in daemon.links if link.down is not None}
    degrading = [
        p
        for p in problems(daemon)
        if p.reason in DEGRADING and (p.reason != "broker_down" or p.broker in failed)
    ]
    degrading.sort(key=lambda p: p.reason != "broker_down")  # stable: links in config order
    down = [p.broker for p in degrading if p.reason == "broker_down" and p.broker is not None]
    if not degrading:
        return "online", None, down
    several = len(daemon.links) > 1
    return "degraded", "; ".join(p.text(several) for p in degrading), down

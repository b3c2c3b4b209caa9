"""The bounded queue between reading the broker and running the filters, with an overload policy.

The daemon reads everything the broker has sent into this queue, then runs the filters on a
time slice of it, then reads again; so a slow filter makes the queue fill here, where every drop
is counted, instead of somewhere out of sight. It holds at most `size` messages; when full,
`drop_oldest` discards the oldest, `drop_newest` the arriving one, and `block` makes the daemon
stop reading until there is room (the broker then holds the messages).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from edged.config.model import Overload

Item = TypeVar("Item")


class Intake(Generic[Item]):
    def __init__(self, size: int, overload: Overload) -> None:
        self.size = size
        self.overload = overload
        self.items: deque[Item] = deque()
        self.closed = False
        self.dropped_oldest = 0
        self.dropped_newest = 0
        self.refused = 0
        self.high_water = 0

    def put(self, item: Item) -> tuple[bool, Item | None]:
        """Offer one item: `(taken, evicted)`; `evicted` is a queued item dropped to make room.

        Under `block` the reader reads only as many packets as there is room for; an item
        offered anyway (it cannot happen through the daemon) is taken rather than lost.
        """
        if self.closed:
            self.refused += 1
            return False, None
        items = self.items
        evicted: Item | None = None
        if len(items) >= self.size:
            if self.overload == "drop_newest":
                self.dropped_newest += 1
                return False, None
            if self.overload == "drop_oldest":
                evicted = items.popleft()
                self.dropped_oldest += 1
        items.append(item)
        if len(items) > self.high_water:
            self.high_water = len(items)
        return True, evicted

    @property
    def full(self) -> bool:
        return len(self.items) >= self.size

    def close(self) -> None:
        """Refuse everything from now on (shutdown); what is queued can still be taken."""
        self.closed = True

    def snapshot(self) -> dict[str, object]:
        return {
            "size": self.size,
            "overload": self.overload,
            "depth": len(self.items),
            "high_water": self.high_water,
            "dropped_oldest": self.dropped_oldest,
            "dropped_newest": self.dropped_newest,
            "refused": self.refused,
        }

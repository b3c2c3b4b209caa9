"""The bounded queue between the network thread and the filters, with an explicit overload policy.

The network thread must never wait on a filter (it would stop answering the broker), and the
queue must never grow without bound on a 512 MiB gateway. So it holds at most `size` messages;
when full, `drop_oldest` discards the oldest, `drop_newest` the arriving one, and `block` makes the
network thread wait for room (the broker then holds the messages). Every drop is counted.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Literal, TypeVar

Item = TypeVar("Item")
Overload = Literal["drop_oldest", "drop_newest", "block"]


class Intake(Generic[Item]):
    def __init__(self, size: int, overload: Overload) -> None:
        self.size = size
        self.overload = overload
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._consumer_waiting = False
        self._closed = False
        self.dropped_oldest = 0
        self.dropped_newest = 0
        self.refused = 0
        self.high_water = 0

    def put(self, item: Item) -> tuple[bool, Item | None]:
        """Offer one item: `(taken, evicted)`; `evicted` is a queued item dropped to make room."""
        with self._lock:
            if self._closed:
                self.refused += 1
                return False, None
            evicted: Item | None = None
            items = self._items
            if len(items) >= self.size:
                if self.overload == "drop_newest":
                    self.dropped_newest += 1
                    return False, None
                if self.overload == "drop_oldest":
                    evicted = items.popleft()
                    self.dropped_oldest += 1
                else:
                    while len(items) >= self.size and not self._closed:
                        self._room.wait(0.5)
                    if self._closed:
                        self.refused += 1
                        return False, None
            items.append(item)
            if len(items) > self.high_water:
                self.high_water = len(items)
            if self._consumer_waiting:
                self._arrived.notify()
            return True, evicted

    def take_all(self, timeout: float) -> list[Item]:
        """Everything queued, waiting up to `timeout` seconds for the first item."""
        with self._lock:
            if not self._items and timeout > 0:
                self._consumer_waiting = True
                self._arrived.wait(timeout)
                self._consumer_waiting = False
            batch = list(self._items)
            self._items.clear()
            if batch and self.overload == "block":
                self._room.notify_all()
            return batch

    def close(self) -> None:
        """Refuse everything from now on (shutdown); what is queued can still be taken."""
        with self._lock:
            self._closed = True
            self._room.notify_all()

    @property
    def depth(self) -> int:
        return len(self._items)

    def snapshot(self) -> dict[str, object]:
        return {
            "size": self.size,
            "overload": self.overload,
            "depth": len(self._items),
            "high_water": self.high_water,
            "dropped_oldest": self.dropped_oldest,
            "dropped_newest": self.dropped_newest,
            "refused": self.refused,
        }

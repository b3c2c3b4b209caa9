"""What the delivery tests share: a numbered stream of QoS 1 inputs, and counting what came out.

Every payload is `{"seq": n}`, so what is missing, repeated or out of order is counted exactly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable

from tests.helpers.mqtt import Client


class Stream(threading.Thread):
    """Publishes `count` QoS 1 messages `{"seq": n}` at `rate` per second (0: as fast as it
    can) to `topic` (or `topic(n)`), through `client`; give it a persistent client that keeps
    what the broker has not acknowledged and sends it again after reconnecting, so that every
    message reaches the broker whatever it goes through. One publisher: each topic's order at
    the broker is seq order."""

    def __init__(
        self,
        client: Client,
        topic: str | Callable[[int], str],
        count: int,
        rate: float,
        pad: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.topic = topic if callable(topic) else (lambda _seq, fixed=topic: fixed)
        self.count, self.rate = count, rate
        self.pad = "x" * pad  # a `pad` field of this many bytes in each payload, for size
        self.published = 0

    def run(self) -> None:
        started = time.monotonic()
        for seq in range(self.count):
            if self.rate:
                delay = started + seq / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            body = {"seq": seq, "pad": self.pad} if self.pad else {"seq": seq}
            self.client.paho.publish(self.topic(seq), json.dumps(body), qos=1)
            self.published += 1

    def finish(self, timeout: float = 120.0) -> None:
        """Wait until every message was published and acknowledged by the broker."""
        self.join(timeout)
        deadline = time.monotonic() + timeout
        while self.client.paho._out_messages and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.close()


def received(
    client: Client, want: int, timeout: float, before: list[int] | None = None
) -> list[int]:
    """Every sequence number that arrives until all of 0..want-1 have (counting those already
    in `before`), or the time is up."""
    got: list[int] = []
    seen: set[int] = set(before or ())
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        for _, payload in client.quiet(0.2):
            seq = json.loads(payload)["seq"]
            got.append(seq)
            seen.add(seq)
    return got + [json.loads(p)["seq"] for _, p in client.quiet(0.5)]


def loss_and_repeats(got: list[int], want: int) -> tuple[list[int], int]:
    counts = Counter(got)
    missing = [seq for seq in range(want) if seq not in counts]
    return missing, sum(n - 1 for n in counts.values())


def first_arrivals(got: list[int]) -> list[int]:
    seen: dict[int, None] = {}
    for seq in got:
        seen.setdefault(seq)
    return list(seen)


def out_of_order(got: list[int], reference: list[int] | None = None) -> list[tuple[int, int]]:
    """Where a number arrived for the first time after one that came later in `reference`
    (the order the inputs reached the broker; by default, counting order): (earlier, number).

    A publisher may itself reorder around a reconnect (paho sends a new message before the
    ones it still had to send again), so order is judged against what the broker received."""
    rank = {seq: i for i, seq in enumerate(reference)} if reference is not None else {}
    highest, highest_seq = -1, -1
    breaks = []
    for seq in first_arrivals(got):
        at = rank.get(seq, seq)
        if at < highest:
            breaks.append((highest_seq, seq))
        elif at > highest:
            highest, highest_seq = at, seq
    return breaks

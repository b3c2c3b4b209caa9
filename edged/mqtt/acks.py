"""Acknowledging inputs only once their outputs are safe, in the order the inputs came.

A QoS 1/2 input is acknowledged (PUBACK, or PUBCOMP for QoS 2) only when every output it
produced has been acknowledged by the broker, or stored in the outbox; an input that produced
none is acknowledged at once. MQTT requires acknowledgements in the order the PUBLISHes arrived
(MQTT 3.1.1 §4.6, MQTT 5 §4.6), so an input whose outputs are safe still waits for every earlier
input: the window below is that queue.

Until its acknowledgement is sent the broker owns the input: after a crash, a restart or a lost
connection it sends it again (the session is persistent), and the filters make its outputs
again. That is what makes delivery at least once without writing anything in normal operation.

With several brokers the order is per connection: each source link (`Message.source`) has its
own queue, and an input from one broker may wait for outputs on another. Output ids are unique
across the links (each link adds its own base to paho's message ids, see `BrokerLink`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence

#: sends one acknowledgement: `(source, mid, qos)`
Acker = Callable[[int, int, int], None]

_tokens = itertools.count(-1, -1)


def next_token() -> int:
    """A stand-in output id for something an input waits for that is not a publish awaiting
    the broker (an outbox commit, a deploy's compile): negative, so never a real message id."""
    return next(_tokens)


class _Held:
    """One input waiting for its outputs (or for an earlier input)."""

    __slots__ = ("mid", "pending", "qos", "seq", "source")

    def __init__(self, mid: int, qos: int, pending: int, source: int, seq: int) -> None:
        self.mid = mid
        self.qos = qos
        self.pending = pending
        self.source = source
        self.seq = seq  # the window's count of held inputs when it came: for `passed`


class AckWindow:
    """The received QoS 1/2 inputs not yet acknowledged, in arrival order per source link.

    Per message the common cases cost a few operations: an input with no outstanding output
    and nothing ahead of it is acknowledged on the spot without entering the window.
    """

    def __init__(self, ack: Acker, sources: int = 1) -> None:
        self._ack = ack
        self._held: list[deque[_Held]] = [deque() for _ in range(sources)]
        # output id -> the input it was made for
        self._by_output: dict[int, _Held] = {}
        # stand-in ids done before their input was finished (a deploy request refused at once,
        # an outbox commit forced by a lost connection mid-input): not to be waited for
        self._early: set[int] = set()
        self.acked = 0
        self._seq = 0  # inputs held so far
        self._forgotten = 0  # `forget` calls that dropped inputs

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._held)

    def waiting(self, source: int) -> int:
        """Inputs of one source link not yet acknowledged (0 for a link it does not know: a
        scrape may look while a reload swaps links and window)."""
        return len(self._held[source]) if source < len(self._held) else 0

    @property
    def outputs(self) -> int:
        """Outputs in flight that an input waits for."""
        return len(self._by_output)

    def finished(self, mid: int, qos: int, output_ids: Sequence[int] = (), source: int = 0) -> None:
        """The input `mid` from link `source` went through the filters; `output_ids` are its
        QoS 1/2 outputs still waiting for a broker's acknowledgement (or the outbox)."""
        if self._early:
            done = self._early.intersection(output_ids)
            self._early -= done
            output_ids = [o for o in output_ids if o not in done]
        queue = self._held[source]
        if not output_ids and not queue:
            self._ack(source, mid, qos)
            self.acked += 1
            return
        outputs = tuple(output_ids)
        self._seq += 1
        held = _Held(mid, qos, len(outputs), source, self._seq)
        for out in outputs:
            self._by_output[out] = held
        queue.append(held)
        if not outputs:
            self._release(queue)

    def mark(self) -> tuple[int, int]:
        """This moment, for `passed`: every input finished so far is before it."""
        return self._seq, self._forgotten

    def passed(self, mark: tuple[int, int]) -> bool:
        """Every input finished before `mark` is acknowledged; the inputs finished since may
        still wait. False once a connection was forgotten since: its inputs never will be."""
        seq, forgotten = mark
        if forgotten != self._forgotten:
            return False
        return all(not queue or queue[0].seq > seq for queue in self._held)

    def output_done(self, out_id: int) -> bool:
        """Output `out_id` was acknowledged by its broker (or is safe in the outbox); False when
        no input waits for it."""
        held = self._by_output.pop(out_id, None)
        if held is None:
            if out_id < 0:
                self._early.add(out_id)
            return False
        held.pending -= 1
        if not held.pending:
            queue = self._held[held.source]
            if queue and held is queue[0]:
                self._release(queue)
        return True

    def rename(self, out_id: int, new_id: int) -> bool:
        """The input waiting for output `out_id` waits for `new_id` instead (an output handed
        from a gone connection, whose message id will be reused, to the outbox's commit);
        False when no input waits for it."""
        held = self._by_output.pop(out_id, None)
        if held is None:
            return False
        self._by_output[new_id] = held
        return True

    def source_of(self, out_id: int) -> int | None:
        """The source link of the unacknowledged input output `out_id` was made for, or None
        when no input waits for it."""
        held = self._by_output.get(out_id)
        return None if held is None else held.source

    def _release(self, queue: deque[_Held]) -> None:
        ack = self._ack
        while queue and not queue[0].pending:
            first = queue.popleft()
            ack(first.source, first.mid, first.qos)
            self.acked += 1

    def forget(self, source: int = 0) -> int:
        """Link `source`'s connection is gone: its inputs can no longer be acknowledged (its
        broker sends them again after the reconnect). Returns how many inputs were waiting."""
        queue = self._held[source]
        count = len(queue)
        if count:
            self._forgotten += 1
            queue.clear()
            for out in [o for o, held in self._by_output.items() if held.source == source]:
                del self._by_output[out]
        return count

"""Acknowledging inputs only once their outputs are safe, in the order the inputs came.

A QoS 1/2 input is acknowledged (PUBACK, or PUBCOMP for QoS 2) only when every output it
produced has been acknowledged by the broker, or stored in the outbox; an input that produced
none is acknowledged at once. MQTT requires acknowledgements in the order the PUBLISHes arrived
(MQTT 3.1.1 §4.6, MQTT 5 §4.6), so an input whose outputs are safe still waits for every earlier
input: the window below is that queue.

Until its acknowledgement is sent the broker owns the input: after a crash, a restart or a lost
connection it sends it again (the session is persistent), and the filters make its outputs
again. That is what makes delivery at least once without writing anything in normal operation.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence

#: sends one acknowledgement: `(mid, qos)`
Acker = Callable[[int, int], None]

_tokens = itertools.count(-1, -1)


def next_token() -> int:
    """A stand-in output id for something an input waits for that is not a publish awaiting
    the broker (an outbox commit, a deploy's compile): negative, so never a real message id."""
    return next(_tokens)


class _Held:
    """One input waiting for its outputs (or for an earlier input)."""

    __slots__ = ("mid", "pending", "qos")

    def __init__(self, mid: int, qos: int, pending: int) -> None:
        self.mid = mid
        self.qos = qos
        self.pending = pending


class AckWindow:
    """The received QoS 1/2 inputs not yet acknowledged, in arrival order.

    Per message the common cases cost a few operations: an input with no outstanding output
    and nothing ahead of it is acknowledged on the spot without entering the window.
    """

    def __init__(self, ack: Acker) -> None:
        self._ack = ack
        self._held: deque[_Held] = deque()
        # outgoing mid -> the input it was made for
        self._by_output: dict[int, _Held] = {}
        # stand-in ids done before their input was finished (a deploy request refused at once,
        # an outbox commit forced by a lost connection mid-input): not to be waited for
        self._early: set[int] = set()
        self.acked = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def outputs(self) -> int:
        """Outputs in flight that an input waits for."""
        return len(self._by_output)

    def finished(self, mid: int, qos: int, output_mids: Sequence[int] = ()) -> None:
        """The input `mid` went through the filters; `output_mids` are its QoS 1/2 outputs
        still waiting for the broker's acknowledgement."""
        if self._early:
            done = self._early.intersection(output_mids)
            self._early -= done
            output_mids = [o for o in output_mids if o not in done]
        if not output_mids and not self._held:
            self._ack(mid, qos)
            self.acked += 1
            return
        outputs = tuple(output_mids)
        held = _Held(mid, qos, len(outputs))
        for out in outputs:
            self._by_output[out] = held
        self._held.append(held)
        if not outputs:
            self._release()

    def output_done(self, out_mid: int) -> bool:
        """The broker acknowledged output `out_mid` (or it is safe in the outbox); False when no
        input waits for it."""
        held = self._by_output.pop(out_mid, None)
        if held is None:
            if out_mid < 0:
                self._early.add(out_mid)
            return False
        held.pending -= 1
        if not held.pending and held is self._held[0]:
            self._release()
        return True

    def backed(self, out_mid: int) -> bool:
        """Whether an unacknowledged input stands behind output `out_mid`."""
        return out_mid in self._by_output

    def _release(self) -> None:
        held = self._held
        ack = self._ack
        while held and not held[0].pending:
            first = held.popleft()
            ack(first.mid, first.qos)
            self.acked += 1

    def forget(self) -> int:
        """The connection is gone: its inputs can no longer be acknowledged (the broker sends
        them again after the reconnect). Returns how many inputs were waiting."""
        count = len(self._held)
        self._held.clear()
        self._by_output.clear()
        return count

"""Inputs are acknowledged once their outputs are safe, and always in the order they came."""

from __future__ import annotations

from edged.mqtt.acks import AckWindow, next_token


def window() -> tuple[AckWindow, list[tuple[int, int]]]:
    sent: list[tuple[int, int]] = []
    return AckWindow(lambda _source, mid, qos: sent.append((mid, qos))), sent


def test_an_input_without_outputs_is_acknowledged_at_once() -> None:
    """A filter that dropped the message: nothing to wait for, nothing held."""
    acks, sent = window()
    acks.finished(1, 1)
    acks.finished(2, 2)
    assert sent == [(1, 1), (2, 2)] and len(acks) == 0


def test_an_input_waits_for_every_output() -> None:
    """Two outputs: the input's ack goes only after the second one's."""
    acks, sent = window()
    acks.finished(7, 1, [100, 101])
    assert acks.output_done(101) and sent == []
    assert acks.output_done(100)
    assert sent == [(7, 1)] and acks.outputs == 0


def test_acks_keep_arrival_order_even_when_outputs_finish_out_of_order() -> None:
    """Input 2's output is acknowledged first, but input 1 came first: both wait for input 1,
    and a later input with no outputs waits behind them too."""
    acks, sent = window()
    acks.finished(1, 1, [10])
    acks.finished(2, 1, [20])
    acks.finished(3, 1)
    assert acks.output_done(20)
    assert sent == [] and len(acks) == 3
    assert acks.output_done(10)
    assert sent == [(1, 1), (2, 1), (3, 1)] and len(acks) == 0


def test_unknown_outputs_are_not_an_inputs_and_forget_drops_the_rest() -> None:
    """An output no input waits for (a tick's) is told apart; after a lost connection the held
    inputs are forgotten, not acknowledged on the new connection."""
    acks, sent = window()
    acks.finished(1, 1, [10])
    assert acks.source_of(10) == 0 and acks.source_of(11) is None
    assert not acks.output_done(11)
    assert acks.forget() == 1
    assert not acks.output_done(10)
    assert sent == [] and len(acks) == 0
    acks.finished(2, 1)
    assert sent == [(2, 1)]


def test_a_stand_in_done_before_its_input_finished_is_not_waited_for() -> None:
    """An outbox commit forced in the middle of an input (the connection dropped) releases a
    stand-in id before the input is finished: the input is not held for it forever."""
    acks, sent = window()
    token = next_token()
    assert not acks.output_done(token)
    acks.finished(1, 1, [token])
    assert sent == [(1, 1)] and len(acks) == 0
    other = next_token()
    acks.finished(2, 1, [other])
    assert sent == [(1, 1)]
    assert acks.output_done(other) and sent == [(1, 1), (2, 1)]


def test_each_source_link_keeps_its_own_order() -> None:
    """Inputs from two brokers are acknowledged each on its own connection, in that
    connection's order: a local input waiting for a slow cloud output holds back only later
    local inputs, never those of the other broker."""
    sent: list[tuple[int, int, int]] = []
    acks = AckWindow(lambda source, mid, qos: sent.append((source, mid, qos)), sources=2)
    acks.finished(1, 1, [70000], source=0)  # waits for an output on the second link
    acks.finished(2, 1, source=0)  # behind it
    acks.finished(5, 1, source=1)  # the other link: nothing ahead of it
    assert sent == [(1, 5, 1)]
    assert acks.waiting(0) == 2 and acks.waiting(1) == 0
    acks.output_done(70000)
    assert sent == [(1, 5, 1), (0, 1, 1), (0, 2, 1)]


def test_forgetting_one_link_keeps_the_other_links_inputs() -> None:
    """A lost connection forgets only its own inputs (its broker resends them); an input of
    another link still waits for its outputs and is acknowledged when they are done."""
    sent: list[tuple[int, int, int]] = []
    acks = AckWindow(lambda source, mid, qos: sent.append((source, mid, qos)), sources=2)
    acks.finished(1, 1, [10], source=0)
    acks.finished(2, 1, [65546], source=1)
    assert acks.forget(1) == 1
    assert acks.source_of(65546) is None and acks.source_of(10) == 0
    assert not acks.output_done(65546)
    acks.output_done(10)
    assert sent == [(0, 1, 1)]


def test_a_mark_is_passed_once_every_input_before_it_is_acknowledged() -> None:
    """A checkpoint waits only for the inputs applied before it: later inputs still waiting do
    not hold it, an earlier one does."""
    acks, sent = window()
    acks.finished(1, 1, [10])
    mark = acks.mark()
    acks.finished(2, 1, [20])
    assert not acks.passed(mark)
    assert acks.output_done(10)
    assert sent == [(1, 1)] and len(acks) == 1
    assert acks.passed(mark)  # input 2 still waits: it came after the mark


def test_a_mark_is_never_passed_after_a_connection_is_forgotten() -> None:
    """Inputs forgotten with their connection are never acknowledged: their broker sends them
    again, so a checkpoint holding their effect must not be written."""
    acks, _ = window()
    acks.finished(1, 1, [10])
    mark = acks.mark()
    assert acks.forget() == 1 and len(acks) == 0
    assert not acks.passed(mark)

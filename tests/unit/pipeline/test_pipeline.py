"""A pipeline of real Wasm filters: what is published, dead-lettered, counted and logged.

The filters are the example modules and the inline WAT modules of `wat_filters`; the publisher
records what it is given. Quarantines start on the real clock (K violations in a burst), and
`release_due` is given a time past the cool-down.
"""

from __future__ import annotations

import functools
import json
import struct
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Literal

import pytest
from structlog.testing import capture_logs

from edged.config import OutputRule
from edged.engine import Filter
from edged.mqtt.properties import Properties, from_wire
from edged.pipeline import Pipeline, Step
from edged.pipeline.outputs import OutputRules
from edged.pipeline.violations import ViolationPolicy
from tests.helpers.paths import MODULES
from tests.unit.pipeline.wat_filters import (
    DOUBLE,
    DROP,
    FORWARD,
    JUDGE,
    POISONABLE,
    REJECTOR,
    SMALL_INPUT,
    TICK_TRAP,
    TICKER,
    TRAP,
    Outbox,
    example,
    inline,
    load,
    start,
)

POLICY = ViolationPolicy(quarantine_after=3, window=10.0, cooldown=60.0)
EVERYTHING = (OutputRule(match="#", topic="out/{topic}", qos=1, retain=False),)


class Rig:
    """A pipeline with its publisher, dead letters and change notifications on record."""

    def __init__(
        self,
        steps: Sequence[Step | tuple[str, Filter]],
        *,
        rules: Sequence[OutputRule] = EVERYTHING,
        accept: bool = True,
        on_quarantine: Literal["drop", "skip"] = "drop",
    ) -> None:
        self.outbox = Outbox(accept=accept)
        self.letters: list[dict[str, object]] = []
        self.changes = 0
        self.pipeline = Pipeline(
            "p1",
            [s if isinstance(s, Step) else Step(s[0], s[1]) for s in steps],
            OutputRules(rules, node_id="gw-1", pipeline="p1"),
            self.outbox,
            policy=POLICY,
            on_quarantine=on_quarantine,
            dead_letter=self.letters.append,
            on_change=self._changed,
        )

    def _changed(self) -> None:
        self.changes += 1

    def send(self, *payloads: bytes, topic: bytes = b"in/t") -> None:
        for payload in payloads:
            self.pipeline.process(topic, payload)

    @property
    def counts(self) -> dict[str, object]:
        return self.pipeline.counters.snapshot()

    def accounted(self) -> int:
        """Every fate a received message can have, added up."""
        c = self.pipeline.counters
        return c.published + c.filtered + sum(c.dropped.values())


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The captured log entries of one event."""
    return [entry for entry in logs if entry["event"] == name]


def reading(value: float) -> bytes:
    return json.dumps({"value": value}).encode()


def renewing(wat_name: str, wat: str) -> Step:
    """A step whose quarantine ends with a fresh instance of the inline module."""
    module = load(wat_name, wat)
    return Step(wat_name, start(module), renew=functools.partial(start, module))


def quarantine(rig: Rig, payload: bytes = b"t") -> None:
    """Make the first filter of `rig` break K times (it must trap on `payload`)."""
    rig.send(*[payload] * POLICY.quarantine_after)
    assert rig.pipeline.steps[0].guard.out


# -- messages through the chain ---------------------------------------------------------------


def test_a_forwarded_message_is_published_by_its_output_rule() -> None:
    """One filter that forwards: the message goes out on the rule's topic, QoS and retain."""
    rules = (OutputRule(match="in/#", topic="{node_id}/{pipeline}/{topic}", qos=2, retain=True),)
    rig = Rig([("fwd", inline("fwd", FORWARD))], rules=rules)
    rig.send(b"21.5")
    assert rig.outbox.sent == [("gw-1/p1/in/t", b"21.5", 2, True)]
    assert rig.counts == {"in": 1, "out": 1, "filtered": 0, "dropped": {}}


def test_chain_of_example_filters() -> None:
    """deadband then threshold: a reading goes on only when it moved and is over the limit;
    everything else counts as filtered, not as an error."""
    rig = Rig(
        [
            ("deadband", start(example("deadband"), {"deadband": 1})),
            ("threshold", start(example("threshold"), {"limit": 30})),
        ]
    )
    for value in (20.0, 20.5, 35.0, 35.5, 29.0, 40.0):
        rig.send(reading(value), topic=b"boiler")
    alerts = [json.loads(p) for p in rig.outbox.payloads]
    assert rig.outbox.topics == ["out/alert", "out/alert"]
    assert [a["value"] for a in alerts] == [35.0, 40.0]
    assert alerts[0]["topic"] == "boiler"
    assert rig.counts == {"in": 6, "out": 2, "filtered": 4, "dropped": {}}
    assert [s.filter.stats.calls for s in rig.pipeline.steps] == [6, 4]


def test_each_emitted_message_goes_through_the_rest_of_the_chain() -> None:
    """A filter that emits two messages hands both to the next filter: one message in, two
    out; and each copy is judged on its own."""
    rig = Rig([("double", inline("double", DOUBLE)), ("judge", inline("judge", JUDGE))])
    rig.send(b"ok", b"drop")
    assert rig.outbox.payloads == [b"ok", b"ok"]
    assert rig.counts == {"in": 2, "out": 2, "filtered": 1, "dropped": {}}
    assert rig.pipeline.steps[1].filter.stats.calls == 4


def test_counters_add_up() -> None:
    """Over a mixed stream every received message is published, filtered or dropped under
    exactly one reason."""
    rules = (OutputRule(match="in/#", topic="out/{topic}", qos=0, retain=False),)
    rig = Rig([("fwd", inline("fwd", FORWARD)), ("judge", inline("judge", JUDGE))], rules=rules)
    rig.send(b"ok", b"drop", b"ok", b"trap", b"drop", b"ok")
    rig.send(b"ok", b"drop", topic=b"elsewhere/x")  # no rule for this topic
    assert rig.counts == {
        "in": 8,
        "out": 3,
        "filtered": 3,
        "dropped": {"no_output_rule": 1, "trap": 1},
    }
    assert rig.accounted() == rig.pipeline.counters.received


def test_a_dropping_filter_counts_filtered() -> None:
    """A filter's own decision to drop is `filtered`, never a violation."""
    rig = Rig([("drop", inline("drop", DROP))])
    rig.send(b"a", b"b")
    assert rig.counts == {"in": 2, "out": 0, "filtered": 2, "dropped": {}}
    assert rig.letters == []


def test_debug_logs_every_message() -> None:
    """With debug on, each message is logged with its topic, size and how many came out."""
    rig = Rig([("double", inline("double", DOUBLE))])
    rig.pipeline.debug = True
    with capture_logs() as logs:
        rig.send(b"abc")
    (event,) = events(logs, "message")
    assert (event["pipeline"], event["topic"], event["size"], event["emitted"]) == (
        "p1",
        "in/t",
        3,
        2,
    )
    rig.pipeline.debug = False
    with capture_logs() as logs:
        rig.send(b"abc")
    assert events(logs, "message") == []


def test_snapshot_has_the_counters_and_each_filters_figures() -> None:
    """The snapshot (metrics, `edged stats`) has the pipeline's counters and, per filter in
    chain order, its calls, fuel, latency percentiles, violations and quarantine state."""
    rig = Rig([("fwd", inline("fwd", FORWARD)), ("judge", inline("judge", JUDGE))])
    rig.send(b"ok", b"drop", b"trap")
    snap = rig.pipeline.snapshot()
    filters = snap.pop("filters")
    assert snap == {"in": 3, "out": 1, "filtered": 1, "dropped": {"trap": 1}}
    assert isinstance(filters, list)
    assert [(f["module"], f["calls"], f["violations"]) for f in filters] == [
        ("fwd", 3, {}),
        ("judge", 3, {"trap": 1}),
    ]
    for figures in filters:
        assert figures["fuel_used"] > 0
        assert 0 < figures["latency_us"]["p50"] <= figures["latency_us"]["p99"]
        assert (figures["quarantined"], figures["quarantines"]) == (False, 0)


def test_a_pipeline_needs_a_filter() -> None:
    """A pipeline without filters is refused when it is built."""
    with pytest.raises(ValueError, match="at least one filter"):
        Pipeline("p", [], OutputRules(EVERYTHING, node_id="n", pipeline="p"), Outbox())


# -- outputs and the publisher ----------------------------------------------------------------


def test_no_output_rule_is_counted_and_logged_once_per_burst() -> None:
    """Messages no output rule matches are dropped as no_output_rule; a burst logs once."""
    rules = (OutputRule(match="alerts/#", topic="out/{topic}", qos=0, retain=False),)
    rig = Rig([("fwd", inline("fwd", FORWARD))], rules=rules)
    with capture_logs() as logs:
        rig.send(b"1", b"2", b"3", topic=b"readings/r1")
    assert rig.outbox.sent == []
    assert rig.counts["dropped"] == {"no_output_rule": 3}
    (warning,) = events(logs, "no_output_rule")
    assert (warning["log_level"], warning["pipeline"], warning["topic"]) == (
        "warning",
        "p1",
        "readings/r1",
    )
    assert warning["suppressed"] == 0


def test_a_publisher_that_refuses_counts_publish_failed() -> None:
    """When the publisher does not take a message (link down, queue full) it is publish_failed."""
    rig = Rig([("fwd", inline("fwd", FORWARD))], accept=False)
    rig.send(b"1", b"2")
    assert rig.counts == {"in": 2, "out": 0, "filtered": 0, "dropped": {"publish_failed": 2}}
    assert rig.accounted() == 2


# -- violations -------------------------------------------------------------------------------


def test_a_trapping_filter_is_dead_lettered_counted_and_logged() -> None:
    """A trap drops that message, sends it to the dead letter and logs filter_failed once per
    burst; the next message is served."""
    rig = Rig([("judge", inline("judge", JUDGE))])
    with capture_logs() as logs:
        rig.send(b"t1", topic=b"room/1")
        rig.send(b"ok")
        rig.send(b"t2", topic=b"room/2")
    assert rig.outbox.payloads == [b"ok"]
    assert rig.counts == {"in": 3, "out": 1, "filtered": 0, "dropped": {"trap": 2}}
    assert [(d["topic"], d["payload"]) for d in rig.letters] == [("room/1", "t1"), ("room/2", "t2")]
    first = rig.letters[0]
    assert (first["pipeline"], first["module"], first["reason"]) == ("p1", "judge", "trap")
    assert "unreachable" in str(first["detail"])
    (failed,) = events(logs, "filter_failed")
    assert failed["log_level"] == "warning"
    assert (failed["module"], failed["reason"], failed["topic"], failed["during"]) == (
        "judge",
        "trap",
        "room/1",
        "message",
    )
    assert events(logs, "filter_quarantined") == []


def test_a_binary_payload_is_dead_lettered_as_base64() -> None:
    """A message that is not UTF-8 reaches the dead letter as base64."""
    rig = Rig([("trap", inline("trap", TRAP))])
    rig.send(b"\xff\xfe\x00")
    (letter,) = rig.letters
    assert letter["payload_b64"] == "//4A"
    assert "payload" not in letter


def test_a_rejected_message_is_dead_lettered_with_the_filters_reason() -> None:
    """REJECT: the input goes to the dead letters with the filter's own reason and is counted
    as `rejected`; what the filter emitted beside goes on; no violation, so no quarantine."""
    rig = Rig([("rej", inline("rej", REJECTOR)), ("fwd", inline("fwd", FORWARD))])
    with capture_logs() as logs:
        rig.send(*[b"?x"] * (POLICY.quarantine_after + 1), topic=b"spB/n")
        rig.send(b"ok")
    assert rig.outbox.payloads == [b"rebirth"] * (POLICY.quarantine_after + 1) + [b"ok"]
    assert rig.outbox.topics[0] == "out/ask/again"
    letter = rig.letters[0]
    assert (letter["module"], letter["reason"], letter["detail"]) == (
        "rej",
        "rejected",
        "no alias 7",
    )
    assert (letter["topic"], letter["payload"]) == ("spB/n", "?x")
    assert rig.counts["dropped"] == {"rejected": POLICY.quarantine_after + 1}
    assert not rig.pipeline.steps[0].guard.out
    assert events(logs, "message_rejected")[0]["detail"] == "no alias 7"


def test_the_dead_letter_names_the_filter_that_broke() -> None:
    """In a chain the dead letter names the failing filter and carries the message it got."""
    rig = Rig([("double", inline("double", DOUBLE)), ("trap", inline("trap", TRAP))])
    rig.send(b"x")
    assert [(d["module"], d["payload"]) for d in rig.letters] == [("trap", "x"), ("trap", "x")]
    assert rig.counts == {"in": 1, "out": 0, "filtered": 0, "dropped": {"trap": 2}}


def test_k_violations_quarantine_and_drop() -> None:
    """The third trap quarantines the filter (logged, reported); with on_quarantine drop the
    messages reaching it are dropped as `quarantined` without calling it."""
    rig = Rig([("judge", inline("judge", JUDGE))])
    with capture_logs() as logs:
        quarantine(rig)
    (event,) = events(logs, "filter_quarantined")
    assert (event["module"], event["reason"], event["on_quarantine"]) == ("judge", "trap", "drop")
    assert (event["violations"], event["window_s"], event["cooldown_s"]) == (3, 10.0, 60.0)
    assert rig.changes == 1
    assert rig.pipeline.quarantined == [
        {"pipeline": "p1", "module": "judge", "index": 0, "reason": "trap"}
    ]
    calls = rig.pipeline.steps[0].filter.stats.calls
    rig.send(b"ok", b"ok")
    assert rig.outbox.sent == []
    assert rig.pipeline.steps[0].filter.stats.calls == calls
    assert rig.counts == {
        "in": 5,
        "out": 0,
        "filtered": 0,
        "dropped": {"quarantined": 2, "trap": 3},
    }
    assert len(rig.letters) == 3  # messages dropped by a quarantine are not dead letters
    filters = rig.pipeline.snapshot()["filters"]
    assert isinstance(filters, list)
    (snap,) = filters
    assert (snap["quarantined"], snap["quarantines"], snap["violations"]) == (True, 1, {"trap": 3})


def test_quarantine_with_skip_passes_messages_by() -> None:
    """With on_quarantine skip a quarantined filter is passed by: its messages go on unchanged
    to the next filter and out, even those it would have dropped."""
    rig = Rig(
        [("judge", inline("judge", JUDGE)), ("double", inline("double", DOUBLE))],
        on_quarantine="skip",
    )
    with capture_logs() as logs:
        quarantine(rig)
    assert events(logs, "filter_quarantined")[0]["on_quarantine"] == "skip"
    rig.send(b"drop", b"trap")
    assert rig.outbox.payloads == [b"drop", b"drop", b"trap", b"trap"]
    assert rig.counts["dropped"] == {"trap": 3}


def test_input_too_large_never_quarantines() -> None:
    """Messages too large for the filter are dead-lettered and counted, however many, but the
    filter is never quarantined for them and serves the messages that fit."""
    rig = Rig([("small", inline("small", SMALL_INPUT))])
    with capture_logs() as logs:
        rig.send(*[b"x" * 100] * 10)
        rig.send(b"fits")
    assert rig.counts == {"in": 11, "out": 1, "filtered": 0, "dropped": {"input_too_large": 10}}
    assert len(rig.letters) == 10
    assert rig.letters[0]["reason"] == "input_too_large"
    assert not rig.pipeline.steps[0].guard.out
    assert events(logs, "filter_quarantined") == []
    assert rig.changes == 0


# -- ticks ------------------------------------------------------------------------------------


def test_a_tick_publishes_what_the_filter_emits() -> None:
    """A tick's output is published like any message, and is not counted as received."""
    rig = Rig([("ticker", inline("ticker", TICKER))])
    rig.pipeline.tick(0, 1_700_000_000_123)
    assert rig.outbox.sent == [("out/tick", struct.pack("<q", 1_700_000_000_123), 1, False)]
    assert rig.counts == {"in": 0, "out": 1, "filtered": 0, "dropped": {}}


def test_a_tick_goes_through_the_rest_of_the_chain() -> None:
    """What a tick emits is run through the filters after the ticking one."""
    rig = Rig([("ticker", inline("ticker", TICKER)), ("double", inline("double", DOUBLE))])
    rig.pipeline.tick(0, 5)
    assert rig.outbox.topics == ["out/tick", "out/tick"]
    dropped = Rig([("ticker", inline("ticker", TICKER)), ("drop", inline("drop", DROP))])
    dropped.pipeline.tick(0, 5)
    assert dropped.outbox.sent == []


def test_average_example_summarises_on_tick() -> None:
    """The average example drops readings (filtered) and publishes one summary per tick."""
    rig = Rig([("average", start(example("average")))])
    for value in (20.0, 20.2, 20.6):
        rig.send(reading(value), topic=b"room/1")
    assert rig.outbox.sent == []
    rig.pipeline.tick(0, 1_700_000_000_000)
    assert rig.outbox.topics == ["out/room/1/avg"]
    summary = json.loads(rig.outbox.payloads[0])
    assert (summary["count"], summary["avg"], summary["ts"]) == (3, 20.27, 1_700_000_000_000)
    assert rig.counts == {"in": 3, "out": 1, "filtered": 3, "dropped": {}}


def test_a_trapping_tick_is_a_violation_during_tick() -> None:
    """A tick that traps is counted, dead-lettered with an empty message and logged as during
    tick; enough of them quarantine the filter, and a quarantined filter gets no tick."""
    rig = Rig([("ticker", inline("ticker", TICK_TRAP))])
    with capture_logs() as logs:
        for now in range(POLICY.quarantine_after):
            rig.pipeline.tick(0, now)
    assert events(logs, "filter_failed")[0]["during"] == "tick"
    assert [(d["topic"], d["payload"], d["reason"]) for d in rig.letters] == [("", "", "trap")] * 3
    assert rig.pipeline.steps[0].guard.out
    calls = rig.pipeline.steps[0].filter.stats.calls
    rig.pipeline.tick(0, 10)
    assert rig.pipeline.steps[0].filter.stats.calls == calls
    assert rig.counts["dropped"] == {"trap": 3}


# -- replacing and renewing filters -----------------------------------------------------------


def test_replace_step_keeps_the_stats_and_ends_a_quarantine() -> None:
    """A deploy swaps the filter between two messages: the new one serves the next message,
    the call figures carry on, and a quarantine of the old one ends."""
    rig = Rig([("judge", inline("judge", JUDGE))])
    rig.send(b"ok")
    quarantine(rig)
    changes = rig.changes
    rig.pipeline.replace_step(0, Step("judge", inline("drop", DROP)))
    assert rig.changes == changes + 1
    assert rig.pipeline.quarantined == []
    rig.send(b"ok")
    assert rig.outbox.payloads == [b"ok"]  # only the one before the swap
    assert rig.pipeline.steps[0].filter.stats.calls == 1 + POLICY.quarantine_after + 1
    assert rig.counts["filtered"] == 1


def test_release_due_renews_the_instance() -> None:
    """When the cool-down is over the filter comes back as a fresh instance (new memory), with
    its call figures kept; before then it stays out."""
    step = renewing("poison", POISONABLE)
    rig = Rig([step])
    rig.send(b"ok")
    quarantine(rig, b"!")
    spoiled = step.filter
    rig.pipeline.release_due(time.monotonic())
    assert step.guard.out
    changes = rig.changes
    with capture_logs() as logs:
        rig.pipeline.release_due(time.monotonic() + POLICY.cooldown + 1)
    assert not step.guard.out
    assert step.filter is not spoiled
    assert events(logs, "filter_released")[0]["module"] == "poison"
    assert rig.changes == changes + 1
    rig.send(b"again")
    assert rig.outbox.payloads == [b"ok", b"again"]
    assert step.filter.stats.calls == 1 + POLICY.quarantine_after + 1


def test_release_without_renew_keeps_the_instance() -> None:
    """A step with no way to renew is released as it is: a spoiled instance goes on trapping."""
    rig = Rig([("poison", inline("poison", POISONABLE))])
    quarantine(rig, b"!")
    rig.pipeline.release_due(time.monotonic() + POLICY.cooldown + 1)
    assert rig.pipeline.quarantined == []
    rig.send(b"ok")
    assert rig.outbox.sent == []
    assert rig.counts["dropped"] == {"trap": 4}


def test_a_failed_renewal_keeps_the_quarantine() -> None:
    """A fresh instance that cannot be made (the module refuses its params) leaves the filter
    quarantined for another cool-down, logged as filter_renew_failed."""
    refused: Callable[[], Filter] = functools.partial(start, example("threshold"), {})
    step = Step("judge", inline("judge", JUDGE), renew=refused)
    rig = Rig([step])
    quarantine(rig)
    later = time.monotonic() + POLICY.cooldown + 1
    changes = rig.changes
    with capture_logs() as logs:
        rig.pipeline.release_due(later)
    (event,) = events(logs, "filter_renew_failed")
    assert event["log_level"] == "error"
    assert "init returned 1" in event["reason"]
    assert step.guard.out
    assert step.guard.until == later + POLICY.cooldown
    assert rig.changes == changes


# -- MQTT 5 properties --------------------------------------------------------------------------

TRACE = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


def _setprops() -> Filter:
    return start(load("setprops", (MODULES / "setprops.wat").read_text()))


@pytest.mark.parametrize("rule", ["pass", "drop"])
def test_a_chain_carries_properties_and_the_rule_decides_what_goes_out(rule: str) -> None:
    """Each of DOUBLE's two outputs keeps its input's properties; the next filter (which sets
    some) sees them and sets its own on top; `pass` publishes all, `drop` only the filter's."""
    rules = (OutputRule(match="#", topic="out/{topic}", qos=1, retain=False, properties=rule),)
    rig = Rig([("double", inline("double", DOUBLE)), ("setprops", _setprops())], rules=rules)
    rig.pipeline.process(b"in/t", b"x", Properties(user=(TRACE,), content_type="text/plain"))
    assert rig.outbox.payloads == [b"x", b"x"]
    published = [from_wire(p) for p in rig.outbox.properties]
    own = [("stage", "gateway")]
    for props in published:
        assert props is not None
        assert props.content_type == "application/json"
        assert list(props.user) == ([TRACE, *own] if rule == "pass" else own)


def test_without_properties_nothing_is_published_with_them() -> None:
    """A message without properties through filters that do not read them: no properties."""
    rig = Rig([("double", inline("double", DOUBLE))])
    rig.send(b"x")
    assert rig.outbox.properties == [b"", b""]


def test_a_dead_letter_carries_the_trace_and_the_properties() -> None:
    rig = Rig([("trap", inline("trap", TRAP))])
    with capture_logs() as logs:
        rig.pipeline.process(b"in/t", b"t", Properties(user=(TRACE,)))
    (letter,) = rig.letters
    assert letter["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert letter["properties"] == {"user_properties": [list(TRACE)]}
    assert events(logs, "filter_failed")[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"

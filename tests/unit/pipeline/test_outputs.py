"""Output rules: which topic, QoS and retain flag an emitted message is published with."""

from __future__ import annotations

from edged.config import OutputRule
from edged.pipeline.outputs import Destination, OutputRules


def rule(match: str, topic: str, qos: int = 0, retain: bool = False) -> OutputRule:
    return OutputRule(match=match, topic=topic, qos=qos, retain=retain)


def rules(*given: OutputRule) -> OutputRules:
    return OutputRules(given, node_id="gw-1", pipeline="temps")


def test_first_matching_rule_wins() -> None:
    """Rules are tried in order: an alert matches the first rule even though `#` follows it."""
    outputs = rules(
        rule("alerts/#", "urgent/{topic}", qos=2, retain=True),
        rule("#", "normal/{topic}", qos=1),
    )
    assert outputs.destination(b"alerts/boiler") == Destination("urgent/alerts/boiler", 2, True)
    assert outputs.destination(b"readings/boiler") == Destination(
        "normal/readings/boiler", 1, False
    )


def test_a_later_rule_is_used_when_earlier_ones_do_not_match() -> None:
    """A topic the first rules do not match falls through to the first one that does."""
    outputs = rules(
        rule("a/+", "first"),
        rule("b/+/c", "second"),
        rule("b/#", "third"),
    )
    assert outputs.destination(b"b/x/c") == Destination("second", 0, False)
    assert outputs.destination(b"b/x/d") == Destination("third", 0, False)


def test_no_matching_rule_gives_no_destination() -> None:
    """A topic no rule matches has no destination (the pipeline counts it as no_output_rule)."""
    outputs = rules(rule("alerts/#", "out/{topic}"))
    assert outputs.destination(b"readings/1") is None
    assert outputs.destination(b"readings/1") is None  # the cached answer is the same
    assert rules().destination(b"anything") is None


def test_placeholders_are_filled_in() -> None:
    """{topic}, {node_id} and {pipeline} are replaced, each wherever and as often as it appears."""
    outputs = rules(rule("#", "{node_id}/{pipeline}/{topic}/{pipeline}"))
    assert outputs.destination(b"room/1/temp") == Destination(
        "gw-1/temps/room/1/temp/temps", 0, False
    )


def test_template_cannot_reach_attributes() -> None:
    """Placeholders are plain text replacement: `{topic.__class__}` and `{0}` stay as written."""
    outputs = rules(rule("#", "x/{topic.__class__}/{0}/{topic!r}/{topic}"))
    found = outputs.destination(b"t")
    assert found is not None
    assert found.topic == "x/{topic.__class__}/{0}/{topic!r}/t"


def test_braces_in_the_emitted_topic_are_kept() -> None:
    """An emitted topic with braces of its own comes out as it was, with no error."""
    outputs = rules(rule("#", "out/{topic}"))
    found = outputs.destination(b"odd/{name}/{}")
    assert found is not None
    assert found.topic == "out/odd/{name}/{}"


def test_placeholder_text_in_the_emitted_topic_is_not_replaced() -> None:
    """A topic that contains the text `{pipeline}` is published with that text, not the name."""
    outputs = rules(rule("#", "out/{topic}"))
    found = outputs.destination(b"odd/{pipeline}/{node_id}")
    assert found is not None
    assert found.topic == "out/odd/{pipeline}/{node_id}"


def test_answers_stay_right_past_the_cache_bound() -> None:
    """A filter inventing a topic per message (5,000 of them) gets each one right, and the
    answers kept do not grow without end (at most 4096 are remembered)."""
    outputs = rules(rule("even/#", "e/{topic}", qos=1), rule("odd/#", "o/{topic}"))
    for n in range(5000):
        kind = "even" if n % 2 == 0 else "odd"
        found = outputs.destination(f"{kind}/{n}".encode())
        assert found is not None
        assert found.topic == f"{kind[0]}/{kind}/{n}"
        assert found.qos == (1 if kind == "even" else 0)
    assert len(outputs._cache) <= 4096
    # answers asked again after the cache was emptied are still right
    assert outputs.destination(b"even/0") == Destination("e/even/0", 1, False)

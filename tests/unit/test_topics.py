"""MQTT topics: which names and filters are valid, and which topics a filter matches."""

from __future__ import annotations

import pytest

from edged.topics import topic_filter_error, topic_matches, topic_name_error


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("sensors/+/temperature", "sensors/a/temperature", True),
        ("sensors/+/temperature", "sensors/a/b/temperature", False),
        ("sensors/#", "sensors", True),
        ("sensors/#", "sensors/a/b", True),
        ("sensors/#", "sensorsX/a", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b", "A/b", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "/x", True),
        ("#", "a/b/c", True),
        ("#", "$SYS/broker/load", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker/load", True),
    ],
)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    """topic_matches follows MQTT: '+' is one level, '#' the rest and its parent, '$' is apart."""
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern", ["a/b", "+", "#", "a/+/b", "a/#", "+/+/#", "/"])
def test_topic_filter_error_accepts_valid_filters(pattern: str) -> None:
    """Well-formed topic filters have no error."""
    assert topic_filter_error(pattern) is None


@pytest.mark.parametrize("pattern", ["a/#/b", "a+/b", "", "a/b#", "a\0b", "x" * 65536])
def test_topic_filter_error_explains_bad_filters(pattern: str) -> None:
    """Malformed topic filters get a reason."""
    assert topic_filter_error(pattern)


@pytest.mark.parametrize(
    ("topic", "ok"), [("a/b", True), ("a/+", False), ("a/#", False), ("", False)]
)
def test_topic_name_error(topic: str, ok: bool) -> None:
    """Topic names to publish to may not be empty or contain wildcards."""
    assert (topic_name_error(topic) is None) is ok

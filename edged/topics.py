"""MQTT topic names and filters: validation and matching (MQTT 3.1.1 §4.7, MQTT 5 §4.7)."""

from __future__ import annotations

_MAX_TOPIC_BYTES = 65535


def topic_name_error(topic: str) -> str | None:
    """Why `topic` cannot be published to, or None."""
    if not topic:
        return "a topic cannot be empty"
    if len(topic.encode()) > _MAX_TOPIC_BYTES:
        return "a topic is at most 65535 bytes"
    if "\0" in topic:
        return "a topic cannot contain NUL"
    if "+" in topic or "#" in topic:
        return "a topic to publish to cannot contain the wildcards '+' or '#'"
    return None


def topic_filter_error(pattern: str) -> str | None:
    """Why `pattern` is not a valid subscription filter, or None."""
    if not pattern:
        return "a topic filter cannot be empty"
    if len(pattern.encode()) > _MAX_TOPIC_BYTES:
        return "a topic filter is at most 65535 bytes"
    if "\0" in pattern:
        return "a topic filter cannot contain NUL"
    levels = pattern.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


#: what starts a shared subscription's filter: `$share/<group>/<filter>` (MQTT 5 §4.8.2)
SHARE_PREFIX = "$share/"


def split_shared(pattern: str) -> tuple[str | None, str]:
    """A shared subscription's group and the filter it routes by; (None, pattern) for a plain
    subscription. The broker matches topics against the filter without the prefix, and so does
    edged."""
    if not pattern.startswith(SHARE_PREFIX):
        return None, pattern
    group, _, rest = pattern[len(SHARE_PREFIX) :].partition("/")
    return group, rest


def subscription_error(pattern: str) -> str | None:
    """Why `pattern` cannot be subscribed to, or None: a topic filter, or a shared one."""
    group, rest = split_shared(pattern)
    if group is None:
        return topic_filter_error(pattern)
    if not group or "+" in group or "#" in group:
        return "a shared subscription is $share/<group>/<filter>, the group without '+' or '#'"
    if not rest:
        return "a shared subscription needs a topic filter after $share/<group>/"
    return topic_filter_error(rest)


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether `topic` matches the subscription filter `pattern`."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False  # $SYS and friends are never matched by a leading wildcard
    want = pattern.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have):
            return False
        if level != "+" and level != have[index]:
            return False
    return len(want) == len(have)

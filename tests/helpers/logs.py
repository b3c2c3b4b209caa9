"""Log lines as the daemon writes them, for the tests of `edged logs`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

EDGED = [sys.executable, "-m", "edged"]


def log_line(event: str, level: str, second: int, **fields: object) -> str:
    """A line as the daemon writes it: its fields, then event, level and timestamp."""
    entry = {**fields, "event": event, "level": level}
    entry["timestamp"] = f"2026-03-02T10:00:{second:02d}.250000Z"
    return json.dumps(entry)


SAMPLE = [
    log_line("starting", "info", 0, node_id="gw-1", pipelines=2, modules=3, broker="mqtt:1883"),
    log_line("ready", "info", 1, subscriptions=["sensors/+/temperature", "sensors/+/humidity"]),
    log_line("message", "debug", 2, pipeline="temperature", topic="sensors/a/temperature", size=17),
    log_line(
        "filter_failed",
        "warning",
        3,
        pipeline="temperature",
        module="threshold",
        topic="sensors/a/temperature",
        reason="trap",
        detail="wasm trap: unreachable",
        during="message",
        suppressed=0,
    ),
    "Traceback (most recent call last):",
    log_line(
        "filter_quarantined",
        "warning",
        4,
        pipeline="temperature",
        module="threshold",
        reason="trap",
        violations=3,
    ),
    log_line("filter_log", "info", 5, pipeline="humidity", module="avg", text="window full"),
    log_line(
        "filter_failed",
        "warning",
        6,
        pipeline="humidity",
        module="avg",
        topic="sensors/b/humidity",
        reason="fuel",
        detail="out of fuel",
        during="message",
        suppressed=2,
    ),
    "[1, 2, 3]",
    log_line("broker_unreachable", "warning", 7, reason="connection refused", retry_in_s=2.0),
    "{not json",
    log_line(
        "summary",
        "info",
        8,
        pipelines={"temperature": {"in": 10, "out": 8}},
        connected=True,
        rss_mib=31.5,
    ),
    log_line(
        "internal_error",
        "error",
        9,
        topic="sensors/c/temperature",
        exception='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom',
    ),
]
MALFORMED = ["Traceback (most recent call last):", "[1, 2, 3]", "{not json"]


def write_sample(directory: Path) -> Path:
    """SAMPLE as a log file in `directory`."""
    path = directory / "edged.log"
    path.write_text("".join(entry + "\n" for entry in SAMPLE))
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file, one per line."""
    return [json.loads(text) for text in path.read_text().splitlines()]

"""A filter's own log lines are rate-limited per filter, and the suppressed ones counted."""

from __future__ import annotations

from structlog.testing import capture_logs

from edged.pipeline.filterlog import BURST, RATE, FilterLog


def test_a_flood_of_lines_is_cut_to_the_burst_and_then_the_rate() -> None:
    """1,000 lines at once: the first BURST go out; a second later RATE more, the first of
    them saying how many were suppressed in between."""
    now = [100.0]
    sink = FilterLog("p1", "chatty", clock=lambda: now[0])
    with capture_logs() as logs:
        for i in range(1000):
            sink("info", f"line {i}")
        now[0] += 1.0
        for i in range(1000):
            sink("warning", f"again {i}")
    lines = [e for e in logs if e["event"] == "filter_log"]
    assert len(lines) == BURST + RATE
    assert [e["text"] for e in lines[:2]] == ["line 0", "line 1"]
    after = lines[int(BURST)]
    assert after["text"] == "again 0" and after["suppressed"] == 1000 - BURST
    assert after["log_level"] == "warning"
    assert (after["pipeline"], after["module"]) == ("p1", "chatty")
    assert sink.suppressed_total == 2000 - BURST - RATE

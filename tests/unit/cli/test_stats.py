"""`edged stats` as an operator reads it: one line per broker link."""

from __future__ import annotations

import io

from edged.cli.stats import render


def test_each_broker_link_gets_its_own_line_with_why_it_is_down() -> None:
    """With a local and a cloud broker, the operator sees each link's state, and for the one
    that is down the reason and how much waits in its outbox."""
    metrics = {
        "node_id": "gw-1",
        "rss_bytes": 40 * 2**20,
        "queue": {"depth": 0, "size": 10000, "overload": "block"},
        "links": {
            "local": {"connected": True, "reconnects": 0, "unacked_outputs": 0},
            "cloud": {
                "connected": False,
                "down": "cannot connect to cloud.example.com:8883: timed out",
                "reconnects": 3,
                "rate_limited": 7,
                "outbox": {"entries": 1200, "bytes": 300_000, "oldest_age_s": 12.5},
            },
        },
        "pipelines": {},
    }
    out = io.StringIO()
    render(metrics, out)
    lines = out.getvalue().splitlines()
    local = next(line for line in lines if line.startswith("broker local "))
    cloud = next(line for line in lines if line.startswith("broker cloud "))
    assert local.startswith("broker local connected, 0 reconnects")
    assert cloud.startswith(
        "broker cloud DISCONNECTED (cannot connect to cloud.example.com:8883: timed out), "
        "3 reconnects"
    )
    assert "7 QoS 0 over the rate limit" in cloud
    assert "outbox 1200 entries" in cloud and "oldest 12.5 s" in cloud


def test_a_failing_outbox_and_a_stateful_filter_are_said() -> None:
    """An outbox the disk refuses, outputs the broker would never take, and a stateful
    filter's state size, checkpoints and refused loads: each on the operator's screen."""
    metrics = {
        "node_id": "gw-1",
        "queue": {},
        "links": {
            "cloud": {
                "connected": True,
                "outbox_write_failing": "cannot write the outbox: database or disk is full",
                "over_packet_size": 2,
                "poison_outputs": 1,
                "outbox": {"entries": 3, "bytes": 300, "write_errors": 4, "unstored": 5},
            }
        },
        "pipelines": {
            "temps": {
                "in": 10,
                "filters": [
                    {
                        "module": "average",
                        "state": {
                            "bytes": 4096,
                            "checkpoints": 12,
                            "checkpoint_age_s": 31.0,
                            "loads_refused": 1,
                            "violations": 0,
                        },
                    },
                    {"module": "threshold"},
                ],
            }
        },
    }
    out = io.StringIO()
    render(metrics, out)
    text = out.getvalue()
    cloud = next(line for line in text.splitlines() if line.startswith("broker cloud "))
    assert "OUTBOX WRITE FAILING (cannot write the outbox: database or disk is full)" in cloud
    assert "5 LOST UNSTORED" in cloud
    assert "3 outputs the broker would never take, dead-lettered" in cloud
    average = next(line for line in text.splitlines() if "average" in line)
    assert "state 4 KiB, 12 checkpoints (last 31 s ago), 1 LOADS REFUSED" in average
    threshold = next(line for line in text.splitlines() if "threshold" in line)
    assert "state" not in threshold

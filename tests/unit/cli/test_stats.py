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

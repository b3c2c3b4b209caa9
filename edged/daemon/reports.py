"""What the daemon tells about itself: the metrics record, the periodic summary, dead letters.

The metrics record is published retained on `<prefix>/<node>/metrics` and read by `edged stats`;
the summary is one log line every `log.summary_interval`; a dead letter is one JSON record per
message a filter failed on, on the dead-letter topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import structlog

from edged.daemon.process import rss_bytes
from edged.pipeline import Pipeline
from edged.pipeline.intake import Intake
from edged.pipeline.router import Router

log = structlog.get_logger("edged.daemon")


def metrics_record(
    node_id: str,
    intake: Intake[Any],
    router: Router,
    pipelines: Sequence[Pipeline],
    internal_errors: int,
) -> dict[str, object]:
    return {
        "node_id": node_id,
        "ts": int(time.time() * 1000),
        "rss_bytes": rss_bytes(),
        "queue": intake.snapshot(),
        "internal_errors": internal_errors,
        "unrouted": router.unrouted,
        "pipelines": {p.name: p.snapshot() for p in pipelines},
    }


def log_summary(
    intake: Intake[Any],
    router: Router,
    pipelines: Sequence[Pipeline],
    internal_errors: int,
    connected: bool,
) -> None:
    log.info(
        "summary",
        pipelines={p.name: p.counters.snapshot() for p in pipelines},
        queue=intake.snapshot(),
        unrouted=router.unrouted,
        internal_errors=internal_errors,
        connected=connected,
        rss_mib=round(rss_bytes() / 2**20, 1),
    )


def dead_letter_body(node_id: str, record: dict[str, object]) -> bytes:
    """One dead-letter record as published: the node's id first, then the record's fields."""
    return json.dumps({"node_id": node_id, **record}, separators=(",", ":")).encode()


def to_json(record: dict[str, object]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()

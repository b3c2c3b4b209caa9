"""A filter's own log lines (its `edged.log` calls, and what a WASI filter writes to stdout and
stderr) as edged log events, at a bounded rate.

A filter must not be able to flood the journal or the disk: measured before this bound, a
filter calling `edged.log` 1,024 times per message made the daemon write 23.8 MB of log for 20
messages, and journald then dropped the daemon's own lines. Each filter gets a bucket of
`BURST` lines that refills at `RATE` lines a second; what the bucket refuses is counted, and the
next line that goes out says how many were suppressed (`suppressed`). With lines of at most
1 KiB (the engine cuts longer ones), a filter writes at most ~5 KiB a second of log after its
first burst of 50 lines: ~430 MB a day in the worst case, against unbounded before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("edged.pipeline")

#: lines a second a filter may log once its burst is spent, and the burst
RATE = 5.0
BURST = 50.0


class FilterLog:
    """The log sink of one filter (`(level, text)`), shared by every instance made of it."""

    def __init__(
        self, pipeline: str, module: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log.bind(pipeline=pipeline, module=module)
        self._clock = clock
        self._tokens = BURST
        self._at = clock()
        self.suppressed = 0  # since the last line that went out
        self.suppressed_total = 0

    def __call__(self, level: str, text: str) -> None:
        now = self._clock()
        self._tokens = min(BURST, self._tokens + (now - self._at) * RATE)
        self._at = now
        if self._tokens < 1.0:
            self.suppressed += 1
            self.suppressed_total += 1
            return
        self._tokens -= 1.0
        fields: dict[str, object] = {"text": text}
        if self.suppressed:
            fields["suppressed"] = self.suppressed
            self.suppressed = 0
        getattr(self._log, level if level in ("debug", "info", "warning", "error") else "info")(
            "filter_log", **fields
        )

"""The daemon's own counters as Prometheus metrics, read when scraped (docs/monitoring.md).

No second set of counters and nothing per message: `DaemonCollector.collect` walks the pipelines,
filters, intake, broker links and deploy manager the loop already keeps, and builds metric
families from them on the scraping thread. It only reads: plain attribute reads of ints and
floats are atomic under the GIL, and every dict is copied in one C-level call before it is
iterated (a dict the loop grows mid-iteration would raise). Nothing it reads takes a lock the
loop holds, so a scrape never holds up the loop.

Imported only when `http:` is configured: prometheus_client costs ~1.5 MiB of RSS.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import edged
from edged.engine.base import CallStats

if TYPE_CHECKING:
    from edged.daemon.daemon import Daemon

# Latency buckets: CallStats' power-of-two buckets from 1 to 2**22 units (1 µs .. 4.3 s); the
# calls in higher ones (a deadline of many seconds) count only in +Inf.
_BUCKETS = 23


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class DaemonCollector(Collector):
    """Every edged_* metric of one running daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._digests: dict[Path, tuple[tuple[int, int], str]] = {}
        self._build = {
            "version": edged.__version__,
            "python": platform.python_version(),
            "wasmtime": _version(wasmtime.__name__),
        }

    def collect(self) -> Iterator[Metric]:
        d = self._daemon
        build = InfoMetricFamily("edged_build", "The running edged and what it runs on.")
        build.add_metric([], self._build)
        yield build
        yield GaugeMetricFamily(
            "edged_uptime_seconds",
            "Seconds since the daemon started.",
            value=time.monotonic() - d.started_at,
        )
        yield GaugeMetricFamily(
            "edged_loop_last_round_seconds",
            "Seconds since the daemon's loop last came round (the liveness of /healthz).",
            value=max(0.0, time.monotonic() - d.loop_at),
        )
        yield CounterMetricFamily(
            "edged_internal_errors",
            "Messages lost to a bug of edged's own (each logged as internal_error).",
            value=d.internal_errors,
        )
        yield CounterMetricFamily(
            "edged_unrouted_messages",
            "Messages received that no pipeline subscribes to any longer.",
            value=d.router.unrouted,
        )
        yield from self._pipelines()
        yield from self._filters()
        yield from self._intake()
        yield from self._links()
        yield from self._deploys()

    # -- per pipeline -------------------------------------------------------------------------

    def _pipelines(self) -> Iterator[Metric]:
        label = ["pipeline"]
        received = CounterMetricFamily(
            "edged_messages_received", "Messages a pipeline took in.", labels=label
        )
        published = CounterMetricFamily(
            "edged_messages_published", "Messages a pipeline published.", labels=label
        )
        filtered = CounterMetricFamily(
            "edged_messages_filtered", "Messages a filter chose to drop.", labels=label
        )
        dropped = CounterMetricFamily(
            "edged_messages_dropped",
            "Messages lost on the way, by reason (a violation, no output rule, a broker limit).",
            labels=["pipeline", "reason"],
        )
        for pipeline in self._daemon.pipelines:
            c = pipeline.counters
            name = [pipeline.name]
            received.add_metric(name, c.received)
            published.add_metric(name, c.published)
            filtered.add_metric(name, c.filtered)
            for reason, count in dict(c.dropped).items():
                dropped.add_metric([pipeline.name, reason], count)
        yield from (received, published, filtered, dropped)

    def _filters(self) -> Iterator[Metric]:
        labels = ["pipeline", "module", "step"]
        calls = CounterMetricFamily("edged_filter_calls", "Calls into a filter.", labels=labels)
        fuel = CounterMetricFamily(
            "edged_filter_fuel_used", "Wasm instructions a filter ran.", labels=labels
        )
        violations = CounterMetricFamily(
            "edged_filter_violations",
            "Calls that broke a budget or failed, by kind.",
            labels=[*labels, "kind"],
        )
        latency = HistogramMetricFamily(
            "edged_filter_call_duration_seconds",
            "Wall-clock time of one call into a filter.",
            labels=labels,
        )
        quarantined = GaugeMetricFamily(
            "edged_filter_quarantined", "1 while a filter is quarantined.", labels=labels
        )
        quarantines = CounterMetricFamily(
            "edged_filter_quarantines", "Quarantines a filter went into.", labels=labels
        )
        state_bytes = GaugeMetricFamily(
            "edged_filter_state_bytes",
            "Size of a stateful filter's last saved state.",
            labels=labels,
        )
        checkpoints = CounterMetricFamily(
            "edged_filter_state_checkpoints",
            "Checkpoints that wrote a filter's changed state to disk.",
            labels=labels,
        )
        checkpoint_age = GaugeMetricFamily(
            "edged_filter_state_checkpoint_age_seconds",
            "Seconds since a filter's state was last written to disk.",
            labels=labels,
        )
        refused = CounterMetricFamily(
            "edged_filter_state_loads_refused",
            "Saved states a new instance of a filter refused (it started fresh).",
            labels=labels,
        )
        state_violations = CounterMetricFamily(
            "edged_filter_state_violations",
            "State saves and loads that trapped, broke the ABI or went over budgets.max_state.",
            labels=labels,
        )
        now = time.time()
        for pipeline in self._daemon.pipelines:
            for index, step in enumerate(pipeline.steps):
                key = [pipeline.name, step.module, str(index)]
                if step.filter.has_state:
                    record = step.state
                    state_bytes.add_metric(key, record.bytes)
                    checkpoints.add_metric(key, record.checkpoints)
                    if record.checkpoint_at is not None:
                        checkpoint_age.add_metric(key, max(0.0, now - record.checkpoint_at))
                    refused.add_metric(key, record.loads_refused)
                    state_violations.add_metric(key, record.violations)
                stats = step.filter.stats
                calls.add_metric(key, stats.calls)
                fuel.add_metric(key, stats.fuel_used)
                for kind, count in dict(step.guard.counts).items():
                    violations.add_metric([*key, kind], count)
                latency.add_metric(key, _buckets(stats), stats.elapsed * CallStats.UNIT_SECONDS)
                quarantined.add_metric(key, 1 if step.guard.out else 0)
                quarantines.add_metric(key, step.guard.quarantines)
        yield from (calls, fuel, violations, latency, quarantined, quarantines)
        yield from (state_bytes, checkpoints, checkpoint_age, refused, state_violations)

    # -- the intake and the broker links ------------------------------------------------------

    def _intake(self) -> Iterator[Metric]:
        intake = self._daemon.intake
        yield GaugeMetricFamily(
            "edged_intake_queue_depth",
            "Messages read from the brokers and not yet filtered.",
            value=len(intake.items),
        )
        yield GaugeMetricFamily(
            "edged_intake_queue_capacity", "The intake queue's size.", value=intake.size
        )
        dropped = CounterMetricFamily(
            "edged_intake_dropped",
            "Messages the full intake queue dropped, by overload policy.",
            labels=["policy"],
        )
        dropped.add_metric(["drop_oldest"], intake.dropped_oldest)
        dropped.add_metric(["drop_newest"], intake.dropped_newest)
        yield dropped

    def _links(self) -> Iterator[Metric]:
        d = self._daemon
        b = ["broker"]
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "connected": GaugeMetricFamily(
                "edged_broker_connected", "1 while connected to the broker.", labels=b
            ),
            "ready": GaugeMetricFamily(
                "edged_broker_ready",
                "1 while connected with every subscription acknowledged.",
                labels=b,
            ),
            "reconnects": CounterMetricFamily(
                "edged_broker_reconnects", "Connections after the first.", labels=b
            ),
            "sessions_lost": CounterMetricFamily(
                "edged_broker_sessions_lost",
                "Reconnects that found the broker had forgotten edged's session.",
                labels=b,
            ),
            "refused": CounterMetricFamily(
                "edged_broker_refused",
                "Outputs the broker acknowledged with a failure reason code (MQTT 5).",
                labels=b,
            ),
            "rate_limited": CounterMetricFamily(
                "edged_broker_rate_limited",
                "QoS 0 outputs dropped over the broker's max_publish_rate.",
                labels=b,
            ),
            "unacked_outputs": GaugeMetricFamily(
                "edged_broker_unacked_outputs",
                "QoS 1/2 outputs the broker has not acknowledged yet.",
                labels=b,
            ),
            "unacked_inputs": GaugeMetricFamily(
                "edged_broker_unacked_inputs",
                "QoS 1/2 inputs from the broker not acknowledged yet (waiting for outputs).",
                labels=b,
            ),
            "never_taken": CounterMetricFamily(
                "edged_broker_outputs_never_taken",
                "Outputs dead-lettered because the broker would never take them: over its "
                "Maximum Packet Size, or poison (it disconnects on them).",
                labels=["broker", "reason"],
            ),
        }
        outbox: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "entries": GaugeMetricFamily(
                "edged_outbox_entries", "Outputs waiting in the outbox.", labels=b
            ),
            "bytes": GaugeMetricFamily("edged_outbox_bytes", "The outbox's bytes.", labels=b),
            "capacity": GaugeMetricFamily(
                "edged_outbox_capacity_bytes", "The outbox's max_bytes.", labels=b
            ),
            "age": GaugeMetricFamily(
                "edged_outbox_oldest_age_seconds",
                "Age of the oldest entry in the outbox; 0 when it is empty.",
                labels=b,
            ),
            "stored": CounterMetricFamily(
                "edged_outbox_stored", "Outputs written to the outbox.", labels=b
            ),
            "replayed": CounterMetricFamily(
                "edged_outbox_replayed",
                "Outbox entries sent and acknowledged after an outage.",
                labels=b,
            ),
            "expired": CounterMetricFamily(
                "edged_outbox_expired", "Entries deleted unsent at max_age.", labels=b
            ),
            "dropped": CounterMetricFamily(
                "edged_outbox_dropped",
                "Entries the full outbox dropped, by when_full policy.",
                labels=["broker", "policy"],
            ),
            "write_errors": CounterMetricFamily(
                "edged_outbox_write_errors", "Failed writes to the outbox.", labels=b
            ),
            "write_failing": GaugeMetricFamily(
                "edged_outbox_write_failing",
                "1 while the outbox cannot be written (disk full, read-only, I/O error).",
                labels=b,
            ),
            "unstored": CounterMetricFamily(
                "edged_outbox_unstored",
                "Outputs no input stood behind, lost because the outbox could not be written.",
                labels=b,
            ),
        }
        for index, link in enumerate(d.links):
            name = [link.name]
            families["connected"].add_metric(name, 1 if link.connected else 0)
            families["ready"].add_metric(name, 1 if link.ready else 0)
            families["reconnects"].add_metric(name, link.reconnects)
            families["sessions_lost"].add_metric(name, link.session_lost)
            families["refused"].add_metric(name, link.refused_by_broker)
            families["rate_limited"].add_metric(name, link.rate_limited)
            families["unacked_outputs"].add_metric(name, link.client.unacked_publishes())
            families["unacked_inputs"].add_metric(name, d.window.waiting(index))
            families["never_taken"].add_metric([link.name, "broker_limit"], link.over_packet_size)
            families["never_taken"].add_metric([link.name, "poison_output"], link.poison_outputs)
            box = link.outbox
            if box is None:
                continue
            c = box.counters
            outbox["entries"].add_metric(name, box.entries)
            outbox["bytes"].add_metric(name, box.bytes)
            outbox["capacity"].add_metric(name, box.max_bytes)
            outbox["age"].add_metric(name, box.oldest_age() or 0.0)
            outbox["stored"].add_metric(name, c.stored)
            outbox["replayed"].add_metric(name, c.replayed)
            outbox["expired"].add_metric(name, c.expired)
            outbox["dropped"].add_metric([link.name, "drop_oldest"], c.dropped_oldest)
            outbox["dropped"].add_metric([link.name, "drop_newest"], c.dropped_newest)
            outbox["write_errors"].add_metric(name, c.write_errors)
            outbox["write_failing"].add_metric(name, 1 if box.problem is not None else 0)
            outbox["unstored"].add_metric(name, c.unstored)
        yield from families.values()
        yield from outbox.values()

    # -- deploys ------------------------------------------------------------------------------

    def _deploys(self) -> Iterator[Metric]:
        d = self._daemon
        deploys = CounterMetricFamily(
            "edged_deploys",
            "Deploy requests carried out, by result (and reason when refused or rolled back).",
            labels=["result", "reason"],
        )
        info = InfoMetricFamily(
            "edged_module",
            "The module version each module name runs: `config` for the config's file.",
            labels=["module"],
        )
        manager = d.deploy
        active = manager.store.active() if manager is not None else {}
        if manager is not None:
            for (result, reason), count in dict(manager.results).items():
                deploys.add_metric([result, reason], count)
        for name, module in d.config.modules.items():
            entry = active.get(name)
            if entry is not None:
                version, digest = str(entry.current.version), entry.current.digest
            else:
                version, digest = "config", self._file_digest(module.file)
            info.add_metric([name], {"version": version, "digest": digest})
        yield deploys
        yield info

    def _file_digest(self, path: Path) -> str:
        """sha256 of a module file, read again only when the file changes."""
        try:
            st = path.stat()
        except OSError:
            return ""
        stamp = (st.st_mtime_ns, st.st_size)
        known = self._digests.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return ""
        # replaced, not updated: the scraping threads share this collector
        self._digests = {**self._digests, path: (stamp, digest)}
        return digest


def _buckets(stats: CallStats) -> list[tuple[str, float]]:
    counts = list(stats.buckets)  # one copy: the loop goes on counting
    out: list[tuple[str, float]] = []
    seen = 0
    for index in range(_BUCKETS):
        seen += counts[index]
        out.append((repr((1 << index) * CallStats.UNIT_SECONDS), seen))
    out.append(("+Inf", sum(counts)))
    return out

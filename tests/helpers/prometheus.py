"""A private Prometheus server on a free loopback port, and the metric names edged promises.

PrivatePrometheus  `with PrivatePrometheus(["127.0.0.1:9108"]) as prom:` scrapes the targets every
                   second (job "edged"), with its own storage in a temporary directory
find_prometheus    the `prometheus` binary, or None
find_promtool      the `promtool` binary, or None
need_prometheus    the binary, or the test fails saying what to install (skipped instead when
need_promtool      EDGED_NO_PROMETHEUS is set; see scripts/test)
CONTRACT_METRICS   every metric name of issue 15's contract that edged itself exports
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

from edged.mqtt.mosquitto import free_port

#: Metric names of the contract (issue 15), as they appear in `/metrics`; the histogram's
#: `_bucket`, `_sum` and `_count` series are listed under their own names. prometheus_client's
#: `process_*` family and Prometheus's own `up` come on top.
CONTRACT_METRICS = frozenset(
    {
        "edged_build_info",
        "edged_uptime_seconds",
        "edged_messages_received_total",
        "edged_messages_published_total",
        "edged_messages_filtered_total",
        "edged_messages_dropped_total",
        "edged_filter_calls_total",
        "edged_filter_violations_total",
        "edged_filter_fuel_used_total",
        "edged_filter_call_duration_seconds_bucket",
        "edged_filter_call_duration_seconds_sum",
        "edged_filter_call_duration_seconds_count",
        "edged_filter_quarantined",
        "edged_filter_quarantines_total",
        "edged_intake_queue_depth",
        "edged_intake_queue_capacity",
        "edged_intake_dropped_total",
        "edged_broker_connected",
        "edged_broker_ready",
        "edged_broker_reconnects_total",
        "edged_broker_sessions_lost_total",
        "edged_broker_refused_total",
        "edged_broker_rate_limited_total",
        "edged_broker_unacked_outputs",
        "edged_broker_unacked_inputs",
        "edged_outbox_entries",
        "edged_outbox_bytes",
        "edged_outbox_capacity_bytes",
        "edged_outbox_oldest_age_seconds",
        "edged_outbox_stored_total",
        "edged_outbox_replayed_total",
        "edged_outbox_expired_total",
        "edged_outbox_dropped_total",
        "edged_outbox_write_errors_total",
        "edged_deploys_total",
        "edged_module_info",
        "edged_internal_errors_total",
        "edged_unrouted_messages_total",
        "edged_loop_last_round_seconds",
    }
)

#: Set (to anything) on a machine that cannot have Prometheus: its tests skip instead of failing.
NO_PROMETHEUS_ENV = "EDGED_NO_PROMETHEUS"


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}") if Path(p).exists()), None
    )


def find_prometheus() -> str | None:
    return _find("prometheus")


def find_promtool() -> str | None:
    return _find("promtool")


def _need(name: str, found: str | None) -> str:
    if found is not None:
        return found
    message = (
        f"{name} is not installed: scripts/test installs it (Debian package prometheus, "
        f"`sudo apt-get install prometheus`); set {NO_PROMETHEUS_ENV}=1 to skip these tests"
    )
    if os.environ.get(NO_PROMETHEUS_ENV):
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def need_prometheus() -> str:
    return _need("prometheus", find_prometheus())


def need_promtool() -> str:
    return _need("promtool", find_promtool())


class PrivatePrometheus:
    """`with PrivatePrometheus(targets) as prom:` gives a running Prometheus on `prom.port`.

    It scrapes each `host:port` in `targets` at `metrics_path` every `scrape_interval` as job
    `job` ("edged", which the alert rules' `up{job="edged"}` expects) and evaluates the rules of
    `rule_files` just as often. To have it scrape itself, pick the port first:
    `port = free_port(); PrivatePrometheus([f"127.0.0.1:{port}"], port=port)`.

    It is ready within about 0.1 s, but Prometheus 2.x scrapes a new target only after its
    target discovery's fixed 5 s tick (5.2 s here from start to the first `up`): wait with
    `wait_for`, and share one server between the tests of a module where they allow it.
    """

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        port: int | None = None,
        job: str = "edged",
        metrics_path: str = "/metrics",
        scrape_interval: str = "1s",
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.targets = list(targets)
        self.job = job
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml it runs with."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                # Prometheus refuses a scrape timeout longer than the interval.
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }

    def start(self) -> PrivatePrometheus:
        binary = need_prometheus()
        self._dir = tempfile.TemporaryDirectory(prefix="edged-prometheus-")
        directory = Path(self._dir.name)
        conf = directory / "prometheus.yml"
        conf.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        # Its log goes to a file, not a pipe: a full pipe nobody reads would stall the server.
        self._log = directory / "prometheus.log"
        with open(self._log, "wb") as sink:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={conf}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--log.level=warn",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        # Ready (TSDB open, config loaded) in about 0.3 s here; 20 s leaves room for a slow board.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = self.log
                self.stop()
                raise RuntimeError(f"prometheus exited at start: {log.strip()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        log = self.log
        self.stop()
        raise RuntimeError(f"prometheus was not ready on port {self.port} within 20 s: {log}")

    @property
    def log(self) -> str:
        """What Prometheus logged (warnings and errors)."""
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = json.load(reply)
        except urllib.error.HTTPError as err:
            # A bad expression is a 400 whose JSON body says what is wrong with it.
            body = json.loads(err.read() or b"{}")
            raise ValueError(f"{path} {params}: {body.get('error', err)}") from None
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now: `[{"metric": {...}, "value": [ts, "1"]}, ...]`.

        A scalar or string result comes back as one element with no labels; an expression
        Prometheus cannot parse raises ValueError with its message.
        """
        data = self._api("query", {"query": expr})
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def values(self, expr: str) -> list[float]:
        """Just the numbers of `query(expr)`."""
        return [float(item["value"][1]) for item in self.query(expr)]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 15,
    ) -> list[dict[str, Any]]:
        """Query `expr` until `predicate(result)` holds (by default: until it has a series) and
        return that result; after `timeout` seconds fail with the last result and the targets'
        scrape errors, which say why nothing arrived."""
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not predicate(result):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{expr!r} after {timeout} s: {result}; targets: {self.target_health()}"
                )
            time.sleep(0.2)
            result = self.query(expr)
        return result

    def target_health(self) -> list[dict[str, Any]]:
        """Each target's URL, health ("up", "down", "unknown") and last scrape error."""
        active = self._api("targets", {"state": "active"})["activeTargets"]
        return [
            {"url": t["scrapeUrl"], "health": t["health"], "error": t["lastError"]} for t in active
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts of `rule_files` that are pending or firing: labels, annotations, state."""
        return list(self._api("alerts")["alerts"])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
            self._log = None

    def __enter__(self) -> PrivatePrometheus:
        return self.start()

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

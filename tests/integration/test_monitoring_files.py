"""The monitoring files an operator installs: the alert rules, the example Prometheus config and
the Grafana dashboard are valid for the real tools, name only metrics edged exports, and the
alerts fire when they should; and the private Prometheus the metrics tests use works."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edged.mqtt.mosquitto import free_port
from tests.helpers.paths import ROOT
from tests.helpers.prometheus import CONTRACT_METRICS, PrivatePrometheus, need_promtool

PROMETHEUS_DIR = ROOT / "configs" / "prometheus"
RULES = PROMETHEUS_DIR / "edged-alerts.yml"
RULES_TESTS = PROMETHEUS_DIR / "edged-alerts.test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "configs" / "grafana" / "edged.json"

ALERTS = {
    "EdgedTargetDown",
    "EdgedBrokerLinkDown",
    "EdgedOutboxFilling",
    "EdgedOutboxDropping",
    "EdgedIntakeDropping",
    "EdgedFilterQuarantined",
    "EdgedDeployRolledBack",
    "EdgedLoopStuck",
}

# -- PromQL metric names ----------------------------------------------------------------------

# Words of PromQL that are not metric names: keywords, and the aggregation operators, which may
# stand apart from their parenthesis (`sum by (le) (...)`).
_KEYWORDS = frozenset(
    {
        *("by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"),
        *("and", "or", "unless", "inf", "nan"),
        *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"),
        *("bottomk", "topk", "quantile"),
    }
)
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: its identifiers that are not functions,
    keywords, label names (in `{}` or a `by (...)` list), durations or Grafana variables."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _LABEL_LISTS.sub(r"\1", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana's variables
    names = set()
    for match in _WORD.finditer(text):
        word, call = match.group(1), match.group(2)
        if call is None and word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def foreign_metrics(names: set[str]) -> set[str]:
    """The names of `names` that are not edged's: the contract, the process_* family of
    prometheus_client's ProcessCollector, and Prometheus's own `up`."""
    return {
        n for n in names if n not in CONTRACT_METRICS and n != "up" and not n.startswith("process_")
    }


def test_metric_name_parser_finds_metrics_and_nothing_else() -> None:
    """The name check below would pass anything if the parser found no names: it must find every
    metric of a busy expression and none of its functions, labels, keywords or durations."""
    expr = (
        'histogram_quantile(0.99, sum by (le, pipeline) (rate(a_bucket{pipeline=~"$pipeline", '
        'x="by (y)"}[$__rate_interval]))) / on (instance) group_left (job) b offset 5m '
        "> bool 1e-6 or c_total unless d:recorded and max_over_time(e[5m:1m]) > inf"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c_total", "d:recorded", "e"}
    assert foreign_metrics({"edged_outbox_bytes", "process_open_fds", "up", "edged_bogus"}) == {
        "edged_bogus"
    }


# -- the alert rules --------------------------------------------------------------------------


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    # Relative paths from the repository root: promtool resolves the files a config or a test
    # file names relative to that file, and its messages stay short.
    return subprocess.run(
        [need_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the rule file an operator loads into Prometheus."""
    done = _promtool("check", "rules", _rel(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_example_prometheus_config_passes_promtool_check() -> None:
    """The example scrape config is valid as it is, with the rule file it loads next to it."""
    done = _promtool("check", "config", _rel(EXAMPLE_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    # up{job="edged"} in EdgedTargetDown relies on the job's name
    assert job["job_name"] == "edged"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9108"]
    assert config["rule_files"] == [RULES.name]


def test_alerts_fire_when_they_should_and_not_otherwise() -> None:
    """promtool's unit tests of the rules pass: a link down for a minute fires and a short blip
    does not, a first and a later rollback fire for 15 minutes and old news does not."""
    done = _promtool("test", "rules", _rel(RULES_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    # Both ways for the alerts the issue names: at some time firing, at another silent.
    cases = [
        case
        for group in yaml.safe_load(RULES_TESTS.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    for alert in ("EdgedBrokerLinkDown", "EdgedDeployRolledBack"):
        outcomes = {bool(c["exp_alerts"]) for c in cases if c["alertname"] == alert}
        assert outcomes == {True, False}, alert


def test_each_alert_says_what_happened_how_bad_and_names_only_edged_metrics() -> None:
    """Every alert an operator can get has a severity, a summary and a description, and its
    expression reads only metrics edged exports (a misspelt name would never fire)."""
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert not foreign_metrics(names), (rule["alert"], foreign_metrics(names))


# -- the dashboard ----------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def _variable_metrics(dashboard: dict[str, Any]) -> list[str]:
    """The series selector of each `label_values(selector, label)` variable."""
    selectors = []
    for variable in dashboard["templating"]["list"]:
        match = _LABEL_VALUES.match(variable["query"])
        assert match is not None, variable["query"]
        if match.group(1):
            selectors.append(match.group(1))
    return selectors


def test_dashboard_imports_into_any_grafana() -> None:
    """The dashboard is JSON Grafana imports, asking for a Prometheus data source: no panel,
    query or variable is tied to a data source of the machine it was made on."""
    dashboard = _dashboard()
    (source,) = dashboard["__inputs"]
    assert source["name"] == "DS_PROMETHEUS"
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    assert dashboard["id"] is None and dashboard["uid"] and dashboard["title"]
    expected = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"instance", "pipeline"}
    for variable in variables.values():
        assert variable["datasource"] == expected, variable["name"]
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]
            # every query follows the gateway selector
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])


def test_dashboard_panels_are_laid_out_without_overlap() -> None:
    """Panels have their own ids and places on Grafana's 24-column grid: none hides another."""
    dashboard = _dashboard()
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_dashboard_shows_what_the_issue_asks_for_from_edged_metrics_only() -> None:
    """Each query of the dashboard and its variables reads only metrics edged exports, and it
    has throughput, drops, violations, latency, queue, outbox, links, RSS and deploys."""
    dashboard = _dashboard()
    names: set[str] = set()
    for expr in _exprs(dashboard) + _variable_metrics(dashboard):
        found = metric_names(expr)
        assert found, expr
        assert not foreign_metrics(found), (expr, foreign_metrics(found))
        names |= found
    wanted = {
        "edged_messages_received_total",
        "edged_messages_published_total",
        "edged_messages_dropped_total",
        "edged_filter_violations_total",
        "edged_filter_call_duration_seconds_bucket",
        "edged_intake_queue_depth",
        "edged_intake_queue_capacity",
        "edged_outbox_entries",
        "edged_outbox_bytes",
        "edged_outbox_oldest_age_seconds",
        "edged_broker_connected",
        "process_resident_memory_bytes",
        "edged_deploys_total",
    }
    assert wanted <= names, wanted - names
    quantiles = [e for e in _exprs(dashboard) if "histogram_quantile" in e]
    assert any(e.startswith("histogram_quantile(0.5,") for e in quantiles)
    assert any(e.startswith("histogram_quantile(0.99,") for e in quantiles)


# -- the private Prometheus -------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrivatePrometheus]:
    """One private Prometheus that scrapes its own /metrics, for the tests below."""
    port = free_port()
    with PrivatePrometheus([f"127.0.0.1:{port}"], port=port) as running:
        yield running


def test_private_prometheus_scrapes_a_target(prometheus: PrivatePrometheus) -> None:
    """The harness the metrics tests build on: a real Prometheus on a loopback port scrapes a
    target (itself) and its query API answers `up` with 1."""
    result = prometheus.wait_for("up", lambda r: [x["value"][1] for x in r] == ["1"])
    assert result[0]["metric"] == {
        "__name__": "up",
        "instance": f"127.0.0.1:{prometheus.port}",
        "job": "edged",
    }
    assert prometheus.values("count(prometheus_build_info)") == [1.0]
    assert prometheus.target_health() == [
        {"url": f"http://127.0.0.1:{prometheus.port}/metrics", "health": "up", "error": ""}
    ]
    with pytest.raises(ValueError, match="parse error"):
        prometheus.query("up{")


def _as_prometheus_sees_it(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in as Grafana would."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "1m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_every_dashboard_query_is_valid_promql(prometheus: PrivatePrometheus) -> None:
    """Prometheus itself accepts each query of the dashboard (an invalid one would leave its
    panel saying "bad_data" on the operator's screen)."""
    dashboard = _dashboard()
    for expr in _exprs(dashboard) + _variable_metrics(dashboard):
        prometheus.query(_as_prometheus_sees_it(expr))  # raises ValueError when Prometheus refuses

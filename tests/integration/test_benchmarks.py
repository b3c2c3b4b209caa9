"""The benchmark harness keeps working (its numbers are not asserted: they are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT


def test_harness_quick_mode_runs_every_section(tmp_path: Path) -> None:
    """`python -m benchmarks --quick` measures every contender, workload and scenario (two
    brokers, a shared subscription split by two nodes among them, edged with and without its HTTP
    endpoint, scraped and not, a stream with poison outputs against a clean one, swaps that hand
    a filter's state over), every output arrives, every scrape answers Prometheus text, every
    poison output is dead-lettered, and the JSON, Markdown and chart (or the reason it is
    missing) are written."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    markdown = (tmp_path / "results.md").read_text()
    assert markdown == result.stdout

    node_red = results["meta"]["node_red"]
    contenders = {"ceiling-python", "ceiling-wasm", "edged"}
    if node_red.startswith("skipped"):
        assert any(note.startswith("Node-RED skipped") for note in results["notes"])
    else:
        contenders.add("node-red")
    cases = {
        (r["contender"], r["workload"], r["qos"], r["payload_bytes"]) for r in results["matrix"]
    }
    assert cases == {
        (name, workload, qos, size)
        for name in contenders
        for workload in ("passthrough", "threshold", "average")
        for qos in (0, 1)
        for size in (64, 1024)
    }
    for row in results["matrix"]:
        assert row["complete"], row
        assert row["outputs"] == row["expected_outputs"] > 0, row
        assert row["msgs_per_s"] > 0 and row["cpu_s_per_100k"] >= 0
        assert row["peak_rss_mib"] > 0 and row["steady_rss_mib"] > 0
        if row["workload"] != "average":
            assert row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], row

    cold = results["cold_start"]
    assert cold["modules"] == 4 and cold["no_cache_s"]["median"] > 0 < cold["cache_s"]["median"]
    swap = results["hot_swap"]
    assert swap["swaps"] >= 1 and swap["acks"] == {"activated": swap["swaps"]}
    assert (swap["lost"], swap["duplicated"], swap["unexpected"]) == (0, 0, 0)
    assert [row["pipelines"] for row in results["scale"]] == [1, 4, 16, 64]
    assert all(row["outputs"] == row["expected_outputs"] for row in results["scale"])
    brokers = results["brokers"]
    inputs = brokers["messages"] * brokers["rounds"]
    for measurement, setups in (
        ("two_brokers", ("one broker", "two brokers")),
        ("shared", ("one node", "two nodes")),
    ):
        for name in setups:
            row = brokers[measurement][name]
            assert row["complete"] and row["msgs_per_s"] > 0, row
            assert sum(node["inputs"] for node in row["nodes"].values()) == inputs, row
    split = brokers["shared"]["two nodes"]["nodes"].values()
    assert len(split) == 2 and all(node["inputs"] > 0 for node in split), split
    http = results["endpoint"]
    for name in ("no http", "http, not scraped", "http, scraped 1/s"):
        row = http["floods"][name]
        assert row["complete"] and row["msgs_per_s"] > 0 < row["edged_cpu_s_per_100k"], row
        assert http["rss_mib"]["after_floods"][name] > 0
    scraped = http["floods"]["http, scraped 1/s"]
    assert scraped["scrapes_ok"] == scraped["scrapes"] >= http["rounds"], scraped
    assert http["floods"]["http, not scraped"]["scrapes"] == 0
    assert http["idle"]["scrapes_ok"] == http["idle"]["scrapes"] >= 1, http["idle"]
    assert http["idle"]["scrape_cpu_ms"] is not None and http["idle"]["scrape_bytes"] > 0
    assert not [note for note in results["notes"] if note.startswith("endpoint")]
    assert "## HTTP endpoint" in markdown
    faults = results["faults"]
    for key in ("announced", "unannounced"):
        measured = faults[key]
        for name in ("clean", "poison"):
            row = measured[name]
            assert row["complete"] and row["msgs_per_s"] > 0, row
            assert row["inputs"] == measured["messages"] * measured["rounds"], row
            assert row["dead_lettered"] == row["poison"], row
        assert measured["poison"]["poison"] > 0 == measured["clean"]["poison"], measured
        assert measured["clean"]["reconnects"] == 0, measured
    # announced: refused before sending; unannounced: found by the disconnects it causes
    assert faults["announced"]["poison"]["reconnects"] == 0
    assert faults["unannounced"]["poison"]["reconnects"] > 0
    assert not [note for note in results["notes"] if note.startswith("faults")]
    assert "## A poison output" in markdown
    state = results["state"]
    assert [row["state_bytes"] for row in state["swaps"]] == [None, 0, 4096, 65536, 1048576]
    for row in state["swaps"]:
        assert row["swaps"] >= 1 and row["acks"] == {"activated": row["swaps"]}, row
        assert (row["lost"], row["duplicated"], row["unexpected"]) == (0, 0, 0), row
        # every swap of a module with state exports handed the state over
        assert row["state_loads"] == (0 if row["state_bytes"] is None else row["swaps"]), row
    checkpoint = state["checkpoint"]
    assert checkpoint["checkpoints"] >= 1 and checkpoint["bytes_per_checkpoint"] > 8 * 4096
    assert set(state["call_us"]) == {"no state exports", "state exports, 4 KiB"}
    assert "## Filter state" in markdown
    sparkplug = results["sparkplug"]
    if "skipped" in sparkplug:  # no decode module or no Node.js here
        assert any(note.startswith("sparkplug: skipped") for note in results["notes"])
    else:
        assert sparkplug["same_json"], results["notes"]
        for row in sparkplug["contenders"].values():
            assert row["complete"] and row["msgs_per_s"] > 0 < row["cpu_s_per_100k"], row
    assert "## Sparkplug B decode" in markdown
    assert len(results["call_cost"]) == 4
    assert (tmp_path / "results.png").exists() or any(
        note.startswith("chart skipped") for note in results["notes"]
    )


def test_budget_cost_benchmark_quick_mode_runs() -> None:
    """`budget_cost.py --quick` times all three call paths and prints their ratios."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "budget_cost.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:]
    assert rows[0].split()[-1] == "1.00"
    assert len(rows) == 3

"""The benchmark harness keeps working (its numbers are not asserted: they are not tests)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_throughput_benchmark_quick_mode_runs_every_contender() -> None:
    """`throughput.py --quick` measures the raw loop and edged, and every output arrives."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()[1:]
    outputs = {row.rsplit(None, 4)[0].strip(): int(row.split()[-1]) for row in rows}
    assert outputs == {
        "raw paho republish (ceiling)": 1000,
        "edged, passthrough": 1000,
        "edged, threshold": 500,
    }


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

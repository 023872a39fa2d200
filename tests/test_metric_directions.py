"""Which side of each metric is better (issue 22): declared or read off its name, written
in every summary (``metric_directions``), and read back from records written before it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.plugins import PluginHost
from harness.registry import ProblemRegistry
from harness.results.directory import RunDirectory
from harness.target import better_side, parse_directions
from tests.helpers import run_cli
from tests.test_conformance import Line

BASELINE = Path(__file__).parent.parent / "benchmarks" / "baseline"


def test_every_metric_of_every_builtin_has_a_side_unless_it_is_a_count(host: PluginHost) -> None:
    counts = {"episodes", "learn_steps"}  # dqn's bookkeeping: neither side is better
    for name in host.problems.names():
        problem = host.problems.get(name)
        for metric in problem.metrics:
            side = problem.better(metric)
            assert (side is None) == (metric in counts), (name, metric, side)
        if problem.target is not None and problem.target.metric in problem.metrics:
            assert problem.better(problem.target.metric) == problem.target.mode
    gan = host.problems.get("gan")
    assert gan.better("inside_bounds") == "max" and gan.better("a_w1") == "min"


@pytest.mark.parametrize(("metric", "side"), [
    ("test_loss", "min"), ("val_accuracy", "max"), ("curve_distance", "min"),
    ("eval_return", "max"), ("episodes", None), ("a_w1", None),
])
def test_better_side_reads_the_name(metric: str, side: str | None) -> None:
    assert better_side(metric) == side


def test_summary_csv_says_which_side_is_better(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression,classification", "-o", "sgd", "-s", "0",
                   "--steps", "10", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    assert summary.loc["classification", "metric_directions"] == \
        "test_accuracy=max,test_loss=min,val_accuracy=max,val_loss=min"
    assert summary.loc["regression", "metric_directions"] == "test_loss=min,val_loss=min"
    assert set(summary["validation_metric"]) == {"val_loss"}
    row = summary.loc["classification"]
    assert parse_directions(row["metric_directions"])["val_accuracy"] == "max"


def test_records_without_the_column_stay_readable() -> None:
    """benchmarks/baseline was written before the column: its metrics' sides are read off
    their names."""
    summary, _ = RunDirectory(BASELINE).tables()
    assert "metric_directions" not in summary.columns
    row = summary.iloc[0]
    directions = parse_directions(row.get("metric_directions", math.nan),
                                  [c for c in summary.columns if c.startswith("test_")])
    assert directions == {"test_loss": "min", "test_accuracy": "max"}
    proc = run_cli("show", str(BASELINE))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("better", [{"accuracy": "max"}, {"test_loss": "lower"}])
def test_the_registry_refuses_a_wrong_metric_better(better: dict[str, Any]) -> None:
    problem = type("Sided", (Line,), {"metric_better": better})()
    with pytest.raises(TypeError, match="metric_better maps declared metrics"):
        ProblemRegistry().add(problem)

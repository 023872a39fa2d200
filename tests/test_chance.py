"""A cell that ends at chance level is flagged (issue 22): the ``at_chance`` summary column
and ``harness show``, instead of an ``ok`` like any other."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.registry import ProblemRegistry
from harness.target import CHANCE_MARGIN, at_chance
from harness.train.loop import run_cell
from tests.helpers import run_cli
from tests.test_conformance import Line
from tests.test_problems import make_cell

BASELINE = Path(__file__).parent.parent / "benchmarks" / "baseline"


def test_a_cnn_that_learned_nothing_is_flagged_in_the_summary_and_in_show(
        tmp_path: Path) -> None:
    """lr 0 leaves the CNN at its initialisation: about one digit in ten right."""
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "cnn", "-o", "sgd", "--set", "lr=0", "-s", "0", "--steps", "2",
                   "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["test_accuracy"] <= 0.1 + CHANCE_MARGIN
    assert row["at_chance"] == "test_accuracy,val_accuracy"
    shown = run_cli("show", str(out))
    assert shown.returncode == 0, shown.stderr
    header, line = shown.stdout.splitlines()[1:3]
    assert "at_chance" in header.split() and "test_accuracy,val_accuracy" in line.split()


def test_a_classifier_that_learned_is_not_flagged(host: PluginHost) -> None:
    result = run_cell(make_cell("classification", steps=200), host.problems.get("classification"),
                      host.optimizers.get("adam"), RunOptions(windows=5, eval_every=200))
    assert result.status == "ok" and result.summary["test_accuracy"] >= 0.95
    assert "at_chance" in result.summary and result.summary["at_chance"] is None


def test_show_has_no_chance_column_when_nothing_is_at_chance() -> None:
    proc = run_cli("show", str(BASELINE))
    assert proc.returncode == 0, proc.stderr
    assert "at_chance" not in proc.stdout


@pytest.mark.parametrize(("value", "chance", "better", "flagged"), [
    (0.1, 0.1, "max", True), (0.149, 0.1, "max", True), (0.2, 0.1, "max", False),
    (0.05, 0.1, "max", True), (math.nan, 0.1, "max", False), (0.3, 0.5, "min", False),
    (0.5, 0.5, "min", True), (0.1, 0.1, None, False),
])
def test_the_chance_rule(value: float, chance: float, better: Any, flagged: bool) -> None:
    assert at_chance(value, chance, better) is flagged


@pytest.mark.parametrize("chance", [{"accuracy": 0.1}, {"test_loss": "0.1"},
                                    {"test_loss": math.inf}])
def test_the_registry_refuses_a_wrong_chance_level(chance: dict[str, Any]) -> None:
    problem = type("Chancy", (Line,), {"chance_level": chance})()
    with pytest.raises(TypeError, match="chance_level maps declared metrics"):
        ProblemRegistry().add(problem)

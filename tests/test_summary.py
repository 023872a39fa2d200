"""One summary builder for finished cells and for cells killed mid-way, whose keys are the
schema's columns (train may not import harness.results; this test holds them together)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.results.schema import COLUMNS
from harness.testing.cells import make_cell
from harness.train.loop import run_cell, summary_from_curve

SCHEMA = {c.name for c in COLUMNS if c.kind != "derived"}


def finished(host: PluginHost, name: str, steps: int, **options: Any) -> Any:
    problem, spec = host.problems.get(name), host.optimizers.get("adam")
    cell = make_cell(problem, spec, steps=steps)
    result = run_cell(cell, problem, spec, RunOptions(windows=4, **options))
    assert result.status == "ok", result.traceback
    return cell, problem, result


@pytest.mark.parametrize(("name", "options"), [
    ("regression", {"checkpoint_every": 5, "cuda_graphs": True}),
    # torch.compile's inductor takes some 40 s on the CPU
    pytest.param("regression", {"compile": True, "loader": "dataloader"},
                 marks=pytest.mark.long),
    ("gan", {"cuda_graphs": True, "compile": True}),
    ("dqn", {}),
])
def test_every_summary_key_is_a_schema_column_or_a_metric(
        host: PluginHost, tmp_path: Path, name: str, options: dict[str, Any]) -> None:
    if "checkpoint_every" in options:
        options = {**options, "checkpoint_dir": tmp_path}
    cell, problem, result = finished(host, name, 12, **options)
    for summary in (result.summary, summary_from_curve(cell, problem, list(result.curve), 1.0),
                    summary_from_curve(cell, None, [], 0.0)):
        stray = set(summary) - SCHEMA - set(problem.metrics)
        assert not stray, f"summary keys that are no schema column nor metric: {stray}"
    # the fast paths asked for are recorded, each under its column
    assert {"opt_impl", "first_step_s"} <= set(result.summary)
    assert {k for k in ("cuda_graphs", "compile", "checkpoint") if k in options} \
        <= set(result.summary)


def test_a_killed_cells_summary_agrees_with_the_finished_one(host: PluginHost) -> None:
    """Rebuilt from the curve alone, the summary has the finished cell's losses, steps,
    target and metrics (its throughput is over the rows, not the steady windows)."""
    cell, problem, result = finished(host, "regression", 40)
    rebuilt = summary_from_curve(cell, problem, list(result.curve), 2.5)
    s = result.summary
    for key in ("steps_done", "final_loss", "best_loss", "sample_unit", "target_metric",
                "target_threshold", "target_mode", *problem.metrics):
        assert rebuilt[key] == s[key], key
    assert rebuilt["wall_s"] == 2.5 and rebuilt["samples_per_s"] > 0
    assert list(rebuilt)[:15] == list(s)[:15]


def test_summary_from_rows_by_hand(host: PluginHost) -> None:
    problem, spec = host.problems.get("regression"), host.optimizers.get("adam")
    cell = make_cell(problem, spec, steps=30, batch_size=10)
    rows = [{"step": 10, "elapsed_s": 1.0, "samples": 100, "loss": 2.0},
            {"step": 20, "elapsed_s": 3.0, "loss": 0.5, problem.metrics[0]: 0.25},
            {"step": 25, "elapsed_s": 3.5, "samples": 260, "loss": math.nan}]
    s = summary_from_curve(cell, problem, rows, 9.0)
    assert s["steps_done"] == 25 and math.isnan(s["final_loss"]) and s["best_loss"] == 0.5
    assert s["samples_per_s"] == (260 - 100) / 2.5
    assert s["step_time_ms"] == 1000 * 2.5 / 15
    assert s[problem.metrics[0]] == 0.25 and s["wall_s"] == 9.0
    assert math.isnan(s["warmup_s"]) and math.isnan(s["peak_mem_mb"])
    one = summary_from_curve(cell, problem, rows[:1], 9.0)
    assert math.isnan(one["samples_per_s"]) and math.isnan(one["step_time_ms"])

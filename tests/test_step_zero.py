"""Step 0: every curve starts at initialisation, with the training loss and the evaluation
metrics before any step, off the clock; time-to-target and the report use it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from harness import BuildContext, Problem, Supervised, Target
from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.report import stats
from harness.testing.cells import make_cell
from harness.train.loop import run_cell
from harness.train.summary import summary_from_curve


class Line(Problem):
    """y = 2x - 1 with a linear unit, its test loss evaluated on the training points."""

    name = "line0"
    steps = 12
    batch_size = 16
    metrics = ("test_loss",)
    target = Target("test_loss", 0.05)

    def build(self, ctx: BuildContext) -> Supervised:
        g = ctx.cpu_generator()
        x = torch.rand(256, 1, generator=g) * 2 - 1
        y = 2 * x - 1

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return Supervised(model=nn.Linear(1, 1), loss_fn=nn.functional.mse_loss, inputs=x,
                          targets=y, evaluate=evaluate)


class Solved(Line):
    """Its target is met before any training."""

    name = "solved0"
    target = Target("test_loss", 1e9)


def _cell(name: str, optimizer: str = "adam", steps: int = 12) -> Cell:
    return Cell(problem=name, optimizer=optimizer, device="cpu", seed=0, steps=steps,
                batch_size=16, hyper=(("lr", 0.1),))


def test_every_curve_starts_at_step_0_with_the_loss_and_metrics(host: PluginHost) -> None:
    """With one step per window, step 1's loss is the first step's loss at the initial
    parameters on the first batch: exactly what step 0 records from its copy. So the probe
    saw the cell's own initial state and data, and changed neither."""
    result = run_cell(_cell("line0"), Line(), host.optimizers.get("adam"),
                      RunOptions(windows=12, eval_every=1))
    assert result.status == "ok", result.traceback
    first, second = result.curve[0], result.curve[1]
    assert (first["step"], first["elapsed_s"], first["samples"]) == (0, 0.0, 0)
    assert second["step"] == 1 and first["loss"] == second["loss"]
    assert math.isfinite(first["test_loss"]) and first["test_loss"] > second["test_loss"]
    # the summary's losses are the windows' (step 0 is one batch)
    assert result.summary["best_loss"] == min(r["loss"] for r in result.curve[1:])
    rebuilt = summary_from_curve(_cell("line0"), Line(), list(result.curve), 1.0)
    assert rebuilt["best_loss"] == result.summary["best_loss"]


def test_step_0_through_a_dataloader_is_its_first_batch(host: PluginHost) -> None:
    """A DataLoader's iterator cannot be copied: the copy gets the batch the loader serves
    next, which the cell then trains on first (the order is unchanged)."""
    result = run_cell(_cell("line0"), Line(), host.optimizers.get("adam"),
                      RunOptions(windows=12, loader="dataloader"))
    assert result.status == "ok", result.traceback
    assert result.summary["loader"] == "dataloader(num_workers=0)"
    assert result.curve[0]["loss"] == result.curve[1]["loss"]
    # 2·16 forward, 2·16 for the weight's gradient (none for the data's)
    assert result.summary["flops_per_step"] == 4 * 16
    again = run_cell(_cell("line0"), Line(), host.optimizers.get("adam"),
                     RunOptions(windows=12, loader="dataloader"))
    assert [r["loss"] for r in result.curve] == [r["loss"] for r in again.curve]


def test_step_0_costs_no_training_time(host: PluginHost) -> None:
    result = run_cell(_cell("line0"), Line(), host.optimizers.get("adam"), RunOptions())
    assert result.curve[0]["elapsed_s"] == 0.0
    assert result.curve[1]["elapsed_s"] > 0


def test_built_in_problems_start_at_step_0(host: PluginHost) -> None:
    for name in ("regression", "gan"):
        problem, spec = host.problems.get(name), host.optimizers.get("adam")
        result = run_cell(make_cell(problem, spec, steps=10), problem, spec,
                          RunOptions(windows=2))
        assert result.status == "ok", result.traceback
        row = result.curve[0]
        assert row["step"] == 0 and row["elapsed_s"] == 0.0
        assert set(problem.metrics) <= set(row), name
        assert {k for k in result.curve[1] if "loss" in k} <= set(row), name


def test_a_target_met_at_initialisation_costs_zero(host: PluginHost) -> None:
    result = run_cell(_cell("solved0"), Solved(), host.optimizers.get("adam"), RunOptions())
    s = result.summary
    assert (s["time_to_target_s"], s["steps_to_target"], s["samples_to_target"]) == (0, 0, 0)
    assert s["flops_to_target"] == 0


def test_a_zero_cost_is_the_best_not_a_miss() -> None:
    """Zero (met at step 0) is the best a cost can be: its ratio is 1 and every positive
    cost on that problem is infinitely worse; a cost under 1 is an ordinary cost."""
    times = pd.DataFrame({"a": [0.0, 0.013], "b": [5.0, 0.026], "c": [0.0, math.nan]},
                         index=["p", "q"])
    ratios = stats.performance_ratios(times)
    assert ratios.loc["p"].tolist() == [1.0, math.inf, 1.0]
    assert ratios.loc["q", "a"] == 1.0 and ratios.loc["q", "b"] == 2.0
    assert math.isnan(ratios.loc["q", "c"])
    scores = stats.profile_score(times)
    assert scores["a"] == 1.0 and scores["c"] == 1.0
    assert scores["b"] == (0 + (4 - 2) / 3) / 2


def test_the_report_counts_step_0(tmp_path: Path, host: PluginHost,
                                  register_plugin: object) -> None:
    """A run whose target is met at initialisation: every arm is at zero cost and scores 1."""
    from harness import hookimpl
    from harness.cli import main
    from harness.report import build_report

    class Plugin:
        @hookimpl
        def register_problems(self, registry: object) -> None:
            registry.add(Solved())  # type: ignore[attr-defined]

    register_plugin(Plugin(), "solved0-plugin")  # type: ignore[operator]
    out = tmp_path / "run"
    assert main(["run", "-m", "solved0", "-o", "sgd,adam", "-s", "0", "--steps", "10",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    index = build_report(out, host=host)
    scores = pd.read_csv(index.parent / "profile_scores.csv")
    assert scores["score"].tolist() == [1.0, 1.0]
    curves = pd.read_parquet(out / "curves.parquet")
    assert (curves.groupby("cell_id")["step"].min() == 0).all()

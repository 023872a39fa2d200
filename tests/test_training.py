"""The cell loop: windows, evaluation, targets, divergence, errors, custom steps, seeds."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from harness import BuildContext, Param, Problem, Supervised, Target, Task
from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.train.loop import run_cell


class Line(Problem):
    """y = 2x - 1 with a linear unit; parameters let tests inject faults."""

    name = "line"
    steps = 40
    batch_size = 16
    metrics = ("test_loss",)
    target = Target("test_loss", 0.05)
    params = (Param("nan_at", 0), Param("fail", False), Param("eval_sleep", 0.0))

    def build(self, ctx: BuildContext) -> Supervised:
        if ctx.params["fail"]:
            raise RuntimeError("the problem could not be built")
        g = ctx.cpu_generator()
        x = torch.rand(256, 1, generator=g) * 2 - 1
        y = 2 * x - 1
        model = nn.Linear(1, 1)
        nan_at = int(ctx.params["nan_at"])
        calls = {"n": 0}

        def loss_fn(out: Tensor, target: Tensor) -> Tensor:
            calls["n"] += 1
            loss = nn.functional.mse_loss(out, target)
            return loss * math.nan if nan_at and calls["n"] >= nan_at else loss

        def evaluate(m: nn.Module) -> dict[str, float]:
            assert not m.training and not torch.is_grad_enabled()
            time.sleep(float(ctx.params["eval_sleep"]))
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y, evaluate=evaluate)


def cell(**kw: Any) -> Cell:
    params = {"nan_at": 0, "fail": False, "eval_sleep": 0.0} | kw.pop("params", {})
    base = dict(problem="line", optimizer="adam", device="cpu", seed=0, steps=40, batch_size=16,
                params=tuple(sorted(params.items())), hyper=(("lr", 0.1),))
    return Cell(**(base | kw))


def run(host: PluginHost, c: Cell, **options: Any) -> Any:
    return run_cell(c, Line(), host.optimizers.get(c.optimizer), RunOptions(**options))


def test_curve_windows_evaluation_and_target(host: PluginHost) -> None:
    result = run(host, cell(), windows=10)
    assert result.status == "ok", result.traceback
    steps = [r["step"] for r in result.curve]
    assert steps == sorted(set(steps)) and steps[-1] == 40 and len(steps) >= 10
    evaluated = [r for r in result.curve if "test_loss" in r]
    assert len(evaluated) >= 4 and evaluated[-1]["step"] == 40
    s = result.summary
    assert s["steps_done"] == 40
    assert s["final_loss"] == result.curve[-1]["loss"]
    assert s["best_loss"] == min(r["loss"] for r in result.curve)
    assert s["test_loss"] < 0.05
    assert 0 < s["steps_to_target"] <= 40 and 0 < s["time_to_target_s"] <= s["wall_s"]
    assert s["samples_per_s"] > 0 and s["step_time_ms"] > 0 and s["warmup_s"] > 0
    assert s["peak_mem_mb"] > 0 and s["data_source"] == "synthetic"


def test_missed_target_is_nan(host: PluginHost) -> None:
    result = run(host, cell(optimizer="sgd", hyper=(("lr", 1e-5),)))
    assert result.status == "ok"
    assert math.isnan(result.summary["time_to_target_s"])
    assert math.isnan(result.summary["steps_to_target"])


def test_evaluation_is_outside_the_timed_windows(host: PluginHost) -> None:
    result = run(host, cell(params={"eval_sleep": 0.5}), eval_every=20)
    # two evaluations (and step 0's) slept 0.5 s each, outside the training time: no
    # bound on how fast the 40 steps are, only that the sleeps are not in elapsed_s
    assert result.summary["wall_s"] - result.curve[-1]["elapsed_s"] >= 1.0


def test_nan_marks_the_cell_diverged_and_keeps_its_curve(host: PluginHost) -> None:
    result = run(host, cell(params={"nan_at": 25}), windows=40)
    assert result.status == "diverged"
    assert "step 25" in result.error
    assert [r["step"] for r in result.curve][-1] == 25
    assert all(math.isfinite(r["loss"]) for r in result.curve[:-1])


@pytest.mark.parametrize("nan_at", [1, 11, 23, 30])
def test_divergence_names_the_step_whose_loss_went_nan(host: PluginHost, nan_at: int) -> None:
    # Windows of several steps: a NaN at step 23 was reported at the window's end.
    result = run(host, cell(params={"nan_at": nan_at}), windows=4)
    assert result.status == "diverged"
    assert f"loss nan at step {nan_at} (first window" in result.error, result.error
    assert result.curve[-1]["step"] >= nan_at  # the curve ends with the window it is in


def test_build_error_is_recorded_with_traceback(host: PluginHost) -> None:
    result = run(host, cell(params={"fail": True}))
    assert result.status == "error"
    assert result.error == "RuntimeError: the problem could not be built"
    assert "Traceback" in result.traceback and "build" in result.traceback


def test_same_seed_same_curve_and_shared_start_across_optimizers(host: PluginHost) -> None:
    a = run(host, cell(seed=3), windows=40)
    b = run(host, cell(seed=3), windows=40)
    assert [r["loss"] for r in a.curve] == [r["loss"] for r in b.curve]
    c = run(host, cell(seed=4), windows=40)
    assert [r["loss"] for r in a.curve] != [r["loss"] for r in c.curve]
    # Seeds pair up across optimizers: same initial weights and the same first batch.
    sgd = run(host, cell(seed=3, optimizer="sgd", hyper=(("lr", 0.1),), steps=1), windows=1)
    adam = run(host, cell(seed=3, steps=1), windows=1)
    assert sgd.curve[0]["loss"] == adam.curve[0]["loss"]


class TwoPlayers(Task):
    """Two parameter groups, two optimizers, two losses."""

    samples_per_step = 8

    def __init__(self) -> None:
        self.a = nn.Linear(1, 1)
        self.b = nn.Linear(1, 1)
        self.seen: dict[str, torch.optim.Optimizer] = {}

    def parameter_groups(self) -> Mapping[str, Any]:
        return {"first": self.a.parameters(), "second": self.b.parameters()}

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        self.seen = dict(optimizers)
        x = torch.ones(8, 1)
        losses = {}
        for role, net, goal in (("first", self.a, 1.0), ("second", self.b, -1.0)):
            optimizers[role].zero_grad()
            loss = (net(x) - goal).pow(2).mean()
            loss.backward()
            optimizers[role].step()
            losses[f"{role}_loss"] = loss
        return {"loss": losses["first_loss"] + losses["second_loss"], **losses}

    def evaluate(self) -> Mapping[str, float]:
        with torch.no_grad():
            x = torch.ones(1, 1)
            return {"gap": float((self.a(x) - self.b(x)).abs())}


class TwoPlayerProblem(Problem):
    name = "two-players"
    steps = 30
    metrics = ("gap",)
    target = Target("gap", 1.5, "max")

    def build(self, ctx: BuildContext) -> Task:
        self.task = TwoPlayers()
        return self.task


def test_custom_task_gets_one_optimizer_per_role(host: PluginHost) -> None:
    problem = TwoPlayerProblem()
    c = Cell(problem="two-players", optimizer="adam", device="cpu", seed=0, steps=30,
             batch_size=8, hyper=(("lr", 0.1),))
    result = run_cell(c, problem, host.optimizers.get("adam"), RunOptions(windows=5))
    assert result.status == "ok", result.traceback
    opts = problem.task.seen
    assert set(opts) == {"first", "second"} and opts["first"] is not opts["second"]
    assert {"loss", "first_loss", "second_loss"} <= set(result.curve[-1])
    assert result.summary["gap"] > 1.5 and result.summary["steps_to_target"] <= 30
    assert result.summary["samples_per_s"] > 0


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_builtin_optimizer_lowers_the_loss(host: PluginHost, name: str) -> None:
    spec = host.optimizers.get(name)
    c = cell(optimizer=name, hyper=tuple(sorted(spec.defaults.items())), steps=300)
    result = run(host, c, windows=10)
    assert result.status == "ok"
    assert result.curve[-1]["loss"] < 0.8 * result.curve[0]["loss"]


def test_a_role_gets_its_own_optimizer_from_the_grid(host: PluginHost, register_plugin,  # type: ignore[no-untyped-def]
                                                     tmp_path) -> None:
    from harness import hookimpl
    from harness.grid import GridSpec, apply_toml, expand, load_grid_file

    class Roles(TwoPlayerProblem):
        roles = ("first", "second")

    problem = Roles()

    class Plugin:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            registry.add(problem)

    register_plugin(Plugin(), "roles-plugin")
    grid_file = tmp_path / "g.toml"
    grid_file.write_text('models = ["two-players"]\noptimizers = ["adam"]\n'
                         '[model.two-players.role.second]\noptimizer = "sgd"\nlr = 0.5\n')
    spec = GridSpec()
    apply_toml(spec, load_grid_file(grid_file), "g.toml")
    [c] = expand(spec, host.problems, host.optimizers).cells
    assert c.roles == (("second", "sgd", (("lr", 0.5),)),)
    assert dict(c.versions)["optimizer:second"].startswith("harness")
    result = run_cell(c, problem, host.optimizers.get("adam"), RunOptions(windows=3),
                      role_specs={"sgd": host.optimizers.get("sgd")})
    assert result.status == "ok", result.traceback
    first, second = problem.task.seen["first"], problem.task.seen["second"]
    assert isinstance(first, torch.optim.Adam) and isinstance(second, torch.optim.SGD)
    assert second.param_groups[0]["lr"] == 0.5

    grid_file.write_text('models = ["two-players"]\n[model.two-players.role.third]\nlr = 1\n')
    spec = GridSpec()
    apply_toml(spec, load_grid_file(grid_file), "g.toml")
    with pytest.raises(Exception, match="has no role 'third'"):
        expand(spec, host.problems, host.optimizers)


class Sparse(Task):
    """Returns 'sparse' on even steps only: its window mean counts those steps alone."""

    def __init__(self) -> None:
        self.net = nn.Linear(1, 1)
        self.i = 0

    def parameter_groups(self) -> Mapping[str, Any]:
        return {"model": self.net.parameters()}

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        self.i += 1
        out = {"loss": torch.tensor(1.0)}
        if self.i % 2 == 0:
            out["sparse"] = torch.tensor(4.0)
        return out

    def evaluate(self) -> Mapping[str, float]:
        return {"level": 3.0}


class SparseProblem(Problem):
    name = "sparse"
    metrics = ("level",)
    params = (Param("goal", 2.0),)
    target = Target("level", 100.0, "max")  # never reached...

    def target_for(self, params: Mapping[str, Any]) -> Target:
        return Target("level", float(params["goal"]), "max")  # ...unless the cell says so

    def build(self, ctx: BuildContext) -> Task:
        return Sparse()


def test_per_key_window_means_and_parameter_dependent_targets(host: PluginHost) -> None:
    c = Cell(problem="sparse", optimizer="sgd", device="cpu", seed=0, steps=20, batch_size=1,
             params=(("goal", 2.0),), hyper=(("lr", 0.1),))
    result = run_cell(c, SparseProblem(), host.optimizers.get("sgd"), RunOptions(windows=5))
    assert result.status == "ok", result.traceback
    # step 0 is the first step alone (on a copy): its loss, and no "sparse" (odd step)
    assert result.curve[0] == {"step": 0, "elapsed_s": 0.0, "samples": 0, "loss": 1.0,
                               "level": 3.0}
    assert all(r["sparse"] == 4.0 and r["loss"] == 1.0 for r in result.curve[1:])
    assert result.summary["target_threshold"] == 2.0
    assert result.summary["steps_to_target"] == 0  # level 3 >= goal 2 at initialisation


def test_window_loss_is_the_step_losses_summed_in_order(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop keeps each step's loss and sums a window's losses at its edge, one by one
    in step order in float32: the same figure a running sum on the device (or inside a
    CUDA graph) gives, however many losses a long window packs together."""
    import dataclasses

    import numpy as np

    from harness.train import losses as window_losses

    seen: list[float] = []

    class Recording(Line):
        def build(self, ctx: BuildContext) -> Supervised:
            built = super().build(ctx)
            inner = built.loss_fn

            def loss_fn(out: Tensor, target: Tensor) -> Tensor:
                loss = inner(out, target)
                seen.append(float(loss.detach()))
                return loss

            return dataclasses.replace(built, loss_fn=loss_fn)

    def curve() -> tuple[list[dict[str, Any]], list[float]]:
        seen.clear()
        result = run_cell(cell(), Recording(), host.optimizers.get("adam"),
                          RunOptions(windows=4, eval_every=40))
        assert result.status == "ok", result.traceback
        return list(result.curve), list(seen)

    rows, losses = curve()
    rows = rows[1:]  # step 0: the loss at initialisation, from the probe's copy
    edges = [0, *(r["step"] for r in rows)]
    assert len(losses) == 40 and len(rows) >= 4
    for row, lo, hi in zip(rows, edges, edges[1:], strict=False):
        in_order = np.add.accumulate(np.array(losses[lo:hi], dtype=np.float32))[-1]
        assert row["loss"] == float(in_order) / (hi - lo)
    monkeypatch.setattr(window_losses, "_KEEP", 3)  # pack every 3 losses into one tensor
    packed, _ = curve()
    assert [r["loss"] for r in packed[1:]] == [r["loss"] for r in rows]


class CommaMetric(Line):
    """Reports a metric it never declared, under a name that would break summary.csv."""

    def build(self, ctx: BuildContext) -> Supervised:
        task = super().build(ctx)
        evaluate = task.evaluate
        assert evaluate is not None

        def renamed(m: nn.Module) -> dict[str, float]:
            return {"test,loss": evaluate(m)["test_loss"]}

        return dataclasses.replace(task, evaluate=renamed)


def test_an_undeclared_metric_name_that_would_break_a_table_ends_the_cell(
        host: PluginHost) -> None:
    result = run_cell(cell(), CommaMetric(), host.optimizers.get("adam"), RunOptions(windows=4))
    assert result.status == "error"
    assert "invalid metric name 'test,loss'" in (result.error or "")

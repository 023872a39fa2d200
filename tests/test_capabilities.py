"""Optimizers whose step needs more than ``zero_grad(); backward(); step()``: closures
(lbfgs, sam), second-order steps (pytorch-optimizer's SophiaH and AdaHessian) and
train/eval modes (schedule-free AdamW), with the real packages of
``tests/packages/harness-optimizerzoo``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

import harness
from harness.cell import Cell
from harness.executor import RunOptions
from harness.optimizer import Capabilities, OptimizerSpec
from harness.plugins import PluginHost
from harness.train import checkpoints
from harness.train.loop import run_cell
from tests.helpers import interrupted_then_resumed, run_cli, same_curve_but_time

ZOO = {"HARNESS_PLUGINS": "harness,harness-optimizerzoo"}


@pytest.fixture
def zoo(installed_packages: Path, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    monkeypatch.syspath_prepend(str(installed_packages))
    monkeypatch.setenv("HARNESS_PLUGINS", ZOO["HARNESS_PLUGINS"])
    return PluginHost()


def records(out: Path) -> dict[str, dict[str, Any]]:
    recs = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    return {r["cell"]["optimizer"]: r for r in recs}


def test_closure_optimizers_run_from_the_command_line(tmp_path: Path) -> None:
    """torch's LBFGS failed every cell (step() without its closure); sam is new."""
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression", "-o", "lbfgs,sam", "-s", "0", "--steps", "30",
                   "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    for name in ("lbfgs", "sam"):
        rec = recs[name]
        assert rec["status"] == "ok", rec.get("error")
        losses = [r["loss"] for r in rec["curve"]]
        assert losses[-1] < losses[0]
    assert recs["sam"]["summary"]["loss_evals"] == 2.0  # two passes on the same batch
    assert recs["lbfgs"]["summary"]["loss_evals"] > 1.0  # its line search evaluates more
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert "loss_evals" in header


def test_a_plain_optimizer_has_no_loss_evals_column(host: PluginHost) -> None:
    problem = host.problems.get("regression")
    cell = Cell(problem="regression", optimizer="adam", device="cpu", seed=0, steps=10,
                batch_size=16, params=tuple(sorted(problem.defaults().items())),
                hyper=(("lr", 0.01),))
    result = run_cell(cell, problem, host.optimizers.get("adam"), RunOptions(windows=2))
    assert result.status == "ok" and "loss_evals" not in result.summary


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_sam_wraps_the_base_optimizer_its_hyperparameter_names(host: PluginHost,
                                                               base: str) -> None:
    problem = host.problems.get("regression")
    sam = host.optimizers.get("sam")
    hyper = sam.resolve({"base": base, "rho": 0.1})
    cell = Cell(problem="regression", optimizer="sam", device="cpu", seed=0, steps=20,
                batch_size=32, params=tuple(sorted(problem.defaults().items())),
                hyper=tuple(sorted(hyper.items())))
    result = run_cell(cell, problem, sam, RunOptions(windows=4))
    assert result.status == "ok", result.error
    assert result.summary["loss_evals"] == 2.0


def test_sam_refuses_an_unknown_base(host: PluginHost) -> None:
    problem = host.problems.get("regression")
    sam = host.optimizers.get("sam")
    cell = Cell(problem="regression", optimizer="sam", device="cpu", seed=0, steps=5,
                batch_size=8, params=tuple(sorted(problem.defaults().items())),
                hyper=(("base", "lion"), ("lr", 0.01), ("rho", 0.05)))
    result = run_cell(cell, problem, sam, RunOptions(windows=1))
    assert result.status == "error"
    assert "base must be one of sgd, adam, adamw, got 'lion'" in (result.error or "")


def test_capabilities_must_be_capabilities() -> None:
    registry = harness.OptimizerRegistry()
    with pytest.raises(TypeError, match=r"capabilities must be harness\.Capabilities"):
        registry.add(OptimizerSpec("bad", torch.optim.SGD, {"lr": 0.1},
                                   capabilities={"closure": True}))  # type: ignore[arg-type]
    assert Capabilities(closure=True, modes=True).labels() == ("closure", "modes")
    assert not Capabilities()


def test_third_party_optimizers_run_from_the_command_line(installed_packages: Path,
                                                          tmp_path: Path) -> None:
    """SophiaH and AdaHessian failed every cell ("element 0 of tensors does not require
    grad") before the gradients kept their graph."""
    out = tmp_path / "zoo"
    proc = run_cli("run", "-m", "regression", "-o", "schedulefree-adamw,sophiah,adahessian",
                   "-s", "0", "--steps", "30", "--out", str(out), "--quiet",
                   env={"PYTHONPATH": os.pathsep.join(
                       [str(installed_packages), os.environ.get("PYTHONPATH", "")]), **ZOO})
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    assert set(recs) == {"schedulefree-adamw", "sophiah", "adahessian"}
    for name, rec in recs.items():
        assert rec["status"] == "ok", (name, rec.get("error"))
        losses = [r["loss"] for r in rec["curve"]]
        assert losses[-1] < losses[0], name


class ModeProbe(harness.Problem):
    """A Task whose evaluation records whether each optimizer is in train mode, and whose
    step is ``harness.take_step``."""

    name = "mode-probe"
    steps = 12
    batch_size = 16
    metrics = ("test_loss",)

    def build(self, ctx: harness.BuildContext) -> harness.Task:
        return ProbeTask(ctx)


class ProbeTask(harness.Task):
    seen: ClassVar[list[bool]] = []

    def __init__(self, ctx: harness.BuildContext) -> None:
        g = ctx.cpu_generator()
        self.x = torch.randn(64, 3, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        self.model = nn.Linear(3, 1)
        self.optimizers: Mapping[str, torch.optim.Optimizer] = {}

    def parameter_groups(self) -> Mapping[str, Any]:
        return {"model": self.model.parameters()}

    def modules(self) -> Mapping[str, nn.Module]:
        return {"model": self.model}

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        self.optimizers = optimizers
        loss = harness.take_step(optimizers["model"],
                                 lambda: nn.functional.mse_loss(self.model(self.x), self.y))
        return {"loss": loss}

    def evaluate(self) -> Mapping[str, float]:
        if self.optimizers:  # known from the first step on (step 0 evaluates before it)
            ProbeTask.seen.append(self.optimizers["model"].param_groups[0]["train_mode"])
        with torch.no_grad():
            return {"test_loss": float(nn.functional.mse_loss(self.model(self.x), self.y))}


def probe_cell(optimizer: OptimizerSpec) -> Cell:
    return Cell(problem="mode-probe", optimizer=optimizer.name, device="cpu", seed=0,
                steps=12, batch_size=16, hyper=tuple(sorted(optimizer.resolve({}).items())))


def test_a_mode_optimizer_is_evaluated_and_saved_in_eval_mode(zoo: PluginHost,
                                                              tmp_path: Path) -> None:
    spec = zoo.optimizers.get("schedulefree-adamw")
    ProbeTask.seen = []
    models = tmp_path / "models"
    cell = probe_cell(spec)
    result = run_cell(cell, ModeProbe(), spec,
                      RunOptions(windows=3, eval_every=4, models_dir=models))
    assert result.status == "ok", result.error
    assert ProbeTask.seen == [False, False, False]  # every evaluation in eval mode
    # the saved model is the evaluated point x, not the training point y
    saved = checkpoints.load(models / f"{cell.cell_id}.pt")
    assert saved is not None
    weight = saved["modules"]["model"]["weight"]
    rerun = run_cell(cell, ModeProbe(), spec, RunOptions(windows=3, eval_every=4))
    assert rerun.curve == tuple({**r, "elapsed_s": s["elapsed_s"]}
                                for r, s in zip(result.curve, rerun.curve, strict=True))
    # evaluating leaves the training point as it was: the curve without evaluations (but
    # one at the end) has the same losses
    fewer = run_cell(cell, ModeProbe(), spec, RunOptions(windows=3, eval_every=12))
    assert [r["loss"] for r in fewer.curve] == [r["loss"] for r in result.curve]
    assert torch.isfinite(weight).all()


def test_a_second_order_optimizer_steps_a_task_through_take_step(zoo: PluginHost) -> None:
    spec = zoo.optimizers.get("sophiah")
    result = run_cell(probe_cell(spec), _NoModeProbe(), spec, RunOptions(windows=3))
    assert result.status == "ok", result.error
    assert result.curve[-1]["loss"] < result.curve[0]["loss"]


def test_take_step_gives_a_closure_optimizer_its_closure(host: PluginHost) -> None:
    spec = host.optimizers.get("lbfgs")
    result = run_cell(probe_cell(spec), _NoModeProbe(), spec, RunOptions(windows=3))
    assert result.status == "ok", result.error
    assert result.summary["loss_evals"] > 1.0
    assert result.curve[-1]["loss"] < 1e-3  # a linear least-squares fit, solved


class _NoModeProbe(ModeProbe):
    def build(self, ctx: harness.BuildContext) -> harness.Task:
        return _NoModeTask(ctx)


class _NoModeTask(ProbeTask):
    def evaluate(self) -> Mapping[str, float]:
        with torch.no_grad():
            return {"test_loss": float(nn.functional.mse_loss(self.model(self.x), self.y))}


@pytest.mark.parametrize("name", ["lbfgs", "schedulefree-adamw"])
def test_resume_from_checkpoint_is_bit_identical(zoo: PluginHost, name: str,
                                                 tmp_path: Path) -> None:
    """LBFGS's history and the schedule-free point survive a checkpoint; evaluations in
    eval mode in between change nothing."""
    problem, spec = zoo.problems.get("regression"), zoo.optimizers.get(name)
    cell = Cell(problem="regression", optimizer=name, device="cpu", seed=1, steps=60,
                batch_size=32, params=tuple(sorted(problem.defaults().items())),
                hyper=tuple(sorted(spec.resolve({}).items())))
    whole, resumed = interrupted_then_resumed(cell, problem, spec, tmp_path / "ckpt")
    assert resumed.status == "ok" and resumed.summary["resumed_from_step"] == 40
    assert same_curve_but_time(whole, resumed)
    if name == "lbfgs":
        assert resumed.summary["loss_evals"] == whole.summary["loss_evals"]

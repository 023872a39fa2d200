"""The GAN and the DQN: their own training loops, through the same grid and results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from harness_builtins.dqn import MEMORY_CAPACITY
from harness_builtins.nets.dqn import DqnTask

from harness import OptimizerRegistry, OptimizerSpec, hookimpl
from harness.cell import Cell
from harness.cli import main
from harness.executor import RunOptions
from harness.outcome import CellResult
from harness.plugins import PluginHost
from harness.problem import BuildContext
from harness.train.loop import build_task, run_cell
from tests.helpers import run_cli

#: Enough environment steps for some learning: the memory fills at 2,000.
DQN_STEPS = MEMORY_CAPACITY + 300
TUTORIAL_ADAM = {"lr": 0.0001, "betas": (0.9, 0.99)}


def make_cell(host: PluginHost, name: str, steps: int, *, seed: int = 0,
              optimizer: str = "adam", hyper: dict[str, Any] | None = None,
              **params: Any) -> Cell:
    problem = host.problems.get(name)
    spec = host.optimizers.get(optimizer)
    return Cell(problem=name, optimizer=optimizer, device="cpu", seed=seed, steps=steps,
                batch_size=problem.batch_size,
                params=tuple(sorted((problem.defaults() | params).items())),
                hyper=tuple(sorted((dict(spec.defaults) | (hyper or {})).items())))


def train(host: PluginHost, cell: Cell, **options: Any) -> CellResult:
    return run_cell(cell, host.problems.get(cell.problem), host.optimizers.get(cell.optimizer),
                    RunOptions(**options))


def read_run(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    summary = pd.read_csv(out / "summary.csv")
    curves = pd.read_parquet(out / "curves.parquet")
    (record_path,) = (out / "cells").glob("*.json")
    return summary, curves, json.loads(record_path.read_text())


# -- the GAN -----------------------------------------------------------------------------
@pytest.mark.slow
def test_gan_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "gan", "-o", "adam", "-s", "0", "--steps", "100",
                   "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary, curves, record = read_run(out)

    row = summary.iloc[0]
    assert row["status"] == "ok" and row["steps_done"] == 100
    assert row["sample_unit"] == "paintings" and row["batch_size"] == 64
    assert row["samples_per_s"] > 0 and row["data_source"] == "synthetic"
    assert row["target_metric"] == "curve_distance"
    assert row["curve_distance"] > 0 and 0 <= row["inside_bounds"] <= 1 and row["a_w1"] >= 0

    for column in ("loss", "d_loss", "g_loss", "d_acc_real", "d_acc_fake"):
        assert curves[column].notna().all() and np.isfinite(curves[column]).all(), column
    assert curves["d_acc_real"].between(0, 1).all() and curves["d_acc_fake"].between(0, 1).all()
    assert np.allclose(curves["loss"], curves["d_loss"] + curves["g_loss"], atol=1e-5)
    assert curves["curve_distance"].notna().sum() == 5  # step 0, then every 25 steps

    art = record["artifacts"]
    assert len(art["x"]) == len(art["artist_lower"]) == len(art["artist_upper"]) == 15
    assert all(lo < hi for lo, hi in zip(art["artist_lower"], art["artist_upper"], strict=True))
    assert list(art["paintings"]) == ["0", "25", "50", "75", "100"]
    for paintings in art["paintings"].values():
        assert len(paintings) == 16 and all(len(p) == 15 for p in paintings)
    assert art["paintings"]["0"] != art["paintings"]["100"]


def test_gan_quality_improves_with_adam(host: PluginHost) -> None:
    """The tutorial's Adam (lr 0.0001): 300 steps bring the paintings nearer the artist's."""
    cell = make_cell(host, "gan", 300, hyper=TUTORIAL_ADAM)
    at_init = build_task(host.problems.get("gan"), cell, RunOptions()).evaluate()
    result = train(host, cell, windows=5)
    assert result.status == "ok", result.traceback
    assert result.summary["curve_distance"] < 0.75 * at_init["curve_distance"]
    assert result.summary["a_w1"] < at_init["a_w1"]


def test_gan_target_is_reached_with_adam_but_not_at_init(host: PluginHost) -> None:
    """The calibration: within the default steps with the tutorial's Adam, never at init."""
    problem = host.problems.get("gan")
    assert problem.target is not None
    cell = make_cell(host, "gan", problem.steps, hyper=TUTORIAL_ADAM)
    at_init = build_task(problem, cell, RunOptions()).evaluate()
    assert not problem.target.reached(at_init["curve_distance"])
    result = train(host, cell)
    assert result.status == "ok", result.traceback
    assert result.summary["steps_to_target"] <= problem.steps
    assert result.summary["time_to_target_s"] > 0


def test_gan_quality_metrics_score_the_artist_family() -> None:
    from harness_builtins.nets.gan import (
        artist_works,
        fitted_a,
        nearest_artist_distance,
        paint_points,
        uniform_w1,
    )

    x = paint_points()
    a = torch.linspace(1, 2, 1000).unsqueeze(1)
    paintings = artist_works(a, x)
    assert torch.allclose(fitted_a(paintings, x), a, atol=1e-5)
    assert nearest_artist_distance(paintings, x).max() < 1e-5
    assert float(uniform_w1(a)) < 1e-3
    assert math.isclose(float(uniform_w1(torch.full((1000, 1), 1.5))), 0.25, abs_tol=1e-3)
    # A curve one above the highest artist curve is 1 away from it (RMS).
    assert math.isclose(float(nearest_artist_distance((2 * x.pow(2) + 2).unsqueeze(0), x)[0]), 1.0,
                        abs_tol=1e-5)


# -- the DQN -----------------------------------------------------------------------------
@pytest.mark.slow
def test_dqn_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "dqn", "-o", "adam", "-s", "0", "--steps", str(DQN_STEPS),
                   "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary, curves, record = read_run(out)

    row = summary.iloc[0]
    assert row["status"] == "ok" and row["env"] == "CartPole-v1"
    assert row["sample_unit"] == "env_steps" and row["samples_per_s"] > 0
    assert row["learn_steps"] == DQN_STEPS - MEMORY_CAPACITY + 1
    assert row["learn_steps_per_s"] > 0
    assert row["target_metric"] == "eval_return" and row["target_threshold"] == 195
    assert row["episodes"] >= 100  # the untrained agent's episodes are short
    # Greedy CartPole returns are episode lengths: whole numbers from 8 to the 500 limit.
    assert 8 <= row["eval_return"] <= 500 and row["greedy_episodes"] == 10

    assert curves["loss"].notna().all() and (curves["loss"] >= 0).all()
    evaluated = curves[curves["episodes"].notna()]
    assert len(evaluated) == 1 + math.ceil(DQN_STEPS / 500)  # step 0, then every 500
    assert evaluated["learn_steps"].is_monotonic_increasing
    assert evaluated["return_ma100"].notna().any() and evaluated["eval_return"].notna().all()

    art = record["artifacts"]
    assert art["env"] == "CartPole-v1"
    returns, ends, times = art["episode_returns"], art["episode_end_steps"], art["episode_end_s"]
    assert len(returns) == len(ends) == len(times) == row["episodes"]
    assert ends == sorted(ends) and ends[-1] <= DQN_STEPS and times == sorted(times)
    # CartPole pays 1 per step: an episode's return is its length.
    assert np.array_equal(np.diff([0, *ends]), returns)
    assert math.isclose(row["return_ma100"], float(np.mean(returns[-100:])))
    assert art["eval_steps"] == evaluated["step"].tolist()
    assert art["eval_returns"] == evaluated["eval_return"].tolist()
    assert art["solved_return"] == 195


@pytest.mark.long
def test_dqn_same_seed_gives_the_same_returns(host: PluginHost) -> None:
    runs = [train(host, make_cell(host, "dqn", DQN_STEPS, seed=seed), windows=5)
            for seed in (3, 3, 4)]
    assert all(r.status == "ok" for r in runs), [r.traceback for r in runs]
    first, again, other = (r.artifacts["episode_returns"] for r in runs)
    assert first == again
    assert [r["loss"] for r in runs[0].curve] == [r["loss"] for r in runs[1].curve]
    assert first != other


def test_dqn_evaluation_plays_the_greedy_policy(host: PluginHost) -> None:
    """eval_return is the mean return of greedy episodes from start states fixed by the
    seed, played on environments of its own: evaluating leaves training untouched."""
    problem = host.problems.get("dqn")
    params = problem.defaults() | {"greedy_episodes": 4}
    ctx = BuildContext(device=torch.device("cpu"), seed=5, batch_size=32, steps=10,
                       params=params, data_dir=Path("."))
    task = problem.build(ctx)
    assert isinstance(task, DqnTask)
    # A network that always pushes right: CartPole falls over the same way each episode.
    with torch.no_grad():
        for p in task.eval_net.parameters():
            p.zero_()
        task.eval_net.out.bias.copy_(torch.tensor([0.0, 1.0]))
    expected = []
    for seed in task.eval_seeds:
        env = gym.make("CartPole-v1")
        env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(1)
            steps, done = steps + 1, terminated or truncated
        expected.append(float(steps))
    assert len(set(task.eval_seeds)) == 4
    first, again = task.evaluate(), task.evaluate()
    assert first["eval_return"] == again["eval_return"] == float(np.mean(expected))
    assert task.episode_returns == [] and task.env_steps == 0  # training untouched

    # Evaluating as often as every step leaves the training episodes as they were.
    cells = [make_cell(host, "dqn", MEMORY_CAPACITY + 50, seed=2) for _ in range(2)]
    often = train(host, cells[0], eval_every=25)
    rarely = train(host, cells[1])
    assert often.status == rarely.status == "ok"
    assert often.artifacts["episode_returns"] == rarely.artifacts["episode_returns"]
    assert len(often.artifacts["eval_returns"]) > len(rarely.artifacts["eval_returns"])


def test_dqn_target_follows_the_environment(host: PluginHost) -> None:
    problem = host.problems.get("dqn")
    for env, threshold in (("CartPole-v1", 195), ("Acrobot-v1", -100), ("MountainCar-v0", -110)):
        target = problem.target_for(problem.defaults() | {"env": env})
        assert target is not None and (target.metric, target.threshold) == ("eval_return",
                                                                            threshold)
        assert target.reached(threshold) and not target.reached(threshold - 1)
    result = train(host, make_cell(host, "dqn", 10, greedy_episodes=0))
    assert result.status == "error" and "greedy_episodes must be at least 1" in (result.error or "")


def test_dqn_unknown_env_is_one_line_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["run", "-m", "dqn", "-o", "adam", "--set", "env=Pong-v5", "--steps", "5",
                 "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "env must be one of CartPole-v1, Acrobot-v1, MountainCar-v0" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("env", ["Acrobot-v1", "MountainCar-v0"])
def test_dqn_other_environments(host: PluginHost, env: str) -> None:
    result = train(host, make_cell(host, "dqn", 300, env=env), windows=2)
    assert result.status == "ok", result.traceback
    assert result.artifacts["env"] == env
    assert result.summary["learn_steps"] == 0  # the memory is not full yet


def test_dqn_shaped_reward_is_cartpole_only(host: PluginHost) -> None:
    result = train(host, make_cell(host, "dqn", 10, env="Acrobot-v1", shaped_reward=True))
    assert result.status == "error" and "shaped_reward" in (result.error or "")
    shaped = train(host, make_cell(host, "dqn", 300, shaped_reward=True), windows=2)
    plain = train(host, make_cell(host, "dqn", 300), windows=2)
    assert shaped.status == plain.status == "ok"
    # The shaped reward trains; returns are still the environment's.
    assert shaped.artifacts["episode_returns"] == plain.artifacts["episode_returns"]
    assert shaped.summary["final_loss"] != plain.summary["final_loss"]


# -- any optimizer, and divergence -------------------------------------------------------
class SignSGD(torch.optim.Optimizer):
    """A third-party-style optimizer that records its instances."""

    instances: ClassVar[list[SignSGD]] = []

    def __init__(self, params: Any, lr: float = 0.001) -> None:
        super().__init__(params, {"lr": lr})
        self.steps = 0
        SignSGD.instances.append(self)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


class Poison(torch.optim.SGD):
    """Writes NaN into every parameter it is given: the losses that follow are NaN."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(math.nan)


class ThirdParty:
    @hookimpl
    def register_optimizers(self, registry: OptimizerRegistry) -> None:
        registry.add(OptimizerSpec("signsgd", SignSGD, {"lr": 0.001}, "sign of the gradient"))
        registry.add(OptimizerSpec("poison", Poison, {"lr": 0.01}, "NaN weights"))


@pytest.mark.parametrize(("name", "steps", "roles"), [
    ("gan", 30, 2), ("dqn", MEMORY_CAPACITY + 20, 1),
])
def test_a_third_party_optimizer_trains_every_role(host: PluginHost, register_plugin: Any,
                                                   name: str, steps: int, roles: int) -> None:
    register_plugin(ThirdParty(), "third-party")
    SignSGD.instances.clear()
    result = train(host, make_cell(host, name, steps, optimizer="signsgd"), windows=2)
    assert result.status == "ok", result.traceback
    assert len(SignSGD.instances) == roles
    assert all(opt.steps > 0 for opt in SignSGD.instances)


@pytest.mark.parametrize("name", ["gan", "dqn"])
def test_nan_loss_marks_the_cell_diverged(host: PluginHost, register_plugin: Any,
                                          name: str) -> None:
    register_plugin(ThirdParty(), "third-party")
    result = train(host, make_cell(host, name, 20, optimizer="poison"), windows=2)
    assert result.status == "diverged", (result.status, result.error)
    assert result.curve and math.isnan(result.curve[-1]["loss"])


# -- every kind of optimizer on the roles ------------------------------------------------
@pytest.mark.parametrize(("model", "steps", "learn_steps"), [
    ("gan", 10, 10),
    pytest.param("dqn", MEMORY_CAPACITY + 60, 61, marks=pytest.mark.slow),
])
def test_closure_optimizers_train_the_gan_and_the_dqn(tmp_path: Path, model: str, steps: int,
                                                      learn_steps: int) -> None:
    """Their steps go through harness.take_step: lbfgs and sam get their closure on every
    role (the GAN's two, the DQN's one, from its first learning step)."""
    out = tmp_path / "run"
    proc = run_cli("run", "-m", model, "-o", "lbfgs,sam", "-s", "0", "--steps", str(steps),
                   "--quiet", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("optimizer")
    assert (summary["status"] == "ok").all(), summary.get("error")
    roles = 2 if model == "gan" else 1
    evals = summary["loss_evals"] * summary["steps_done"]
    # SAM evaluates each role's loss exactly twice a step; LBFGS at least once, up to
    # max_iter (4) plus its line search's evaluations.
    assert evals["sam"] == pytest.approx(2 * roles * learn_steps)
    assert roles * learn_steps <= evals["lbfgs"] <= 12 * roles * learn_steps
    assert np.isfinite(summary["final_loss"]).all()

"""Checkpoints: a cell interrupted mid-way resumes to the same result, bit for bit (CPU)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.outcome import CellResult
from harness.plugins import PluginHost
from harness.problem import Problem
from harness.train import checkpoints
from harness.train.loop import build_task, run_cell
from tests.helpers import run_cli, wait_for


def cell_for(host: PluginHost, name: str, steps: int) -> Cell:
    problem = host.problems.get(name)
    return Cell(problem=name, optimizer="adam", device="cpu", seed=2, steps=steps,
                batch_size=problem.batch_size, params=tuple(sorted(problem.defaults().items())),
                hyper=(("betas", (0.9, 0.99)), ("lr", 0.01)))


class Stop(Exception):
    pass


def stopped_at(step: int, cell: Cell, problem: Problem, optimizer: OptimizerSpec,
               options: RunOptions) -> CellResult:
    """``cell`` run with ``options`` until its window ending at ``step``, where it dies
    between checkpoints, like a killed process."""
    def interrupt(row: dict, steps: int) -> None:  # type: ignore[type-arg]
        if row["step"] == step:
            raise Stop

    return run_cell(cell, problem, optimizer, options, on_window=interrupt)


@pytest.mark.parametrize("name", ["regression", "rnn-regression", "cnn", "batchnorm", "gan"])
def test_resume_from_checkpoint_is_bit_identical(host: PluginHost, name: str,
                                                 tmp_path: Path) -> None:
    cell = cell_for(host, name, 60)
    problem, adam = host.problems.get(name), host.optimizers.get("adam")
    base = RunOptions(windows=12, eval_every=20)
    whole = run_cell(cell, problem, adam, base)
    ckpt = RunOptions(windows=12, eval_every=20, checkpoint_every=20,
                      checkpoint_dir=tmp_path / "ckpt")


    interrupted = stopped_at(45, cell, problem, adam, ckpt)
    assert interrupted.status == "error"
    assert (tmp_path / "ckpt" / f"{cell.cell_id}.pt").is_file()
    resumed = run_cell(cell, problem, adam, ckpt)
    assert resumed.status == "ok" and resumed.summary["resumed_from_step"] == 40
    assert [r["loss"] for r in resumed.curve] == [r["loss"] for r in whole.curve]
    assert resumed.summary["final_loss"] == whole.summary["final_loss"]
    assert resumed.curve == tuple({**r, "elapsed_s": s["elapsed_s"]}
                                  for r, s in zip(whole.curve, resumed.curve, strict=True))
    assert resumed.artifacts == whole.artifacts  # the GAN's snapshots, the codes, ...
    assert not (tmp_path / "ckpt" / f"{cell.cell_id}.pt").exists()  # removed when done


@pytest.mark.long
@pytest.mark.parametrize("env", ["CartPole-v1", "Acrobot-v1"])
def test_a_dqn_cell_resumes_mid_episode_as_if_never_stopped(host: PluginHost, env: str,
                                                             tmp_path: Path) -> None:
    """The DQN's replay memory, generators and environment mid-episode are in its
    checkpoint: everything but wall-clock times matches an uninterrupted run."""
    problem, adam = host.problems.get("dqn"), host.optimizers.get("adam")
    # Two greedy episodes per evaluation rather than ten: as much to restore, a fifth of the
    # evaluation (an untrained Acrobot agent plays its episodes to the 500-step limit).
    params = problem.defaults() | {"env": env, "greedy_episodes": 2}
    cell = Cell(problem="dqn", optimizer="adam", device="cpu", seed=1, steps=2_300,
                batch_size=problem.batch_size, params=tuple(sorted(params.items())),
                hyper=(("betas", (0.9, 0.99)), ("lr", 0.01)))
    base = RunOptions(windows=23, eval_every=500)
    whole = run_cell(cell, problem, adam, base)
    ckpt = RunOptions(windows=23, eval_every=500, checkpoint_every=2_100,
                      checkpoint_dir=tmp_path / "ckpt")


    assert stopped_at(2_200, cell, problem, adam, ckpt).status == "error"
    episode_ends = whole.artifacts["episode_end_steps"]
    assert 2_100 not in episode_ends  # the checkpoint is taken mid-episode
    resumed = run_cell(cell, problem, adam, ckpt)
    assert resumed.status == whole.status == "ok"
    assert resumed.summary["checkpoint"] == "every 2100 steps"
    assert resumed.summary["resumed_from_step"] == 2_100  # learning, mid-episode
    def untimed_rows(result: CellResult) -> list[dict]:  # type: ignore[type-arg]
        return [{k: None if v != v else v for k, v in r.items()  # NaN (v != v) as None
                 if k not in ("elapsed_s", "learn_steps_per_s")} for r in result.curve]

    assert untimed_rows(resumed) == untimed_rows(whole)
    untimed = {k: v for k, v in whole.artifacts.items() if k != "episode_end_s"}
    assert {k: resumed.artifacts[k] for k in untimed} == untimed
    assert len(resumed.artifacts["episode_end_s"]) == len(whole.artifacts["episode_end_s"])
    assert resumed.artifacts["episode_end_s"] == sorted(resumed.artifacts["episode_end_s"])
    for metric in ("eval_return", "return_ma100", "episodes", "learn_steps", "final_loss"):
        assert repr(resumed.summary[metric]) == repr(whole.summary[metric]), metric  # NaN too
    assert resumed.summary["learn_steps_per_s"] > 0


@pytest.mark.parametrize("every", [7, 40])
def test_checkpoints_leave_the_curve_as_it_is_without_them(host: PluginHost, every: int,
                                                           tmp_path: Path) -> None:
    """Checkpoints are saved at window edges and add none: with an interval that is not a
    multiple of the window (7), or longer than one (40), the curve and the final loss are those
    of a run that never checkpoints, and a cell interrupted and resumed matches both."""
    cell = cell_for(host, "regression", 60)
    problem, adam = host.problems.get("regression"), host.optimizers.get("adam")
    whole = run_cell(cell, problem, adam, RunOptions(windows=12))
    ckpt = RunOptions(windows=12, checkpoint_every=every, checkpoint_dir=tmp_path / "ckpt")
    saved = run_cell(cell, problem, adam, ckpt)


    assert stopped_at(50, cell, problem, adam, ckpt).status == "error"
    resumed = run_cell(cell, problem, adam, ckpt)
    assert resumed.summary["resumed_from_step"] == (45 if every == 7 else 40)
    for result in (saved, resumed):
        assert [(r["step"], r["loss"]) for r in result.curve] == \
            [(r["step"], r["loss"]) for r in whole.curve]
        assert result.summary["final_loss"] == whole.summary["final_loss"]


def test_a_resumed_cell_streams_its_restored_rows(host: PluginHost, tmp_path: Path) -> None:
    """A worker streams a cell's rows so that a cell killed later (timeout, crash) is
    recorded with its curve; a resumed cell streams the rows its checkpoint restored first."""
    cell = cell_for(host, "regression", 60)
    problem, adam = host.problems.get("regression"), host.optimizers.get("adam")
    ckpt = RunOptions(windows=12, checkpoint_every=20, checkpoint_dir=tmp_path / "ckpt")


    stopped_at(45, cell, problem, adam, ckpt)
    streamed: list[dict] = []  # type: ignore[type-arg]
    resumed = run_cell(cell, problem, adam, ckpt,
                       on_window=lambda row, steps: streamed.append(dict(row)))
    assert resumed.summary["resumed_from_step"] == 40
    assert streamed == [dict(r) for r in resumed.curve]


def test_a_resumed_cells_recompilation_stays_out_of_its_throughput(host: PluginHost,
                                                                     tmp_path: Path) -> None:
    """A resumed cell compiles again in its first step: that window is warm-up, as the first
    one of a fresh cell is, not steady-state time."""
    cell = cell_for(host, "regression", 30)
    problem, adam = host.problems.get("regression"), host.optimizers.get("adam")
    ckpt = RunOptions(windows=6, checkpoint_every=10, checkpoint_dir=tmp_path / "ckpt",
                      compile=True, compile_backend="eager")


    stopped_at(25, cell, problem, adam, ckpt)
    resumed = run_cell(cell, problem, adam, ckpt)
    assert resumed.status == "ok" and resumed.summary["resumed_from_step"] == 20
    # the window holding the recompiling first step counts as warm-up (not a timing bound:
    # a steady-state window would leave warmup_s at 0, every edge being past the warm-up)
    assert resumed.summary["compile_s"] > 0
    assert resumed.summary["warmup_s"] >= resumed.summary["compile_s"]


def test_checkpoints_and_models_load_with_weights_only(host: PluginHost, tmp_path: Path) -> None:
    cell = cell_for(host, "cnn", 10)
    options = RunOptions(windows=2, checkpoint_every=5, checkpoint_dir=tmp_path / "ckpt",
                         models_dir=tmp_path / "models")
    result = run_cell(cell, host.problems.get("cnn"), host.optimizers.get("adam"), options)
    assert result.status == "ok"
    path = tmp_path / "models" / f"{cell.cell_id}.pt"
    raw = torch.load(path, weights_only=True)  # plain tensors: no code is unpickled
    assert raw["key"] == cell.key
    fresh = build_task(host.problems.get("cnn"), cell, RunOptions())
    before = fresh.evaluate()
    checkpoints.load_model(path, fresh.modules())
    after = fresh.evaluate()
    assert after != before and after["test_loss"] == pytest.approx(result.summary["test_loss"])


def test_a_pickled_module_is_refused(tmp_path: Path) -> None:
    """The tutorial's torch.save(net) is the unsafe alternative: we never load it."""
    path = tmp_path / "net.pkl"
    torch.save(torch.nn.Linear(1, 1), path)
    assert checkpoints.load(path) is None
    assert checkpoints.load(tmp_path / "missing.pt") is None


@pytest.mark.long
@pytest.mark.slow
def test_sigkill_mid_cell_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    # Killed half a second after its first checkpoint, the cell is still some 100 steps
    # (1.5 s or more) from its end.
    args = ["-m", "cnn", "-o", "adam", "-s", "0", "--steps", "150", "--workers", "1",
            "--checkpoint-every", "25", "--quiet"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    wait_for(lambda: list((out / "checkpoints").glob("*.pt")), "the first checkpoint", proc=proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not list((out / "cells").glob("*.json"))  # the cell had not finished
    resumed = run_cli("run", "--resume", str(out), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    assert run_cli("run", *args, "--out", str(whole), cwd=tmp_path).returncode == 0
    [a] = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    [b] = [json.loads(p.read_text()) for p in (whole / "cells").glob("*.json")]
    assert a["summary"]["resumed_from_step"] >= 25
    assert [r["loss"] for r in a["curve"]] == [r["loss"] for r in b["curve"]]

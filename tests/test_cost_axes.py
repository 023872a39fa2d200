"""Deterministic cost axes: steps, samples and FLOPs to target beside training seconds.

The FLOP count is a probe on a copy of the task: it must leave the cell's training
bit-identical, count a known answer on a network small enough to count by hand, and
the report drawn on a counted axis must score the same on every rerun of a CPU grid.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.report import build_report
from harness.testing.cells import make_cell
from harness.train.flops import count_step_flops
from harness.train.loop import build_optimizers, build_task, run_cell
from harness.train.supervised import step_of


def _task(host: PluginHost, name: str, optimizer: str = "adam") -> tuple[object, dict, object]:
    problem, spec = host.problems.get(name), host.optimizers.get(optimizer)
    cell = make_cell(problem, spec, steps=12)
    task = build_task(problem, cell, RunOptions())
    optimizers = dict(build_optimizers(cell, problem, task, spec, {}, RunOptions()))
    return task, optimizers, cell


def _train(task: object, optimizers: dict, steps: int) -> list[float]:
    step = step_of(task, optimizers)  # type: ignore[arg-type]
    out = []
    for _ in range(steps):
        loss = step()
        value = loss if isinstance(loss, torch.Tensor) else next(iter(loss.values()))  # type: ignore[union-attr]
        out.append(float(value.detach()))
    return out


@pytest.mark.parametrize("name", ["regression", "dropout", "gan", "dqn"])
def test_the_flop_probe_leaves_training_bit_identical(host: PluginHost, name: str) -> None:
    """Counting a step's FLOPs on a copy changes neither the model, the optimizer state,
    the data order nor any random stream: the next steps equal a run without the probe."""
    probed, probed_opts, cell = _task(host, name)
    assert count_step_flops(probed, probed_opts, torch.device(cell.device)) > 0
    probed_losses = _train(probed, probed_opts, 6)
    plain, plain_opts, _ = _task(host, name)
    assert _train(plain, plain_opts, 6) == probed_losses
    for (key, a), (_, b) in zip(probed.modules().items(), plain.modules().items(),  # type: ignore[attr-defined]
                                strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb), key


def test_flops_per_step_is_the_hand_count(host: PluginHost) -> None:
    """regression is 1→10→1 on batches of 100: forward 2·100·(1·10 + 10·1) = 4,000; backward
    the weight gradients of both layers (4,000) and the hidden layer's input gradient
    (2,000), none for the data: 10,000 per step."""
    task, optimizers, _ = _task(host, "regression", "sgd")
    assert count_step_flops(task, optimizers, torch.device("cpu")) == 10_000


def test_a_step_that_cannot_be_copied_counts_nan() -> None:
    class Uncopyable:
        def __deepcopy__(self, memo: object) -> object:
            raise TypeError("no copies")

    assert math.isnan(count_step_flops(Uncopyable(), {}, torch.device("cpu")))


def test_the_cells_summary_has_every_cost_to_target(host: PluginHost) -> None:
    problem, spec = host.problems.get("regression"), host.optimizers.get("adam")
    cell = make_cell(problem, spec, steps=200)
    s = run_cell(cell, problem, spec, RunOptions()).summary
    assert s["steps_to_target"] > 0, "adam reaches regression's target in 200 steps"
    assert s["samples_to_target"] == s["steps_to_target"] * cell.batch_size
    assert s["flops_per_step"] == 10_000
    assert s["flops_to_target"] == 10_000 * s["steps_to_target"]


def _run(out: Path) -> Path:
    code = main(["run", "-m", "regression,classification", "-o", "sgd,adam", "-s", "0-2",
                 "--steps", "120", "--workers", "2", "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.mark.long
def test_rerunning_a_cpu_grid_gives_identical_scores_on_counted_axes(tmp_path: Path) -> None:
    runs = [_run(tmp_path / f"run{i}") for i in range(2)]
    for cost in ("steps", "samples", "flops"):
        pages, scores = [], []
        for i, run in enumerate(runs):
            index = build_report(run, out_dir=tmp_path / f"report-{cost}-{i}", cost=cost)
            pages.append(index.read_text("utf-8"))
            scores.append(pd.read_csv(index.parent / "profile_scores.csv"))
            ttt = pd.read_csv(index.parent / "time_to_target.csv")
            assert ttt[ttt["reached"]][{"steps": "steps", "samples": "samples",
                                        "flops": "flops"}[cost]].notna().all()
        pd.testing.assert_frame_equal(scores[0], scores[1])
        assert scores[0]["problems_reached"].sum() > 0, "some arm reaches a target"
        label = {"steps": "steps to target", "samples": "samples to target",
                 "flops": "FLOPs to target"}[cost]
        assert f"Performance profile on {label}" in pages[0]  # the headline names its axis
        assert f"score on {label}" in pages[0]
        assert re.search(rf"{cost} \({label}\): reproducible[^<]*\(this page\)", pages[0])
    page = build_report(runs[0], out_dir=tmp_path / "report-time", cost="time").read_text()
    assert "Performance profile on training seconds to target" in page
    assert "time (training seconds to target): not reproducible" in page


def test_an_unknown_cost_is_one_line_and_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "--cost", "joules"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'joules'" in err and len(err.strip().splitlines()) == 1


def test_the_probe_copies_closures_too(host: PluginHost) -> None:
    """A loss function that counts its calls in a closure counts the probe's call on its
    copy: the cell's own counter (and so its training) is untouched."""
    import dataclasses

    calls: list[int] = []
    problem, spec = host.problems.get("regression"), host.optimizers.get("sgd")
    cell = make_cell(problem, spec, steps=12)
    task = build_task(problem, cell, RunOptions())
    inner = task.built.loss_fn  # type: ignore[attr-defined]

    def counting(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        # (it names itself: the copy must handle a closure that holds its own function)
        return counting(out, target) if not calls else inner(out, target)

    task.loss_fn = counting  # type: ignore[attr-defined]
    task.built = dataclasses.replace(task.built, loss_fn=counting)  # type: ignore[attr-defined]
    optimizers = dict(build_optimizers(cell, problem, task, spec, {}, RunOptions()))
    assert count_step_flops(task, optimizers, torch.device("cpu")) == 10_000
    assert calls == []

"""Fast paths on the CPU: the DataLoader baseline, optimizer kernels, compile plumbing,
and --cuda-graphs as a recorded no-op. (CUDA-graph numerics are checked on a GPU by
benchmarks/gpu_check.sh when one is lent.)"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.train.fastpaths import implementation_hyper
from harness.train.loop import run_cell


def cell(host: PluginHost, name: str, optimizer: str = "adam", steps: int = 30) -> Cell:
    problem, spec = host.problems.get(name), host.optimizers.get(optimizer)
    return Cell(problem=name, optimizer=optimizer, device="cpu", seed=0, steps=steps,
                batch_size=problem.batch_size, params=tuple(sorted(problem.defaults().items())),
                hyper=tuple(sorted(spec.defaults.items())))


def run(host: PluginHost, c: Cell, **options: Any) -> Any:
    result = run_cell(c, host.problems.get(c.problem), host.optimizers.get(c.optimizer),
                      RunOptions(windows=5, eval_every=c.steps, **options))
    assert result.status == "ok", result.traceback
    return result


def test_dataloader_path_trains_and_is_recorded(host: PluginHost) -> None:
    result = run(host, cell(host, "cnn"), loader="dataloader")
    assert result.summary["loader"] == "dataloader(num_workers=0)"
    assert result.curve[-1]["loss"] < result.curve[0]["loss"]
    assert run(host, cell(host, "cnn")).summary["loader"] == "device"
    assert run(host, cell(host, "rnn-regression")).summary["loader"] == "problem"


def test_dataloader_with_workers_inside_a_worker_process(host: PluginHost, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import run_cli

    proc = run_cli("run", "-m", "regression", "-o", "adam", "-s", "0", "--steps", "20",
                   "--loader", "dataloader", "--loader-workers", "1", "--workers", "1",
                   "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_dataloader_order_does_not_depend_on_its_workers() -> None:
    """The same seed gives the same batches, pass after pass, with and without worker
    processes (persistent workers used to shift the shuffle from the second pass on)."""
    from harness.train.fastpaths import DataLoaderBatches

    x = torch.arange(24, dtype=torch.float32).unsqueeze(1)
    orders = []
    for workers in (0, 2):
        batches = DataLoaderBatches(x, x.squeeze(1), 8, 7, torch.device("cpu"), workers)
        orders.append([batches.next()[1].tolist() for _ in range(4 * 3)])  # four passes
    assert orders[0] == orders[1]
    assert orders[0][:3] != orders[0][3:6]  # reshuffled each pass


@pytest.mark.parametrize(("impl", "expected"), [("loop", "loop"), ("foreach", "foreach"),
                                                ("fused", "fused"), ("auto", "default")])
def test_optimizer_implementation_is_chosen_and_recorded(host: PluginHost, impl: str,
                                                         expected: str) -> None:
    result = run(host, cell(host, "regression"), opt_impl=impl)
    assert result.summary["opt_impl"] == expected


def test_fused_falls_back_to_foreach_where_not_offered(host: PluginHost) -> None:
    rmsprop = host.optimizers.get("rmsprop")
    hyper = implementation_hyper(rmsprop, {"lr": 0.01}, torch.device("cpu"), "fused", False)
    assert "fused" not in hyper and hyper["foreach"] is True
    adam = host.optimizers.get("adam")
    explicit = implementation_hyper(adam, {"foreach": False}, torch.device("cuda"), "auto", True)
    assert explicit == {"foreach": False}  # the user's choice wins


def test_implementations_agree(host: PluginHost) -> None:
    base = [r["loss"] for r in run(host, cell(host, "cnn", steps=10), opt_impl="loop").curve]
    for impl in ("foreach", "fused"):
        other = [r["loss"] for r in run(host, cell(host, "cnn", steps=10), opt_impl=impl).curve]
        assert other == pytest.approx(base, rel=1e-4, abs=1e-6)


def test_compile_plumbing_reports_compile_time(host: PluginHost) -> None:
    # The 'eager' backend exercises torch.compile's tracing without a C++ toolchain.
    result = run(host, cell(host, "regression", steps=20), compile=True, compile_backend="eager")
    assert result.summary["compile"] == "eager"
    assert result.summary["compile_s"] > 0
    assert math.isfinite(result.summary["final_loss"])


def test_compile_of_a_problem_with_its_own_step_is_a_recorded_no_op(host: PluginHost) -> None:
    """The GAN (a Task) trains in its own step, which --compile does not reach: the row says
    so, with no compile_s, instead of leaving the column empty."""
    result = run(host, cell(host, "gan", steps=10), compile=True, compile_backend="eager")
    assert result.summary["compile"] == "no: the problem owns its training step"
    assert "compile_s" not in result.summary


def test_every_compiled_cell_compiles_its_own_graph(host: PluginHost) -> None:
    """A second cell of one process used to reuse the first one's compiled graph, so its
    compile_s (and time to target) left compilation out: it depended on the order of cells."""
    from torch._dynamo.utils import counters

    for seed in (0, 1):
        before = counters["stats"]["unique_graphs"]
        c = cell(host, "regression", steps=10)
        result = run(host, replace(c, seed=seed), compile=True,
                     compile_backend="eager")
        assert result.summary["compile"] == "eager"
        assert counters["stats"]["unique_graphs"] > before


def test_compile_that_captures_nothing_says_so(host: PluginHost) -> None:
    """torch.compile skips the LSTM (dynamo does not trace RNN modules): the row says the
    cell ran eagerly instead of naming the backend."""
    result = run(host, cell(host, "lstm", steps=5), compile=True, compile_backend="eager")
    assert result.summary["compile"].startswith("no: torch.compile captured no graph")
    assert "compile_s" not in result.summary


def test_cuda_graphs_on_cpu_is_a_recorded_no_op(host: PluginHost) -> None:
    graphs = run(host, cell(host, "regression"), cuda_graphs=True)
    plain = run(host, cell(host, "regression"))
    assert graphs.summary["cuda_graphs"] == "no: not applicable on cpu"
    assert [r["loss"] for r in graphs.curve] == [r["loss"] for r in plain.curve]


def test_shuffled_batches_indices_and_batches_agree() -> None:
    """A CUDA graph gathers with next_indices(); eager takes next(): same batches."""
    from harness.problem import ShuffledBatches

    x = torch.arange(10.0).unsqueeze(1)
    y = 2 * x
    a = ShuffledBatches(x, y, 4, torch.Generator().manual_seed(3))
    b = ShuffledBatches(x, y, 4, torch.Generator().manual_seed(3))
    seen = []
    for _ in range(7):  # crosses epochs: 10 samples give two batches of 4 per epoch
        idx = a.next_indices()
        bx, by = b.next()
        assert torch.equal(bx, x[idx]) and torch.equal(by, y[idx])
        seen.append(idx.tolist())
    assert sorted(seen[0] + seen[1]) == sorted(set(seen[0] + seen[1]))  # no repeat in an epoch
    assert seen[0] + seen[1] != seen[2] + seen[3]  # a fresh order each epoch


def test_cudnn_benchmark_is_applied_to_the_cells_and_then_put_back(host: PluginHost) -> None:
    from harness.executor import CellLimits
    from harness.run.workers import InlineExecutor

    seen: list[bool] = []
    c = cell(host, "regression", steps=4)
    executor = InlineExecutor(
        CellLimits(cudnn_benchmark=True), RunOptions(windows=2),
        lambda c: (host.problems.get(c.problem), host.optimizers.get(c.optimizer), {}))
    before = torch.backends.cudnn.benchmark
    results: list[Any] = []
    executor.run([c], lambda c: seen.append(torch.backends.cudnn.benchmark),
                 lambda *a: None, results.append)
    assert seen == [True] and [r.status for r in results] == ["ok"]
    assert torch.backends.cudnn.benchmark is before


def test_testing_kit_builds_optimizers_as_harness_run_does(
        host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    """``harness_cell`` timings and ``harness run`` build optimizers through one function,
    so they time the same kernels. (The testing kit's own copy skipped the implementation
    switches: fused on CUDA for a run, the default kernels for a benchmark.) Here the
    device's choice is made "foreach", as a CUDA device's is "fused"."""
    from harness.testing.cells import build_optimizers, run_one_cell, time_cell
    from harness.train import optimizers

    def forced(spec: Any, hyper: Any, device: Any, opt_impl: str, capturable: bool) -> Any:
        return implementation_hyper(spec, hyper, device, "foreach", capturable)

    monkeypatch.setattr(optimizers, "implementation_hyper", forced)
    ran = run_one_cell(host, "regression", steps=4, windows=2)
    assert ran.summary["opt_impl"] == "foreach"
    timed = time_cell(host, "regression", steps=2, rounds=1, warmup_rounds=0)
    assert timed.opt_impl == "foreach"
    from harness.train.loop import build_task

    problem = host.problems.get("regression")
    task = build_task(problem, ran.cell, RunOptions())
    kit = build_optimizers(task, host.optimizers.get("adam"), {"lr": 0.01})
    assert kit["model"].defaults["foreach"] is True

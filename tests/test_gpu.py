"""GPU checks, run on a lent GPU machine (benchmarks/gpu_check.sh); skipped without CUDA."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest
import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.train.loop import run_cell

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cell(host: PluginHost, name: str, steps: int = 60) -> Cell:
    problem, spec = host.problems.get(name), host.optimizers.get("adam")
    return Cell(problem=name, optimizer="adam", device="cuda", seed=0, steps=steps,
                batch_size=problem.batch_size, params=tuple(sorted(problem.defaults().items())),
                hyper=tuple(sorted(spec.defaults.items())))


def run(host: PluginHost, c: Cell, **options: Any) -> Any:
    result = run_cell(c, host.problems.get(c.problem), host.optimizers.get("adam"),
                      RunOptions(windows=10, eval_every=c.steps, **options))
    assert result.status == "ok", result.traceback
    return result


@pytest.mark.parametrize("name", ["cnn", "lstm", "regression", "autoencoder", "dropout",
                                  "batchnorm", "classification"])
def test_cuda_graphs_match_eager(host: PluginHost, name: str) -> None:
    eager = run(host, cell(host, name), opt_impl="fused")
    graphed = run(host, cell(host, name), opt_impl="fused", cuda_graphs=True)
    assert graphed.summary["cuda_graphs"] == "yes"
    a = [r["loss"] for r in eager.curve]
    b = [r["loss"] for r in graphed.curve]
    if name == "dropout":  # dropout masks come from graph-safe RNG offsets: same law only
        assert b[-1] == pytest.approx(a[-1], rel=0.5)
    elif name == "cnn":  # cuDNN's convolution backward is not deterministic, eager or not
        assert b == pytest.approx(a, rel=1e-2, abs=1e-4)
    else:
        assert b == a  # the same start, batches and kernels: bit for bit


def test_graphs_fall_back_for_a_stateful_problem(host: PluginHost) -> None:
    result = run(host, cell(host, "rnn-regression"), cuda_graphs=True)
    assert result.summary["cuda_graphs"].startswith("no: ")


def test_fused_optimizer_by_default_on_cuda(host: PluginHost) -> None:
    assert run(host, cell(host, "cnn", 10)).summary["opt_impl"] == "fused"
    assert run(host, cell(host, "cnn", 10)).summary["peak_mem_mb"] > 0


@pytest.mark.parametrize("name", ["regression", "autoencoder"])
def test_both_graph_feeds_match_eager(host: PluginHost, name: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness's batches are gathered inside the graph; any other replayable source
    is copied into static inputs. Both train exactly as eager does."""
    from harness.train import fastpaths, supervised

    steps: list[object] = []
    real = supervised.capture_step

    def spy(*args: Any, **kwargs: Any) -> Any:
        steps.append(real(*args, **kwargs))
        return steps[-1]

    monkeypatch.setattr(supervised, "capture_step", spy)
    eager = [r["loss"] for r in run(host, cell(host, name), opt_impl="fused").curve]
    gathered = run(host, cell(host, name), opt_impl="fused", cuda_graphs=True)
    assert type(steps[-1]) is fastpaths.GatherGraphStep
    # Make the built-in source look like a third-party one: the copy path is taken.
    monkeypatch.setattr(fastpaths, "ShuffledBatches", type("Elsewhere", (), {}))
    copied = run(host, cell(host, name), opt_impl="fused", cuda_graphs=True)
    assert type(steps[-1]) is fastpaths.GraphStep
    assert [r["loss"] for r in gathered.curve] == eager
    assert [r["loss"] for r in copied.curve] == eager


@pytest.mark.parametrize(("name", "graphs"), [("regression", True), ("autoencoder", True),
                                             ("regression", False), ("rnn-regression", False)])
def test_cuda_cell_resumes_from_its_checkpoint(host: PluginHost, name: str, graphs: bool,
                                               tmp_path: Any) -> None:
    """A CUDA cell resumed from its checkpoint (data order, CUDA generator and RNG states,
    fused optimizer state, a carried hidden state) continues the uninterrupted curve. A
    graph is captured after the checkpoint is loaded, so it updates the optimizer state
    the checkpoint put there."""
    c = cell(host, name, 60)
    ckpt = {"opt_impl": "fused", "cuda_graphs": graphs, "checkpoint_every": 20,
            "checkpoint_dir": tmp_path / "ckpt"}
    # Windows of 6 steps: a checkpoint is taken at the first window edge at or after every
    # 20 steps (24, 42) and adds no edge, so both runs have the same windows.
    whole = run(host, c, **{**ckpt, "checkpoint_dir": tmp_path / "whole"})

    class Stop(Exception):
        pass

    def interrupt(row: dict[str, Any], steps: int) -> None:
        if row["step"] >= 45:
            raise Stop

    interrupted = run_cell(c, host.problems.get(name), host.optimizers.get("adam"),
                           RunOptions(windows=10, eval_every=c.steps, **ckpt),
                           on_window=interrupt)
    assert interrupted.status == "error"
    resumed = run(host, c, **ckpt)
    assert resumed.summary["resumed_from_step"] == 42
    if graphs:
        assert resumed.summary["cuda_graphs"] == "yes"
    a, b = [r["loss"] for r in resumed.curve], [r["loss"] for r in whole.curve]
    if name == "rnn-regression":  # cuDNN's RNN kernels: equal to float tolerance
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    else:
        assert a == b


def test_dataloader_path_with_pinned_memory_on_cuda(host: PluginHost) -> None:
    result = run(host, cell(host, "cnn", 40), loader="dataloader", loader_workers=1,
                 pin_memory=True)
    assert result.summary["loader"].startswith("dataloader(num_workers=1")
    assert result.curve[-1]["loss"] < result.curve[0]["loss"]


@pytest.mark.parametrize("name", ["gan", "dqn"])
def test_custom_tasks_train_on_cuda(host: PluginHost, name: str) -> None:
    if name not in host.problems:
        pytest.skip(f"{name} is not installed here (dqn needs gymnasium)")
    result = run(host, cell(host, name, 60))
    assert all(math.isfinite(r["loss"]) for r in result.curve)
    assert result.summary["peak_mem_mb"] > 0


def test_packed_pinned_workers_with_cudnn_benchmark(tmp_path: Any) -> None:
    """Two cells at once on the GPU, each worker on its own cores, cuDNN autotuning."""
    from tests.helpers import run_cli

    out = tmp_path / "run"
    proc = run_cli("run", "-m", "cnn", "-o", "adam", "-d", "cuda", "-s", "0-1", "--steps",
                   "60", "--workers-per-device", "2", "--pin-cpus", "--cudnn-benchmark",
                   "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv", dtype={"cpus": str})
    assert (summary["status"] == "ok").all(), summary[["status", "error"]]
    assert summary["cpus"].nunique() == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["execution"]["cudnn_benchmark"] is True


def test_cuda_mps_packs_workers_as_clients_of_a_private_daemon(tmp_path: Any) -> None:
    """Two cells at once under --cuda-mps: the run stops unless every GPU worker is a
    client of the daemon it started, and the daemon and its folders are gone after."""
    import glob
    import tempfile

    from harness.run import cuda_mps
    from tests.helpers import run_cli

    if cuda_mps.find_control() is None:
        pytest.skip("no nvidia-cuda-mps-control on this machine")
    def mps_processes() -> set[str]:
        found = set()
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(cmdline, "rb") as f:
                    if b"nvidia-cuda-mps" in f.read():
                        found.add(cmdline)
            except OSError:
                continue  # gone meanwhile
        return found

    pattern = f"{tempfile.gettempdir()}/harness-mps-*"
    before, running = set(glob.glob(pattern)), mps_processes()
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "cnn", "-o", "adam", "-d", "cuda", "-s", "0-1", "--steps",
                   "60", "--workers-per-device", "2", "--cuda-mps", "--out", str(out),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["status"] == "ok").all(), summary[["status", "error"]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["executor"] == {
        "name": "local", "settings": {"workers_per_device": "2", "cuda_mps": "true"}}
    assert set(glob.glob(pattern)) == before
    assert mps_processes() <= running, "the run left an MPS daemon or server running"


def test_compile_on_cuda_reports_compile_time_apart(host: PluginHost) -> None:
    """Last: inductor's first compilation on a fresh machine takes a while."""
    eager = run(host, cell(host, "regression", 60), opt_impl="fused")
    compiled = run(host, cell(host, "regression", 60), opt_impl="fused", compile=True)
    assert compiled.summary["compile"] == "inductor"
    assert compiled.summary["compile_s"] > 0
    a, b = [r["loss"] for r in eager.curve], [r["loss"] for r in compiled.curve]
    assert b == pytest.approx(a, rel=1e-3, abs=1e-5)  # fused kernels: float tolerance


def test_a_scheduled_cell_runs_eagerly_under_cuda_graphs_and_matches_eager(
        host: PluginHost) -> None:
    """A graph would replay the learning rate it captured: the scheduled cell falls back to
    eager, says why in its row, and matches the eager run bit for bit."""
    import dataclasses

    base = cell(host, "regression")
    c = dataclasses.replace(base, schedule="warmup-cosine",
                            schedule_params=(("final_lr_ratio", 0.0), ("warmup", 0.1)))
    eager = run(host, c, opt_impl="fused")
    graphed = run(host, c, opt_impl="fused", cuda_graphs=True)
    assert graphed.summary["cuda_graphs"].startswith("no: a learning-rate schedule")
    assert [r["loss"] for r in graphed.curve] == [r["loss"] for r in eager.curve]
    assert [r["lr"] for r in graphed.curve] == [r["lr"] for r in eager.curve]
    # the unscheduled cell is still graphed
    assert run(host, base, opt_impl="fused", cuda_graphs=True).summary["cuda_graphs"] == "yes"

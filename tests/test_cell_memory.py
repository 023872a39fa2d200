"""Cell-own figures: a CPU cell's peak memory is its own (the worker's high-water mark reset
before it, measured above the worker's resident set after start-up), named by
``peak_mem_method``; the worker's one-time warm-up is paid before its first cell and
reported apart."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.outcome import PEAK_MEM_METHODS
from harness.report import build_report

LINUX_HWM = Path("/proc/self/clear_refs").exists()


def _run(out: Path, *args: str) -> pd.DataFrame:
    assert main(["run", *args, "--steps", "20", "--out", str(out), "--quiet"]) == 0
    return pd.read_csv(out / "summary.csv")


@pytest.mark.skipif(not LINUX_HWM, reason="needs Linux's /proc/self/clear_refs")
def test_a_cpu_cells_peak_is_its_own_not_the_workers(tmp_path: Path) -> None:
    """The same cells in one worker, alone and after a cell that holds far more memory: each
    figure is a few MiB above the worker's baseline, not the process's hundreds (the torch
    import) nor the larger cell's peak."""
    alone = _run(tmp_path / "alone", "-m", "regression", "-o", "sgd", "-s", "0-1",
                 "--workers", "1")
    after = _run(tmp_path / "after", "-m", "regression,cnn", "-o", "sgd", "-s", "0-1",
                 "--workers", "1")
    assert set(alone["peak_mem_method"]) == {"vmhwm-above-worker-baseline"}
    cnn = after[after["model"] == "cnn"]["peak_mem_mb"]
    regression = after[after["model"] == "regression"]["peak_mem_mb"]
    assert (alone["peak_mem_mb"] < 50).all(), alone["peak_mem_mb"].tolist()
    assert (regression < 50).all() and (regression < cnn.min()).all(), after
    # equal seeds alone: equal figures, however the pool ordered them
    assert alone["peak_mem_mb"].max() - alone["peak_mem_mb"].min() < 5
    # the worker's warm-up is on its first cell only
    warm = after["worker_warmup_s"].dropna()
    assert len(warm) == 1 and warm.iloc[0] > 0


@pytest.mark.skipif(not LINUX_HWM, reason="needs Linux's /proc/self/clear_refs")
def test_cells_in_this_process_measure_above_their_start(tmp_path: Path) -> None:
    inline = _run(tmp_path / "inline", "-m", "regression", "-o", "sgd", "-s", "0",
                  "--workers", "0")
    assert inline["peak_mem_method"].tolist() == ["vmhwm-above-cell-start"]
    assert "worker_warmup_s" not in inline.columns  # no worker, no warm-up


def test_the_report_names_the_memory_method(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = _run(out, "-m", "regression", "-o", "sgd", "-s", "0", "--workers", "1")
    method = summary["peak_mem_method"].iloc[0]
    assert method in PEAK_MEM_METHODS
    page = build_report(out).read_text("utf-8")
    assert f"({method})" in page and html.escape(PEAK_MEM_METHODS[method]) in page
    assert "Worker warm-up" in page and "not counted in its wall_s" in page

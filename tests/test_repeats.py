"""``harness run --repeats K``: each cell's throughput timed again in K fresh worker processes
(:mod:`harness.run.repeats`), its curve and metrics those of its own run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness.cell import Cell
from harness.outcome import CellResult, Status
from harness.run.repeats import Collector, iqr_over_median, merge, with_timing_runs
from tests.helpers import run_cli

PID_LOGGER = '''
import os

import torch
from harness import hookimpl


class PidSGD(torch.optim.SGD):
    """SGD that notes the process it was made in."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)
        with open(os.environ["PID_LOG"], "a") as f:
            f.write(f"{os.getpid()}\\n")


@hookimpl
def register_optimizers(registry):
    registry.add_torch("pidsgd", PidSGD, lr=0.01)
'''

CELL = Cell(problem="p", optimizer="o", device="cpu", seed=0, steps=10, batch_size=1)


def _result(cell: Cell, rate: float, status: Status = Status.OK) -> CellResult:
    return CellResult(cell=cell, status=status, summary={"samples_per_s": rate})


def test_timing_runs_follow_their_cell_and_share_its_key() -> None:
    cells = list(with_timing_runs([CELL], 2))
    assert [c.timing_run for c in cells] == [0, 1, 2]
    assert {c.key for c in cells} == {CELL.key} and "timing_run" not in CELL.to_dict()


def test_a_cell_is_written_once_its_timing_runs_are_in() -> None:
    written: list[CellResult] = []
    collect = Collector(2, written.append)
    t1, t2 = (Cell(**{**CELL.__dict__, "timing_run": i}) for i in (1, 2))
    collect(_result(t2, 90.0))
    collect(_result(CELL, 100.0))
    assert written == []
    collect(_result(t1, 110.0, Status.TIMEOUT))  # a timing run that failed counts out
    (record,) = written
    assert record.summary["throughput_repeats"] == 1
    assert record.summary["throughput_repeat_rates"] == "90"
    assert math.isnan(record.summary["throughput_repeat_dispersion"])
    assert record.summary["samples_per_s"] == 100.0  # the cell's own run's
    assert merge(_result(CELL, 1.0, Status.ERROR), [_result(t1, 2.0)]).summary == \
        {"samples_per_s": 1.0}
    assert iqr_over_median([100.0, 110.0, 90.0]) == pytest.approx(10 / 100)


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text("utf-8")) for p in sorted((out / "cells").glob("*.json"))]


def test_repeats_time_each_cell_in_fresh_workers(tmp_path: Path) -> None:
    plugin = tmp_path / "pid_sgd.py"
    plugin.write_text(PID_LOGGER)
    log = tmp_path / "pids.txt"
    args = ["run", "-m", "regression", "-o", "pidsgd", "-s", "0-1", "--steps", "60",
            "--workers", "1", "--plugin", str(plugin), "--quiet"]
    proc = run_cli(*args, "--repeats", "2", "--out", str(tmp_path / "rep"),
                   env={"PID_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr
    pids = log.read_text().split()
    # 2 cells x (1 + 2) runs (an optimizer may be made more than once a run); each timing
    # run in a process that ran nothing before it: 4 processes, and the first cell's own
    assert len(set(pids)) >= 5, pids
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert list(summary["throughput_repeats"]) == [2, 2]
    for text in summary["throughput_repeat_rates"]:
        assert len([float(r) for r in str(text).split()]) == 2
    assert summary["throughput_repeat_dispersion"].notna().all()
    # the curves are the cell's own run's: as without --repeats
    plain = run_cli(*args, "--out", str(tmp_path / "plain"), env={"PID_LOG": str(log)})
    assert plain.returncode == 0, plain.stderr
    for a, b in zip(_records(tmp_path / "rep"), _records(tmp_path / "plain"), strict=True):
        assert [r["loss"] for r in a["curve"]] == [r["loss"] for r in b["curve"]]  # type: ignore[index, union-attr]
    manifest = json.loads((tmp_path / "rep" / "manifest.json").read_text("utf-8"))
    assert manifest["options"]["repeats"] == 2
    # the report's throughput table counts them and gives their largest spread
    from harness.report import ReportRun, tables
    table = tables.throughput(ReportRun.load(tmp_path / "rep"))
    assert list(table["repeats"]) == [4]
    assert table["repeat_dispersion_max"].iloc[0] == summary["throughput_repeat_dispersion"].max()


def test_repeats_need_worker_processes(tmp_path: Path) -> None:
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--workers", "0",
                   "--repeats", "2", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: --repeats times each cell again in fresh worker processes; it cannot "
        "be used with --workers 0"]
    assert not (tmp_path / "out").exists()


@pytest.mark.long
@pytest.mark.slow
def test_repeats_with_the_dask_executor(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "40",
                   "--executor", "dask", "--workers", "1", "--repeats", "2", "--quiet",
                   "--out", str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["throughput_repeats"]) == [2]

"""Results directories written by hand, for known-answer tests of the read side: no
training, every number chosen so the expected verdict can be worked out on paper."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.cell import Cell
from harness.outcome import CellResult, Status
from harness.results import RunDirectory


def cell(optimizer: str = "sgd", seed: int = 0, problem: str = "toy", **extra: Any) -> Cell:
    return Cell(problem=problem, optimizer=optimizer, device="cpu", seed=seed, steps=100,
                batch_size=10, **extra)


def result(optimizer: str = "sgd", seed: int = 0, status: str = Status.OK,
           summary: Mapping[str, Any] | None = None, *, problem: str = "toy",
           curve: Iterable[Mapping[str, Any]] = (), error: str | None = None) -> CellResult:
    return CellResult(cell=cell(optimizer, seed, problem), status=Status(status),
                      summary=dict(summary or {}), curve=tuple(curve), error=error)


def write_run(path: Path, results: Iterable[CellResult], *, cpu: str | None = "cpu-a",
              manifest: Mapping[str, Any] | None = None) -> Path:
    """A results directory holding ``results``' records and a manifest."""
    run = RunDirectory(path)
    for r in results:
        run.write_cell(r)
    run.write_manifest({"machine": {"cpu": cpu} if cpu else {}, **(manifest or {})})
    return path


def accuracy_summary(accuracy: float, rate: float = 1000.0, **more: Any) -> dict[str, Any]:
    """A summary whose target metric is ``accuracy`` (higher is better)."""
    return {"final_loss": 0.5, "accuracy": accuracy, "samples_per_s": rate,
            "target_metric": "accuracy", "target_mode": "max", "target_threshold": 0.9,
            "metric_directions": "accuracy=max", **more}

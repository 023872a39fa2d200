"""Running a grid: each cell in turn, each finished cell written at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.cell import Cell
from harness.errors import UsageError
from harness.grid import ExpandedGrid
from harness.manifest import build_manifest
from harness.plugins import PluginHost
from harness.progress import Progress
from harness.results import RunDirectory, skipped_result
from harness.training import RunOptions, run_cell


@dataclass(frozen=True)
class RunOutcome:
    directory: Path
    summary: pd.DataFrame
    interrupted: bool = False


def default_output_dir(base: Path = Path("results")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = base / stamp
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    return path


def prepare_output_dir(path: Path) -> Path:
    """Refuse to mix a new grid into an existing run's records."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} exists and is not a directory")
    if (path / "cells").is_dir() and any((path / "cells").iterdir()):
        raise UsageError(f"--out {str(path)!r} already holds a run; choose another directory")
    return path


def run_grid(
    grid: ExpandedGrid,
    host: PluginHost,
    out: Path,
    options: RunOptions,
    *,
    argv: Sequence[str] = (),
    progress: bool = True,
    manifest_options: dict[str, Any] | None = None,
) -> RunOutcome:
    run_dir = RunDirectory(out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir.write_manifest(build_manifest(argv, grid, host, manifest_options or {}))
    bar = Progress(len(grid.cells), enabled=progress)
    interrupted = False
    try:
        for cell in grid.cells:
            bar.start(cell)
            result = _run_one(cell, grid, host, options, bar)
            run_dir.write_cell(result)
            bar.finish(result.status)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    summary, _ = run_dir.write_tables()
    return RunOutcome(out, summary, interrupted)


def _run_one(cell: Cell, grid: ExpandedGrid, host: PluginHost, options: RunOptions,
             bar: Progress) -> Any:
    if cell.device in grid.unavailable:
        return skipped_result(cell, grid.unavailable[cell.device])
    problem = host.problems.get(cell.problem)
    optimizer = host.optimizers.get(cell.optimizer)
    return run_cell(cell, problem, optimizer, options, on_window=bar.window)

"""``harness run --repeats K``: each cell's throughput measured in K more worker processes.

pyperf's approach: one process's speed is one sample, whatever the number of windows in it
(the windows share its memory layout, its CPU, its neighbours). So with ``--repeats K`` each
cell trains once for its record, as without (its curve, metrics and determinism unchanged),
and K **timing runs** of the same cell (``Cell.timing_run`` 1 to K) train again, each in a
fresh worker process of the executor (the local pool replaces a worker that ran a cell
before; so does each Dask worker thread's pool). Of a timing run only its throughput is
kept, on the cell's record:

* ``throughput_repeats``: the timing runs that finished ``ok``;
* ``throughput_repeat_rates``: their ``samples_per_s``, space-separated (what ``harness
  compare`` tests, with the cell's own, as runs: :mod:`harness.report.gate`);
* ``throughput_repeat_dispersion``: IQR / median of those rates (two or more).

A cell is written once, when its own run and its K timing runs are all in; a run stopped
before then runs the cell again on ``--resume``. A cell whose own run did not finish ``ok``
is written without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from harness.cell import Cell
from harness.outcome import CellResult, Status

#: The summary columns a cell's timing runs fill in.
COLUMNS = ("throughput_repeats", "throughput_repeat_rates", "throughput_repeat_dispersion")


def with_timing_runs(cells: Iterable[Cell], repeats: int) -> Iterator[Cell]:
    """Each cell, followed by its ``repeats`` timing runs."""
    for cell in cells:
        yield cell
        for i in range(1, repeats + 1):
            yield replace(cell, timing_run=i)


@dataclass
class _Pending:
    own: CellResult | None = None
    timing: list[CellResult] = field(default_factory=list)


class Collector:
    """Holds each cell's results until its own run and its timing runs are all in, then
    hands the merged record to ``write`` (at once, with ``repeats`` 0)."""

    def __init__(self, repeats: int, write: Callable[[CellResult], None]) -> None:
        self.repeats = repeats
        self.write = write
        self.pending: dict[str, _Pending] = {}

    def __call__(self, result: CellResult) -> None:
        if self.repeats == 0:
            self.write(result)
            return
        cell = result.cell
        entry = self.pending.setdefault(cell.key, _Pending())
        if cell.timing_run:
            entry.timing.append(result)
        else:
            entry.own = result
        if entry.own is not None and len(entry.timing) == self.repeats:
            del self.pending[cell.key]
            self.write(merge(entry.own, entry.timing))


def merge(own: CellResult, timing: list[CellResult]) -> CellResult:
    """The cell's own result with its timing runs' throughputs in its summary."""
    if own.status is not Status.OK:
        return own
    rates = [float(t.summary["samples_per_s"]) for t in sorted(timing,
                                                                key=lambda t: t.cell.timing_run)
             if t.status is Status.OK and _finite(t.summary.get("samples_per_s"))]
    extra: dict[str, object] = {
        "throughput_repeats": len(rates),
        "throughput_repeat_rates": " ".join(f"{r:.6g}" for r in rates),
        "throughput_repeat_dispersion": iqr_over_median(rates),
    }
    return replace(own, summary={**own.summary, **extra})


def iqr_over_median(rates: list[float]) -> float:
    """IQR / median (numpy's linear percentiles) of two or more rates; NaN otherwise."""
    if len(rates) < 2:
        return math.nan
    q1, q2, q3 = np.percentile(rates, [25, 50, 75])
    return float((q3 - q1) / q2) if q2 > 0 else math.nan


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)

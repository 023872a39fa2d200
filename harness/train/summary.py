"""A cell's summary: the one builder for cells that finished and cells killed mid-way.

The keys are the summary columns of :mod:`harness.results.schema` (``tests/test_summary.py``
checks that every key written here is one of them, or one of the problem's metrics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.cell import Cell
from harness.problem import Problem
from harness.target import at_chance, format_directions


@dataclass
class Measured:
    """What a cell's run measured, however it was found out."""

    steps_done: int = 0
    #: The windows' mean losses, in order (non-finite ones included).
    losses: Sequence[float] = ()
    time_to_target_s: float = math.nan
    steps_to_target: float = math.nan
    samples_to_target: float = math.nan
    #: FLOPs of one training step, forward and backward (NaN: not counted).
    flops_per_step: float = math.nan
    #: ``(samples, seconds, steps)`` the throughput is measured over; None: not measured.
    throughput: tuple[float, float, int] | None = None
    #: (IQR / median of the steady windows' throughput, their number); None: not measured.
    dispersion: tuple[float, int] | None = None
    warmup_s: float = math.nan
    peak_mem_mb: float = math.nan
    peak_mem_method: str | None = None
    data_source: str | None = None
    #: How the cell ran (fast paths, checkpointing...), as displayed; only those that apply.
    paths: Mapping[str, Any] = field(default_factory=dict)
    #: The problem's metrics at the last evaluation.
    metrics: Mapping[str, float] = field(default_factory=dict)


def summarise(cell: Cell, problem: Problem | None, measured: Measured,
              wall_s: float) -> dict[str, Any]:
    """The cell's summary: the schema's columns in its order, then the problem's metrics."""
    m = measured
    target = problem.target_for(dict(cell.params)) if problem is not None else None
    finite = [x for x in m.losses if math.isfinite(x)]
    rate = step_ms = math.nan
    if m.throughput is not None:
        samples, seconds, steps = m.throughput
        rate = samples / seconds if seconds > 0 else math.nan
        step_ms = 1000 * seconds / steps if steps else math.nan
    return {
        "steps_done": m.steps_done,
        "final_loss": m.losses[-1] if m.losses else math.nan,
        "best_loss": min(finite) if finite else math.nan,
        "time_to_target_s": m.time_to_target_s,
        "steps_to_target": m.steps_to_target,
        "samples_to_target": m.samples_to_target,
        "flops_per_step": m.flops_per_step,
        "flops_to_target": m.flops_per_step * m.steps_to_target,
        "samples_per_s": rate,
        "step_time_ms": step_ms,
        "throughput_dispersion": m.dispersion[0] if m.dispersion else math.nan,
        "throughput_windows": m.dispersion[1] if m.dispersion else math.nan,
        "warmup_s": m.warmup_s,
        "peak_mem_mb": m.peak_mem_mb,
        "peak_mem_method": m.peak_mem_method,
        "wall_s": wall_s,
        "data_source": m.data_source,
        "sample_unit": problem.sample_unit if problem is not None else None,
        "target_metric": target.metric if target else None,
        "target_threshold": target.threshold if target else math.nan,
        "target_mode": target.mode if target else None,
        **_selection(problem),
        **_chance(problem, m.metrics),
        **m.paths,
        **m.metrics,
    }


def _selection(problem: Problem | None) -> dict[str, Any]:
    """The metrics' better sides and the metric to select hyperparameters on."""
    if problem is None:
        return {}
    directions = {m: side for m in problem.metrics if (side := problem.better(m)) is not None}
    return {"metric_directions": format_directions(directions) or None,
            "validation_metric": problem.validation_metric}


def _chance(problem: Problem | None, metrics: Mapping[str, float]) -> dict[str, Any]:
    """``at_chance``: the metrics that ended no better than the problem's chance level."""
    if problem is None or not problem.chance_level:
        return {}
    flagged = [name for name, chance in problem.chance_level.items() if name in metrics
               and at_chance(float(metrics[name]), chance, problem.better(name))]
    return {"at_chance": ",".join(flagged) or None}


def measured_from_curve(cell: Cell, problem: Problem | None,
                        rows: Sequence[Mapping[str, Any]]) -> Measured:
    """What the curve rows alone tell: for a cell killed mid-way, whose loop state is lost."""
    target = problem.target_for(dict(cell.params)) if problem is not None else None
    reached = next((r for r in rows if target is not None and target.metric in r
                    and target.reached(float(r[target.metric]))), None)
    metrics: dict[str, float] = {}
    for r in rows:
        if problem is not None and any(m in r for m in problem.metrics):
            metrics = {m: r[m] for m in problem.metrics if m in r}
    throughput = None
    if len(rows) >= 2 and rows[-1]["elapsed_s"] > rows[0]["elapsed_s"]:
        first, last = rows[0], rows[-1]
        # the samples the steps consumed (a DQN step is one environment step, not a batch)
        samples = last.get("samples", last["step"] * cell.batch_size) \
            - first.get("samples", first["step"] * cell.batch_size)
        throughput = (samples, last["elapsed_s"] - first["elapsed_s"],
                      last["step"] - first["step"])
    return Measured(
        steps_done=rows[-1]["step"] if rows else 0,
        # step 0's loss is one batch at initialisation, not a window's mean
        losses=[float(r["loss"]) for r in rows if "loss" in r and r["step"] > 0],
        time_to_target_s=reached["elapsed_s"] if reached else math.nan,
        steps_to_target=reached["step"] if reached else math.nan,
        samples_to_target=reached.get("samples", reached["step"] * cell.batch_size)
        if reached else math.nan,
        throughput=throughput,
        metrics=metrics,
    )


def summary_from_curve(cell: Cell, problem: Problem | None, rows: list[dict[str, Any]],
                       wall_s: float) -> dict[str, Any]:
    """A summary rebuilt from the curve rows alone: for cells killed mid-way."""
    return summarise(cell, problem, measured_from_curve(cell, problem, rows), wall_s)

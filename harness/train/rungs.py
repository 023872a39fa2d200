"""A tuning trial's rungs (successive halving, docs/tuning.md): at each rung step, a
trial whose selection metric is worse than the rung's threshold stops as ``pruned``.

The thresholds are part of the trial's cell (``tune["prune"]``, ``STEP:VALUE,...``),
computed by the driver from the recorded trials of earlier rounds (where Optuna's
``SuccessiveHalvingPruner``, told them in trial order, would prune one more trial:
:mod:`harness.tune.pruning`), so whether a trial is pruned depends on the records only,
never on which other trials happen to be running. A value equal to the threshold goes on,
as with Optuna's pruner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.cell import Cell
from harness.errors import PrunedError
from harness.problem import Problem
from harness.target import TRAINING_METRICS


def parse_rungs(text: str) -> dict[int, float]:
    """``"67:0.152,200:0.0871"`` as ``{67: 0.152, 200: 0.0871}``."""
    out = {}
    for part in filter(None, text.split(",")):
        step, _, value = part.partition(":")
        out[int(step)] = float(value)
    return out


def format_rungs(rungs: Mapping[int, float]) -> str:
    return ",".join(f"{step}:{value!r}" for step, value in sorted(rungs.items()))


def curve_key(metric: str) -> str:
    """The curve's column a selection metric is read from at a rung (the window's mean
    training loss for the training-loss metrics)."""
    return "loss" if metric in TRAINING_METRICS else metric


def check_rung(cell: Cell, problem: Problem, row: Mapping[str, Any]) -> None:
    """Raise :class:`PrunedError` when ``row`` is at one of the cell's rungs and its
    selection metric is worse than that rung's threshold (or not a number)."""
    tune = dict(cell.tune)
    rungs = tune.get("prune")
    if not rungs:
        return
    threshold = parse_rungs(str(rungs)).get(int(row["step"]))
    if threshold is None:
        return
    metric = str(tune.get("metric", "final_loss"))
    value = row.get(curve_key(metric))
    side = "min" if metric in TRAINING_METRICS else problem.better(metric) or "min"
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise PrunedError(f"pruned at step {row['step']}: {metric} is not a number")
    worse = value > threshold if side == "min" else value < threshold
    if worse:
        raise PrunedError(f"pruned at step {row['step']}: {metric} {value:.4g} is worse than "
                          f"the rung's threshold {threshold:.4g}")

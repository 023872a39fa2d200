"""A tuning run's records, read: the summary's ``tune_*`` columns and the run's
``tuning.json`` and ``best_configs.csv`` (docs/tuning.md says what each holds).

Everything here is derived from the cell records alone, so the tables of a tuning run
are rebuilt, like any run's, from ``cells/``. Torch-free and Optuna-free: the read side.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.cell import Cell, format_value
from harness.target import TRAINING_METRICS

#: The run directory's record of the protocol and each study's trials and selection.
TUNING_FILE = "tuning.json"
#: One row per study: the selected configuration, ready to paste into a grid file.
BEST_CONFIGS_FILE = "best_configs.csv"
#: The phases of a tuning run's cells.
TRIAL, FINAL = "trial", "final"


def study_id(cell: Cell) -> str:
    """The study a tuning cell belongs to: what the cells of one study share besides the
    tuned hyperparameters and the seed (``regression activation=relu sgd cpu``)."""
    parts = [cell.problem, *(f"{k}={format_value(v)}" for k, v in cell.params), cell.optimizer]
    if cell.schedule is not None:
        parts.append(f"schedule={cell.schedule}")
    parts += [f"{role}:{opt}" for role, opt, _ in cell.roles]
    parts.append(cell.device)
    return " ".join(parts)


def split_of(metric: str) -> str:
    """``training`` for a training-loss metric, else ``validation``."""
    return "training" if metric in TRAINING_METRICS else "validation"


def metric_value(record: Mapping[str, Any], metric: str) -> float:
    """A record's value of ``metric`` (NaN when it has none, or did not finish ok)."""
    if record.get("status") != "ok":
        return math.nan
    value = (record.get("summary") or {}).get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else math.nan


def cost(record: Mapping[str, Any]) -> tuple[float, float]:
    """A cell's training seconds (its curve's last ``elapsed_s``) and FLOPs
    (``flops_per_step`` x ``steps_done``), NaN where unknown."""
    curve = record.get("curve") or []
    seconds = float(curve[-1]["elapsed_s"]) if curve else math.nan
    summary = record.get("summary") or {}
    per_step, done = summary.get("flops_per_step"), summary.get("steps_done")
    flops = float(per_step) * float(done) if isinstance(per_step, int | float) \
        and isinstance(done, int | float) else math.nan
    return seconds, flops


def trial_values(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], float]:
    """Each trial's selection value, by (study, trial): the mean of its metric over its
    seeds' ok cells; NaN when none of them finished ok."""
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for rec in records:
        cell = Cell.from_dict(rec["cell"])
        tune = dict(cell.tune)
        if tune.get("phase") != TRIAL:
            continue
        values[(study_id(cell), int(tune["trial"]))].append(
            metric_value(rec, str(tune.get("metric", "final_loss"))))
    out = {}
    for key, vs in values.items():
        ok = [v for v in vs if math.isfinite(v)]
        out[key] = math.fsum(ok) / len(ok) if ok and len(ok) == len(vs) else math.nan
    return out


def tune_columns(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``tune_*``, ``train_s`` and ``train_flops`` columns of each record, in order
    (an empty dict for a cell outside tuning)."""
    values = trial_values(records)
    selected = set()
    for rec in records:
        cell = Cell.from_dict(rec["cell"])
        tune = dict(cell.tune)
        if tune.get("phase") == FINAL:
            selected.add((study_id(cell), int(tune["trial"])))
    rows: list[dict[str, Any]] = []
    for rec in records:
        cell = Cell.from_dict(rec["cell"])
        tune = dict(cell.tune)
        if not tune:
            rows.append({})
            continue
        study, trial = study_id(cell), int(tune["trial"])
        metric = str(tune.get("metric", "final_loss"))
        seconds, flops = cost(rec)
        rows.append({
            "tune_phase": tune.get("phase", TRIAL), "tune_study": study, "tune_trial": trial,
            "tune_metric": metric, "tune_split": split_of(metric),
            "tune_value": values.get((study, trial), math.nan),
            "tune_selected": (study, trial) in selected,
            "tune_edge": str(tune.get("edge", "")), "train_s": seconds, "train_flops": flops,
        })
    return rows


def read_tuning(run: Path) -> dict[str, Any] | None:
    """The run's ``tuning.json``, or None when it is not a tuning run (or the file is
    unreadable: the records still hold every trial)."""
    try:
        data = json.loads((run / TUNING_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def grid_values(hyper: Mapping[str, Any], schedule: str | None,
                schedule_params: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration's values under the names :func:`grid_line` takes: the optimizer's
    hyperparameters by name, the schedule's parameters as ``SCHEDULE.KEY``
    (``warmup-cosine.warmup``), as a grid file spells them."""
    if schedule is None:
        return dict(hyper)
    return {**hyper, **{f"{schedule}.{k}": v for k, v in schedule_params.items()}}


def grid_line(problem: str, optimizer: str, hyper: Mapping[str, Any]) -> str:
    """The selected values as a grid file sets them for one problem:
    ``[problems.cnn] adam.lr = 0.001, adam.momentum = 0.9`` is written one key a line.
    A schedule's parameter (a key ``SCHEDULE.KEY``, :func:`grid_values`) is written as it
    is, after ``schedule = "SCHEDULE"``: ``adam.lr = 0.001; schedule = "warmup-cosine";
    warmup-cosine.warmup = 0.1``."""
    own = sorted((k, v) for k, v in hyper.items() if "." not in k)
    scheduled = sorted((k, v) for k, v in hyper.items() if "." in k)
    names = sorted({k.split(".", 1)[0] for k, _ in scheduled})
    lines = [f"{optimizer}.{k} = {_toml(v)}" for k, v in own]
    if names:
        lines.append(f"schedule = {_toml(names[0] if len(names) == 1 else names)}")
    lines += [f"{k} = {_toml(v)}" for k, v in scheduled]
    return "; ".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


__all__ = ["BEST_CONFIGS_FILE", "FINAL", "TRAINING_METRICS", "TRIAL", "TUNING_FILE", "cost",
           "grid_line", "grid_values", "metric_value", "read_tuning", "split_of", "study_id",
           "trial_values", "tune_columns"]

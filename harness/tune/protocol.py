"""The protocol replayed from the records: for each study, the trials its sampler proposes
round by round (each round told the recorded values of the ones before), the selection,
the extensions of a space whose edge was selected, and the final cells.

:func:`derive` is a pure function of the studies, the protocol and the records: it goes as
far as the records allow and returns every cell known so far, so an interrupted run,
resumed, proposes and selects exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.cell import Cell
from harness.grid.tune import MAX_EXTENSIONS, TuneSpec
from harness.outcome import FAILED, Status
from harness.results.tuning import cost, metric_value
from harness.space import SearchSpace
from harness.train.rungs import curve_key, format_rungs
from harness.tune.pruning import rung_steps, thresholds
from harness.tune.samplers import propose, trial_count
from harness.tune.studies import Dim, Study

#: Statuses with which a cell counts as ended (a trial of them has its value, or none).
ENDED = (Status.OK, Status.SKIPPED, Status.PRUNED, *FAILED)


@dataclass
class Trial:
    number: int
    values: dict[str, Any]
    cells: list[Cell]
    #: ``main`` or ``extension N``.
    origin: str = "main"


@dataclass
class StudyState:
    """How far a study has got: its trials, its spaces now, the selection, finals."""

    study: Study
    trials: list[Trial] = field(default_factory=list)
    selected: Trial | None = None
    edge: dict[str, str] = field(default_factory=dict)
    finals: list[Cell] = field(default_factory=list)
    extensions: int = 0


def _ended(cell: Cell, records: Mapping[str, Mapping[str, Any]]) -> bool:
    rec = records.get(cell.key)
    return rec is not None and rec.get("status") in ENDED


def trial_value(trial: Trial, metric: str, records: Mapping[str, Mapping[str, Any]]) -> float:
    """The mean of ``metric`` over the trial's cells; NaN unless every one ended ok."""
    values = [metric_value(records.get(c.key) or {}, metric) for c in trial.cells]
    return math.fsum(values) / len(values) if all(math.isfinite(v) for v in values) \
        else math.nan


def _rounds(tune: TuneSpec, total: int) -> list[int]:
    """Trials per round: all at once for a non-adaptive sampler (with pruning: a first
    eta-th of them, then rounds as large); for tpe its random start-up trials, then
    ``batch`` at a time."""
    if tune.sampler != "tpe":
        if tune.pruner == "none":
            return [total]
        size = max(1, math.ceil(total / tune.eta))
        return [min(size, total - i) for i in range(0, total, size)]
    first = min(total, max(2, min(10, total // 3)))
    sizes = [first]
    while sum(sizes) < total:
        sizes.append(min(tune.batch, total - sum(sizes)))
    return sizes


def _add(state: StudyState, proposals: Sequence[dict[str, Any]], seeds: Sequence[int],
         origin: str, prune: str = "") -> None:
    for values in proposals:
        n = len(state.trials)
        state.trials.append(Trial(n, values, state.study.trial_cells(n, values, seeds, prune),
                                  origin))


def derive(studies: Sequence[Study], tune: TuneSpec, records: Mapping[str, Mapping[str, Any]],
           trial_seeds: Sequence[int], final_seeds: Sequence[int]) -> list[StudyState]:
    """Every study replayed as far as ``records`` (by content key) allow."""
    return [_derive_one(s, tune, records, trial_seeds, final_seeds) for s in studies]


def _derive_one(study: Study, tune: TuneSpec, records: Mapping[str, Mapping[str, Any]],
                trial_seeds: Sequence[int], final_seeds: Sequence[int]) -> StudyState:
    state = StudyState(study)
    total = trial_count(tune.sampler, study.dims, tune.trials)
    upfront = [] if tune.sampler == "tpe" else propose(
        tune.sampler, study.dims, total, seed=tune.seed, direction=study.direction)
    for r, size in enumerate(_rounds(tune, total)):
        if not all(_ended(c, records) for t in state.trials for c in t.cells):
            return state  # the round before has not ended: nothing more is known
        history = [(t.values, trial_value(t, study.metric, records)) for t in state.trials]
        proposals = upfront[len(state.trials):len(state.trials) + size] if upfront else \
            propose(tune.sampler, study.dims, size, seed=tune.seed + r,
                    direction=study.direction, history=history, trials=total)
        prune = format_rungs(rung_thresholds(state, tune, records)) \
            if tune.pruner != "none" and r else ""
        _add(state, proposals, trial_seeds, "main", prune)
    while True:
        if not all(_ended(c, records) for t in state.trials for c in t.cells):
            state.selected, state.edge = None, {}  # an extension is running: not yet
            return state
        _select(state, records)
        if state.selected is None or not state.edge or tune.edge != "extend" \
                or state.extensions >= MAX_EXTENSIONS or not _extend(state, tune, trial_seeds):
            break
    if state.selected is not None:
        state.finals = state.study.final_cells(
            state.selected.number, state.selected.values, final_seeds,
            ",".join(f"{k}={v}" for k, v in sorted(state.edge.items())))
    return state


def rung_thresholds(state: StudyState, tune: TuneSpec,
                    records: Mapping[str, Mapping[str, Any]]) -> dict[int, float]:
    """Each rung's threshold for the next round's trials: Optuna's successive halving
    pruner (reduction factor eta) told the recorded trials so far in trial order, each
    reporting its value at each rung (the mean over its cells, when all have a finite
    one), and asked where it would prune one more (:mod:`harness.tune.pruning`)."""
    study = state.study
    key = curve_key(study.metric)
    curves = [[(records.get(c.key) or {}).get("curve") or [] for c in t.cells]
              for t in state.trials]
    steps = {int(row["step"]) for cs in curves for curve in cs for row in curve
             if isinstance(row.get(key), int | float)}
    budget = study.template.steps
    rungs = rung_steps(steps, budget, tune.eta)
    history = [[_rung_value(cs, rung, key) for rung in rungs] for cs in curves]
    return thresholds(history, rungs, budget, tune.eta, study.direction)


def _rung_value(curves: Sequence[Sequence[Mapping[str, Any]]], rung: int,
                key: str) -> float | None:
    """A trial's value at a rung: the mean over its cells' curves, None unless each has a
    finite one there."""
    seen = [next((r[key] for r in curve if r["step"] == rung
                  and isinstance(r.get(key), int | float)), None) for curve in curves]
    values = [float(v) for v in seen if v is not None and math.isfinite(v)]
    return math.fsum(values) / len(values) if values and len(values) == len(seen) else None


def _select(state: StudyState, records: Mapping[str, Mapping[str, Any]]) -> None:
    """The best trial with a value (lower or higher as the direction says; the first
    such trial on a tie), and its values on an edge of their (current) space."""
    study = state.study
    scored = [(trial_value(t, study.metric, records), t) for t in state.trials]
    scored = [(v, t) for v, t in scored if math.isfinite(v)]
    if not scored:
        state.selected, state.edge = None, {}
        return
    sign = 1.0 if study.direction == "min" else -1.0
    state.selected = min(scored, key=lambda vt: (sign * vt[0], vt[1].number))[1]
    state.edge = {d.name: side for d in study.dims
                  if (side := d.space.edge(state.selected.values[d.name])) is not None}


def _extend(state: StudyState, tune: TuneSpec, trial_seeds: Sequence[int]) -> bool:
    """Widen each space whose edge was selected, and propose trials in the added strip
    (quasi-random; random for the random sampler). False when no space can widen."""
    strips: list[Dim] = []
    study = state.study
    for dim in study.dims:
        side = state.edge.get(dim.name)
        wide = dim.space.widened(side) if side else None
        if wide is None:
            strips.append(dim)
            continue
        study = study.with_space(dim.name, wide)
        low, high = (wide.low, dim.space.low) if side == "low" else (dim.space.high, wide.high)
        strips.append(replace(dim, space=SearchSpace(wide.scale, low, high)))
    if study is state.study:
        return False
    state.study = study
    state.extensions += 1
    n = tune.extend_trials or max(1, tune.trials // 2)
    sampler = "random" if tune.sampler == "random" else "sobol"
    _add(state, propose(sampler, strips, n, seed=tune.seed + 1000 * state.extensions,
                        direction=study.direction), trial_seeds, f"extension {state.extensions}")
    return True


def cells_of(states: Sequence[StudyState]) -> list[Cell]:
    """Every cell known so far: each study's trials, then its final cells."""
    return [c for s in states for t in s.trials for c in t.cells] + \
        [c for s in states for c in s.finals]


def trial_record(trial: Trial, metric: str, records: Mapping[str, Mapping[str, Any]],
                 study: Study) -> dict[str, Any]:
    """A trial as ``tuning.json`` lists it."""
    recs = [records.get(c.key) for c in trial.cells]
    statuses = [r.get("status") if r else None for r in recs]
    value = trial_value(trial, metric, records)
    state = "pending" if None in statuses else "pruned" if Status.PRUNED in statuses \
        else "ok" if math.isfinite(value) else "failed"
    costs = [cost(r) for r in recs if r]
    summaries = [r.get("summary") or {} for r in recs if r]
    steps = sum(int(s.get("steps_done") or 0) for s in summaries)
    chance = sorted({m for s in summaries for m in str(s.get("at_chance") or "").split(",")
                     if m})
    targeted = [s for s in summaries if s.get("target_metric")]
    missed = None if not targeted else not all(
        isinstance(s.get("time_to_target_s"), int | float)
        and math.isfinite(s["time_to_target_s"]) for s in targeted)
    return {"trial": trial.number, "origin": trial.origin, "hyper": trial.values,
            "value": value, "state": state, "cells": [c.cell_id for c in trial.cells],
            "train_s": math.fsum(c[0] for c in costs if math.isfinite(c[0])),
            "train_flops": math.fsum(c[1] for c in costs if math.isfinite(c[1])),
            "steps": steps, "at_chance": chance, "missed_target": missed,
            "edge": {d.name: side for d in study.dims
                     if (side := d.space.edge(trial.values[d.name])) is not None}}

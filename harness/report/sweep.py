"""A sweep is not N arms: one configuration per optimizer and problem, selected on validation.

A run that sweeps a hyperparameter (``--set lr=0.001,0.01,0.1``) or tunes it (``harness
tune``: trial and final cells, docs/tuning.md) has many arms per optimizer. The report
groups them by **optimizer group** (the optimizer with its schedule and role optimizers,
without the hyperparameters: :func:`harness.report.model.group_labels`) and per problem:

* **Plain sweep.** Each configuration (arm) gets a value: the mean of the problem's
  validation metric (its cells' ``validation_metric``; the training loss ``final_loss``
  where the problem has none, and the page says so) over its seeds, in the metric's
  direction; one that has a seed not ``ok`` has no value, as in a tuning study. The best
  value is selected, never on the test metric. Its cells are ranked, on the same seeds:
  the page says a tuning run's fresh final seeds avoid that optimism.
* **Tuning run.** The tuner's selection stands (``tune_selected``); the ranked cells are the
  **final** cells, on seeds no trial used; trial cells give the sensitivity and the cost.

:attr:`Sweep.view` is the run with only the ranked cells, each arm named by its group
(``adam``), so the page's overview, rankings, paired tests and convergence figures show one
line per optimizer. A run with one configuration per optimizer is no sweep: the page is
what it was.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.cell import Cell, format_value
from harness.outcome import Status
from harness.report.model import ReportRun, capabilities_in, group_labels
from harness.results.tuning import grid_line, grid_values

_RUN_SUFFIX = re.compile(r" \[run: [^\]]*\]$")
TRIAL, FINAL = "trial", "final"
#: Statuses a configuration may have without losing its value: ``pruned`` trials stopped
#: early on purpose (a result, not a failure) have none, but are no failure either.
PRUNED = "pruned"


@dataclass
class Sweep:
    """What :func:`sweep` found: see the module docstring."""

    #: The run with only the ranked cells, arms named by their optimizer group.
    view: ReportRun
    #: One row per (problem, group): the selection (:func:`_choice` says the columns).
    choices: pd.DataFrame
    #: One row per configuration tried (arm), with its value and what became of it.
    configs: pd.DataFrame
    #: Whether any study is a tuning run's (trial and final cells).
    tuned: bool

    @property
    def searched(self) -> bool:
        """Whether anything was searched: a tuning study, or several configurations of an
        optimizer on a problem (else only settings that differ per problem were grouped)."""
        return self.tuned or bool((self.choices.get("configurations", pd.Series(
            dtype=int)) > 1).any())


def groups(run: ReportRun) -> dict[str, str]:
    """cell_id -> optimizer group, with the ``[run: NAME]`` of an arm told apart by run."""
    base = group_labels(run.records, capabilities_in(run.manifest))
    out = {}
    for cid, (_, arm, _) in run.labels.items():
        suffix = _RUN_SUFFIX.search(arm)
        out[cid] = base.get(cid, arm) + (suffix.group(0) if suffix else "")
    return out


def phases(run: ReportRun) -> pd.Series:
    """Each summary row's tuning phase (``trial``, ``final``, or empty outside tuning)."""
    col = run.summary.get("tune_phase", pd.Series("", index=run.summary.index))
    return col.fillna("").astype(str)


def sweep(run: ReportRun) -> Sweep | None:
    """The run's sweeps and tuning studies, or None when it has neither."""
    s = run.summary
    if s.empty:
        return None
    group_of = groups(run)
    s = s.assign(group=[group_of.get(str(c), "") for c in s["cell_id"]], phase=phases(run))
    s = s[s["status"] != Status.SKIPPED]
    tuned = bool((s["phase"] != "").any())
    plain = s[s["phase"] == ""]
    multi = plain.groupby(["problem", "group"], sort=False)["arm"].nunique()
    # settings per problem (a tuned configuration pasted back): one arm per problem, but
    # not the same on every problem; ranked under the optimizer's name across problems
    spread = plain.groupby("group", sort=False)["arm"].nunique()
    if not tuned and not (multi > 1).any() and not (spread > 1).any():
        return None
    hyper = {str(r["cell_id"]): _values(Cell.from_dict(r["cell"])) for r in run.records}
    costs = {str(r["cell_id"]): _cost(r) for r in run.records}
    choices: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    ranked: list[str] = []
    for (problem, group), cells in s.groupby(["problem", "group"], sort=False):
        studied = cells[cells["phase"] != ""]
        cells = studied if len(studied) else cells
        rows = _configurations(run, str(problem), cells, hyper, costs)
        if not rows:
            continue
        choice, keep = _choice(run, str(problem), str(group), cells, rows)
        choices.append(choice)
        configs.extend({**r, "problem": problem, "group": group} for r in rows)
        ranked.extend(keep)
    view = _view(run, set(ranked), group_of)
    return Sweep(view, pd.DataFrame(choices), pd.DataFrame(configs), tuned)


def default_view(run: ReportRun) -> ReportRun | None:
    """Of a report of several runs, the first run given that sweeps and tunes nothing (one
    configuration per optimizer and problem): its cells, arms named by group, for the
    "defaults against tuned" table. None when there is no such run."""
    if len(run.runs) < 2 or run.summary.empty:
        return None
    group_of = groups(run)
    s = run.summary.assign(group=[group_of.get(str(c), "") for c in run.summary["cell_id"]],
                           phase=phases(run))
    for src in run.runs:
        cells = s[s["cell_id"].astype(str).isin(src.cells)]
        if cells.empty or (cells["phase"] != "").any():
            continue
        if (cells.groupby(["problem", "group"])["arm"].nunique() <= 1).all():
            return _view(run, set(cells["cell_id"].astype(str)), group_of)
    return None


def _values(cell: Cell) -> tuple[tuple[str, Any], ...]:
    """A configuration's values: its hyperparameters, and its schedule's parameters as
    ``SCHEDULE.KEY`` (a sweep or a study may vary those too)."""
    return tuple(grid_values(dict(cell.hyper), cell.schedule,
                             dict(cell.schedule_params)).items())


def _cost(record: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """A cell's training seconds (its curve's last ``elapsed_s``) and FLOPs, and for a
    trial the pruner stopped, what the steps it did not run would have cost: FLOPs exactly
    (FLOPs per step x steps left), seconds at the cell's own rate (an estimate)."""
    curve = record.get("curve") or []
    last = curve[-1].get("elapsed_s") if curve else None
    seconds = float(last) if isinstance(last, int | float) else math.nan
    summary = record.get("summary") or {}
    per_step = _number(summary.get("flops_per_step"))
    done = _number(summary.get("steps_done"))
    flops = per_step * done
    saved_s = saved_flops = 0.0
    steps = _number((record.get("cell") or {}).get("steps"))
    if record.get("status") == PRUNED and done > 0 and steps > done:
        saved_s = seconds * (steps - done) / done
        saved_flops = per_step * (steps - done)
    return seconds, flops, saved_s, saved_flops


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else math.nan


def selection_metric(run: ReportRun, problem: str) -> tuple[str, str]:
    """The metric a problem's configurations are selected on, and its split: the
    validation metric, else the training loss (never the test metric)."""
    metric = run.validation_metric(problem)
    return (metric, "validation") if metric else ("final_loss", "training")


def _configurations(run: ReportRun, problem: str, cells: pd.DataFrame,
                    hyper: Mapping[str, Any],
                    costs: Mapping[str, tuple[float, float, float, float]],
                    ) -> list[dict[str, Any]]:
    """One row per configuration of one (problem, group): trials in a tuning study, arms in
    a sweep; final cells are not configurations."""
    metric, split = selection_metric(run, problem)
    tried = cells[cells["phase"] != FINAL]
    target = run.target(problem)
    out = []
    for arm, g in tried.groupby("arm", sort=False):
        ids = [str(c) for c in g["cell_id"]]
        status = g["status"].astype(str)
        ok = status == Status.OK
        values = pd.to_numeric(g[metric], errors="coerce") if metric in g else pd.Series(
            math.nan, index=g.index)
        all_ok = bool(ok.all()) and bool(values.notna().all())
        reached = pd.to_numeric(g.get("steps_to_target", pd.Series(math.nan, g.index)),
                                errors="coerce").notna()
        chance = g.get("at_chance", pd.Series("", index=g.index)).fillna("").astype(str)
        out.append({
            "arm": arm, "hyper": dict(hyper.get(ids[0], ())), "seeds": len(g),
            "metric": metric, "split": split,
            "value": float(values.mean()) if all_ok else math.nan,
            "ok_value": float(values[ok].mean()) if values[ok].notna().any() else math.nan,
            "n_failed": int((~status.isin((Status.OK, PRUNED))).sum()),
            "pruned": bool((status == PRUNED).any()),
            "failed": bool((~status.isin((Status.OK, PRUNED))).any()),
            "at_chance": bool((chance != "").any()),
            "missed": target is not None and bool(ok.any()) and not bool(reached[ok].any()),
            "train_s": float(np.nansum([costs[c][0] for c in ids])),
            "flops": float(np.nansum([costs[c][1] for c in ids])),
            "saved_s": float(np.nansum([costs[c][2] for c in ids])),
            "saved_flops": float(np.nansum([costs[c][3] for c in ids])),
            "tune_selected": bool(g.get("tune_selected", pd.Series(False, g.index))
                                  .fillna(False).astype(bool).any()),
            "cells": ids,
        })
    return out


def _choice(run: ReportRun, problem: str, group: str, cells: pd.DataFrame,
            rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The selected configuration of one (problem, group) and the cells to rank."""
    metric, split = selection_metric(run, problem)
    mode = run.direction(problem, metric)
    finals = cells[cells["phase"] == FINAL]
    valued = [r for r in rows if math.isfinite(r["value"])]
    if len(finals):  # a tuning study: the tuner selected
        picked = next((r for r in rows if r["tune_selected"]), None)
        keep = [str(c) for c in finals["cell_id"]]
        edge = ",".join(sorted({str(e) for e in finals.get("tune_edge", pd.Series(dtype=str))
                                .dropna() if str(e)}))
    else:
        sign = 1.0 if mode == "min" else -1.0
        picked = min(valued, key=lambda r: sign * r["value"]) if valued else min(
            rows, key=lambda r: (r["n_failed"], sign * r["ok_value"]
                                 if math.isfinite(r["ok_value"]) else math.inf))
        keep = list(picked["cells"])
        edge = _edge(picked, rows) if valued and len(rows) > 1 else ""
    for r in rows:
        r["selected"] = r is picked
    varied = _varied(rows)
    chosen = {k: v for k, v in (picked["hyper"] if picked else {}).items() if k in varied}
    model = str(cells["model"].iloc[0])
    return ({
        "problem": problem, "model": model, "optimizer": group,
        "configuration": (picked["arm"] if picked else "none selected")
        + ("" if valued or len(finals) or len(rows) == 1 else
           " (no configuration finished ok on every seed: the one with the fewest failed "
           "seeds is ranked)"),
        "configurations": len(rows), "metric": metric, "split": split, "better": mode,
        "value": picked["value"] if picked else math.nan, "edge": edge,
        "final_seeds": len(finals), "hyperparameters": format_pairs_text(chosen),
        "grid_section": f"[problems.{model}]",
        "grid": grid_line(problem, _optimizer(cells), chosen),
    }, keep)


def _varied(rows: list[dict[str, Any]]) -> set[str]:
    """The hyperparameters whose values differ between the configurations."""
    keys = {k for r in rows for k in r["hyper"]}
    return {k for k in keys if len({format_value(r["hyper"].get(k)) for r in rows}) > 1}


def _edge(picked: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``lr=low`` / ``lr=high`` where the selected value is the smallest or largest of a
    swept numeric hyperparameter (a better value may lie beyond)."""
    out = []
    for key in sorted(_varied(rows)):
        values = [r["hyper"].get(key) for r in rows]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            continue
        v = picked["hyper"].get(key)
        if v == min(values):
            out.append(f"{key}=low")
        elif v == max(values):
            out.append(f"{key}=high")
    return ",".join(out)


def _optimizer(cells: pd.DataFrame) -> str:
    return str(cells["optimizer"].iloc[0])


def format_pairs_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(values.items()))


def _view(run: ReportRun, keep: set[str], group_of: Mapping[str, str]) -> ReportRun:
    """The run with only ``keep``'s cells, each arm named by its group."""
    def only(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["cell_id"].astype(str).isin(keep)].copy() if len(frame) else frame
        if len(frame):
            frame["arm"] = [group_of[str(c)] for c in frame["cell_id"]]
        return frame

    labels = {cid: (v, group_of[cid], p) for cid, (v, _, p) in run.labels.items() if cid in keep}
    return dataclasses.replace(run, summary=only(run.summary), curves=only(run.curves),
                               records=[r for r in run.records if str(r["cell_id"]) in keep],
                               labels=labels)


def best_configs_toml(choices: pd.DataFrame) -> str:
    """The selected configurations as grid-file lines, one ``[problems.MODEL]`` table per
    model (the form a grid file takes per-problem settings in). Where variants of one model
    selected different values for a key, the first stands and the others are comments."""
    lines: list[str] = []
    for model, rows in choices.groupby("model", sort=False):
        settings: dict[str, str] = {}
        others: list[str] = []
        for problem, grid in zip(rows["problem"], rows["grid"], strict=True):
            for line in filter(None, str(grid or "").split("; ")):
                key = line.split(" = ", 1)[0]
                if key not in settings:
                    settings[key] = line
                elif settings[key] != line:
                    others.append(f"# {problem} selected {line}")
        if settings:
            lines += [f"[problems.{model}]", *settings.values(), *others, ""]
    return "\n".join(lines)

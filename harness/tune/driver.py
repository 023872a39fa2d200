"""Running a tuning run: rounds of ordinary grid runs on one directory, each adding the
cells the records so far make known (:func:`harness.tune.protocol.derive`), until every
study has its final cells; ``tuning.json`` and ``best_configs.csv`` after each round."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.atomic import write_atomic
from harness.cell import Cell, format_pairs
from harness.grid import ExpandedGrid
from harness.grid.tune import TuneSpec
from harness.outcome import FAILED
from harness.plugins import PluginHost
from harness.results import RunDirectory, write_json_atomic
from harness.results.tuning import (
    BEST_CONFIGS_FILE,
    TUNING_FILE,
    grid_line,
    grid_values,
    split_of,
)
from harness.run.runner import RunOutcome, RunRequest, run_grid
from harness.space import element
from harness.tune.protocol import (
    ENDED,
    StudyState,
    cells_of,
    derive,
    trial_record,
    trial_value,
)
from harness.tune.studies import Study, build_studies


def plan_studies(grid: ExpandedGrid, tune: TuneSpec, host: PluginHost) -> list[Study]:
    """The grid's studies (UsageError for a grid that cannot be tuned as given); a note on
    standard error for each problem whose studies select on the training loss."""
    studies = build_studies(grid.cells, tune, host.problems, host.optimizers, host.schedules)
    for line in training_loss_notes(studies, tune, host):
        print(line, file=sys.stderr)
    return studies


def training_loss_notes(studies: Sequence[Study], tune: TuneSpec,
                        host: PluginHost) -> list[str]:
    """One line per problem without a validation metric whose studies therefore select on
    the training loss: a loss need not rank what the problem measures (a GAN's does not:
    BENCHMARKS.md, tuned rankings), so the line names the metrics ``--tune-metric`` takes."""
    if tune.metric != "validation":
        return []
    lines = []
    for name in dict.fromkeys(s.template.problem for s in studies):
        problem = host.problems.get(name)
        if problem.validation_metric is not None:
            continue
        others = [m for m in problem.metrics if not m.startswith("test_")]
        lines.append(f"harness: note: {name} has no validation split, so its studies select "
                     "on the training loss (final_loss)"
                     + (f"; --tune-metric {others[0]} selects on its "
                        f"{others[0]} instead ({', '.join(others)} are its metrics)"
                        if others else ""))
    return lines


def first_cells(grid: ExpandedGrid, tune: TuneSpec, host: PluginHost,
                grid_seeds: Sequence[int]) -> list[Cell]:
    """The cells a new tuning run starts with (``--dry-run`` lists them)."""
    studies = plan_studies(grid, tune, host)
    states = derive(studies, tune, {}, tune.trial_seeds(list(grid_seeds)),
                    tune.final(list(grid_seeds)))
    return cells_of(states)


def run_tuning(request: RunRequest, host: PluginHost, tune: TuneSpec,
               grid_seeds: Sequence[int]) -> RunOutcome:
    """Run the protocol on ``request.out``: each round is :func:`run_grid` on every cell
    known so far (the ones with records are not run again)."""
    trial_seeds, final_seeds = tune.trial_seeds(list(grid_seeds)), tune.final(list(grid_seeds))
    studies = plan_studies(request.grid, tune, host)
    run_dir = RunDirectory(request.out)
    first, ran, done, previous_todo = True, 0, 0, None
    while True:
        records = _records(run_dir)
        states = derive(studies, tune, records, trial_seeds, final_seeds)
        cells = cells_of(states)
        keep = ENDED if not (first and request.rerun_failed) else \
            tuple(s for s in ENDED if s not in FAILED)
        todo = [c.key for c in cells if (records.get(c.key) or {}).get("status") not in keep]
        if not first and (not todo or todo == previous_todo):
            break
        grid = ExpandedGrid(tuple(cells), request.grid.devices, request.grid.unavailable)
        outcome = run_grid(replace(request, grid=grid, resume=request.resume or not first,
                                   continues=not first,
                                   rerun_failed=request.rerun_failed and first), host)
        ran += outcome.ran
        done = outcome.skipped_done if first else done
        first, previous_todo = False, todo
        write_files(run_dir.path, tune, derive(studies, tune, _records(run_dir), trial_seeds,
                                               final_seeds), _records(run_dir), final_seeds)
        if outcome.interrupted:
            break
    return replace(outcome, ran=ran, skipped_done=done)


def _records(run_dir: RunDirectory) -> dict[str, dict[str, Any]]:
    good, _ = run_dir.scan()
    return {r["key"]: r for r in good}


def write_files(out: Path, tune: TuneSpec, states: Sequence[StudyState],
                records: Mapping[str, Mapping[str, Any]], final_seeds: Sequence[int]) -> None:
    """``tuning.json`` and ``best_configs.csv`` (docs/tuning.md)."""
    protocol = {**asdict(tune), "final_seeds": list(final_seeds)}
    studies = [_study_json(s, records) for s in states]
    write_json_atomic(out / TUNING_FILE, {"protocol": protocol, "studies": studies})
    rows = [_best_row(s, _pasted(st)) for s, st in zip(studies, states, strict=True)
            if s["selected"] is not None]
    buffer = io.StringIO()
    names = sorted({k for r in rows for k in r if k.startswith("hp.")})
    head = ["model", "params", "optimizer", "schedule", "device", "metric", "split",
            "direction", "value", "trial", "trials", "edge", "grid", *names]
    writer = csv.DictWriter(buffer, head, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / BEST_CONFIGS_FILE, buffer.getvalue())


def _study_json(state: StudyState, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    study, template = state.study, state.study.template
    selected = None
    if state.selected is not None:
        selected = {"trial": state.selected.number, "hyper": state.selected.values,
                    "value": trial_value(state.selected, study.metric, records),
                    "edge": dict(state.edge)}
    return {
        "study": study.sid, "model": template.problem, "params": format_pairs(template.params),
        "optimizer": template.optimizer, "schedule": template.schedule,
        "device": template.device, "metric": study.metric, "split": split_of(study.metric),
        "direction": study.direction,
        "space": {d.name: {**d.space.to_dict(), "owner": d.owner} for d in study.dims},
        "extensions": state.extensions,
        "trials": [trial_record(t, study.metric, records, study) for t in state.trials],
        "selected": selected, "final_cells": [c.cell_id for c in state.finals],
    }


def _pasted(state: StudyState) -> dict[str, Any]:
    """The selected values as a grid file sets them (a tuned element of a tuple as the
    whole tuple: ``betas = [0.85, 0.99]``; a schedule's parameter as
    ``warmup-cosine.warmup``, :func:`grid_values`)."""
    if state.selected is None:
        return {}
    cell = state.study.cell(state.selected.values, state.study.template.seed, {})
    tuned = {owner: {element(d.name)[0] for d in state.study.dims if d.owner == owner}
             for owner in ("optimizer", "schedule")}
    return grid_values({k: v for k, v in cell.hyper if k in tuned["optimizer"]},
                       cell.schedule,
                       {k: v for k, v in cell.schedule_params if k in tuned["schedule"]})


def _best_row(study: Mapping[str, Any], hyper: Mapping[str, Any]) -> dict[str, Any]:
    sel = study["selected"]
    value = sel["value"]
    return {
        "model": study["model"], "params": study["params"], "optimizer": study["optimizer"],
        "schedule": study["schedule"] or "", "device": study["device"],
        "metric": study["metric"], "split": study["split"], "direction": study["direction"],
        "value": "" if not math.isfinite(value) else f"{value:.6g}", "trial": sel["trial"],
        "trials": len(study["trials"]),
        "edge": ",".join(f"{k}={v}" for k, v in sorted(sel["edge"].items())),
        "grid": grid_line(study["model"], study["optimizer"], hyper),
        **{f"hp.{k}": v for k, v in sel["hyper"].items()},
    }

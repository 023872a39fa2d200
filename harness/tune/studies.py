"""Studies: the grid's cells grouped into one study per (problem, parameters, optimizer,
schedule, device), with the tuned dimensions, their search spaces and the selection
metric; and the trial and final cells a study's configurations become."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.cell import Cell
from harness.errors import UsageError
from harness.grid.tune import TuneSpec
from harness.registry import OptimizerRegistry, ProblemRegistry, ScheduleRegistry
from harness.results.tuning import FINAL, TRAINING_METRICS, TRIAL, study_id
from harness.space import SearchSpace, element


@dataclass(frozen=True)
class Dim:
    """One tuned dimension: a hyperparameter of the optimizer, or a schedule parameter."""

    name: str
    owner: str  # "optimizer" or "schedule"
    space: SearchSpace


@dataclass(frozen=True)
class Study:
    """One study: its cells differ only in the tuned values, the seed and ``tune``."""

    sid: str
    template: Cell
    dims: tuple[Dim, ...]
    metric: str
    direction: str

    def cell(self, values: Mapping[str, Any], seed: int, tune: Mapping[str, Any]) -> Cell:
        """The study's cell with ``values`` on ``seed``, tagged ``tune``."""
        hyper, sched = dict(self.template.hyper), dict(self.template.schedule_params)
        for dim in self.dims:
            target = hyper if dim.owner == "optimizer" else sched
            base, index = element(dim.name)
            if index is None:
                target[base] = values[dim.name]
            else:  # one element of a tuple-valued hyperparameter (betas[0])
                target[base] = tuple(values[dim.name] if i == index else v
                                     for i, v in enumerate(target[base]))
        return replace(self.template, seed=seed, hyper=tuple(sorted(hyper.items())),
                       schedule_params=tuple(sorted(sched.items())),
                       tune=tuple(sorted(tune.items())))

    def trial_cells(self, trial: int, values: Mapping[str, Any], seeds: Sequence[int],
                    prune: str = "") -> list[Cell]:
        tune: dict[str, Any] = {"phase": TRIAL, "trial": trial, "metric": self.metric}
        if prune:
            tune["prune"] = prune
        return [self.cell(values, s, tune) for s in seeds]

    def final_cells(self, trial: int, values: Mapping[str, Any], seeds: Sequence[int],
                    edge: str) -> list[Cell]:
        tune = {"phase": FINAL, "trial": trial, "metric": self.metric, "edge": edge}
        return [self.cell(values, s, tune) for s in seeds]

    def with_space(self, name: str, space: SearchSpace) -> Study:
        return replace(self, dims=tuple(replace(d, space=space) if d.name == name else d
                                        for d in self.dims))


def build_studies(cells: Sequence[Cell], tune: TuneSpec, problems: ProblemRegistry,
                  optimizers: OptimizerRegistry,
                  schedules: ScheduleRegistry | None) -> list[Study]:
    """One study per combination of the grid's axes other than the tuned values and the
    seed (UsageError where an axis runs over a value that is not tuned: tune it or fix
    it, or where a tuned name has no search space)."""
    studies: dict[str, Study] = {}
    for cell in cells:
        sid = study_id(cell)
        if sid in studies:
            if _tuned(studies[sid].template, studies[sid].dims) != _tuned(
                    cell, studies[sid].dims):
                names = ", ".join(d.name for d in studies[sid].dims)
                raise UsageError(f"tune: the grid gives several values of a tuned "
                                 f"hyperparameter ({names}) for {sid!r}; a tuned value comes "
                                 "from its search space ([tune.space] sets that)")
            if _untuned(studies[sid].template, studies[sid].dims) != _untuned(
                    replace(cell, seed=studies[sid].template.seed), studies[sid].dims):
                raise UsageError(f"tune: study {sid!r} has an axis over a value it does not "
                                 "tune; tune it ([tune] hyperparameters) or give one value")
            continue
        dims = tuple(_dim(cell, name, tune, optimizers, schedules)
                     for name in tune.hyperparameters)
        metric, direction = _metric(cell, tune, problems)
        studies[sid] = Study(sid, replace(cell, tune=()), dims, metric, direction)
    return list(studies.values())


def _tuned(cell: Cell, dims: Sequence[Dim]) -> tuple[Any, ...]:
    names = {element(d.name)[0] for d in dims}
    return (tuple(p for p in cell.hyper if p[0] in names),
            tuple(p for p in cell.schedule_params if p[0] in names))


def _untuned(cell: Cell, dims: Sequence[Dim]) -> tuple[Any, ...]:
    names = {element(d.name)[0] for d in dims}
    return (tuple(p for p in cell.hyper if p[0] not in names),
            tuple(p for p in cell.schedule_params if p[0] not in names), cell.seed)


def _dim(cell: Cell, name: str, tune: TuneSpec, optimizers: OptimizerRegistry,
         schedules: ScheduleRegistry | None) -> Dim:
    opt = optimizers.get(cell.optimizer)
    accepted = opt.accepted()
    base, _ = element(name)
    if base in opt.defaults or name in opt.space or (accepted is not None and base in accepted):
        space = tune.spaces_for(opt.name).get(name) or opt.space.get(name)
        if space is None:
            raise UsageError(f"tune: optimizer {opt.name!r} declares no search space for "
                             f"{name!r}; give one: [tune.space.{opt.name}] {name} = "
                             "{ low = ..., high = ..., scale = \"log\" }")
        return Dim(name, "optimizer", space)
    if cell.schedule is not None and schedules is not None:
        sched = schedules.get(cell.schedule)
        if name in sched.defaults:
            space = tune.spaces_for(sched.name).get(name) or sched.space.get(name)
            if space is None:
                raise UsageError(f"tune: schedule {sched.name!r} declares no search space "
                                 f"for {name!r}; give one in [tune.space.{sched.name}]")
            return Dim(name, "schedule", space)
    raise UsageError(f"tune: optimizer {opt.name!r} takes no hyperparameter {name!r}"
                     + ("" if cell.schedule is None else
                        f" and schedule {cell.schedule!r} no parameter {name!r}"))


def _metric(cell: Cell, tune: TuneSpec, problems: ProblemRegistry) -> tuple[str, str]:
    """The study's selection metric and its direction (``min``/``max``)."""
    problem = problems.get(cell.problem)
    if tune.metric == "validation":
        metric = problem.validation_metric or "final_loss"
    elif tune.metric == "training":
        metric = "final_loss"
    else:
        metric = tune.metric
        if metric.startswith("test_"):
            raise UsageError(f"tune: metric {metric!r} would select on the test split, the "
                             "data the tuned result is reported on; select on validation "
                             "(the default)")
        if metric not in problem.metrics and metric not in TRAINING_METRICS:
            known = ", ".join([*problem.metrics, *TRAINING_METRICS])
            raise UsageError(f"tune: problem {problem.name!r} reports no metric {metric!r} "
                             f"(it reports: {known})")
    direction = "min" if metric in TRAINING_METRICS else problem.better(metric) or "min"
    return metric, direction

"""The conformance checks: what the harness relies on from every problem and optimizer.

Each check is a plain function of one problem (or one optimizer spec) and a
:class:`CheckContext`; it returns nothing when the contract holds and raises
:class:`ConformanceFailure` when it does not, with a message that names the check
and the problem or optimizer. The pytest suite (:mod:`harness.testing.suite`)
turns every check into a test; nothing here needs pytest. Learning-rate schedules
(``register_schedules``) have checks of their own (:mod:`harness.testing.schedule_checks`).

The checks run on the CPU with few steps and small batches: a plugin author's CI
(and ours, over every built-in) should run the whole suite in about a minute.

A problem may opt out of checks that do not apply to it with
:attr:`harness.Problem.conformance_skip`; an optimizer when it is registered
(``OptimizerSpec(..., conformance_skip={...})``, ``registry.add_torch(...,
conformance_skip={...})``), or with a ``conformance_skip`` mapping on its factory. The
suite reports each opt-out as a skip with its reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.cell import Cell
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.problem import Problem, check_name
from harness.schedules import ScheduleSpec
from harness.testing.cells import build_optimizers, default_data_dir, step_function
from harness.train.loop import build_task


class ConformanceFailure(AssertionError):
    """A check found a broken contract; the message says which check and for whom."""

    def __init__(self, check: str, kind: str, name: str, detail: str) -> None:
        self.check, self.kind, self.name, self.detail = check, kind, name, detail
        super().__init__(f"conformance check {check!r} failed for {kind} {name!r}: {detail}")


class ConformanceSkip(Exception):
    """The problem or optimizer opted out of a check, or the check does not apply."""


@dataclass(frozen=True)
class Settings:
    """How the checks run. The defaults keep a built-in problem under a few seconds."""

    device: str = "cpu"
    #: Seeds every problem must build for.
    seeds: tuple[int, ...] = (0, 1)
    #: Batch sizes above this are reduced, to keep the checks cheap.
    max_batch_size: int = 32
    #: Steps of Adam for ``loss_decreases``, and its learning rate.
    descent_steps: int = 40
    lr: float = 0.01
    #: Steps compared by ``deterministic`` and trained before ``state_dict_round_trip``.
    short_steps: int = 3
    data_dir: Path = field(default_factory=default_data_dir)


class CheckContext:
    """Settings plus what several checks share: the problems optimizers are tried on."""

    def __init__(self, settings: Settings | None = None,
                 reference_problems: tuple[Problem, ...] = ()) -> None:
        self.settings = settings or Settings()
        self.reference_problems = reference_problems
        self._groups: dict[str, dict[str, list[Tensor]] | None] = {}

    def parameter_groups(self, problem: Problem) -> dict[str, list[Tensor]] | None:
        """Fresh leaf copies of the problem's parameter groups (seed 0); None if it won't build.

        Built once per problem: optimizers are then tried on copies, so a problem
        that does not build fails its own checks, not every optimizer's.
        """
        if problem.name not in self._groups:
            try:
                task = build(problem, self.settings, seed=0)
                groups = {role: [p.detach().clone() for p in params]
                          for role, params in task.parameter_groups().items()}
            except Exception:
                groups = None
            self._groups[problem.name] = groups
        cached = self._groups[problem.name]
        if cached is None:
            return None
        return {role: [t.clone().requires_grad_(True) for t in ts] for role, ts in cached.items()}


ProblemCheck = Callable[[Problem, CheckContext], None]
OptimizerCheck = Callable[[OptimizerSpec, CheckContext], None]
ScheduleCheck = Callable[[ScheduleSpec, CheckContext], None]

#: Problem checks by name, in the order the suite runs them.
PROBLEM_CHECKS: dict[str, ProblemCheck] = {}
#: Optimizer checks by name, in the order the suite runs them.
OPTIMIZER_CHECKS: dict[str, OptimizerCheck] = {}
#: Learning-rate schedule checks by name, in the order the suite runs them.
SCHEDULE_CHECKS: dict[str, ScheduleCheck] = {}


def _problem_check(fn: ProblemCheck) -> ProblemCheck:
    PROBLEM_CHECKS[fn.__name__.removeprefix("problem_")] = fn
    return fn


def _optimizer_check(fn: OptimizerCheck) -> OptimizerCheck:
    OPTIMIZER_CHECKS[fn.__name__.removeprefix("optimizer_")] = fn
    return fn


def _schedule_check(fn: ScheduleCheck) -> ScheduleCheck:
    SCHEDULE_CHECKS[fn.__name__.removeprefix("schedule_")] = fn
    return fn


# -- running a check -----------------------------------------------------------------
def skip_reason(subject: Problem | OptimizerSpec, check: str) -> str | None:
    """The reason ``subject`` gave for opting out of ``check``, or None. An optimizer's
    opt-outs are those given when it was registered (``OptimizerSpec.conformance_skip``),
    then a ``conformance_skip`` mapping on its factory."""
    for skips in _skips(subject):
        reason = skips.get(check) if isinstance(skips, Mapping) else None
        if reason is not None:
            return str(reason)
    return None


def _skips(subject: Problem | OptimizerSpec) -> list[Any]:
    if isinstance(subject, Problem):
        return [subject.conformance_skip]
    return [subject.conformance_skip, getattr(subject.factory, "conformance_skip", None) or {}]


def check_problem(problem: Problem, check: str, context: CheckContext | None = None) -> None:
    """Run one problem check; raise ConformanceFailure, or ConformanceSkip on an opt-out."""
    reason = skip_reason(problem, check) if check != "metadata" else None
    if reason is not None:
        raise ConformanceSkip(f"problem {problem.name!r} opts out of {check!r}: {reason}")
    PROBLEM_CHECKS[check](problem, context or CheckContext())


def check_optimizer(spec: OptimizerSpec, check: str, context: CheckContext | None = None) -> None:
    """Run one optimizer check; raise ConformanceFailure, or ConformanceSkip on an opt-out."""
    reason = skip_reason(spec, check) if check != "metadata" else None
    if reason is not None:
        raise ConformanceSkip(f"optimizer {spec.name!r} opts out of {check!r}: {reason}")
    OPTIMIZER_CHECKS[check](spec, context or CheckContext())


def check_schedule(spec: ScheduleSpec, check: str, context: CheckContext | None = None) -> None:
    """Run one learning-rate schedule check; raise ConformanceFailure, or ConformanceSkip
    when the schedule declares nothing for the check to verify."""
    SCHEDULE_CHECKS[check](spec, context or CheckContext())


# -- helpers -------------------------------------------------------------------------
def _cell(problem: Problem, settings: Settings, seed: int, steps: int) -> Cell:
    return Cell(problem=problem.name, optimizer="adam", device=settings.device, seed=seed,
                steps=max(1, steps), batch_size=min(problem.batch_size, settings.max_batch_size),
                params=tuple(sorted(problem.defaults().items())),
                hyper=(("lr", settings.lr),))


def build(problem: Problem, settings: Settings, seed: int, steps: int = 1) -> Any:
    """The problem built as the harness builds it for one cell (supervised: a SupervisedTask)."""
    return build_task(problem, _cell(problem, settings, seed, steps),
                      RunOptions(data_dir=settings.data_dir))


def _adam() -> OptimizerSpec:
    return OptimizerSpec("adam", torch.optim.Adam)


def _train(task: Any, settings: Settings, steps: int) -> list[float]:
    """``steps`` steps of Adam; the losses, read every step (nothing here is timed)."""
    optimizers = build_optimizers(task, _adam(), {"lr": settings.lr}, settings.device)
    step = step_function(task, optimizers)
    return [_loss_value(step()) for _ in range(steps)]


def _loss_value(out: Any) -> float:
    loss = out if isinstance(out, Tensor) else out["loss"]
    return float(loss.detach())


def _fail(check: str, problem: Problem) -> Callable[[str], ConformanceFailure]:
    return lambda detail: ConformanceFailure(check, "problem", problem.name, detail)


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _same(a: float, b: float, *, rel_tol: float, abs_tol: float) -> bool:
    """Equal within tolerance, NaN equal to NaN (a metric not available yet on both sides)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _tensors(value: Any) -> Iterator[Tensor]:
    """Every tensor in a model output (a tensor, or nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _tensors(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _modules(task: Any) -> dict[str, nn.Module]:
    return dict(task.modules())


def _check_identity(fail: Callable[[str], ConformanceFailure], kind: str, name: str,
                    description: object) -> None:
    """A valid registered name and a non-empty one-line description."""
    try:
        check_name(kind, name)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not isinstance(description, str) or not description.strip():
        subject = "problem" if kind == "model" else kind
        raise fail(f"description is empty: `harness list` shows it as the {subject}'s summary")


# -- problem checks -------------------------------------------------------------------


# The checks live in their own modules; importing them registers them.
from harness.testing import optimizer_checks as _optimizer_checks  # noqa: E402, F401
from harness.testing import problem_checks as _problem_checks  # noqa: E402, F401
from harness.testing import schedule_checks as _schedule_checks  # noqa: E402, F401

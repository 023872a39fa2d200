"""A cell's learning-rate schedule applied to its optimizers, step by step.

Before each step, every parameter group's ``lr`` is its own learning rate as built (read
once, before any checkpoint is loaded) times the schedule's multiplier at that step: a pure
function of the step, so a resumed cell continues on the same rates. The rate of the last
step of each window goes into the curve (``lr``, or ``lr.ROLE`` for several roles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.schedules import CONSTANT, ScheduleSpec

#: Why a scheduled cell's step is not captured in a CUDA graph.
GRAPHS_FALLBACK = ("a learning-rate schedule changes lr between steps (a graph replays the "
                   "rate it captured)")


def graphs_fallback(cell: Cell, options: RunOptions) -> str | None:
    """Why ``--cuda-graphs`` runs this cell eagerly because of its schedule, or None."""
    if options.cuda_graphs and cell.device.startswith("cuda") and cell.scheduled:
        return GRAPHS_FALLBACK
    return None


def schedule_specs(cell: Cell) -> dict[str, ScheduleSpec]:
    """The cell's schedules from the plugins installed here."""
    from harness.plugins import get_host

    names = {cell.schedule, *(n for _, n in cell.role_schedules)} - {None, CONSTANT}
    registry = get_host().schedules
    return {n: registry.get(n) for n in names if n is not None}


class ScheduledLr:
    """Sets each scheduled role's learning rates before each step."""

    def __init__(self, cell: Cell, optimizers: Mapping[str, torch.optim.Optimizer],
                 specs: Mapping[str, ScheduleSpec]) -> None:
        self.steps = cell.steps
        own, given = dict(cell.role_schedules), dict(cell.role_schedule_params)
        self.roles: list[tuple[str, torch.optim.Optimizer, ScheduleSpec, dict[str, Any],
                               list[float]]] = []
        for role, opt in optimizers.items():
            name = own.get(role, cell.schedule)
            if name is None or name == CONSTANT:
                continue
            spec = specs[name]
            if role in given:  # the role's own schedule, given its own parameters
                params = spec.resolve(dict(given[role]))
            elif name == cell.schedule:
                params = dict(cell.schedule_params)
            else:
                params = spec.resolve({})
            self.roles.append((role, opt, spec, params,
                               [float(g["lr"]) for g in opt.param_groups]))
        self.single = len(optimizers) == 1
        self.next = 0

    def apply(self, step: int) -> None:
        """Set the learning rates of step ``step`` (0-based)."""
        for _, opt, spec, params, bases in self.roles:
            factor = spec.at(step, self.steps, params)
            for group, base in zip(opt.param_groups, bases, strict=True):
                group["lr"] = base * factor

    def wrap(self, step: Callable[[], Any], start: int) -> Callable[[], Any]:
        """``step`` preceded by setting the rates of the step it takes (from ``start``)."""
        self.next = start

        def scheduled() -> Any:
            self.apply(self.next)
            self.next += 1
            return step()

        return scheduled

    def row(self) -> dict[str, float]:
        """The rates of the last step taken (each role's first group), for the curve."""
        out = {}
        for role, opt, *_ in self.roles:
            out["lr" if self.single else f"lr.{role}"] = float(opt.param_groups[0]["lr"])
        return out

"""The one place optimizers are built: for ``harness run`` and for the testing kit alike,
so a benchmark times the implementation (fused, foreach...) a run would use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.problem import Problem, Task
from harness.train.fastpaths import implementation_hyper
from harness.train.steps import track
from harness.train.supervised import capabilities_of


def build_optimizers(
    cell: Cell, problem: Problem, task: Task, optimizer: OptimizerSpec,
    role_specs: Mapping[str, OptimizerSpec], options: RunOptions | None = None,
) -> dict[str, torch.optim.Optimizer]:
    """One optimizer instance per parameter group of the cell, honouring its per-role
    overrides (``role_specs`` maps the optimizer names of ``cell.roles`` to their specs)."""
    return optimizers_for(task, optimizer, cell.hyper, torch.device(cell.device), options,
                          roles=cell.roles, role_specs=role_specs, owner=problem.name,
                          origins=dict(cell.versions))


def optimizers_for(
    task: Task, optimizer: OptimizerSpec, hyper: Mapping[str, Any] | Iterable[tuple[str, Any]],
    device: torch.device, options: RunOptions | None = None, *,
    roles: Iterable[tuple[str, str, Any]] = (),
    role_specs: Mapping[str, OptimizerSpec] | None = None, owner: str = "the problem",
    origins: Mapping[str, str] | None = None,
) -> dict[str, torch.optim.Optimizer]:
    """One optimizer instance per parameter group of ``task`` on ``device``, with the
    implementation switches (``--opt-impl``, capturable for CUDA graphs) the run's options
    and the device allow. ``origins``: a cell's ``versions`` (which plugin registered
    each optimizer, for the error of a factory that returns no optimizer)."""
    groups = task.parameter_groups()
    overrides = {role: (name, dict(h)) for role, name, h in roles}
    unknown = set(overrides) - set(groups)
    if unknown:
        raise ValueError(f"{owner} has no parameter group {sorted(unknown)[0]!r}; "
                         f"it trains {', '.join(groups)}")
    options = options or RunOptions()
    capture = options.cuda_graphs and device.type == "cuda" and capabilities_of(task).cuda_graphs
    out = {}
    for role, params in groups.items():
        origin = (origins or {}).get("optimizer")
        if role in overrides:
            name, role_hyper = overrides[role]
            spec = (role_specs or {})[name] if name != optimizer.name else optimizer
            origin = (origins or {}).get(f"optimizer:{role}", origin)
        else:
            spec, role_hyper = optimizer, dict(hyper)
        role_hyper = implementation_hyper(spec, role_hyper, device, options.opt_impl, capture)
        out[role] = spec.build(list(params), role_hyper, origin=origin or "")
        track(out[role], spec.capabilities)
    return out

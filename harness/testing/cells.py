"""One cell for a test or a speed benchmark: built from registry names with the defaults.

The fixtures in :mod:`harness.testing.plugin` are thin wrappers around these
functions, which need neither pytest nor a grid: a cell here is what
``harness run -m PROBLEM -o OPTIMIZER`` would run, with the overrides given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.cell import Cell
from harness.errors import UsageError
from harness.executor import RunOptions
from harness.grid import device_available, normalize_device
from harness.optimizer import OptimizerSpec
from harness.outcome import CellResult
from harness.plugins import PluginHost
from harness.problem import Problem
from harness.train.fastpaths import implementation_of
from harness.train.loop import build_task, synchronize
from harness.train.optimizers import build_optimizers as cell_optimizers
from harness.train.optimizers import optimizers_for
from harness.train.supervised import step_of


def default_data_dir() -> Path:
    """Where datasets live: ``$HARNESS_DATA_DIR`` or ``~/.cache/harness/data``, as for the CLI."""
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness" / "data"


def make_cell(
    problem: Problem,
    optimizer: OptimizerSpec,
    *,
    device: str = "cpu",
    seed: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    params: Mapping[str, Any] | None = None,
    hyper: Mapping[str, Any] | None = None,
) -> Cell:
    """A cell with the problem's defaults and the optimizer's, updated by the overrides.

    Overrides are validated as a grid file's would be (unknown names and wrong types
    raise :class:`harness.UsageError`).
    """
    where = f"model {problem.name!r}"
    values = problem.defaults()
    for key, value in (params or {}).items():
        param = problem.param(key)
        if param is None:
            known = ", ".join(p.name for p in problem.params) or "none"
            raise UsageError(f"{where} has no parameter {key!r}; it takes: {known}")
        values[key] = param.coerce(value, where=where)
    resolved = optimizer.resolve(dict(hyper or {}))
    return Cell(
        problem=problem.name,
        optimizer=optimizer.name,
        device=normalize_device(device),
        seed=seed,
        steps=problem.steps if steps is None else steps,
        batch_size=problem.batch_size if batch_size is None else batch_size,
        params=tuple(sorted(values.items())),
        hyper=tuple(sorted(resolved.items())),
    )


def unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine, or None when it can."""
    return device_available(normalize_device(device))


def build_optimizers(
    task: Any, optimizer: OptimizerSpec, hyper: Mapping[str, Any], device: str = "cpu",
    options: RunOptions | None = None,
) -> dict[str, torch.optim.Optimizer]:
    """One optimizer instance per parameter group, built by the function
    :func:`harness.train.loop.run_cell` uses (fused kernels on CUDA as ``harness run``)."""
    return optimizers_for(task, optimizer, hyper, torch.device(normalize_device(device)),
                          options)


def step_function(task: Any, optimizers: Mapping[str, torch.optim.Optimizer]) -> Callable[[], Any]:
    """The training step the harness would time: the supervised hot path, or the task's own."""
    return step_of(task, optimizers)


@dataclass
class CellTiming:
    """What :func:`time_cell` measured; ``seconds`` holds one entry per timed round."""

    cell: Cell
    steps_per_round: int
    samples_per_step: int
    #: The optimizer kernels timed (fused, foreach...), as a run's ``opt_impl`` column.
    opt_impl: str = "default"
    seconds: list[float] = field(default_factory=list)

    @property
    def samples_per_round(self) -> int:
        return self.steps_per_round * self.samples_per_step

    def samples_per_s(self, seconds_per_round: float) -> float:
        return self.samples_per_round / seconds_per_round if seconds_per_round > 0 else float("nan")


#: ``runner(target, setup, rounds, warmup_rounds)`` calls ``setup()`` then times ``target()``.
Runner = Callable[[Callable[[], None], Callable[[], None], int, int], None]


def time_cell(
    host: PluginHost,
    problem: str,
    optimizer: str = "adam",
    *,
    steps: int = 20,
    rounds: int = 5,
    warmup_rounds: int = 1,
    runner: Runner | None = None,
    data_dir: Path | None = None,
    **cell_options: Any,
) -> CellTiming:
    """Time rounds of ``steps`` training steps of one cell, the device synchronised around each.

    The cell is built once; every round continues training it, so warm-up rounds
    absorb first-call costs (allocator, kernel selection) and the timed rounds see
    the steady state. ``runner`` does the timing (pytest-benchmark's ``pedantic``
    in the ``harness_cell`` fixture); without one, ``time.perf_counter`` is used.
    """
    spec = host.optimizers.get(optimizer)
    cell = make_cell(host.problems.get(problem), spec, **cell_options)
    reason = unavailable_reason(cell.device)
    if reason is not None:
        raise UsageError(f"device {cell.device!r} is not available: {reason}")
    prob = host.problems.get(problem)
    options = RunOptions(data_dir=data_dir or default_data_dir())
    task = build_task(prob, cell, options)
    optimizers = cell_optimizers(cell, prob, task, spec, {}, options)
    step = step_of(task, optimizers)
    device = torch.device(cell.device)
    timing = CellTiming(cell=cell, steps_per_round=steps,
                        samples_per_step=int(task.samples_per_step),
                        opt_impl=",".join(sorted({implementation_of(o)
                                                  for o in optimizers.values()})))

    def setup() -> None:
        synchronize(device)  # nothing queued before the clock starts

    def target() -> None:
        for _ in range(steps):
            step()
        synchronize(device)  # the round ends when the device has finished it

    (runner or _perf_counter_runner(timing))(target, setup, rounds, warmup_rounds)
    return timing


def _perf_counter_runner(timing: CellTiming) -> Runner:
    import time

    def run(target: Callable[[], None], setup: Callable[[], None], rounds: int,
            warmup_rounds: int) -> None:
        for i in range(warmup_rounds + rounds):
            setup()
            t0 = time.perf_counter()
            target()
            if i >= warmup_rounds:
                timing.seconds.append(time.perf_counter() - t0)

    return run


def run_one_cell(
    host: PluginHost,
    problem: str,
    optimizer: str = "adam",
    *,
    windows: int = 10,
    eval_every: int | None = None,
    data_dir: Path | None = None,
    **cell_options: Any,
) -> CellResult:
    """Run one cell through :func:`harness.train.loop.run_cell` and return its record."""
    from harness.train.loop import run_cell

    spec = host.optimizers.get(optimizer)
    prob = host.problems.get(problem)
    cell = make_cell(prob, spec, **cell_options)
    options = RunOptions(data_dir=data_dir or default_data_dir(), windows=windows,
                         eval_every=eval_every)
    return run_cell(cell, prob, spec, options)

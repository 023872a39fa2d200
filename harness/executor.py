"""The executor contract: what runs a grid's cells, registered through a hook.

``harness run --executor NAME`` picks one; ``local`` (worker processes on this
machine) and ``dask`` (a Dask distributed cluster) are built-in plugins registered
exactly as a third-party executor (Ray, Slurm...) would be. An executor calls back
as cells start, as their windows are recorded, and as they finish; the runner
writes every result itself, so statuses, resume and summaries are the same
whichever executor ran the cells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.cell import Cell

if TYPE_CHECKING:
    from harness.optimizer import OptimizerSpec
    from harness.problem import Problem
    from harness.scheduling import CostEstimates
    from harness.training import CellResult, RunOptions
    from harness.workers import ExecOptions

StartCallback = Callable[[Cell], None]
WindowCallback = Callable[[Cell, Mapping[str, Any], int], None]
ResultCallback = Callable[["CellResult"], None]


class Executor(Protocol):
    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        """Run every cell; call ``on_result`` exactly once per cell, from this thread."""


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor factory receives besides the execution options."""

    #: The problem, optimizer and per-role optimizers of a cell, from this process's plugins.
    resolve: Callable[[Cell], tuple[Problem, OptimizerSpec, Mapping[str, OptimizerSpec]]]
    #: Executor-specific settings: ``--scheduler`` and ``--executor-option KEY=VALUE``.
    settings: Mapping[str, str] = field(default_factory=dict)
    #: The run's cost estimates, updated as cells report windows and finish: an executor
    #: that hands out cells one at a time re-orders those waiting, longest first, when
    #: ``costs.version`` changes (the cells arrive already in that order).
    costs: CostEstimates | None = None


ExecutorFactory = Callable[["ExecOptions", "RunOptions", ExecutorContext], Executor]


@dataclass(frozen=True)
class ExecutorSpec:
    """A registered executor: ``factory(exec_options, run_options, context)``."""

    name: str
    factory: ExecutorFactory
    description: str = ""
    #: Settings the executor understands (others are a usage error).
    settings: tuple[str, ...] = ()
    #: ``check(settings, exec_options)`` raises :class:`harness.errors.UsageError` for
    #: values the executor cannot use (what it returns is ignored). It is called before
    #: anything runs, ``--dry-run`` included, and must not connect anywhere: that is the
    #: factory's job.
    check: Callable[[Mapping[str, str], ExecOptions], object] | None = None

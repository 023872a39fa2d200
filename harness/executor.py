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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.cell import Cell
from harness.outcome import CellResult

if TYPE_CHECKING:
    from harness.optimizer import OptimizerSpec
    from harness.problem import Problem

@dataclass(frozen=True)
class RunOptions:
    """How cells are run; shared by every cell of a grid."""

    data_dir: Path = Path("data")
    download: bool = False
    #: Number of logging windows per cell (the curve's resolution).
    windows: int = 50
    #: Steps excluded from steady-state throughput; None: 10% of the steps, at most 50.
    warmup_steps: int | None = None
    #: Evaluate every N steps; None: the problem's own ``eval_every`` or ten times per run.
    eval_every: int | None = None
    #: Save a resumable checkpoint into ``checkpoint_dir`` at the first window edge at or
    #: past every N steps (it adds no window edge of its own).
    checkpoint_every: int | None = None
    checkpoint_dir: Path | None = None
    #: Save each finished cell's networks (state dicts) into this directory.
    models_dir: Path | None = None
    #: Fast paths (see :mod:`harness.train.fastpaths`).
    loader: str = "device"
    loader_workers: int = 0
    pin_memory: bool = False
    opt_impl: str = "auto"
    cuda_graphs: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str | None = None



@dataclass(frozen=True)
class ExecOptions:
    """How cells are executed; recorded in the manifest."""

    #: Worker processes; 0 runs cells inline in this process (no isolation, no timeout).
    workers: int = 1
    #: torch threads per worker. Fixed, so CPU results do not depend on ``workers``.
    threads: int = 1
    #: Hard limit per cell in seconds: the worker is killed and the cell is ``timeout``.
    timeout: float | None = None
    #: Memory (MiB) a cell may allocate beyond its worker's size after start-up; past it an
    #: allocation fails and the cell is ``oom`` (see :func:`limit_memory`).
    max_memory_mb: int | None = None
    #: torch deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG) in the workers.
    deterministic: bool = False
    #: cuDNN times its algorithms for each new shape and keeps the fastest
    #: (``torch.backends.cudnn.benchmark``); faster convolutions, run-to-run kernel choice.
    cudnn_benchmark: bool = False
    #: Workers running cells at once on each GPU (each pinned to its device); ``workers``
    #: counts the CPU cells' workers only.
    workers_per_device: int = 1
    #: Pin each worker, CPU or GPU, to ``threads`` physical cores of its own (see
    #: :mod:`harness.run.placement`); unpinned when they do not fit.
    pin_cpus: bool = False
    #: Run the GPU workers as clients of an NVIDIA MPS daemon started for the run (see
    #: :mod:`harness.run.cuda_mps`), so that packed cells' kernels share the card instead of
    #: taking turns; every GPU worker is checked to be a client before it gets a cell.
    cuda_mps: bool = False


class CostEstimates(Protocol):
    """What an executor may consult to order the cells still waiting."""

    #: Changes whenever an estimate appears or moves enough to re-order the waiting cells.
    version: int

    def estimate(self, cell: Cell) -> float | None:
        """Seconds the cell will take, or None when nothing is known of its kind."""


StartCallback = Callable[[Cell], None]
WindowCallback = Callable[[Cell, Mapping[str, Any], int], None]
ResultCallback = Callable[[CellResult], None]


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


ExecutorFactory = Callable[[ExecOptions, RunOptions, ExecutorContext], Executor]


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

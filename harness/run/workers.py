"""The ``local`` executor: cells on a :class:`~harness.run.pool.WorkerPool` on this machine,
or inline in this process (``workers=0``: no isolation, no timeout).

Its own settings (``--executor-option KEY=VALUE``, or the flags that spell them) are
:class:`LocalSettings`; what every executor honours is :class:`~harness.executor.CellLimits`.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from harness.cell import Cell
from harness.errors import UsageError
from harness.executor import (
    CellLimits,
    CostEstimates,
    Executor,
    ExecutorContext,
    ResultCallback,
    RunOptions,
    StartCallback,
    WindowCallback,
)
from harness.grid import parse_bounded
from harness.run import cuda_mps, placement
from harness.run.execute import _execute, limits_applied
from harness.run.pool import WorkerPool, device_key
from harness.run.scheduling import longest_first

#: The local executor's settings, and the command-line flags that spell them.
LOCAL_SETTINGS = ("workers", "workers_per_device", "pin_cpus", "cuda_mps")
LOCAL_FLAGS = {"--workers": "workers", "--workers-per-device": "workers_per_device",
               "--pin-cpus": "pin_cpus", "--cuda-mps": "cuda_mps"}


@dataclass(frozen=True)
class LocalSettings:
    """The ``local`` executor's own settings, checked."""

    #: Worker processes for the CPU cells; 0 runs cells inline in this process.
    workers: int = 1
    #: Workers running cells at once on each GPU (each pinned to its device).
    workers_per_device: int = 1
    #: Pin each worker, CPU or GPU, to ``threads`` physical cores of its own (see
    #: :mod:`harness.run.placement`); unpinned when they do not fit.
    pin_cpus: bool = False
    #: Run the GPU workers as clients of an NVIDIA MPS daemon started for the run (see
    #: :mod:`harness.run.cuda_mps`); every GPU worker is checked to be a client.
    cuda_mps: bool = False


def parse_bool(value: str, name: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false", "yes", "no", "1", "0"):
        raise UsageError(f"{name}={value!r}: expected true or false")
    return word in ("true", "yes", "1")


def local_settings(settings: Mapping[str, str], limits: CellLimits) -> LocalSettings:
    """The settings, checked against each other and the limits (UsageError otherwise).
    Without ``workers``: as many as the CPUs this process may use hold ``limits.threads``."""
    if "workers" in settings:
        workers = parse_bounded(settings["workers"], "--workers", "workers")
    else:
        workers = max(1, len(placement.usable_cpus()) // limits.threads)
    per_device = parse_bounded(settings.get("workers_per_device",
                                            str(LocalSettings.workers_per_device)),
                               "--workers-per-device", "workers_per_device")
    pin = parse_bool(settings.get("pin_cpus", "false"), "pin_cpus")
    mps = parse_bool(settings.get("cuda_mps", "false"), "cuda_mps")
    if workers == 0:
        if limits.timeout is not None:
            raise UsageError("--timeout needs worker processes; it cannot be used with "
                             "--workers 0")
        if limits.max_memory_mb is not None:
            raise UsageError("--max-memory-mb needs worker processes (not --workers 0)")
        if pin:
            raise UsageError("--pin-cpus places worker processes; it cannot be used with "
                             "--workers 0")
        if mps:
            raise UsageError("--cuda-mps makes worker processes clients of an MPS daemon; it "
                             "cannot be used with --workers 0")
    return LocalSettings(workers, per_device, pin, mps)


def check_local(settings: Mapping[str, str], limits: CellLimits) -> LocalSettings:
    """:func:`local_settings`, with a warning when the workers' threads exceed the CPUs."""
    parsed = local_settings(settings, limits)
    cores = len(placement.usable_cpus())
    if parsed.workers * limits.threads > cores:
        print(f"harness: warning: {parsed.workers} workers x {limits.threads} threads exceed "
              f"the {cores} CPU cores; threads will compete and CPU timings suffer",
              file=sys.stderr)
    return parsed


class ProcessExecutor:
    """Cells on a :class:`WorkerPool`: ``workers`` for the CPU cells, ``workers_per_device``
    per GPU; the waiting cells are handed out longest first as the estimates move."""

    def __init__(self, limits: CellLimits, run_options: RunOptions,
                 settings: LocalSettings = LocalSettings(),
                 target_of: Callable[[Cell], Any] | None = None,
                 costs: CostEstimates | None = None) -> None:
        self.limits = limits
        self.run_options = run_options
        self.settings = settings
        self.target_of = target_of
        self.costs = costs

    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        queues: dict[str, deque[Cell]] = {}
        for cell in cells:
            queues.setdefault(device_key(cell.device), deque()).append(cell)
        with ExitStack() as stack:
            session = None
            if self.settings.cuda_mps and any(key.startswith("cuda") for key in queues):
                session = stack.enter_context(cuda_mps.daemon())
            pool = WorkerPool(self.limits, self.run_options, target_of=self.target_of,
                              mps=session)
            try:
                self._run(pool, queues, on_start, on_window, on_result)
            finally:
                pool.shutdown()  # before the daemon stops: its clients go first

    def _run(self, pool: WorkerPool, queues: dict[str, deque[Cell]], on_start: StartCallback,
             on_window: WindowCallback, on_result: ResultCallback) -> None:
        keys = []
        for key, queue in queues.items():
            per = self.settings.workers if key == "cpu" else self.settings.workers_per_device
            keys += [key] * max(1, min(per, len(queue)))
        for key, cpus in zip(keys, self._placement(keys), strict=True):
            pool.start(key, cpus)
        order = _Reorder(self.costs)
        while any(queues.values()) or pool.running():
            for worker in pool.idle():
                waiting = queues.get(worker.device)
                if waiting:
                    cell = order.next(waiting)
                    if cell.timing_run and worker.cells_run:  # a fresh process for it
                        waiting.appendleft(cell)
                        pool.renew(worker)
                        continue
                    pool.submit(worker, cell)
                    on_start(cell)
            for event in pool.wait():
                if event.kind == "window" and event.cell is not None and event.row is not None:
                    on_window(event.cell, event.row, event.steps)
                elif event.kind == "result" and event.result is not None:
                    on_result(event.result)

    def _placement(self, keys: list[str]) -> list[tuple[int, ...] | None]:
        """Each worker's CPUs under ``pin_cpus``; all None when unpinned or they do not fit."""
        if not self.settings.pin_cpus:
            return [None] * len(keys)
        demands = [self.limits.threads] * len(keys)  # a GPU worker runs torch threads too
        cores = placement.physical_cores()
        sets = placement.plan(demands, cores)
        if sets is None:
            print(f"harness: warning: --pin-cpus: {len(keys)} workers need {sum(demands)} "
                  f"cores, this process may use {sum(len(c) for c in cores)} CPUs; "
                  "workers are not pinned", file=sys.stderr)
            return [None] * len(keys)
        return list(sets)


class _Reorder:
    """Hands out waiting cells, re-sorted longest first whenever the estimates moved."""

    def __init__(self, costs: CostEstimates | None) -> None:
        self.costs = costs
        self.sorted_at: dict[int, int] = {}  # id of a queue -> estimates version it was sorted at

    def next(self, waiting: deque[Cell]) -> Cell:
        costs = self.costs
        if costs is not None and self.sorted_at.get(id(waiting), 0) != costs.version:
            ordered = longest_first(waiting, costs)
            waiting.clear()
            waiting.extend(ordered)
            self.sorted_at[id(waiting)] = costs.version
        return waiting.popleft()


class InlineExecutor:
    """Runs cells one after another in this process: no isolation, no timeout."""

    def __init__(self, limits: CellLimits, run_options: RunOptions,
                 resolve: Callable[[Cell], tuple[Any, Any, Mapping[str, Any]]],
                 costs: CostEstimates | None = None) -> None:
        self.limits = limits
        self.run_options = run_options
        self.resolve = resolve
        self.costs = costs

    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        waiting = deque(cells)
        order = _Reorder(self.costs)
        # this process outlives the grid: its settings are put back after
        with limits_applied(self.limits, sorted({c.device for c in waiting})):
            while waiting:
                cell = order.next(waiting)
                on_start(cell)

                def window(row: Mapping[str, Any], steps: int, cell: Cell = cell) -> None:
                    on_window(cell, row, steps)

                on_result(_execute(cell, self.run_options, window, self.resolve))


def local(limits: CellLimits, run_options: RunOptions, context: ExecutorContext) -> Executor:
    """The ``local`` executor's factory."""
    settings = local_settings(context.settings, limits)
    if settings.workers == 0:
        return InlineExecutor(limits, run_options, context.resolve, costs=context.costs)
    return ProcessExecutor(limits, run_options, settings,
                           target_of=lambda c: context.resolve(c)[0], costs=context.costs)


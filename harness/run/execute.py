"""Running one cell under :class:`~harness.executor.CellLimits` in the calling process.

:func:`execute_cell` is public (``harness.execute_cell``): for an executor whose tasks are
already processes of their own. :class:`harness.WorkerPool`'s workers run their cells
through it too, after :func:`configure_process` applied the limits once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from harness.cell import Cell
from harness.errors import HarnessError
from harness.executor import CellLimits, RunOptions
from harness.outcome import CellResult, Status

__all__ = ["WindowRow", "configure_process", "execute_cell", "limit_memory", "limits_applied",
           "partial_result"]


#: Modules a cell imports on first use, imported before the memory limit is set so that
#: they are part of the worker's baseline: torch.optim's first step imports torch._dynamo
#: (about 270 MB of address space), which under a limit failed as "failed to map segment".
LAZY_IMPORTS = ("torch._dynamo",)


def configure_process(limits: CellLimits,
                      devices: Iterable[str] = ()) -> tuple[int, int] | None:
    """Apply thread count, determinism and memory limit to the current process.

    :param devices: the devices its cells will use (a CUDA context is made on each before
        the memory limit is set).
    :return: the address-space limits replaced by the memory limit, None if none was set.
    """
    if limits.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.set_num_threads(limits.threads)
    if limits.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = limits.cudnn_benchmark
    if not limits.max_memory_mb:
        return None
    for device in devices:
        if device.startswith("cuda"):  # the driver's address-space reservations go first
            torch.zeros(1, device=device)
    return limit_memory(limits.max_memory_mb)


@contextmanager
def limits_applied(limits: CellLimits, devices: Iterable[str] = ()) -> Iterator[None]:
    """:func:`configure_process` for the block; this process's settings are put back after."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    previous = configure_process(limits, devices)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        if previous is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, previous)


def limit_memory(mb: int) -> tuple[int, int]:
    """Let this process map at most ``mb`` MiB more than it has mapped now.

    ``--max-memory-mb`` is memory a cell may allocate beyond its worker's baseline: torch,
    the plugins and :data:`LAZY_IMPORTS` take some 3.5 GB of address space (little of it
    resident), so an absolute address-space limit below that broke every cell. The limit is
    the soft ``RLIMIT_AS`` (the hard one is kept, so that it can be put back): an allocation
    past it fails, which the cell runner records as ``oom``.

    :return: the limits replaced, for ``resource.setrlimit`` to restore.
    """
    import importlib
    import resource

    for name in LAZY_IMPORTS:
        importlib.import_module(name)
    previous = resource.getrlimit(resource.RLIMIT_AS)
    hard = previous[1]
    limit = mapped_bytes() + mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return previous


def mapped_bytes() -> int:
    """This process's address space in bytes (VmSize); 0 where /proc is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def partial_result(cell: Cell, problem: Any, rows: Sequence[Mapping[str, Any]], wall_s: float,
                   status: Status, error: str, traceback: str | None = None) -> CellResult:
    """The record of a cell that did not finish: its summary from the curve rows it reached
    (none at all for a cell that never started; ``problem`` None when it is unknown here)."""
    from harness.train.loop import summary_from_curve

    summary = summary_from_curve(cell, problem, [dict(r) for r in rows], wall_s)
    return CellResult(cell=cell, status=status, summary=summary, curve=tuple(rows),
                      error=error, traceback=traceback)


def _resolve_here(cell: Cell) -> tuple[Any, Any, dict[str, Any]]:
    """The cell's problem and optimizers from this process's plugins (HarnessError if one
    is not installed)."""
    from harness.plugins import get_host

    host = get_host()
    return (host.problems.get(cell.problem), host.optimizers.get(cell.optimizer),
            {name: host.optimizers.get(name) for _, name, _ in cell.roles})


def _problem_here(cell: Cell) -> Any:
    """The cell's problem in this process, for the summary of a killed cell; None if absent."""
    from harness.plugins import get_host

    try:
        return get_host().problems.get(cell.problem)
    except HarnessError:
        return None


WindowRow = Callable[[Mapping[str, Any], int], None]


def execute_cell(cell: Cell, limits: CellLimits, run_options: RunOptions, *,
                 on_window: WindowRow | None = None,
                 resolve: Callable[[Cell], tuple[Any, Any, Mapping[str, Any]]] | None = None,
                 ) -> CellResult:
    """Run one cell in this process under ``limits`` (threads, determinism, cuDNN, memory;
    not ``timeout``, which needs a process to kill: use :class:`WorkerPool`). Never raises
    for the cell: a failure is its result's status. This process's settings are put back.

    :param on_window: called with each window's curve row and the cell's step count.
    :param resolve: the cell's ``(problem, optimizer, role optimizers)``; by default from
        the plugins installed here (a missing one is the cell's ``error``).
    """
    with limits_applied(limits, [cell.device]):
        return _execute(cell, run_options, on_window, resolve)


def _execute(cell: Cell, run_options: RunOptions, on_window: WindowRow | None,
             resolve: Callable[[Cell], tuple[Any, Any, Mapping[str, Any]]] | None,
             ) -> CellResult:
    from harness.train.loop import run_cell

    if resolve is not None:
        problem, optimizer, roles = resolve(cell)
    else:
        try:
            problem, optimizer, roles = _resolve_here(cell)
        except HarnessError as exc:
            missing = cell.problem if _problem_here(cell) is None else cell.optimizer
            dist = dict(cell.versions).get("problem" if missing == cell.problem
                                           else "optimizer")
            return partial_result(cell, None, [], 0.0, Status.ERROR,
                                  f"{missing!r} is not installed on this worker (it came "
                                  f"from {dist}): {exc}")
    return run_cell(cell, problem, optimizer, run_options, on_window=on_window,
                    role_specs=dict(roles))

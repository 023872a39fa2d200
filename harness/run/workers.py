"""Executing cells: in worker processes (isolated, reusable, killable) or inline.

Each worker is a spawned process that imports torch and loads the plugins once, then
runs cells one after another. It streams each window's curve row to the parent as
the cell trains, so a cell the parent kills at its timeout, or whose worker dies,
is still recorded with the curve it had reached. A dead or killed worker is
replaced; the other cells never notice.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.cell import Cell
from harness.errors import HarnessError
from harness.executor import (
    CostEstimates,
    ExecOptions,
    ResultCallback,
    RunOptions,
    StartCallback,
    WindowCallback,
)
from harness.outcome import CellResult, Status
from harness.run import cuda_mps, placement
from harness.run.scheduling import longest_first
from harness.train.loop import run_cell, summary_from_curve


def device_key(device: str) -> str:
    """The pool a cell's device belongs to: 'cpu', 'cuda:N' or 'mps'."""
    return "cuda:0" if device == "cuda" else device


#: Modules a cell imports on first use, imported before the memory limit is set so that
#: they are part of the worker's baseline: torch.optim's first step imports torch._dynamo
#: (about 270 MB of address space), which under a limit failed as "failed to map segment".
LAZY_IMPORTS = ("torch._dynamo",)


def configure_process(options: ExecOptions,
                      devices: Iterable[str] = ()) -> tuple[int, int] | None:
    """Apply thread count, determinism and memory limit to the current process.

    :param devices: the devices its cells will use (a CUDA context is made on each before
        the memory limit is set).
    :return: the address-space limits replaced by the memory limit, None if none was set.
    """
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.set_num_threads(options.threads)
    if options.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = options.cudnn_benchmark
    if not options.max_memory_mb:
        return None
    for device in devices:
        if device.startswith("cuda"):  # the driver's address-space reservations go first
            torch.zeros(1, device=device)
    return limit_memory(options.max_memory_mb)


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


# -- the worker process ---------------------------------------------------------------
def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn: Connection, options: ExecOptions, run_options: RunOptions,
                 device: str = "cpu", cpus: tuple[int, ...] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _die_with_parent()
    os.environ.update(env or {})  # before CUDA starts: MPS is chosen when it does
    if cpus:
        placement.pin(cpus)  # before torch starts its thread pools
    import torch  # pay the import before the first cell

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # pinned: this worker serves one GPU
        if env:
            try:  # make the context now, so the parent can check it went through MPS
                torch.zeros(1, device=device)
            except Exception as exc:  # reported to the parent as one line
                conn.send(("broken", f"{type(exc).__name__}: {_first_line(exc)}"))
                return

    from harness.plugins import get_host

    host = get_host()
    try:
        conn.send(("ready", os.getpid()))
        applied = False
        while True:
            message = conn.recv()
            if message is None:
                return
            cell: Cell = message
            if not applied:
                configure_process(options, [device])  # after start-up: the limit is the cells'
                applied = True
            result = _run_in_worker(host, cell, run_options, conn)
            if cpus:
                actual = placement.usable_cpus()  # what the OS holds us to, not the plan
                result = replace(result, summary={**result.summary,
                                                  "cpus": placement.describe(actual)})
            conn.send(("result", result))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone: nobody is left to report to


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _run_in_worker(host: Any, cell: Cell, run_options: RunOptions, conn: Connection) -> CellResult:
    try:
        problem = host.problems.get(cell.problem)
        optimizer = host.optimizers.get(cell.optimizer)
        roles = {name: host.optimizers.get(name) for _, name, _ in cell.roles}
    except HarnessError as exc:
        missing = cell.problem if cell.problem not in host.problems else cell.optimizer
        dist = dict(cell.versions).get("problem" if missing == cell.problem else "optimizer")
        return CellResult(cell=cell, status=Status.ERROR, summary={},
                          error=f"{missing!r} is not installed on this worker "
                                f"(it came from {dist}): {exc}")

    def on_window(row: Mapping[str, Any], steps: int) -> None:
        conn.send(("window", dict(row), steps))

    return run_cell(cell, problem, optimizer, run_options, on_window=on_window,
                    role_specs=roles)


# -- the parent side ----------------------------------------------------------------------
@dataclass
class _Slot:
    process: Any
    conn: Connection
    device: str = "cpu"
    cpus: tuple[int, ...] | None = None
    pid: int | None = None
    spawned: float = field(default_factory=time.monotonic)
    ready: bool = False
    cell: Cell | None = None
    started: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


class ProcessExecutor:
    """A pool of reusable worker processes, each running one cell at a time."""

    def __init__(self, options: ExecOptions, run_options: RunOptions,
                 target_of: Callable[[Cell], Any] | None = None,
                 costs: CostEstimates | None = None) -> None:
        self.options = options
        self.run_options = run_options
        self.target_of = target_of or (lambda cell: None)
        self.costs = costs
        self.context = mp.get_context("spawn")
        self.slots: list[_Slot] = []
        self.mps_session: cuda_mps.Session | None = None

    def _spawn(self, device: str = "cpu", cpus: tuple[int, ...] | None = None) -> _Slot:
        parent, child = self.context.Pipe()
        session = self.mps_session
        env = session.env() if session is not None and device.startswith("cuda") else None
        process = self.context.Process(
            target=_worker_main,
            args=(child, self.options, self.run_options, device, cpus, env),
            name="harness-worker", daemon=False,  # may start DataLoader workers itself
        )
        process.start()
        child.close()
        return _Slot(process=process, conn=parent, device=device, cpus=cpus)

    def _retire(self, slot: _Slot, *, kill: bool) -> None:
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=10)
        slot.conn.close()
        self.slots.remove(slot)

    def shutdown(self) -> None:
        for slot in list(self.slots):
            try:
                if slot.cell is None and slot.process.is_alive():
                    slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self._retire(slot, kill=slot.cell is not None)

    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        queues: dict[str, deque[Cell]] = {}
        for cell in cells:
            queues.setdefault(device_key(cell.device), deque()).append(cell)
        with ExitStack() as stack:
            if self.options.cuda_mps and any(key.startswith("cuda") for key in queues):
                self.mps_session = stack.enter_context(cuda_mps.daemon())
            try:
                self._run(queues, on_start, on_window, on_result)
            finally:
                self.shutdown()  # before the daemon stops: its clients go first
                self.mps_session = None

    def _run(self, queues: dict[str, deque[Cell]], on_start: StartCallback,
             on_window: WindowCallback, on_result: ResultCallback) -> None:
        pools = []
        for key, queue in queues.items():
            per = self.options.workers if key == "cpu" else self.options.workers_per_device
            pools += [key] * max(1, min(per, len(queue)))
        for key, cpus in zip(pools, self._placement(pools), strict=True):
            self.slots.append(self._spawn(key, cpus))
        order = _Reorder(self.costs)
        while any(queues.values()) or any(s.cell is not None for s in self.slots):
            for slot in self.slots:
                waiting = queues.get(slot.device)
                if slot.ready and slot.cell is None and waiting:
                    cell = order.next(waiting)
                    slot.cell, slot.started, slot.rows = cell, time.monotonic(), []
                    slot.conn.send(cell)
                    on_start(cell)
            self._wait(on_window, on_result)

    def _placement(self, pools: list[str]) -> list[tuple[int, ...] | None]:
        """Each worker's CPUs under ``pin_cpus``; all None when unpinned or they do not fit."""
        if not self.options.pin_cpus:
            return [None] * len(pools)
        demands = [self.options.threads] * len(pools)  # a GPU worker runs torch threads too
        cores = placement.physical_cores()
        sets = placement.plan(demands, cores)
        if sets is None:
            print(f"harness: warning: --pin-cpus: {len(pools)} workers need {sum(demands)} "
                  f"cores, this process may use {sum(len(c) for c in cores)} CPUs; "
                  "workers are not pinned", file=sys.stderr)
            return [None] * len(pools)
        return list(sets)

    def _wait(self, on_window: WindowCallback, on_result: ResultCallback) -> None:
        timeout = None
        now = time.monotonic()
        if self.options.timeout is not None:
            busy = [s for s in self.slots if s.cell is not None]
            if busy:
                timeout = max(0.0, min(s.started + self.options.timeout - now for s in busy))
        attaching = self._attaching()
        if attaching:
            due = max(0.0, min(s.spawned + cuda_mps.ATTACH_S - now for s in attaching))
            timeout = due if timeout is None else min(timeout, due)
        handles: dict[Any, _Slot] = {}
        for slot in self.slots:
            handles[slot.conn] = slot
            handles[slot.process.sentinel] = slot
        ready = wait(list(handles), timeout=timeout)
        for handle in ready:
            slot = handles[handle]
            if slot not in self.slots:
                continue
            if handle is slot.conn:
                self._receive(slot, on_window, on_result)
            elif not slot.conn.poll():
                self._died(slot, on_result)
        self._enforce_timeouts(on_result)
        for slot in self._attaching():
            if time.monotonic() - slot.spawned >= cuda_mps.ATTACH_S:
                raise cuda_mps.MPSError(
                    f"a worker on {slot.device} did not attach to the MPS server within "
                    f"{cuda_mps.ATTACH_S:g} s ({self._mps_log()})")

    def _attaching(self) -> list[_Slot]:
        """GPU workers under MPS that have not reported ready: an attach can hang."""
        if self.mps_session is None:
            return []
        return [s for s in self.slots if not s.ready and s.device.startswith("cuda")]

    def _receive(self, slot: _Slot, on_window: WindowCallback,
                 on_result: ResultCallback) -> None:
        try:
            while slot.conn.poll():
                kind, *payload = slot.conn.recv()
                if kind == "ready":
                    slot.pid = payload[0]
                    self._check_client(slot)
                    slot.ready = True
                elif kind == "broken":
                    raise cuda_mps.MPSError(f"a worker on {slot.device} could not start CUDA "
                                            f"under MPS: {payload[0]} ({self._mps_log()})")
                elif kind == "window" and slot.cell is not None:
                    slot.rows.append(payload[0])
                    on_window(slot.cell, payload[0], payload[1])
                elif kind == "result":
                    result: CellResult = payload[0]
                    slot.cell = None
                    on_result(result)
        except (EOFError, OSError):
            self._died(slot, on_result)

    def _check_client(self, slot: _Slot) -> None:
        """Under ``cuda_mps``, a GPU worker that is not a client of the daemon stops the run:
        its cells would be timed as they would be without ``--cuda-mps``."""
        if self.mps_session is None or not slot.device.startswith("cuda"):
            return
        if slot.pid not in self.mps_session.clients():
            raise cuda_mps.MPSError(f"the worker on {slot.device} (pid {slot.pid}) is not a "
                                    f"client of the MPS server ({self._mps_log()})")

    def _mps_log(self) -> str:
        return self.mps_session.log_tail() if self.mps_session is not None else "no MPS daemon"

    def _died(self, slot: _Slot, on_result: ResultCallback) -> None:
        slot.process.join(timeout=10)
        cell = slot.cell
        code = slot.process.exitcode
        self._retire(slot, kill=True)
        if not slot.ready:
            hint = " (and without --cuda-mps)" if self.mps_session is not None else ""
            raise HarnessError(f"a worker process {describe_exit(code)} while starting; "
                               f"run with --workers 0{hint} to see the error in this process")
        if cell is not None:
            on_result(self._partial(cell, slot, Status.ERROR, f"worker {describe_exit(code)}"))
        self.slots.append(self._spawn(slot.device, slot.cpus))

    def _enforce_timeouts(self, on_result: ResultCallback) -> None:
        if self.options.timeout is None:
            return
        now = time.monotonic()
        for slot in list(self.slots):
            if slot.cell is not None and now - slot.started >= self.options.timeout:
                cell = slot.cell
                self._drain(slot)
                self._retire(slot, kill=True)
                on_result(self._partial(
                    cell, slot, Status.TIMEOUT,
                    f"cell exceeded the {self.options.timeout:g} s timeout; worker killed"))
                self.slots.append(self._spawn(slot.device, slot.cpus))

    def _drain(self, slot: _Slot) -> None:
        """Collect window rows already sent before the worker is killed."""
        try:
            while slot.conn.poll():
                kind, *payload = slot.conn.recv()
                if kind == "window":
                    slot.rows.append(payload[0])
        except (EOFError, OSError):
            pass

    def _partial(self, cell: Cell, slot: _Slot, status: Status, error: str) -> CellResult:
        wall = time.monotonic() - slot.started
        summary = summary_from_curve(cell, self.target_of(cell), slot.rows, wall)
        if slot.cpus:
            summary = {**summary, "cpus": placement.describe(slot.cpus)}
        return CellResult(cell=cell, status=status, summary=summary, curve=tuple(slot.rows),
                          error=error)


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


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class InlineExecutor:
    """Runs cells one after another in this process: no isolation, no timeout."""

    def __init__(self, options: ExecOptions, run_options: RunOptions,
                 resolve: Callable[[Cell], tuple[Any, Any, Mapping[str, Any]]],
                 costs: CostEstimates | None = None) -> None:
        self.options = options
        self.run_options = run_options
        self.resolve = resolve
        self.costs = costs

    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        import torch

        cells = list(cells)
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        benchmark = torch.backends.cudnn.benchmark
        limits = configure_process(self.options, sorted({c.device for c in cells}))
        try:
            self._run(cells, on_start, on_window, on_result)
        finally:  # this process outlives the grid: put its settings back
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
            torch.backends.cudnn.benchmark = benchmark
            if limits is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, limits)

    def _run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
             on_result: ResultCallback) -> None:
        waiting, order = deque(cells), _Reorder(self.costs)
        while waiting:
            cell = order.next(waiting)
            on_start(cell)
            problem, optimizer, roles = self.resolve(cell)

            def window(row: Mapping[str, Any], steps: int, cell: Cell = cell) -> None:
                on_window(cell, row, steps)

            on_result(run_cell(cell, problem, optimizer, self.run_options,
                               on_window=window, role_specs=roles))

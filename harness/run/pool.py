"""Worker processes that run cells under :class:`~harness.executor.CellLimits`: public.

:class:`WorkerPool` is what the ``local`` executor schedules cells onto, and what each
Dask worker of the ``dask`` executor runs its cell in; a Ray or Slurm executor uses it
the same way. Each worker has torch and the plugins loaded once, then runs cells one after
another: a CPU worker starts from the fork server :mod:`harness.run.start` keeps (inside
``harness run``) or is forked from a parent that has them loaded, a GPU worker is a spawned
process that imports them itself (``HARNESS_WORKER_START`` chooses). It streams each
window's curve row to the parent as the cell trains, so a cell the pool kills at its
timeout, or whose worker dies, is still recorded with the curve it had reached. A dead
or killed worker is replaced by a fresh one on the same device.

:func:`harness.execute_cell` runs one cell under the limits in the calling process
instead (no isolation, no timeout): for an executor whose tasks are processes of their own.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from harness.cell import Cell
from harness.errors import HarnessError
from harness.executor import CellLimits, RunOptions
from harness.outcome import CellResult, Status
from harness.run import cuda_mps, placement
from harness.run.execute import (
    WindowRow,
    _execute,
    _problem_here,
    configure_process,
    partial_result,
)
from harness.run.start import start_method

__all__ = ["PoolEvent", "Worker", "WorkerPool", "device_key"]


def device_key(device: str) -> str:
    """The workers a cell's device runs on: 'cpu', 'cuda:N' or 'mps'."""
    return "cuda:0" if device == "cuda" else device


# -- the worker process ---------------------------------------------------------------
def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _own_group() -> None:
    """Lead a session and process group of our own, so that the pool can kill whatever the
    cells started (a data loader's workers, a simulator) with the worker."""
    with contextlib.suppress(OSError):  # already a group leader
        os.setsid()


def _worker_main(conn: Connection, limits: CellLimits, run_options: RunOptions,
                 device: str = "cpu", cpus: tuple[int, ...] | None = None,
                 env: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
    _own_group()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker had the parent's handler
    _die_with_parent()
    if environ is not None:  # from a fork server: the run's environment, not the server's
        os.environ.clear()
        os.environ.update(environ)
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

    get_host()  # load the plugins before the first cell
    from harness.train import memory

    warmup_s: float | None = None
    try:
        conn.send(("ready", os.getpid()))
        applied = False
        while True:
            message = conn.recv()
            if message is None:
                _exit_now()  # nothing is left to report: skip torch's slow interpreter teardown
            cell: Cell = message
            if not applied:
                configure_process(limits, [device])  # after start-up: the limit is the cells'
                applied = True
                # One-time costs paid here (torch's thread pools set: a forked worker must
                # not use its parent's), not in the first cell's wall_s; reported on it.
                warmup_s = memory.warm_up(torch.device(device))
                memory.set_baseline()  # the cells' CPU peaks are measured above this

            def on_window(row: Mapping[str, Any], steps: int) -> None:
                conn.send(("window", dict(row), steps))

            result = _execute(cell, run_options, on_window, None)
            if warmup_s is not None:
                result = replace(result, summary={**result.summary,
                                                  "worker_warmup_s": warmup_s})
                warmup_s = None
            if cpus:
                actual = placement.usable_cpus()  # what the OS holds us to, not the plan
                result = replace(result, summary={**result.summary,
                                                  "cpus": placement.describe(actual)})
            conn.send(("result", result))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent is gone: nobody is left to report to


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group a worker leads (see :func:`_own_group`): the worker and
    every process its cells started. Nothing happens when there is no such group (the
    worker had not made it yet, or nothing of it is left)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit_now() -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


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


# -- the parent side ----------------------------------------------------------------------
@dataclass(eq=False)
class Worker:
    """One worker process of a :class:`WorkerPool`. Read its fields; the pool changes them."""

    process: Any
    conn: Any
    device: str = "cpu"
    cpus: tuple[int, ...] | None = None
    #: The process id, once the worker reported ready.
    pid: int | None = None
    spawned: float = field(default_factory=time.monotonic)
    #: Started up (torch imported, plugins loaded): it can take a cell.
    ready: bool = False
    #: The cell it runs, None when idle.
    cell: Cell | None = None
    started: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: Cells submitted to it so far: a timing run (``--repeats``) wants a worker at 0.
    cells_run: int = 0


@dataclass(frozen=True)
class PoolEvent:
    """What :meth:`WorkerPool.wait` saw: a worker became ``ready``, a cell reported a
    ``window`` (``row``, ``steps``), or a cell has its ``result`` (finished, timed out or
    its worker died: ``worker`` is then the one it ran on, already replaced)."""

    kind: Literal["ready", "window", "result"]
    worker: Worker
    cell: Cell | None = None
    row: Mapping[str, Any] | None = None
    steps: int = 0
    result: CellResult | None = None


class WorkerPool:
    """Worker processes, each running one cell at a time under ``limits``.

    ``start`` a worker per device, ``submit`` a cell to an idle one, ``wait`` for what
    happened, ``shutdown`` at the end; or ``run`` one cell to its result. The pool enforces
    ``limits.timeout`` in ``wait`` (the worker is killed, the cell recorded ``timeout``),
    and replaces a worker that died or was killed. Not thread-safe: one pool per thread.

    :param target_of: the cell's problem, for the summary of a cell that did not finish;
        by default the problem installed in this process (None when it is not).
    :param mps: a running :mod:`harness.run.cuda_mps` session: GPU workers become its
        clients, checked before they take a cell.
    """

    def __init__(self, limits: CellLimits, run_options: RunOptions, *,
                 target_of: Callable[[Cell], Any] | None = None,
                 mps: cuda_mps.Session | None = None) -> None:
        self.limits = limits
        self.run_options = run_options
        self.target_of = target_of or _problem_here
        self.mps = mps
        self._workers: list[Worker] = []

    @property
    def workers(self) -> tuple[Worker, ...]:
        return tuple(self._workers)

    def idle(self, device: str | None = None) -> list[Worker]:
        """Ready workers without a cell (on ``device``'s key when given)."""
        key = device_key(device) if device is not None else None
        return [w for w in self._workers
                if w.ready and w.cell is None and key in (None, w.device)]

    def running(self) -> list[Worker]:
        return [w for w in self._workers if w.cell is not None]

    def start(self, device: str = "cpu", cpus: tuple[int, ...] | None = None) -> Worker:
        """Spawn a worker for ``device`` (pinned to ``cpus``); it is ready after a ``ready``
        event (it imports torch and loads the plugins first)."""
        key = device_key(device)
        method = start_method(key)
        context: Any = mp.get_context(method)
        parent, child = context.Pipe()
        env = self.mps.env() if self.mps is not None and key.startswith("cuda") else None
        environ = dict(os.environ) if method == "forkserver" else None
        process = context.Process(
            target=_worker_main,
            args=(child, self.limits, self.run_options, key, cpus, env, environ),
            name="harness-worker", daemon=False,  # may start DataLoader workers itself
        )
        try:
            process.start()
            child.close()
            worker = Worker(process=process, conn=parent, device=key, cpus=cpus)
            self._workers.append(worker)
        except BaseException:
            # A SIGINT or SIGTERM (raised by the driver's handler) between the fork and the
            # append would leave a worker this pool does not know: never stopped, it would
            # keep multiprocessing's exit handler waiting for ever. End it here.
            if process.pid is not None:
                _kill_group(process.pid)
                process.kill()
                process.join(timeout=10)
            raise
        return worker

    def submit(self, worker: Worker, cell: Cell) -> None:
        """Give an idle, ready worker a cell; its timeout counts from now."""
        if worker not in self._workers or not worker.ready or worker.cell is not None:
            raise ValueError("submit needs an idle, ready worker of this pool")
        worker.cell, worker.started, worker.rows = cell, time.monotonic(), []
        worker.cells_run += 1
        worker.conn.send(cell)

    def stop(self, worker: Worker) -> None:
        """End an idle worker (a busy one is killed: its cell gets no result)."""
        try:
            if worker.cell is None and worker.process.is_alive():
                worker.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._retire(worker, kill=worker.cell is not None)

    def shutdown(self) -> None:
        """End every worker. A signal raised in the driver on the way (SIGINT, SIGTERM)
        does not leave the rest waiting for a cell (multiprocessing's exit would wait for
        them for ever): they are killed first; a further signal then is raised after."""
        try:
            for worker in list(self._workers):
                self.stop(worker)
        except BaseException as first:
            for worker in list(self._workers):
                for _ in range(3):  # a signal per try at most; SIGKILL and join are quick
                    try:
                        self._retire(worker, kill=True)
                        break
                    except BaseException:  # another signal: first is raised after
                        continue
            raise first

    def kill(self, worker: Worker, status: Status, error: str, *,
             restart: bool = True) -> CellResult | None:
        """Kill a worker now (an executor's own deadline) and replace it unless told not to;
        the partial result of the cell it ran, with ``status`` and ``error``."""
        cell = worker.cell
        self._drain(worker)
        self._retire(worker, kill=True)
        if restart:
            self.start(worker.device, worker.cpus)
        return self._partial(worker, status, error) if cell is not None else None

    def renew(self, worker: Worker) -> Worker:
        """Stop an idle worker and start a fresh one in its place (same device and CPUs):
        a timing run (``cell.timing_run``) runs in a process that ran nothing else."""
        self.stop(worker)
        return self.start(worker.device, worker.cpus)

    def run(self, cell: Cell, on_window: WindowRow | None = None) -> CellResult:
        """Run one cell on a worker of its device, started if there is none (idle workers
        of other devices are stopped, and for a timing run those that ran a cell), and
        return its result; the worker is kept."""
        key = device_key(cell.device)
        for other in [w for w in self._workers if w.cell is None and (
                w.device != key or (cell.timing_run and w.cells_run))]:
            self.stop(other)
        if not any(w.device == key for w in self._workers):
            self.start(key)
        mine: Worker | None = None
        while True:
            idle = self.idle(key)
            if mine is None and idle:
                mine = idle[0]
                self.submit(mine, cell)
            for event in self.wait():
                if event.worker is not mine:
                    continue
                if event.kind == "window" and on_window is not None and event.row is not None:
                    on_window(event.row, event.steps)
                elif event.kind == "result" and event.result is not None:
                    return event.result

    def wait(self, timeout: float | None = None) -> list[PoolEvent]:
        """Wait until something happens (at most ``timeout`` seconds, or until the next
        cell's deadline), enforce the cells' timeouts, replace dead workers; what happened.

        :raises HarnessError: a worker died while starting (the run cannot go on).
        :raises cuda_mps.MPSError: under MPS, a GPU worker did not become a client.
        """
        if not self._workers:
            return []
        now = time.monotonic()
        deadlines = [timeout] if timeout is not None else []
        if self.limits.timeout is not None:
            deadlines += [w.started + self.limits.timeout - now for w in self.running()]
        deadlines += [w.spawned + cuda_mps.ATTACH_S - now for w in self._attaching()]
        handles: dict[Any, Worker] = {}
        for worker in self._workers:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles), timeout=max(0.0, min(deadlines)) if deadlines else None)
        events: list[PoolEvent] = []
        for handle in ready:
            worker = handles[handle]
            if worker not in self._workers:
                continue
            if handle is worker.conn:
                events += self._receive(worker)
            elif not worker.conn.poll():
                events += self._died(worker)
        events += self._enforce_timeouts()
        for worker in self._attaching():
            if time.monotonic() - worker.spawned >= cuda_mps.ATTACH_S:
                raise cuda_mps.MPSError(
                    f"a worker on {worker.device} did not attach to the MPS server within "
                    f"{cuda_mps.ATTACH_S:g} s ({self._mps_log()})")
        return events

    # -- inside the pool ------------------------------------------------------------------
    def _retire(self, worker: Worker, *, kill: bool) -> None:
        if kill and worker.process.is_alive():
            _kill_group(worker.process.pid)
            worker.process.kill()  # in case it had not made its group yet
        worker.process.join(timeout=10)
        _kill_group(worker.process.pid)  # what its cells started and left behind
        worker.conn.close()
        if worker in self._workers:
            self._workers.remove(worker)

    def _attaching(self) -> list[Worker]:
        """GPU workers under MPS that have not reported ready: an attach can hang."""
        if self.mps is None:
            return []
        return [w for w in self._workers if not w.ready and w.device.startswith("cuda")]

    def _receive(self, worker: Worker) -> list[PoolEvent]:
        events: list[PoolEvent] = []
        try:
            while worker.conn.poll():
                kind, *payload = worker.conn.recv()
                if kind == "ready":
                    worker.pid = payload[0]
                    self._check_client(worker)
                    worker.ready = True
                    events.append(PoolEvent("ready", worker))
                elif kind == "broken":
                    raise cuda_mps.MPSError(f"a worker on {worker.device} could not start "
                                            f"CUDA under MPS: {payload[0]} ({self._mps_log()})")
                elif kind == "window" and worker.cell is not None:
                    worker.rows.append(payload[0])
                    events.append(PoolEvent("window", worker, worker.cell, payload[0],
                                            int(payload[1])))
                elif kind == "result":
                    result: CellResult = payload[0]
                    cell, worker.cell = worker.cell, None
                    events.append(PoolEvent("result", worker, cell, result=result))
        except (EOFError, OSError):
            events += self._died(worker)
        return events

    def _check_client(self, worker: Worker) -> None:
        """Under MPS, a GPU worker that is not a client of the daemon stops the run: its
        cells would be timed as they would be without ``--cuda-mps``."""
        if self.mps is None or not worker.device.startswith("cuda"):
            return
        if worker.pid not in self.mps.clients():
            raise cuda_mps.MPSError(f"the worker on {worker.device} (pid {worker.pid}) is not "
                                    f"a client of the MPS server ({self._mps_log()})")

    def _mps_log(self) -> str:
        return self.mps.log_tail() if self.mps is not None else "no MPS daemon"

    def _died(self, worker: Worker) -> list[PoolEvent]:
        worker.process.join(timeout=10)
        cell = worker.cell
        code = worker.process.exitcode
        self._retire(worker, kill=True)
        if not worker.ready:
            hint = " (and without --cuda-mps)" if self.mps is not None else ""
            raise HarnessError(f"a worker process {describe_exit(code)} while starting; "
                               f"run with --workers 0{hint} to see the error in this process")
        self.start(worker.device, worker.cpus)
        if cell is None:
            return []
        result = self._partial(worker, Status.ERROR, f"worker {describe_exit(code)}")
        return [PoolEvent("result", worker, cell, result=result)]

    def _enforce_timeouts(self) -> list[PoolEvent]:
        limit = self.limits.timeout
        if limit is None:
            return []
        events = []
        now = time.monotonic()
        for worker in self.running():
            if now - worker.started >= limit:
                cell = worker.cell
                result = self.kill(worker, Status.TIMEOUT,
                                   f"cell exceeded the {limit:g} s timeout; worker killed")
                events.append(PoolEvent("result", worker, cell, result=result))
        return events

    def _drain(self, worker: Worker) -> None:
        """Collect window rows already sent before the worker is killed."""
        try:
            while worker.conn.poll():
                kind, *payload = worker.conn.recv()
                if kind == "window":
                    worker.rows.append(payload[0])
        except (EOFError, OSError):
            pass

    def _partial(self, worker: Worker, status: Status, error: str) -> CellResult:
        cell = worker.cell
        assert cell is not None
        result = partial_result(cell, self.target_of(cell), worker.rows,
                                time.monotonic() - worker.started, status, error)
        if worker.cpus:
            result = replace(result, summary={**result.summary,
                                              "cpus": placement.describe(worker.cpus)})
        return result

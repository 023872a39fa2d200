"""The ``dask`` executor on the client: one Dask task per cell, results as they complete.

* Workers return each :class:`CellResult` to the client, which hands it to the runner
  like any executor's results: no shared filesystem, and resume, statuses and summaries
  are the same whichever executor ran the cells.
* A worker lost mid-cell is the scheduler's business (``allowed-failures``). The
  cluster this executor starts retries such a cell once on another worker; after that
  the client records it as ``error: worker lost``.
* Progress (which cell started, its latest window) travels as throttled Dask events.
"""

from __future__ import annotations

import gc
import logging
import math
import queue
import signal
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import (
    Cell,
    CellLimits,
    CellResult,
    ExecutorContext,
    HarnessError,
    PluginSource,
    ResultCallback,
    RunOptions,
    StartCallback,
    Status,
    UsageError,
    WindowCallback,
    partial_result,
)
from harness_builtins.dask_settings import DaskSettings
from harness_builtins.dask_worker import WorkerSetupError, run_cell_task

#: For the cluster this executor starts. Workers must not be daemonic (a daemonic
#: process may not start the child a cell runs in); a cell whose worker dies is retried
#: once; a worker holds only the cells it runs, so a lost worker strikes no queued cell.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.worker.daemon": False,
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
}

class SchedulerLost(HarnessError):
    """The scheduler of a run went away or stopped answering: the run ends with this line."""


class _WithheldLog(logging.Filter):
    """Keeps a logger's records from its handlers, to hand them on later or drop them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


@contextmanager
def _client_log_withheld() -> Iterator[None]:
    """Hold back the Dask client's log while a run talks to a scheduler of its own. When
    that scheduler exits, the client logs its failed reconnection as a 30-line traceback;
    the run's one line (:class:`SchedulerLost`) says what happened, so those records are
    dropped. Otherwise they are handed on as the run ends, nothing lost."""
    logger = logging.getLogger("distributed.client")
    withheld = _WithheldLog()
    logger.addFilter(withheld)
    lost = False
    try:
        yield
    except SchedulerLost:
        lost = True
        raise
    finally:
        logger.removeFilter(withheld)
        if not lost:
            for record in withheld.records:
                logger.handle(record)


def connect(address: str) -> Any:
    """A client of the scheduler at ``address``; one line when it cannot be reached (after
    Dask's connect timeout, ``distributed.comm.timeouts.connect``, 30 s by default)."""
    from distributed import Client

    try:
        shake_hands(address, connect_timeout())
        return Client(address, set_as_default=False)
    except Exception as exc:  # a refused or timed-out connection, or a peer that is no Dask
        reason = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
    # Dask closes a client that failed to connect with an OSError itself; one that failed
    # otherwise (tls:// without certificates) is closed when it is collected. Collect it
    # now, while its event loop runs: at the interpreter's exit its close waits twice the
    # connect timeout and prints a traceback.
    gc.collect()
    raise UsageError(f"cannot reach the Dask scheduler at {address}: {reason}")


def connect_timeout() -> float:
    """Dask's ``distributed.comm.timeouts.connect``, in seconds."""
    import dask
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))


def shake_hands(address: str, timeout: float) -> None:
    """Connect to ``address`` and complete Dask's handshake, else raise (an OSError when
    it cannot be reached). Dask times out the connection but not the handshake after it:
    a port that accepts and never answers (a scheduler's dashboard, a stopped scheduler)
    would hold ``Client()`` forever. Here the whole takes twice the connect timeout at most.
    Not checked with a security loader configured: only the Client knows its credentials.
    """
    import asyncio

    import dask
    from distributed.comm.core import connect as open_comm
    from distributed.security import Security

    if dask.config.get("distributed.client.security-loader", None):
        return

    async def shake() -> None:
        args = Security().get_connection_args("client")
        comm = await open_comm(address, timeout=timeout, **args)  # OSError after timeout
        await comm.close()

    async def within() -> None:
        try:
            await asyncio.wait_for(shake(), 2 * timeout)
        except TimeoutError:
            raise ConnectionError(f"no Dask scheduler answered there within "
                                  f"{2 * timeout:g} s") from None

    asyncio.run(within())


def _ignore_sigint_plugin() -> Any:
    """A Dask worker plugin that makes every worker, present and future (a nanny restarts
    one that died), ignore SIGINT. Ctrl-C in a terminal signals the whole foreground
    process group, the harness's own LocalCluster workers included: the harness stops the
    run and closes the cluster, while a worker interrupted mid-cell would print a
    KeyboardInterrupt traceback. ``setup`` runs in the worker's event loop, its main thread.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        name = "harness-ignore-sigint"

        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def _close(client: Any) -> None:
    client.close()


def needs_gpu(cell: Cell) -> bool:
    return cell.device.startswith("cuda")


# -- on the client ----------------------------------------------------------------------
class DaskExecutor:
    """Submits one task per cell and hands results to the runner as they complete.

    ``client``: a client of ``settings.scheduler``, connected when the executor is built
    (so that an unreachable scheduler stops the run before anything is written); ``run``
    uses it and closes it, and it is closed when the executor is dropped unused.
    """

    def __init__(self, limits: CellLimits, run_options: RunOptions, settings: DaskSettings,
                 context: ExecutorContext, client: Any = None) -> None:
        self.limits = limits
        self.run_options = run_options
        self.settings = settings
        self.context = context
        self._connection = weakref.finalize(self, _close, client) if client is not None \
            else None

    def close(self) -> None:
        """Close the scheduler connection made when the executor was built, if unused."""
        if self._connection is not None:
            self._connection()

    def run(self, cells: Iterable[Cell], on_start: StartCallback, on_window: WindowCallback,
            on_result: ResultCallback) -> None:
        todo = list(cells)
        if not todo:
            self.close()
            return
        with self._client(any(needs_gpu(c) for c in todo)) as client:
            self._run(client, todo, on_start, on_window, on_result)

    def _connected(self, address: str) -> Any:
        """The client connected at construction (once), else a new one."""
        held = self._connection.detach() if self._connection is not None else None
        self._connection = None
        return held[2][0] if held is not None else connect(address)

    @contextmanager
    def _client(self, gpu: bool) -> Iterator[Any]:
        import dask
        from distributed import Client, LocalCluster

        if self.settings.scheduler is not None:
            with _client_log_withheld(), self._connected(self.settings.scheduler) as client:
                if gpu:
                    _warn_without_gpu_workers(client)
                yield client
            return
        # The config must hold for the cluster's whole life: a nanny reads it again
        # when it restarts a worker that died.
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = LocalCluster(
                n_workers=self.settings.n_workers,
                threads_per_worker=self.settings.threads_per_worker, processes=True,
                dashboard_address=self.settings.dashboard,
                # No dashboard: its HTTP server still starts; on a free port, not 8787.
                scheduler_kwargs=None if self.settings.dashboard else {"dashboard_address": ":0"},
                resources={"GPU": 1} if gpu else None,
                # Dask's warnings about its own shutdown (cancelled tasks, a worker busy in
                # a cell killed after 4 s) are noise on Ctrl-C; the harness reports cells.
                silence_logs=logging.ERROR)
            try:
                with Client(cluster, set_as_default=False) as client:
                    client.register_plugin(_ignore_sigint_plugin())  # restarted ones too
                    if self.settings.dashboard:
                        print(f"harness: Dask dashboard at {client.dashboard_link}",
                              file=sys.stderr)
                    yield client
            finally:
                cluster.close()

    def _run(self, client: Any, cells: list[Cell], on_start: StartCallback,
             on_window: WindowCallback, on_result: ResultCallback) -> None:
        run = uuid.uuid4().hex
        topic = f"harness-{run}"
        inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        client.subscribe_topic(topic, lambda event: inbox.put(("event", event[1])))
        pending: dict[int, tuple[Cell, Any]] = {}
        try:
            # One task group for the grid, submitted at once: a grid larger than twice
            # the cluster's threads is queued on the scheduler and handed out as workers
            # free up (one cell per worker thread), instead of being assigned up front.
            for gpu in (False, True):
                tasks = [i for i, cell in enumerate(cells) if needs_gpu(cell) == gpu]
                if not tasks:
                    continue
                futures = client.map(
                    run_cell_task, [cells[i] for i in tasks], tasks,
                    key=[(f"harness-cell-{run}", i) for i in tasks], pure=False, retries=1,
                    resources={"GPU": 1} if gpu else None, limits=self.limits,
                    run_options=self.run_options, topic=topic,
                    plugin_sources=self._plugin_sources())
                for task, future in zip(tasks, futures, strict=True):
                    future.add_done_callback(lambda _, task=task: inbox.put(("done", task)))
                    pending[task] = (cells[task], future)
            heard = time.monotonic()
            while pending:
                try:
                    kind, payload = inbox.get(timeout=1.0)
                except queue.Empty:
                    if self.settings.scheduler is not None \
                            and time.monotonic() - heard > connect_timeout():
                        self._check_scheduler(self.settings.scheduler)
                        heard = time.monotonic()
                    continue
                heard = time.monotonic()
                if kind == "done":
                    cell, future = pending.pop(payload)
                    on_result(self._result(cell, future))
                elif payload.get("task") in pending:
                    cell = pending[payload["task"]][0]
                    if payload.get("kind") == "start":
                        on_start(cell)
                    elif payload.get("kind") == "window":
                        on_window(cell, payload["row"], int(payload["steps"]))
        finally:
            if pending:
                client.cancel([future for _, future in pending.values()])
            client.unsubscribe_topic(topic)

    def _plugin_sources(self) -> tuple[PluginSource, ...]:
        """The run's plugin files as sources for the workers (read here from their paths
        when the context has only those, as an older caller's does)."""
        if self.context.plugin_sources or not self.context.plugin_files:
            return tuple(self.context.plugin_sources)
        return tuple(PluginSource.read(Path(p)) for p in self.context.plugin_files)

    @staticmethod
    def _check_scheduler(address: str, gone: str = "stopped answering") -> None:
        """Stop the run when the scheduler no longer answers: Dask's client notices one
        that exits, not one that stops (a suspended process, a hung host), and would wait
        for the grid's cells forever. Also asked when the client cancelled the grid's cells,
        which it does when it cannot reconnect: ``gone`` says which."""
        try:
            shake_hands(address, connect_timeout())
        except Exception as exc:
            raise SchedulerLost(f"the Dask scheduler at {address} {gone} ({exc}); "
                                "finished cells are kept, resume with --resume") from None

    def _result(self, cell: Cell, future: Any) -> CellResult:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        if future.status == "finished":
            result: CellResult = future.result()
            return result
        if future.status == "cancelled":
            if self.settings.scheduler is not None:  # the client cancels all when it
                self._check_scheduler(self.settings.scheduler, "went away")  # cannot reconnect
            raise HarnessError("the Dask scheduler cancelled the grid's cells (was the "
                               "connection to it lost?); finished cells are kept, resume "
                               "with --resume")
        try:
            exc = future.exception()
        except FutureCancelledError as lost:
            raise HarnessError(f"the Dask scheduler dropped a cell: {lost}") from None
        if isinstance(exc, WorkerSetupError):
            raise HarnessError(str(exc))
        if isinstance(exc, KilledWorker):
            last = getattr(exc.last_worker, "address", "?")
            return self._failed(cell, f"worker lost: the Dask workers running it died "
                                      f"{exc.allowed_failures + 1} times (last {last})")
        hint = ""
        if isinstance(exc, ImportError) and "harness" in str(exc):
            hint = " (harness and the grid's plugins must be installed on every worker)"
        tb = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
        return self._failed(cell, f"the Dask task failed on a worker: "
                                  f"{type(exc).__name__}: {exc}{hint}", tb)

    def _failed(self, cell: Cell, error: str, tb: str | None = None) -> CellResult:
        try:
            problem = self.context.resolve(cell)[0]
        except HarnessError:
            problem = None
        return partial_result(cell, problem, [], math.nan, Status.ERROR, error, tb)


def _warn_without_gpu_workers(client: Any) -> None:
    workers = client.scheduler_info().get("workers", {}).values()
    if not any(w.get("resources", {}).get("GPU") for w in workers):
        print("harness: warning: no Dask worker offers the resource GPU yet; the cuda cells "
              "wait for one (start GPU workers with --resources GPU=1)", file=sys.stderr)



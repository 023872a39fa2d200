"""The ``dask`` executor on a Dask worker: each task runs its cell in a child process.

A Dask task cannot be interrupted in its thread, so each worker thread keeps a
:class:`harness.WorkerPool` of one child process that runs its cells: the hard
timeout, the crash statuses and the partial curve of a killed cell are those of
``--executor local``. The child outlives the task, so torch is imported once per
worker thread, not once per cell.

Local plugin files (``--plugin``) come with each task as their source
(:class:`harness.executor.PluginSource`), not as a path: the worker writes them into a
temporary folder of its own (one per worker process, a subfolder per source hash, removed
when the worker exits) and its children load them from there, so a worker on another
machine, or one that no longer sees the file, runs exactly the bytes the manifest hashed.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.util as mp_util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import (
    Cell,
    CellLimits,
    CellResult,
    RunOptions,
    Status,
    WorkerPool,
    partial_result,
)
from harness.executor import PLUGIN_FILES_ENV, PluginSource

#: Seconds between two progress events of one cell: the bar redraws at most 5 times a
#: second, and every event goes through the scheduler.
WINDOW_EVENT_S = 1.0


class WorkerSetupError(RuntimeError):
    """A Dask worker cannot run cells at all: the run stops with this message."""


#: The pool of each Dask worker thread (one cell at a time per thread).
_POOLS: dict[int, WorkerPool] = {}
_LOCK = threading.Lock()
_FINALIZER: list[Any] = []
#: The local plugin files each thread's pool was started with.
_FILES: dict[int, tuple[str, ...]] = {}
#: This worker process's folder of plugin sources (made on first use).
_SOURCES_DIR: list[Path] = []


def _close_all() -> None:
    """Stop idle children before multiprocessing joins them at the worker's exit, then
    remove the plugin sources they loaded."""
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
        folders = list(_SOURCES_DIR)
        _SOURCES_DIR.clear()
    for pool in pools:
        pool.shutdown()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _finalizer() -> None:
    """Register :func:`_close_all` once (called with ``_LOCK`` held)."""
    if not _FINALIZER:
        # Runs in multiprocessing's exit function, before it joins child processes
        # (a Dask worker process ends through it, not through atexit).
        _FINALIZER.append(mp_util.Finalize(None, _close_all, exitpriority=100))


def write_sources(sources: Sequence[PluginSource]) -> tuple[str, ...]:
    """Write the plugin files' sources into this worker's folder; the paths to load them
    from, in order. Raises :class:`ValueError` for a source damaged on the way and
    :class:`OSError` when the folder cannot be written."""
    with _LOCK:
        _finalizer()
        if not _SOURCES_DIR:
            _SOURCES_DIR.append(Path(tempfile.mkdtemp(prefix="harness-plugins-")))
        root = _SOURCES_DIR[0]
        return tuple(str(source.write(root)) for source in sources)


def file_mismatch(cell: Cell, sources: Sequence[PluginSource]) -> str | None:
    """Why the plugin files sent with the cell are not those its record names, if so (a
    cell's ``versions`` name a plugin file by its name and the start of its hash)."""
    for _, origin in cell.versions:
        if not origin.startswith("file "):
            continue
        name, _, digest = origin.removeprefix("file ").partition(" ")
        digest = digest.split(";")[0].strip()
        sent = [s for s in sources if s.name == name]
        if not sent:
            return f"the plugin file {name!r} the cell needs was not sent to the worker"
        if not any(s.sha256.removeprefix("sha256:").startswith(digest) for s in sent):
            return (f"the plugin file {name!r} sent to the worker has the hash "
                    f"{sent[0].sha256}, not the {digest} the cell was planned with")
    return None


def thread_pool(limits: CellLimits, run_options: RunOptions,
                plugin_files: tuple[str, ...] = ()) -> WorkerPool:
    """This worker thread's pool, for these limits, options and local plugin files (a new
    run may differ); its child process loads the plugin files (``--plugin``) too."""
    thread = threading.get_ident()
    with _LOCK:
        _finalizer()
        current = _POOLS.get(thread)
        if current is not None and (current.limits, current.run_options,
                                    _FILES.get(thread, ())) == (limits, run_options,
                                                                plugin_files):
            return current
        # the child inherits the environment it is started with
        os.environ[PLUGIN_FILES_ENV] = os.pathsep.join(plugin_files)
        fresh = _POOLS[thread] = WorkerPool(limits, run_options)
        _FILES[thread] = plugin_files
    if current is not None:
        current.shutdown()
    return fresh


def version_mismatch(cell: Cell) -> str | None:
    """Why this worker would run other code than the cell's record says, if it would.

    The versions are part of the cell's key: a worker with another version of a plugin
    must not produce a record that claims the client's.
    """
    import importlib.metadata as md

    from harness import __version__

    for role, origin in cell.versions:
        dist, _, wanted = ("harness", "", origin) if role == "harness" else origin.rpartition(" ")
        if not dist or origin.startswith("file "):
            continue  # registered in-process on the client, or a plugin file (its hash)
        try:
            here = __version__ if role == "harness" else md.version(dist)
        except md.PackageNotFoundError:
            continue  # the child names the missing distribution
        if here != wanted:
            return (f"{dist} {here} is installed on this worker but the grid was planned with "
                    f"{dist} {wanted}: install the same versions on the client and the workers")
    return None


def run_cell_task(cell: Cell, task: int, *, limits: CellLimits, run_options: RunOptions,
                  topic: str, plugin_sources: tuple[PluginSource, ...] = ()) -> CellResult:
    """The Dask task: one cell, in this worker thread's child process, with the run's
    plugin files written from ``plugin_sources``. Never raises for the cell."""
    from distributed import get_worker

    worker = get_worker()
    if mp.current_process().daemon:
        raise WorkerSetupError(
            f"Dask worker {worker.address} is a daemonic process and cannot start the "
            "process a cell runs in; start the workers with "
            "DASK_DISTRIBUTED__WORKER__DAEMON=False (or dask worker --no-nanny)")
    worker.log_event(topic, {"task": task, "kind": "start"})
    try:
        plugin_files = write_sources(plugin_sources)
    except (OSError, ValueError) as exc:
        return partial_result(cell, None, [], 0.0, Status.ERROR,
                              f"on {worker.address}: cannot write the run's plugin files: {exc}")
    mismatch = file_mismatch(cell, plugin_sources) or version_mismatch(cell)
    if mismatch is not None:
        return partial_result(cell, None, [], 0.0, Status.ERROR,
                              f"on {worker.address}: {mismatch}")
    last = 0.0

    def on_window(row: Mapping[str, Any], steps: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= WINDOW_EVENT_S:
            last = now
            plain = {k: v for k, v in row.items()
                     if v is None or isinstance(v, int | float | str | bool)}
            worker.log_event(topic, {"task": task, "kind": "window", "row": plain,
                                     "steps": steps})

    return thread_pool(limits, run_options, plugin_files).run(cell, on_window)

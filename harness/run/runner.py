"""Running a grid: plan (what is left to run), execute, write each cell as it finishes.

Every finished cell is written at once, atomically, to its own record; the tables
are rebuilt from the records at the end (and by ``show``/``report`` at any time).
A run that is interrupted (Ctrl-C, SIGTERM, SIGKILL, a power cut) keeps every
finished cell, and ``harness run --resume DIR`` runs only what is missing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import naming
from harness.cell import Cell
from harness.errors import HarnessError, RecordNotWritten, UsageError
from harness.executor import CellLimits, ExecutorContext, RunOptions
from harness.grid import ExpandedGrid, GridSpec
from harness.outcome import CellResult, Status
from harness.plugins import PluginHost
from harness.results import RunDirectory, skipped_result
from harness.run.manifest import build_manifest
from harness.run.progress import Progress
from harness.run.repeats import Collector, with_timing_runs
from harness.run.resume import plan, prepare_output_dir, record_resume, set_aside_corrupt
from harness.run.scheduling import CostBook, longest_first
from harness.train.machine import run_end, run_start


@dataclass(frozen=True)
class RunOutcome:
    directory: Path
    summary: pd.DataFrame
    #: None when the run finished, else the signal that stopped it ("SIGINT", "SIGTERM").
    interrupted: str | None = None
    ran: int = 0
    skipped_done: int = 0


def default_output_dir(base: Path = Path("results")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = base / stamp
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    return path


LOCK_FILE = ".lock"


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock for the block: one harness run writes into a directory at a
    time. The lock is the kernel's (``flock``), so it goes with the process that held it,
    however that process ends; the file keeps the holder's pid for the message (when the
    disk has room for it: the pid is not the lock). A lock file that cannot be created is
    an OSError naming it."""
    path = out / LOCK_FILE
    with naming(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise UsageError(f"{str(out)!r} is in use by another harness run{who}; wait for "
                             "it to finish or choose another directory") from None
        try:
            _write_pid(fd, f"{os.getpid()}\n")
            yield
        finally:
            _write_pid(fd, "")
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_pid(fd: int, text: str) -> None:
    """The lock file's text, best effort (a full disk keeps the lock, not the pid)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("ascii"), 0)
    except OSError:
        pass


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. Like KeyboardInterrupt it is not an ``Exception``, so
    the cell runner's catch-all (and a plugin's) cannot record it as the cell's failure
    and carry on: the run stops, and the cell it stopped has no record."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


@contextmanager
def _signals(deferred: list[str] | None = None) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` in the main thread; with
    ``deferred``, note their names there instead and let the block finish (the final
    tables are written whole, then the run stops as it would have)."""
    def handler(signum: int, frame: Any) -> None:
        if deferred is not None:
            deferred.append(signal.Signals(signum).name)
            return
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass(frozen=True)
class RunRequest:
    """What :func:`run_grid` runs, where, and how."""

    grid: ExpandedGrid
    #: The run directory; with ``resume`` it holds the run to continue, else no run.
    out: Path
    options: RunOptions = field(default_factory=RunOptions)
    limits: CellLimits = field(default_factory=CellLimits)
    #: The registered executor's name and its settings (checked by :func:`check_executor`).
    executor: str = "local"
    executor_settings: Mapping[str, str] = field(default_factory=dict)
    #: For the manifest: the grid as specified, the command line, the other options.
    spec: GridSpec | None = None
    argv: Sequence[str] = ()
    manifest_options: Mapping[str, Any] = field(default_factory=dict)
    resume: bool = False
    #: With ``--extend``: the extension's entry for the manifest (``resume`` is True too).
    extension: Mapping[str, Any] | None = None
    rerun_failed: bool = False
    progress: bool = True
    #: A later round of the same command (a tuning run's next trials): the manifest's list
    #: of resumes is kept as it is.
    continues: bool = False
    #: ``--repeats K``: K timing runs of each cell in fresh workers (:mod:`harness.run.repeats`).
    repeats: int = 0


def _context(host: PluginHost, settings: Mapping[str, str], book: CostBook) -> ExecutorContext:
    """What the executor is given: this host's plugins and local plugin files (paths and
    sources), its settings and the run's cost book."""
    return ExecutorContext(resolve=lambda c: _resolve(host, c), settings=settings, costs=book,
                           plugin_files=host.plugin_files(),
                           plugin_sources=host.plugin_sources())


def _write_manifest(request: RunRequest, host: PluginHost, run_dir: RunDirectory,
                    machine: Mapping[str, Any]) -> dict[str, Any]:
    """The run's manifest, written: a new one, or a resumed run's continued; ``machine``
    (the machine's state at the start) joins its ``machine``."""
    previous = run_dir.manifest()
    spec = request.spec
    manifest = build_manifest(request.argv, request.grid, host, {
        **request.manifest_options, "execution": asdict(request.limits),
        "executor": {"name": request.executor, "settings": dict(request.executor_settings)},
        "grid_spec": asdict(spec) if spec else previous.get("options", {}).get("grid_spec"),
    })
    record_resume(manifest, previous, request.argv, request.extension)
    if request.continues:
        manifest.pop("resumed", None)
        if "resumed" in previous:
            manifest["resumed"] = previous["resumed"]
    manifest["machine"] = {**manifest["machine"], **machine}
    run_dir.write_manifest(manifest)
    return manifest


def run_grid(request: RunRequest, host: PluginHost) -> RunOutcome:
    """Run what ``request.out`` is missing of ``request.grid``; ``resume`` continues the run
    already there, otherwise it must not hold one. ``out`` is locked while this runs."""
    grid, out, options, execution = request.grid, request.out, request.options, request.limits
    executor_name, executor_settings = request.executor, dict(request.executor_settings)
    rerun_failed = request.rerun_failed
    # The executor first: one that cannot start (a missing package, an unreachable
    # scheduler) is a one-line error that leaves nothing behind.
    book = CostBook()
    executor = host.executors.get(executor_name).factory(
        execution, options, _context(host, executor_settings, book))
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        if not request.resume:  # checked again under the lock: another run may have begun since
            prepare_output_dir(out)
        run_dir = RunDirectory(out)
        machine, machine_state = run_start()
        manifest = _write_manifest(request, host, run_dir, machine)

        work = plan(grid, run_dir, rerun_failed=rerun_failed)
        set_aside_corrupt(work, run_dir)

        bar = Progress(len(grid.cells), enabled=request.progress, done=work.done)
        ran = 0
        interrupted: str | None = None

        def on_start(cell: Cell) -> None:
            if not cell.timing_run:
                bar.start(cell)

        def on_window(cell: Cell, row: Mapping[str, Any], steps: int) -> None:
            if cell.timing_run:
                return
            book.observe(cell, int(row["step"]), float(row["elapsed_s"]))  # the probe
            bar.window(row, steps)

        def on_result(result: CellResult) -> None:
            nonlocal ran
            try:
                run_dir.write_cell(result)
            except OSError as exc:
                where = exc.filename or run_dir.cells_dir
                raise RecordNotWritten(
                    f"cannot write {where}: {exc.strerror or exc}; the run stopped, the cells "
                    f"recorded before are kept: resume with harness run --resume {out}") from exc
            if result.status is Status.OK:
                book.learn(result.cell, dict(result.summary))
            ran += 1
            bar.finish(result.status)

        runnable = longest_first((c for c in work.todo if c.device not in grid.unavailable), book)
        for cell in work.todo:
            if cell.device in grid.unavailable:
                on_result(skipped_result(cell, grid.unavailable[cell.device]))

        late: list[str] = []  # signals while the tables are written
        try:
            with _signals():
                executor.run(with_timing_runs(runnable, request.repeats), on_start, on_window,
                             Collector(request.repeats, on_result))
        except (Interrupted, KeyboardInterrupt) as exc:
            interrupted = exc.signame if isinstance(exc, Interrupted) else "SIGINT"
        except RecordNotWritten:
            raise  # the disk failed: the tables are not written over it now
        except HarnessError:  # the executor cannot go on (its scheduler went away)
            with _signals(late):
                run_dir.write_tables()  # the tables hold the cells that finished
            raise
        finally:
            bar.close()
            book.save()
        with _signals(late):
            manifest["machine"] = {**manifest["machine"], **run_end(machine_state)}
            run_dir.write_manifest(manifest)
            summary, _ = run_dir.write_tables()
        return RunOutcome(out, summary, interrupted or (late[0] if late else None), ran=ran,
                          skipped_done=work.done)


def check_executor(host: PluginHost, name: str, settings: Mapping[str, str],
                   limits: CellLimits | None = None) -> None:
    """Unknown executors and settings, and values the executor's own check refuses, are
    usage errors, before anything runs."""
    spec = host.executors.get(name)
    for key in settings:
        if key not in spec.settings:
            known = ", ".join(spec.settings) or "none"
            raise UsageError(f"executor {name!r} has no setting {key!r} (it takes: {known})")
    if spec.check is not None:
        spec.check(settings, limits or CellLimits())


def _resolve(host: PluginHost, cell: Cell) -> tuple[Any, Any, dict[str, Any]]:
    return (host.problems.get(cell.problem), host.optimizers.get(cell.optimizer),
            {name: host.optimizers.get(name) for _, name, _ in cell.roles})

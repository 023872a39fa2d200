"""The executor contract: what runs a grid's cells, registered through a hook.

``harness run --executor NAME`` picks one; ``local`` (worker processes on this
machine) and ``dask`` (a Dask distributed cluster) are built-in plugins registered
exactly as a third-party executor (Ray, Slurm...) would be. An executor calls back
as cells start, as their windows are recorded, and as they finish; the runner
writes every result itself, so statuses, resume and summaries are the same
whichever executor ran the cells.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.cell import Cell
from harness.outcome import CellResult

if TYPE_CHECKING:
    from harness.optimizer import OptimizerSpec
    from harness.problem import Problem

#: The environment variable that names local plugin files (``--plugin PATH``), absolute
#: paths joined by ``os.pathsep``: a process that builds a plugin host loads them too, so
#: a worker process started with it sees the same problems and optimizers as the client.
PLUGIN_FILES_ENV = "HARNESS_PLUGIN_FILES"


@dataclass(frozen=True)
class PluginSource:
    """A local plugin file's source, to run it where its path does not exist.

    ``files`` holds the plugin's ``.py`` files as ``(path in the plugin, bytes)``: one
    entry named after the file for a ``.py`` file, every ``.py`` file of a package (its
    ``__init__.py`` included) for a directory. ``sha256`` is what the manifest records
    for the plugin; :meth:`write` checks the bytes it writes against it.
    """

    #: The plugin's absolute path where it was loaded (the client's).
    path: str
    #: ``sha256:<hex>`` of the source (see :meth:`digest`).
    sha256: str
    files: tuple[tuple[str, bytes], ...]
    #: A package directory (True) or a single ``.py`` file.
    package: bool = False

    @classmethod
    def read(cls, path: Path) -> PluginSource:
        """The source at ``path`` (a ``.py`` file or a package directory), read once;
        raises :class:`OSError` when it cannot be read."""
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
            files = tuple((p.relative_to(path).as_posix(), p.read_bytes()) for p in found)
        else:
            files = ((path.name, path.read_bytes()),)
        return cls(str(path), cls.digest(files, path.is_dir()), files, path.is_dir())

    @staticmethod
    def digest(files: Iterable[tuple[str, bytes]], package: bool) -> str:
        """``sha256:<hex>``: a file's bytes; for a package, each file's path and bytes."""
        hasher = hashlib.sha256()
        for name, data in files:
            if package:
                hasher.update(name.encode() + b"\0" + data + b"\0")
            else:
                hasher.update(data)
        return f"sha256:{hasher.hexdigest()}"

    @property
    def name(self) -> str:
        """The plugin's name: the file's stem or the package directory's name."""
        base = os.path.basename(self.path)
        return base if self.package else os.path.splitext(base)[0]

    def write(self, root: Path) -> Path:
        """Write the source under ``root`` (in a folder named after its hash, so two
        versions of one plugin never meet) and return the path to load it from; one
        already written there is reused. Raises :class:`ValueError` when the bytes do
        not hash to :attr:`sha256` (damaged on the way)."""
        if self.digest(self.files, self.package) != self.sha256:
            raise ValueError(f"the source of plugin file {self.path} does not match its "
                             f"hash {self.sha256}")
        folder = root / self.sha256.removeprefix("sha256:")[:32]
        target = folder / os.path.basename(self.path)
        if target.exists():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            for name, data in self.files:
                out = staging / name if self.package else staging / "plugin.py"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            os.replace(staging if self.package else staging / "plugin.py", target)
        except OSError:
            if not target.exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

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
class CellLimits:
    """What every executor guarantees each cell, whichever runs it and wherever.

    An executor's own knobs (how many workers, where they run) are not here: they are its
    settings (``context.settings``, ``--executor-option KEY=VALUE``). These are recorded in
    the manifest; :func:`harness.execute_cell` and :class:`harness.WorkerPool` apply them.
    """

    #: torch threads per cell. Fixed, so CPU results do not depend on how many run at once.
    threads: int = 1
    #: Hard limit per cell in seconds: the cell is stopped and recorded as ``timeout``
    #: with the curve it had reached. None: no limit.
    timeout: float | None = None
    #: Memory (MiB) a cell may allocate beyond its process's size after start-up; past it
    #: an allocation fails and the cell is ``oom``.
    max_memory_mb: int | None = None
    #: torch deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG).
    deterministic: bool = False
    #: cuDNN times its algorithms for each new shape and keeps the fastest
    #: (``torch.backends.cudnn.benchmark``); faster convolutions, run-to-run kernel choice.
    cudnn_benchmark: bool = False


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
        """Run every cell; call ``on_result`` exactly once per cell, from this thread.

        A cell with ``timing_run`` above 0 (``--repeats``) runs in a process that ran no
        other cell (:meth:`harness.WorkerPool.run` starts a fresh worker for it)."""


@dataclass(frozen=True)
class ExecutorContext:
    """What an executor factory receives besides the limits and the run options."""

    #: The problem, optimizer and per-role optimizers of a cell, from this process's plugins.
    resolve: Callable[[Cell], tuple[Problem, OptimizerSpec, Mapping[str, OptimizerSpec]]]
    #: The executor's own settings, by the names in :attr:`ExecutorSpec.settings`: from
    #: ``--executor-option KEY=VALUE`` and the flags in :attr:`ExecutorSpec.flags`.
    settings: Mapping[str, str] = field(default_factory=dict)
    #: The run's cost estimates, updated as cells report windows and finish: an executor
    #: that hands out cells one at a time re-orders those waiting, longest first, when
    #: ``costs.version`` changes (the cells arrive already in that order).
    costs: CostEstimates | None = None
    #: The run's local plugin files (``--plugin PATH``, absolute paths). An executor whose
    #: workers are processes started elsewhere sets :data:`PLUGIN_FILES_ENV` to them there
    #: (joined by ``os.pathsep``) before the worker builds its plugin host.
    plugin_files: tuple[str, ...] = ()
    #: The same files' sources, in the same order, read when the plugins were loaded (the
    #: bytes the manifest's ``sha256`` is of): an executor whose workers may not see the
    #: client's paths (another machine) sends these, writes them there with
    #: :meth:`PluginSource.write` and names the written paths in :data:`PLUGIN_FILES_ENV`.
    plugin_sources: tuple[PluginSource, ...] = ()


ExecutorFactory = Callable[[CellLimits, RunOptions, ExecutorContext], Executor]


@dataclass(frozen=True)
class ExecutorSpec:
    """A registered executor: ``factory(limits, run_options, context)``."""

    name: str
    factory: ExecutorFactory
    description: str = ""
    #: Settings the executor understands (others are a usage error).
    settings: tuple[str, ...] = ()
    #: ``check(settings, limits)`` raises :class:`harness.errors.UsageError` for values
    #: (or limits) the executor cannot use (what it returns is ignored). It is called
    #: before anything runs, ``--dry-run`` included, and must not connect anywhere: that
    #: is the factory's job.
    check: Callable[[Mapping[str, str], CellLimits], object] | None = None
    #: Command-line flags that are spellings of a setting: ``{"--workers": "n_workers"}``.
    #: The flags harness knows are ``--workers``, ``--workers-per-device``, ``--pin-cpus``,
    #: ``--cuda-mps`` and ``--scheduler`` (a switch gives ``"true"``); one the executor
    #: does not map is read as the setting of its own name, which the executor may not have.
    flags: Mapping[str, str] = field(default_factory=dict)

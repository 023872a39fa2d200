"""``harness run --resume DIR``: every rule of continuing a run, in one module.

A resumed run is the run its first command started, continued:

* **Flags.** The grid comes from the run's manifest, so the flags that shape a grid
  (:data:`GRID_FLAGS`, ``--set``) cannot be given with ``--resume``; ``--rerun-failed``
  goes only with ``--resume``.
* **The manifest** is read and checked (:func:`harness.run.manifest.options_problem`)
  before anything of it is used: a missing, unreadable or damaged one is a one-line error.
* **Taken from the manifest:** the grid spec, ``data_dir`` and ``download``; the local
  plugin files the run was started with (``options.plugin_files``, :func:`plugin_files`);
  ``skip_unavailable`` and ``save_models`` when the run had them (a flag can add them);
  ``checkpoint_every`` unless ``--checkpoint-every`` gives another.
* **Kept:** the settings that change what a cell computes: ``--windows``, the speed
  flags and :data:`RESULT_EXECUTION`. A flag left at its default takes the saved value; a
  flag given with another value is refused (:func:`keep_settings`).
* **The directory.** A resumed run writes into its own directory; a new run's ``--out``
  must hold no run (:func:`prepare_output_dir`).
* **Which cells run again** (:func:`plan`): those without a record, those whose record is
  corrupt (moved aside as ``.corrupt``, :func:`set_aside_corrupt`) and, with
  ``--rerun-failed``, the failed ones (diverged, timeout, oom, error). A record is matched
  by the cell's content key, not its place in the grid; a record whose key no cell of the
  run has any more (its plugin's code changed) is stale and moved to ``cells/stale/``.
* **The manifest** keeps the run's first ``created`` and ``command``; each resume is
  appended to ``resumed`` (:func:`record_resume`).

``harness run GRID --out DIR --extend`` grows the run in ``DIR`` with another grid, by the
same rules where they apply:

* **The run's cells** are those of every grid it was given: its first (``options.grid_spec``)
  and each extension's (``extended[].grid_spec``), expanded again, then the new grid's;
  a cell in several is one cell (:func:`expand_run`). A resumed extended run is that union.
* **Kept:** the settings kept by a resume (``--windows``, the speed flags,
  :data:`RESULT_EXECUTION`), and ``skip_unavailable``, ``save_models``, ``checkpoint_every``
  as a resume takes them; ``data_dir`` unless ``--data-dir`` is given.
* **Refused** (:func:`check_extension`): a cell whose settings differ from a finished cell
  of the run in what defines it besides its axes (``steps``, ``batch_size``, the versions
  of the code that ran it), naming the cell and the difference; a finished cell that the
  run's grids no longer give (a default changed); an extension never replaces a finished
  cell.
* **Which cells run:** as for a resume (:func:`plan`): those without a record.
* **The manifest** lists each extension in ``extended`` (when, the command, its grid, the
  cells it added); ``options.grid_spec`` stays the first grid's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.cell import Cell
from harness.errors import UsageError
from harness.executor import CellLimits, RunOptions
from harness.grid import ExpandedGrid, GridSpec, check_spec, expand
from harness.outcome import FAILED, Status
from harness.registry import OptimizerRegistry, ProblemRegistry, ScheduleRegistry
from harness.results import RunDirectory
from harness.run.manifest import options_problem

#: Flags (argparse dests) that shape the grid; with --resume the grid comes from the manifest.
GRID_FLAGS = ("grid", "preset", "models", "optimizers", "devices", "seeds", "steps",
              "batch_size", "out", "data_dir", "trials", "sampler", "tune_params",
              "tune_seeds", "final_seeds", "tune_metric", "tune_seed", "edge", "prune")
#: Execution flags that change what a cell computes, not only how fast or where.
RESULT_EXECUTION = ("deterministic", "cudnn_benchmark")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse grid flags with ``--resume``, ``--rerun-failed`` without it or ``--extend``,
    and ``--extend`` without ``--out``."""
    if getattr(args, "extend", False):
        if args.resume is not None:
            raise UsageError("--extend grows the run in --out with a new grid and --resume "
                             "continues a run with its own; give one of them")
        if args.out is None:
            raise UsageError("--extend goes with --out DIR, the run to grow")
        return
    if args.resume is None:
        if args.rerun_failed:
            raise UsageError("--rerun-failed goes with --resume DIR or --extend")
        return
    given = [f for f in GRID_FLAGS if getattr(args, f, None) not in (None, False)]
    if given or args.sets:
        flag = "--set" if args.sets and not given else f"--{given[0].replace('_', '-')}"
        if flag == "--grid":
            flag = "a grid file"
        raise UsageError(f"--resume takes the grid from the run's manifest; "
                         f"{flag} cannot be given with it")


def read_options(out: Path, verb: str = "resume") -> dict[str, Any]:
    """The options of the run in ``out``, checked before ``--resume`` (or ``--extend``:
    ``verb`` "extend") uses any of them.

    :raises UsageError: ``out`` holds no run, or its manifest cannot be read or has the
        wrong shape; the message names the manifest and what is wrong with it.
    """
    options: dict[str, Any] = read_manifest(out, verb)["options"]
    return options


def read_manifest(out: Path, verb: str = "resume") -> dict[str, Any]:
    """The manifest of the run in ``out``, checked as :func:`read_options` says."""
    path = out / "manifest.json"
    try:
        text = path.read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{str(out)!r} holds no harness run to {verb}") from None
    except OSError as exc:
        raise UsageError(f"cannot {verb}: {path} cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError(f"cannot {verb}: {path} is not valid JSON") from None
    problem = options_problem(data) or _extended_problem(data)
    if problem:
        raise UsageError(f"cannot {verb}: {path} is damaged: {problem}")
    options: dict[str, Any] = data.get("options") or {}
    if not options.get("grid_spec"):
        raise UsageError(f"{str(out)!r} holds no harness run to {verb}")
    return {**data, "options": options}


def _extended_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's ``extended`` list; None if nothing."""
    extended = data.get("extended", [])
    if not isinstance(extended, list):
        return "'extended' is not a list"
    for i, entry in enumerate(extended):
        spec = entry.get("grid_spec") if isinstance(entry, dict) else None
        if not isinstance(spec, dict):
            return f"extended[{i}].grid_spec is not an object"
        try:
            GridSpec(**spec)
        except TypeError:
            return f"extended[{i}].grid_spec has an unknown field"
    return None


def plugin_files(out: Path, verb: str = "resume") -> list[str]:
    """The local plugin files (``--plugin``) the run in ``out`` was started with; a resumed
    or extended run loads them again, as its cells came from them."""
    return list(read_options(out, verb).get("plugin_files") or [])


def keep_settings(given: Mapping[str, Any], defaults: Mapping[str, Any],
                  saved: Mapping[str, Any], what: str = "resumed") -> dict[str, Any]:
    """A resumed (or extended: ``what``) run's settings are those its cells ran with: flags
    left at their defaults take the saved values, and a flag given with another value is
    refused."""
    kept = {k: saved.get(k, defaults[k]) for k in given}
    for key, value in given.items():
        if value != defaults[key] and value != kept[key]:
            article = "an" if what[0] in "aeiou" else "a"
            raise UsageError(f"--{key.replace('_', '-')} {value} differs from the {what} "
                             f"run's {key} {kept[key]!r}: {article} {what} run keeps the "
                             "settings its cells ran with")
    return kept


@dataclass(frozen=True)
class Start:
    """Where a run's settings come from: its flags and, for a resumed run, its manifest.

    A new run's (``out`` None) are its flags; a resumed run's follow the rules above.
    """

    spec: GridSpec
    #: ``data_dir``, ``download`` and ``windows``; the speed settings come later.
    options: RunOptions
    skip_unavailable: bool
    #: The resumed run's directory; None for a new run.
    out: Path | None = None
    #: The resumed run's options, as its manifest holds them.
    saved: Mapping[str, Any] = field(default_factory=dict)
    #: Every grid of the run, in order (its first, its extensions', and with ``--extend``
    #: the new one): the run's cells are theirs (:func:`expand_run`). Empty: ``spec`` alone.
    specs: tuple[GridSpec, ...] = ()
    #: With ``--extend``: the extension's entry for the manifest's ``extended`` list.
    extension: Mapping[str, Any] | None = None

    @property
    def resumed(self) -> bool:
        return self.out is not None

    @property
    def _what(self) -> str:
        return "extended" if self.extension is not None else "resumed"

    def speed(self, speed: Mapping[str, Any]) -> dict[str, Any]:
        """The speed settings the cells run with."""
        if not self.resumed:
            return dict(speed)
        return keep_settings(speed, {k: getattr(RunOptions(), k) for k in speed},
                             self.saved.get("speed") or {}, self._what)

    def execution(self, execution: CellLimits) -> CellLimits:
        """``execution`` with the resumed run's :data:`RESULT_EXECUTION` settings."""
        if not self.resumed:
            return execution
        kept = keep_settings({k: getattr(execution, k) for k in RESULT_EXECUTION},
                             {k: getattr(CellLimits(), k) for k in RESULT_EXECUTION},
                             self.saved.get("execution") or {}, self._what)
        return replace(execution, **kept)

    def checkpoint_every(self, given: int | None) -> int | None:
        if given is not None or not self.resumed:
            return given
        every: int | None = self.saved.get("checkpoint_every")
        return every

    def save_models(self, flag: bool) -> bool:
        return flag or bool(self.saved.get("save_models"))

    def repeats(self, given: int | None) -> int:
        """``--repeats``: as given, else the resumed run's, else 0."""
        if given is not None or not self.resumed:
            return given or 0
        saved = self.saved.get("repeats")
        return saved if isinstance(saved, int) else 0


def resume(out: Path, skip_unavailable: bool, windows: int, data_dir: Path) -> Start:
    """The run in ``out``, continued: its grid and options from its manifest.

    ``windows`` is ``--windows`` (refused if it differs from the run's); ``data_dir`` is
    the default for a manifest that names none.
    """
    manifest = read_manifest(out)  # checked: a damaged manifest is a one-line error
    saved = manifest["options"]
    # the cells' windows are their curves' resolution: kept, like the speed settings
    kept = keep_settings({"windows": windows}, {"windows": RunOptions.windows}, saved)
    options = RunOptions(data_dir=Path(saved.get("data_dir", data_dir)),
                         download=bool(saved.get("download")), windows=int(kept["windows"]))
    spec = GridSpec(**saved["grid_spec"])
    try:  # the checks a grid from the command line passes (expand runs them again)
        check_spec(spec)
    except UsageError as exc:
        raise UsageError(f"cannot resume: {out / 'manifest.json'} is damaged: "
                         f"options.grid_spec.{exc}") from None
    return Start(spec=spec, options=options,
                 skip_unavailable=bool(saved.get("skip_unavailable")) or skip_unavailable,
                 out=out, saved=saved, specs=_run_specs(manifest))


def _run_specs(manifest: Mapping[str, Any]) -> tuple[GridSpec, ...]:
    """The grids a run was given: its first, then each extension's."""
    return (GridSpec(**manifest["options"]["grid_spec"]),
            *(GridSpec(**e["grid_spec"]) for e in manifest.get("extended", [])))


def extend(out: Path, spec: GridSpec, skip_unavailable: bool, windows: int,
           data_dir: Path | None, argv: Sequence[str]) -> Start:
    """The run in ``out``, grown by the grid ``spec`` (``--extend``): see the module's
    docstring. ``data_dir`` is ``--data-dir`` (None: the run's)."""
    manifest = read_manifest(out, "extend")
    saved = manifest["options"]
    kept = keep_settings({"windows": windows}, {"windows": RunOptions.windows}, saved,
                         "extended")
    options = RunOptions(data_dir=data_dir or Path(saved.get("data_dir", "data")),
                         download=bool(saved.get("download")), windows=int(kept["windows"]))
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "command": ["harness", *argv], "grid_spec": asdict(spec)}
    return Start(spec=spec, options=options,
                 skip_unavailable=bool(saved.get("skip_unavailable")) or skip_unavailable,
                 out=out, saved=saved, specs=(*_run_specs(manifest), spec), extension=entry)


def expand_run(start: Start, problems: ProblemRegistry, optimizers: OptimizerRegistry,
               schedules: ScheduleRegistry | None = None) -> ExpandedGrid:
    """The run's cells: each of its grids expanded, in order, a cell in several once."""
    grids = [expand(s, problems, optimizers, skip_unavailable=start.skip_unavailable,
                    schedules=schedules)
             for s in (start.specs or (start.spec,))]
    if len(grids) == 1:
        return grids[0]
    cells = {c.key: c for g in grids for c in g.cells}
    return ExpandedGrid(cells=tuple(cells.values()),
                        devices=tuple(dict.fromkeys(d for g in grids for d in g.devices)),
                        unavailable={k: v for g in grids for k, v in g.unavailable.items()})


#: The fields of a cell that define it besides its axes: an extension may not change them.
DEFINING = ("steps", "batch_size", "versions")


def check_extension(grid: ExpandedGrid, out: Path) -> None:
    """Refuse a grid that would change what defines a finished cell of the run (its steps,
    batch size, or the versions of its code): one line naming the cell and the change."""
    def identity(d: Mapping[str, Any]) -> str:
        return json.dumps({k: v for k, v in d.items() if k not in DEFINING}, sort_keys=True)

    good, _ = RunDirectory(out).scan()
    finished = {identity(r["cell"]): r["cell"] for r in good}
    for cell in grid.cells:
        new = cell.to_dict()
        old = finished.get(identity(new))
        if old is None or all(old.get(k) == new[k] for k in DEFINING):
            continue
        key = next(k for k in DEFINING if old.get(k) != new[k])
        was, now = old.get(key), new[key]
        if key == "versions":
            role = next(r for r in sorted(set(was or {}) | set(now))
                        if (was or {}).get(r) != now.get(r))
            key, was, now = f"{role} code", (was or {}).get(role), now.get(role)
        raise UsageError(f"--extend: {cell.describe(with_hyper=True)} ran with {key} {was} "
                         f"and this grid gives {now}; an extended run keeps the settings its "
                         "cells ran with (run the new settings into another directory)")
    keys = {c.key for c in grid.cells}
    for record in good:
        if record["key"] not in keys:
            cell = Cell.from_dict(record["cell"])
            raise UsageError(f"--extend: the run's cell {cell.describe(with_hyper=True)} is not "
                             "among the cells its grids give now (a default or a plugin changed "
                             "since it ran); an extended run keeps the settings its cells ran "
                             "with (run the new settings into another directory)")


def prepare_output_dir(path: Path) -> Path:
    """Refuse to mix a new grid into an existing run's records (or its manifest: a run
    stopped before its first cell finished is continued with ``--resume`` too)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} exists and is not a directory")
    if ((path / "cells").is_dir() and any((path / "cells").iterdir())) \
            or (path / "manifest.json").exists():
        raise UsageError(f"--out {str(path)!r} already holds a run; choose another "
                         f"directory, continue it with --resume {path}, or add this grid's "
                         "new cells to it with --extend")
    return path


#: Where ``--resume`` moves a record whose key no cell of the run has any more.
STALE_DIR = "stale"


@dataclass(frozen=True)
class Plan:
    todo: tuple[Cell, ...]
    done: int
    corrupt: tuple[Path, ...]
    #: Records of cells the grid no longer has (their key changed: a plugin's code or a
    #: wrapped library did), moved to ``cells/stale/`` by :func:`set_aside_corrupt`.
    stale: tuple[Path, ...] = ()


def plan(grid: ExpandedGrid, run_dir: RunDirectory, *, rerun_failed: bool) -> Plan:
    """The cells without a usable record, by content key (independent of axis order)."""
    good, corrupt = run_dir.scan()
    status = {r["key"]: r["status"] for r in good}
    keep = (Status.OK, Status.SKIPPED, Status.PRUNED, *(() if rerun_failed else FAILED))
    todo = tuple(c for c in grid.cells if status.get(c.key) not in keep)
    keys = {c.key for c in grid.cells}
    stale = tuple(run_dir.cells_dir / f"{r['cell_id']}.json" for r in good
                  if r["key"] not in keys)
    return Plan(todo=todo, done=len(grid.cells) - len(todo), corrupt=tuple(corrupt),
                stale=stale)


def set_aside_corrupt(work: Plan, run_dir: RunDirectory) -> None:
    """Move each corrupt record aside (``.corrupt``), saying so: its cell runs again; and
    each stale one (a key the run's cells no longer have) into ``cells/stale/``, so that
    ``cells/`` holds only records of the run's cells."""
    for path in work.corrupt:
        print(f"harness: warning: {path} is corrupt ({run_dir.corrupt_reasons[path]}); "
              "its cell runs again", file=sys.stderr)
        path.replace(path.with_suffix(".corrupt"))
    if work.stale:
        aside = run_dir.cells_dir / STALE_DIR
        aside.mkdir(exist_ok=True)
        for path in work.stale:
            path.replace(aside / path.name)
        print(f"harness: {len(work.stale)} record(s) of cells whose key changed (their code "
              f"or a library they wrap changed) moved to {aside}", file=sys.stderr)


def record_resume(manifest: dict[str, Any], previous: Mapping[str, Any],
                  argv: Sequence[str], extension: Mapping[str, Any] | None = None) -> None:
    """A resumed run is still the one its first command started: keep that command and
    its time in ``manifest``, and add this resume to the list (or ``extension``, with the
    cells it added, to ``extended``; the first grid stays ``options.grid_spec``)."""
    if not previous:
        return
    manifest["created"] = previous.get("created", manifest["created"])
    manifest["command"] = previous.get("command", manifest["command"])
    if isinstance(previous.get("extended"), list):
        manifest["extended"] = list(previous["extended"])
    if extension is not None:
        known = {c.get("cell_id") for c in previous.get("cells", []) if isinstance(c, dict)}
        manifest["options"]["grid_spec"] = previous["options"]["grid_spec"]
        manifest["extended"] = [*manifest.get("extended", []), {
            **extension, "cells": [i for i in manifest["cell_order"] if i not in known]}]
        if "resumed" in previous:
            manifest["resumed"] = previous["resumed"]
        return
    manifest["resumed"] = [*previous.get("resumed", []), {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": ["harness", *argv]}]

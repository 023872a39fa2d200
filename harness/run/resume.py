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
  by the cell's content key, not its place in the grid.
* **The manifest** keeps the run's first ``created`` and ``command``; each resume is
  appended to ``resumed`` (:func:`record_resume`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.cell import Cell
from harness.errors import UsageError
from harness.executor import CellLimits, RunOptions
from harness.grid import ExpandedGrid, GridSpec
from harness.outcome import FAILED, Status
from harness.results import RunDirectory
from harness.run.manifest import options_problem

#: Flags (argparse dests) that shape the grid; with --resume the grid comes from the manifest.
GRID_FLAGS = ("grid", "preset", "models", "optimizers", "devices", "seeds", "steps",
              "batch_size", "out", "data_dir")
#: Execution flags that change what a cell computes, not only how fast or where.
RESULT_EXECUTION = ("deterministic", "cudnn_benchmark")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse grid flags with ``--resume``, and ``--rerun-failed`` without it."""
    if args.resume is None:
        if args.rerun_failed:
            raise UsageError("--rerun-failed goes with --resume DIR")
        return
    given = [f for f in GRID_FLAGS if getattr(args, f, None) not in (None, False)]
    if given or args.sets:
        flag = "--set" if args.sets and not given else f"--{given[0].replace('_', '-')}"
        if flag == "--grid":
            flag = "a grid file"
        raise UsageError(f"--resume takes the grid from the run's manifest; "
                         f"{flag} cannot be given with it")


def read_options(out: Path) -> dict[str, Any]:
    """The options of the run in ``out``, checked before ``--resume`` uses any of them.

    :raises UsageError: ``out`` holds no run, or its manifest cannot be read or has the
        wrong shape; the message names the manifest and what is wrong with it.
    """
    path = out / "manifest.json"
    try:
        text = path.read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{str(out)!r} holds no harness run to resume") from None
    except OSError as exc:
        raise UsageError(f"cannot resume: {path} cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError(f"cannot resume: {path} is not valid JSON") from None
    problem = options_problem(data)
    if problem:
        raise UsageError(f"cannot resume: {path} is damaged: {problem}")
    options: dict[str, Any] = data.get("options") or {}
    if not options.get("grid_spec"):
        raise UsageError(f"{str(out)!r} holds no harness run to resume")
    return options


def plugin_files(out: Path) -> list[str]:
    """The local plugin files (``--plugin``) the run in ``out`` was started with; a resumed
    run loads them again, as its cells came from them."""
    return list(read_options(out).get("plugin_files") or [])


def keep_settings(given: Mapping[str, Any], defaults: Mapping[str, Any],
                  saved: Mapping[str, Any]) -> dict[str, Any]:
    """A resumed run's settings are those its cells ran with: flags left at their defaults
    take the saved values, and a flag given with another value is refused."""
    kept = {k: saved.get(k, defaults[k]) for k in given}
    for key, value in given.items():
        if value != defaults[key] and value != kept[key]:
            raise UsageError(f"--{key.replace('_', '-')} {value} differs from the resumed "
                             f"run's {key} {kept[key]!r}: a resumed run keeps the settings "
                             "its cells ran with")
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

    @property
    def resumed(self) -> bool:
        return self.out is not None

    def speed(self, speed: Mapping[str, Any]) -> dict[str, Any]:
        """The speed settings the cells run with."""
        if not self.resumed:
            return dict(speed)
        return keep_settings(speed, {k: getattr(RunOptions(), k) for k in speed},
                             self.saved.get("speed") or {})

    def execution(self, execution: CellLimits) -> CellLimits:
        """``execution`` with the resumed run's :data:`RESULT_EXECUTION` settings."""
        if not self.resumed:
            return execution
        kept = keep_settings({k: getattr(execution, k) for k in RESULT_EXECUTION},
                             {k: getattr(CellLimits(), k) for k in RESULT_EXECUTION},
                             self.saved.get("execution") or {})
        return replace(execution, **kept)

    def checkpoint_every(self, given: int | None) -> int | None:
        if given is not None or not self.resumed:
            return given
        every: int | None = self.saved.get("checkpoint_every")
        return every

    def save_models(self, flag: bool) -> bool:
        return flag or bool(self.saved.get("save_models"))


def resume(out: Path, skip_unavailable: bool, windows: int, data_dir: Path) -> Start:
    """The run in ``out``, continued: its grid and options from its manifest.

    ``windows`` is ``--windows`` (refused if it differs from the run's); ``data_dir`` is
    the default for a manifest that names none.
    """
    saved = read_options(out)  # checked: a damaged manifest is a one-line error
    # the cells' windows are their curves' resolution: kept, like the speed settings
    kept = keep_settings({"windows": windows}, {"windows": RunOptions.windows}, saved)
    options = RunOptions(data_dir=Path(saved.get("data_dir", data_dir)),
                         download=bool(saved.get("download")), windows=int(kept["windows"]))
    return Start(spec=GridSpec(**saved["grid_spec"]), options=options,
                 skip_unavailable=bool(saved.get("skip_unavailable")) or skip_unavailable,
                 out=out, saved=saved)


def prepare_output_dir(path: Path) -> Path:
    """Refuse to mix a new grid into an existing run's records (or its manifest: a run
    stopped before its first cell finished is continued with ``--resume`` too)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} exists and is not a directory")
    if ((path / "cells").is_dir() and any((path / "cells").iterdir())) \
            or (path / "manifest.json").exists():
        raise UsageError(f"--out {str(path)!r} already holds a run; choose another "
                         f"directory or continue it with --resume {path}")
    return path


@dataclass(frozen=True)
class Plan:
    todo: tuple[Cell, ...]
    done: int
    corrupt: tuple[Path, ...]


def plan(grid: ExpandedGrid, run_dir: RunDirectory, *, rerun_failed: bool) -> Plan:
    """The cells without a usable record, by content key (independent of axis order)."""
    good, corrupt = run_dir.scan()
    status = {r["key"]: r["status"] for r in good}
    keep = (Status.OK, Status.SKIPPED, *(() if rerun_failed else FAILED))
    todo = tuple(c for c in grid.cells if status.get(c.key) not in keep)
    return Plan(todo=todo, done=len(grid.cells) - len(todo), corrupt=tuple(corrupt))


def set_aside_corrupt(work: Plan, run_dir: RunDirectory) -> None:
    """Move each corrupt record aside (``.corrupt``), saying so: its cell runs again."""
    for path in work.corrupt:
        print(f"harness: warning: {path} is corrupt ({run_dir.corrupt_reasons[path]}); "
              "its cell runs again", file=sys.stderr)
        path.replace(path.with_suffix(".corrupt"))


def record_resume(manifest: dict[str, Any], previous: Mapping[str, Any],
                  argv: Sequence[str]) -> None:
    """A resumed run is still the one its first command started: keep that command and
    its time in ``manifest``, and add this resume to the list."""
    if not previous:
        return
    manifest["created"] = previous.get("created", manifest["created"])
    manifest["command"] = previous.get("command", manifest["command"])
    manifest["resumed"] = [*previous.get("resumed", []), {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": ["harness", *argv]}]

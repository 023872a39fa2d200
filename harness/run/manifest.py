"""The run manifest: what was run, on what hardware, with which versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

import harness
from harness.executor import CellLimits, RunOptions
from harness.grid import ExpandedGrid, GridSpec
from harness.limits import BOUNDS
from harness.plugins import PluginHost
from harness.results import conforms, json_type, manifest_problems
from harness.run.provenance import provenance
from harness.train.fastpaths import LOADERS, OPT_IMPLS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.partition(":")[2] or 0)
        if index < torch.cuda.device_count():
            return torch.cuda.get_device_name(index)
    if device == "mps":
        return "Apple MPS"
    if device == "cpu":
        return cpu_model()
    return "unavailable"


def git_commit() -> dict[str, Any] | None:
    """The commit of the harness checkout, when it runs from one."""
    root = Path(harness.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def versions(host: PluginHost) -> dict[str, Any]:
    libs = ("torch", "torchvision", "numpy", "pandas", "pluggy", "gymnasium")
    return {
        "python": sys.version.split()[0],
        "harness": harness.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        **{lib: _version(lib) for lib in libs},
        "plugins": host.distribution_versions(),
    }


def build_manifest(
    argv: Sequence[str], grid: ExpandedGrid, host: PluginHost, options: dict[str, Any]
) -> dict[str, Any]:
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": ["harness", *argv],
        "options": options,
        "cells": [c.to_dict() | {"cell_id": c.cell_id} for c in grid.cells],
        "cell_order": [c.cell_id for c in grid.cells],
        "devices": {d: device_name(d) for d in grid.devices},
        "unavailable_devices": grid.unavailable,
        "versions": versions(host),
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "hostname": platform.node(),
        },
        "git": git_commit(),  # harness's own checkout; the user's is "repository"
        **provenance(host.distribution_versions()),
        "plugins": [asdict(p) for p in host.plugins],
        "plugins_metadata": host.manifest_metadata(),
        **_catalogue(grid, host),
    }


def _catalogue(grid: ExpandedGrid, host: PluginHost) -> dict[str, Any]:
    """What the report labels arms and sections with: each problem's description, each
    optimizer's capabilities (closure, second_order, modes) and description, and each
    schedule's, for those the cells use (so that reading the run needs no plugin's
    registration, which imports torch)."""
    models = dict.fromkeys(c.problem for c in grid.cells)
    problems = {n: {"description": host.problems.get(n).description}
                for n in models if n in host.problems}
    names = dict.fromkeys(n for c in grid.cells for n in (c.optimizer, *(r[1] for r in c.roles)))
    optimizers = {n: {"capabilities": list(host.optimizers.get(n).capabilities.labels()),
                      "description": host.optimizers.get(n).description}
                  for n in names if n in host.optimizers}
    used = dict.fromkeys(n for c in grid.cells
                         for n in (c.schedule, *(r[1] for r in c.role_schedules)) if n)
    schedules = {n: {"description": host.schedules.get(n).description,
                     "defaults": dict(host.schedules.get(n).defaults)}
                 for n in used if n in host.schedules}
    return {"problems": problems, "optimizers": optimizers, "schedules": schedules}


#: The options ``--resume`` reads from a manifest, with their shapes and the words for a
#: wrong one. ``speed``, ``execution`` and ``grid_spec`` are checked field by field.
RESUME_OPTIONS: dict[str, tuple[Any, str]] = {
    "data_dir": (str, "a string"),
    "download": (bool, "true or false"),
    "windows": (int, "an integer"),
    "skip_unavailable": (bool, "true or false"),
    "checkpoint_every": (int | None, "an integer or null"),
    "save_models": (bool, "true or false"),
    "speed": (dict[str, Any], "an object"),
    "execution": (dict[str, Any], "an object"),
    "grid_spec": (dict[str, Any], "an object"),
    "plugin_files": (list[str], "a list of paths"),
    "repeats": (int, "an integer"),
}


@dataclass(frozen=True)
class ExecutionRecord(CellLimits):
    """``options.execution`` as manifests hold it: the cell limits, and in those written
    before executors had settings of their own, the local executor's knobs too (now in
    ``options.executor.settings``). Only the shapes are checked."""

    workers: int = 1
    workers_per_device: int = 1
    pin_cpus: bool = False
    cuda_mps: bool = False


#: The manifest's options that hold a bounded number (``section.key``) -> the option
#: whose range :data:`harness.limits.BOUNDS` gives.
BOUNDED_OPTIONS = {"windows": "windows", "checkpoint_every": "checkpoint_every",
                   "speed.loader_workers": "loader_workers", "grid_spec.steps": "steps",
                   "grid_spec.batch_size": "batch_size", "repeats": "repeats"}


def options_problem(data: Any) -> str | None:
    """What is wrong with a manifest's shape or its options, for ``--resume``; None if
    nothing."""
    wrong = manifest_problems(data)
    if wrong:
        key, words = wrong[0]
        return f"{key!r} is not {words}" if key else \
            f"it holds {json_type(data)}, not a JSON object"
    options = data.get("options", {})
    for key, (hint, words) in RESUME_OPTIONS.items():
        if key in options and not conforms(options[key], hint):
            return f"options.{key} is not {words}"
    for key, known in (("loader", LOADERS), ("opt_impl", OPT_IMPLS)):
        value = options.get("speed", {}).get(key, known[0])
        if value not in known:
            return f"options.speed.{key} {value!r} is not one of {', '.join(known)}"
    for key, kind in (("speed", RunOptions), ("execution", ExecutionRecord),
                      ("grid_spec", GridSpec)):
        problem = _fields_problem(options.get(key, {}), kind, f"options.{key}",
                                  strict=kind is GridSpec)
        if problem:
            return problem
    for where, option in BOUNDED_OPTIONS.items():
        section, _, key = where.rpartition(".")
        value = (options.get(section, {}) if section else options).get(key)
        low, high = BOUNDS[option]
        if isinstance(value, int) and not low <= value <= high:
            return f"options.{where} {value} is out of range ({low} to {high})"
    return None


def _fields_problem(values: dict[str, Any], kind: type, where: str, *,
                    strict: bool) -> str | None:
    """A value of ``values`` without the shape of ``kind``'s field of its name; with
    ``strict``, also a name ``kind`` has no field for."""
    hints = typing.get_type_hints(kind)
    names = [f.name for f in fields(kind)]
    for key, value in values.items():
        if key not in names:
            if strict:
                return f"{where} has an unknown field {key!r}"
            continue
        if not conforms(value, hints[key]):
            return f"{where}.{key} is not of the type {_type_name(hints[key])}"
    return None


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("pathlib.", "").replace("<class '", "") \
        .replace("'>", "")

"""The run manifest: what was run, on what hardware, with which versions."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import harness
from harness.grid import ExpandedGrid
from harness.plugins import PluginHost


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
        "git": git_commit(),
        "plugins": [asdict(p) for p in host.plugins],
        "plugins_metadata": host.manifest_metadata(),
    }

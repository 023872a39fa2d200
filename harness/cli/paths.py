"""The results directories a command is given, checked before anything heavy loads."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError


def results_dir(arg: str) -> Path:
    """``arg`` as a results directory (a folder with ``cells/``), or one line saying why not."""
    path = Path(arg)
    if not path.is_dir():
        raise UsageError(f"no results directory at {arg!r}")
    if not (path / "cells").is_dir():
        raise UsageError(f"{arg!r} holds no harness results (no cells/ folder)")
    return path

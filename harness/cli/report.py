"""``harness report``: the HTML report, with the figures plugins contribute."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from harness.cli.paths import results_dir
from harness.errors import UsageError
from harness.imports import collector_paused
from harness.plugins import files, get_host, use_files
from harness.report.painter import Painter


def cmd_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    runs = [results_dir(d) for d in args.dir]
    recorded = [f for run in runs for f in _recorded_files(run)]
    use_files(files.resolve([*args.plugin_paths, *dict.fromkeys(recorded)]))
    # The drawing process starts first: it imports matplotlib and loads the plugins while
    # this process imports pandas and reads the runs (harness.report.painter).
    with Painter(None, args.workers) as painter:
        with collector_paused():  # pandas and the report's tables (harness.imports)
            from harness.report.build import build_report

        index = build_report(runs, out_dir=Path(args.out) if args.out else None,
                             host=get_host(), cost=args.cost, workers=args.workers,
                             painter=painter)
    print(f"report written to {index}")
    return 0


def _recorded_files(run: Path) -> list[str]:
    """The local plugin files the run was made with, those still there: their problems'
    targets and their figures belong in its report."""
    try:
        recorded = json.loads((run / "manifest.json").read_text("utf-8"))["options"]
        paths = recorded.get("plugin_files") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return [p for p in paths if isinstance(p, str) and os.path.exists(p)]

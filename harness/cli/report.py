"""``harness report``: the HTML report, with the figures plugins contribute."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from harness.cli.read import results_dir
from harness.plugins import get_host


def cmd_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.report import build_report

    index = build_report(results_dir(args.dir), out_dir=Path(args.out) if args.out else None,
                         host=get_host())
    print(f"report written to {index}")
    return 0

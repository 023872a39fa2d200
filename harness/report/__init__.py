"""Reports from finished runs: statistics across seeds, figures in seaborn's look, one HTML page.

Importing this package is cheap: plugins import :class:`ReportFigure` and
:class:`ReportRun` from here for their ``report_figures`` hook (pandas is imported when
they are first asked for), and :func:`build_report` loads the drawing code on call.
``harness report`` starts its drawing process (:mod:`harness.report.painter`) before
anything here imports pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.plugins import PluginHost
    from harness.report.model import CellView, ReportFigure, ReportRun

_MODEL = ("CellView", "ReportFigure", "ReportRun")


def __getattr__(name: str) -> Any:
    """The report model's classes, imported (with pandas) when first asked for."""
    if name in _MODEL:
        from harness.report import model

        return getattr(model, name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")

__all__ = ["CellView", "ReportFigure", "ReportRun", "build_report"]


def build_report(run_dir: Path | str | Sequence[Path | str], *, out_dir: Path | None = None,
                 host: PluginHost | None = None, cost: str = "steps",
                 workers: int | None = None) -> Path:
    """Write ``run_dir/report/index.html`` with its figures and CSV tables; return its path.

    :param run_dir: a results directory written by ``harness run``, or several: one page
        combines them (see :mod:`harness.report.runs`: identical cells counted once, arms
        labelled over all of them), written by default to ``report-combined`` in the first.
    :param out_dir: where to write instead of ``run_dir/report``.
    :param host: the plugin host whose ``report_figures`` hooks add pictures
        (default: the process-wide one).
    :param cost: the axis of the performance profile and the cost-to-target figure:
        ``steps``, ``samples``, ``flops`` (reproducible) or ``time`` (training seconds).
    :param workers: processes that draw the page's parts (forked; default one per
        available CPU, ``1`` draws in this process). The page is the same either way.
    :raises harness.errors.UsageError: a ``run_dir`` holds no harness results or is given
        twice.
    """
    from harness.report.build import build_report as build

    return build(run_dir, out_dir=out_dir, host=host, cost=cost, workers=workers)

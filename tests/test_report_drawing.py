"""How the report draws: saving lays a figure out itself and draws it once, without the minor
ticks nobody sees, pixel for pixel as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image as mimage
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from harness.report import figures as F


# -- saving: drawn once, minor ticks nobody sees dropped, the same pixels ------------------------
def _log_figure(span: float) -> Figure:
    with F.theme():
        fig = F.new_figure(6, 3)
        axes = fig.subplots(1, 2)
        x = np.linspace(1, 10, 50)
        for ax in axes:
            ax.plot(x, 3 * span ** (x / 10), label="a line")
            ax.set_yscale("log")
            ax.set_xlabel("step")
        axes[0].set_title("a panel")
        axes[0].legend()
        fig.suptitle("a figure")
    return fig


@pytest.mark.parametrize("span", [1e4, 3.0])
def test_saving_changes_no_pixel(span: float, tmp_path: Path) -> None:
    """Saved by figures.save (laid out first, drawn once, hidden minor ticks off) or by a
    plain savefig (matplotlib's own pass to lay it out, then a draw), the same PNG."""
    with F.theme():
        plain, ours = _log_figure(span), _log_figure(span)
        F.save(ours, tmp_path / "ours.png")
        plain.savefig(tmp_path / "plain.png", format="png", dpi=F.DPI)
    a, b = mimage.imread(tmp_path / "ours.png"), mimage.imread(tmp_path / "plain.png")
    assert a.shape == b.shape and np.array_equal(a, b)
    for ax in ours.axes:
        dropped = isinstance(ax.yaxis.get_minor_locator(), NullLocator)
        # four decades: minor ticks unlabelled, dropped; half a decade: labelled, kept
        assert dropped == (span > 10)
    if span < 10:
        with F.theme():
            labels = ours.axes[0].yaxis.get_minor_formatter().format_ticks(
                list(ours.axes[0].yaxis.get_minorticklocs()))
        assert any(labels)


def test_a_figure_is_drawn_once_to_save_it(tmp_path: Path) -> None:
    draws: list[Any] = []
    with F.theme():
        fig = _log_figure(1e4)
        FigureCanvasAgg(fig)
        fig.canvas.mpl_connect("draw_event", draws.append)
        F.save(fig, tmp_path / "once.png")
    assert len(draws) == 1  # savefig with a layout engine draws twice
    assert fig.get_layout_engine() is not None  # put back


def test_minor_ticks_with_a_mark_or_a_grid_line_are_kept(tmp_path: Path) -> None:
    with F.theme():
        fig = _log_figure(1e4)
        marked, gridded = fig.axes
        marked.tick_params(axis="y", which="minor", left=True)  # a visible tick mark
        gridded.yaxis.grid(True, which="minor")
        F.save(fig, tmp_path / "kept.png")
    assert not isinstance(marked.yaxis.get_minor_locator(), NullLocator)
    assert not isinstance(gridded.yaxis.get_minor_locator(), NullLocator)

"""A cheap layout engine for the report's figures: margins from label lengths.

matplotlib's constrained layout measures the rendered extent of every tick label, title and
legend, several times per figure: on the quick preset's report that was about half of all
drawing time. :class:`MarginLayout` instead sizes each margin once, at draw time, from the
widest tick label of each axis and the presence of titles and axis labels. It lays
out every grid of subplots in a figure (the figure's own and a suptitle above it); axes
outside a grid (colorbars, insets) keep their position.

Only the widest tick label of each axis (the one with the most characters) is measured;
titles and axis labels count as one line of text each. A legend placed above an axes
(``loc="lower left", bbox_to_anchor=(0, 1)``) is measured, and its height added on top.
"""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.layout_engine import LayoutEngine

#: Inches per character of a tick label (used only without a renderer) and per line of
#: text at the report's font sizes (seaborn's "notebook" context scaled by 0.8).
CHAR_IN = 0.09
LINE_IN = 0.19
PAD_IN = 0.12


def _widest(labels: list[Any], renderer: Any, dpi: float) -> float:
    """Inches of the tick label with the most characters (measured: one text per axis)."""
    shown = [t for t in labels if t.get_visible() and t.get_text()]
    if not shown:
        return 0.0
    longest = max(shown, key=lambda t: len(t.get_text()))
    if renderer is None:
        return CHAR_IN * len(longest.get_text())
    return float(longest.get_window_extent(renderer).width) / dpi + 0.04


def _needs(ax: Axes, renderer: Any, dpi: float) -> tuple[float, float, float, float]:
    """Inches this axes needs on its (left, bottom, right, top) for its labels."""
    left = PAD_IN
    if ax.yaxis.get_visible() and ax.yaxis.get_ticks_position() != "right":
        left += _widest(ax.get_yticklabels(), renderer, dpi) + 0.06
    if ax.get_ylabel():
        left += LINE_IN + 0.04
    bottom = PAD_IN
    if ax.xaxis.get_visible():
        bottom += LINE_IN if ax.get_xticklabels() else 0.0
    if ax.get_xlabel():
        bottom += LINE_IN + 0.04
    top = PAD_IN + (LINE_IN + 0.06 if ax.get_title() else 0.0) + _legend_above(ax, renderer,
                                                                             dpi)
    right = PAD_IN + 0.08  # the last tick label reaches past the axes' right edge
    return left, bottom, right, top


def _legend_above(ax: Axes, renderer: Any, dpi: float) -> float:
    """Inches of a legend anchored on the axes' top edge or above it and placed above
    the anchor (``loc="lower ..."``, ``bbox_to_anchor=(x, 1)``); 0 for any other legend."""
    legend = ax.get_legend()
    if legend is None or not legend.get_visible():
        return 0.0
    anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    if anchor.y0 < 1 - 1e-9:  # inside the axes (never measured: "best" would search)
        return 0.0
    if renderer is None:
        return LINE_IN * len(legend.get_texts())
    box = legend.get_window_extent(renderer)
    return float(box.height) / dpi + 0.04 if box.y0 >= ax.bbox.y1 - 1 else 0.0


class MarginLayout(LayoutEngine):
    """Place every subplot grid with margins sized from its labels (see the module doc)."""

    _adjust_compatible = True
    _colorbar_gridspec = False

    def set(self, **kwargs: Any) -> None:
        """No parameters: margins come from the labels."""
        if kwargs:
            raise TypeError(f"MarginLayout takes no parameters, got {sorted(kwargs)}")

    def execute(self, fig: Figure) -> None:
        width, height = fig.get_size_inches()
        # the renderer matplotlib's own engines measure with; without one, estimate
        renderer = getattr(fig, "_get_renderer", lambda: None)()
        grids: dict[int, tuple[GridSpec, list[tuple[Axes, Any]]]] = {}
        for ax in fig.axes:
            spec = ax.get_subplotspec() if ax.get_visible() else None
            gs = spec.get_gridspec() if spec is not None else None
            if spec is None or not isinstance(gs, GridSpec):
                continue
            grids.setdefault(id(gs), (gs, []))[1].append((ax, spec))
        suptitle = getattr(fig, "_suptitle", None)
        extra_top = LINE_IN + 0.12 if suptitle is not None and suptitle.get_text() else 0.0
        for gs, members in grids.values():
            nrows, ncols = gs.get_geometry()
            needs = [(_needs(ax, renderer, fig.dpi), spec) for ax, spec in members]
            left = max(n[0] for n, s in needs if s.colspan.start == 0)
            right = max(n[2] for n, s in needs if s.colspan.stop == ncols)
            top = max(n[3] for n, s in needs if s.rowspan.start == 0) + extra_top
            bottom = max(n[1] for n, s in needs if s.rowspan.stop == nrows)
            # between columns: the next column's left labels and this one's right overhang
            gap_w = max(n[0] + n[2] for n, _ in needs)
            gap_h = max(n[1] + n[3] for n, _ in needs)
            axis_w = max((width - left - right - (ncols - 1) * gap_w) / ncols, 0.1)
            axis_h = max((height - top - bottom - (nrows - 1) * gap_h) / nrows, 0.1)
            gs.update(left=min(left / width, 0.45), right=max(1 - right / width, 0.55),
                      bottom=min(bottom / height, 0.45), top=max(1 - top / height, 0.55),
                      wspace=gap_w / axis_w if ncols > 1 else None,
                      hspace=gap_h / axis_h if nrows > 1 else None)
            for ax, spec in members:  # GridSpec.update moves only pyplot's figures' axes
                ax.set_position(spec.get_position(fig))
        if suptitle is not None:
            suptitle.set_y(1 - 0.08 / height)
            suptitle.set_va("top")

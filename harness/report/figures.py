"""The report's own figures, drawn on matplotlib's ``Agg`` backend in seaborn's look.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state), so
drawing them never opens a window and never leaks figures between reports. The
helpers :func:`new_figure`, :func:`arm_styles`, :func:`arm_palette` and :func:`theme` are
public: the built-in figures plugin and third-party ``report_figures`` hooks may use them
(with :meth:`ReportRun.arms`) to look like the rest of the report.
"""

from __future__ import annotations

import sys

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # never switch a backend someone chose
    matplotlib.use("Agg")

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from harness.atomic import write_atomic
from harness.outcome import Status
from harness.report import stats
from harness.report.layout import MarginLayout
from harness.report.model import ReportRun

#: Curve columns that are labels or axes, never plotted as values.
_CURVE_KEYS = {"cell_id", "model", "optimizer", "device", "seed", "step", "elapsed_s",
               "samples", "variant", "arm", "problem"}
DPI = 100
#: zlib's level for the PNGs: 3 encodes the quick preset's figures in two thirds of the
#: time of the default 6, for 7.5 % more bytes.
PNG_COMPRESS_LEVEL = 3


#: The report's style: seaborn's ``axes_style("whitegrid")`` and ``plotting_context(
#: "notebook", font_scale=0.8)``, as data. Importing seaborn (which imports scipy.stats) took
#: a fifth of a report's time for these few values; a test keeps them equal to what the
#: installed seaborn gives. One difference: seaborn's ``image.cmap`` ("rocket") is a colormap
#: seaborn registers when it is imported, so images keep matplotlib's default here. Figure
#: plugins may still import seaborn and draw with it.
THEME: dict[str, Any] = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.facecolor": "white",
    "axes.grid": True, "axes.labelcolor": ".15", "axes.spines.bottom": True,
    "axes.spines.left": True, "axes.spines.right": True, "axes.spines.top": True,
    "figure.facecolor": "white", "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans",
                        "sans-serif"],
    "grid.color": ".8", "grid.linestyle": "-", "lines.solid_capstyle": "round",
    "patch.edgecolor": "w", "patch.force_edgecolor": True, "text.color": ".15",
    "xtick.bottom": False, "xtick.color": ".15", "xtick.direction": "out",
    "xtick.top": False, "ytick.color": ".15", "ytick.direction": "out",
    "ytick.left": False, "ytick.right": False,
    # the notebook context, scaled by 0.8
    "axes.labelsize": 12 * 0.8, "axes.linewidth": 1.25, "axes.titlesize": 12 * 0.8,
    "font.size": 12 * 0.8, "grid.linewidth": 1, "legend.fontsize": 11 * 0.8,
    "legend.title_fontsize": 12 * 0.8, "lines.linewidth": 1.5, "lines.markersize": 6,
    "patch.linewidth": 1, "xtick.labelsize": 11 * 0.8, "xtick.major.size": 6,
    "xtick.major.width": 1.25, "xtick.minor.size": 4, "xtick.minor.width": 1,
    "ytick.labelsize": 11 * 0.8, "ytick.major.size": 6, "ytick.major.width": 1.25,
    "ytick.minor.size": 4, "ytick.minor.width": 1,
}


@contextmanager
def theme() -> Iterator[None]:
    """The report's style (:data:`THEME`: seaborn's), applied only inside the block."""
    with matplotlib.rc_context(cast(Any, THEME)):  # matplotlib types keys as Literals
        yield


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure in the report's style (call inside :func:`theme`), laid out by
    :class:`harness.report.layout.MarginLayout` (margins sized from its labels)."""
    return Figure(figsize=(width, height), dpi=DPI, layout=MarginLayout())


#: The arms' colours: seaborn's colour-blind palette (``color_palette("colorblind")``), 10
#: colours; a test keeps them equal to the installed seaborn's.
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
           "#949494", "#ece133", "#56b4e9")
#: Past the palette's size, each further round of arms gets its own line style and marker
#: (the first round: solid, no marker), so no two arms of a run look alike.
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = (None, "o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class ArmStyle:
    """How one arm is drawn in every figure of a report."""

    color: Any
    linestyle: str = "-"
    marker: str | None = None

    def line(self) -> dict[str, Any]:
        """Keyword arguments for ``Axes.plot`` or ``Axes.step``."""
        kwargs: dict[str, Any] = {"color": self.color, "linestyle": self.linestyle}
        if self.marker is not None:
            kwargs.update(marker=self.marker, markevery=0.1, markersize=4)
        return kwargs


def arm_styles(arms: Sequence[str]) -> dict[str, ArmStyle]:
    """Each arm's colour, line style and marker, by its place in ``arms``: give every figure
    the run's arms (:meth:`ReportRun.arms`), not a figure's own few, and an arm looks the
    same in all of them. Colours repeat past the palette's size; the style and marker then
    tell the arms apart (and the legends show both)."""
    colors = [to_rgb(c) for c in PALETTE]
    out: dict[str, ArmStyle] = {}
    for i, arm in enumerate(dict.fromkeys(arms)):
        round_ = i // len(colors)
        out[arm] = ArmStyle(colors[i % len(colors)], LINESTYLES[round_ % len(LINESTYLES)],
                            MARKERS[round_ % len(MARKERS)])
    return out


def arm_palette(arms: Sequence[str]) -> dict[str, Any]:
    """One colour per arm, the same in every figure of a report (see :func:`arm_styles`)."""
    return {arm: style.color for arm, style in arm_styles(arms).items()}


def style_of(palette: dict[str, Any], arm: str) -> ArmStyle:
    """The style of ``arm`` in a report whose arms are ``palette``'s keys, in order."""
    style = arm_styles(list(palette)).get(arm)
    return style if style is not None else ArmStyle(palette.get(arm))


def _legend(ax: Axes, n: int, **kwargs: Any) -> None:
    """A legend in columns when there are many arms."""
    ax.legend(fontsize="small" if n <= 10 else "x-small", ncols=1 if n <= 8 else 2, **kwargs)


def save(figure: Figure, path: Path) -> Path:
    """Write a PNG (atomically) and free the figure (and close it in pyplot, if it came
    from there)."""
    buffer = io.BytesIO()
    _drop_hidden_minor_ticks(figure)
    engine = _lay_out(figure)
    figure.savefig(buffer, format="png", dpi=DPI,
                   pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    if engine is not None:
        figure.set_layout_engine(engine)
    write_atomic(path, buffer.getvalue())
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return path


def _drop_hidden_minor_ticks(figure: Figure) -> None:
    """Turn off the minor ticks of every axis that draws nothing for them: no tick mark
    (the report's theme hides them), no grid line and no label. A log axis lays out its
    minor ticks anyway, about a tenth of saving a figure; one spanning less than about a
    decade labels them, and keeps them."""
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if isinstance(axis.get_minor_locator(), NullLocator):
                continue
            tick = axis.get_minor_ticks(1)[0]
            if any(line.get_visible() for line in (tick.tick1line, tick.tick2line,
                                                  tick.gridline)):
                continue
            labelled = tick.label1.get_visible() or tick.label2.get_visible()
            if labelled and any(axis.get_minor_formatter().format_ticks(
                    list(axis.get_minorticklocs()))):
                continue
            axis.set_minor_locator(NullLocator())


def _lay_out(figure: Figure) -> Any:
    """Place a :class:`MarginLayout` figure's axes now and take the engine off (returned,
    to put back), so that saving draws the figure once: with a layout engine, ``savefig``
    first draws the whole figure without rendering, only to run the engine once before the
    real draw (which runs without it). Run here instead, the PNG is the same pixel for pixel.
    """
    engine = figure.get_layout_engine()
    if not isinstance(engine, MarginLayout) or figure.dpi != DPI:
        return None
    if type(figure.canvas) is FigureCanvasBase:  # a pyplot figure keeps its own canvas
        FigureCanvasAgg(figure)  # the renderer savefig measures with
    if not isinstance(figure.canvas, FigureCanvasAgg):
        return None
    engine.execute(figure)
    with matplotlib.rc_context({"figure.autolayout": False,
                                "figure.constrained_layout.use": False}):
        figure.set_layout_engine(None)  # no engine (not 'none', which savefig lays out)
    return engine


def _grid(n: int, *, ncols: int = 3, w: float = 4.2, h: float = 2.8) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = new_figure(w * ncols, h * nrows)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


# -- convergence ------------------------------------------------------------------
def train_columns(curves: pd.DataFrame) -> list[str]:
    """Columns logged at every window (training losses), ``loss`` first."""
    windows = curves[curves["step"] > 0]  # step 0 may lack a loss its windows have
    cols = [c for c in curves.columns if c not in _CURVE_KEYS
            and pd.api.types.is_numeric_dtype(curves[c]) and windows[c].notna().all()]
    return sorted(cols, key=lambda c: (c != "loss", c))


def _band(cells: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray, int]:
    kept = cells[["cell_id", x, y]].dropna(subset=[y])  # not every column: it is wide
    pieces = [(g[x].to_numpy(), g[y].to_numpy()) for _, g in kept.groupby("cell_id", sort=False)]
    axis, matrix = stats.common_axis(pieces)
    if len(axis) == 0:
        empty = np.empty(0)
        return empty, empty, empty, empty, 0
    median, lo, hi = stats.median_band(matrix)
    return axis, median, lo, hi, matrix.shape[0]


def band_caption(seed_counts: list[int]) -> str:
    """What the bands of curves over these numbers of seeds are, and how sure."""
    counts = sorted({n for n in seed_counts if n >= stats.MIN_SEEDS})
    if not counts:
        return ""
    levels = ", ".join(f"{100 * stats.median_level(n):.3g}% with {n} seeds" for n in counts)
    text = ("Bands: distribution-free confidence interval of the median from the seeds' "
            f"order statistics ({levels})")
    if any(stats.median_level(n) < stats.LEVEL for n in counts):
        text += "; with fewer than 6 seeds no band reaches 95%, so the band is the seeds' range"
    return text + "."


def convergence_figure(
    run: ReportRun, problem: str, palette: dict[str, Any]
) -> tuple[Figure, str] | None:
    """Training loss (and the target metric) against steps and training seconds.

    One line per arm: the median over seeds, with an order-statistic band of the
    median where there are at least three seeds. Seeds are resampled onto the
    range of the axis they all cover. ``None`` when no ``ok`` cell has a curve.
    """
    ok_ids = set(run.summary.loc[(run.summary["problem"] == problem)
                                 & (run.summary["status"] == Status.OK), "cell_id"])
    curves = run.curves[run.curves["cell_id"].isin(ok_ids)] if len(run.curves) else run.curves
    if curves.empty:
        return None
    rows = train_columns(curves)[:1]
    target = run.target(problem)
    if target is not None and target.metric in curves.columns \
            and curves[target.metric].notna().any() and target.metric not in rows:
        rows.append(target.metric)
    if not rows:
        return None
    fig = new_figure(10, 3.0 * len(rows))
    axes = fig.subplots(len(rows), 2, squeeze=False)
    seeds_seen: list[int] = []
    for r, ycol in enumerate(rows):
        values = curves[ycol].to_numpy(dtype=float)
        log = stats.spans_decades(values)
        for c, (xcol, xlabel) in enumerate((("step", "step"),
                                            ("elapsed_s", "training time (s)"))):
            ax = axes[r][c]
            for arm, cells in curves.groupby("arm", sort=False):
                axis, median, lo, hi, n = _band(cells, xcol, ycol)
                if n == 0:
                    continue
                seeds_seen.append(n)
                style = style_of(palette, str(arm))
                ax.plot(axis, median, label=f"{arm} (n={n})", lw=1.6, **style.line())
                if np.isfinite(lo).any():
                    ax.fill_between(axis, lo, hi, color=style.color, alpha=0.2, lw=0)
            if target is not None and ycol == target.metric and math.isfinite(target.threshold):
                ax.axhline(target.threshold, color="0.3", ls="--", lw=1, label="target")
            if log:
                ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ycol if ycol != "loss" else "training loss (window mean)")
    _legend(axes[0][0], curves["arm"].nunique(), frameon=True)
    fig.suptitle(problem)
    few = bool(seeds_seen) and min(seeds_seen) < stats.MIN_SEEDS
    caption = ("Median over seeds of each optimizer; seeds are resampled onto a common axis "
               "first (the range every seed covers). ")
    caption += (f"Confidence bands are unavailable: fewer than {stats.MIN_SEEDS} seeds."
                if few else band_caption(seeds_seen))
    status = run.summary["status"]
    dropped = int(((run.summary["problem"] == problem) & (status != Status.OK)
                   & (status != Status.SKIPPED)).sum())
    if dropped:
        caption += f" {dropped} cell(s) that did not finish ok are left out (see below)."
    return fig, caption


# -- performance profile ----------------------------------------------------------------
def profile_figure(profile: pd.DataFrame, scores: pd.Series, palette: dict[str, Any],
                   label: str = "time-to-target") -> Figure | None:
    """ρ(τ) per arm as a step function, the score in the legend."""
    if profile.empty:
        return None
    fig = new_figure(6.5, 3.6)
    ax = fig.subplots()
    for arm in profile.columns:
        score = float(scores.get(arm, math.nan))
        ax.step(profile.index, profile[arm], where="post", lw=1.8,
                label=f"{arm} (score {score:.3f})", **style_of(palette, str(arm)).line())
    ax.set_xlim(1, float(profile.index.max()))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"τ ({label} over the best optimizer's)")
    ax.set_ylabel("fraction of problems within τ")
    _legend(ax, len(profile.columns), loc="lower right")
    return fig

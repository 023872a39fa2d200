"""The overview's figures across problems: one axes, a row per problem.

Cost to target, throughput and peak memory are drawn for every problem on one axis by
dividing each seed's value by the best optimizer's median on its problem (log scale, the
best at 1×), so problems counted in different units or of different sizes share it. Each
optimizer has a lane in every row, in its colour from the rest of the report; each seed is a
dot, each optimizer's median a tick; seeds that missed the target are red crosses in a
column at the right. The absolute numbers are in the tables beside the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from harness.outcome import Status
from harness.report.figures import new_figure, style_of

#: Inches of an overview figure's row: per optimizer, and at least.
ARM_IN = 0.13
ROW_IN = 0.4
#: The colour of a seed that missed the target, drawn in the "missed" column.
MISS_COLOR = "#c0392b"


def relative_to_best(frame: pd.DataFrame, column: str, *, higher_better: bool,
                     row: str = "problem") -> pd.Series:
    """Each value of ``column`` over the best arm's median on its ``row``: the highest median
    if ``higher_better``, else the lowest. Medians are over the positive values; a value
    that is not positive, or a row without a positive median, gives NaN."""
    values = pd.to_numeric(frame[column], errors="coerce")
    values = values.where(values > 0)
    medians = values.groupby([frame[row], frame["arm"]], sort=False).median()
    by_row = medians.groupby(level=0, sort=False)
    best = by_row.max() if higher_better else by_row.min()
    return values / frame[row].map(best).astype(float)


@dataclass(frozen=True)
class Rows:
    """An overview figure and the seeds it could not place on its log axis."""

    figure: Figure
    #: Seeds with a value that is not positive (or was not counted): only in the tables.
    left_out: int


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    """Readable multiples between ``lo`` and ``hi``: the densest of a few sets of at most
    nine."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for subs in ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8), (1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3),
                 (1,)):
        ticks = [float(f"{k * 10.0 ** e:.6g}") for e in decades for k in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) <= 9:
            return ticks
    step = math.ceil(len(decades) / 9)
    return [10.0 ** e for e in decades[::step] if lo <= 10.0 ** e <= hi]


@dataclass
class _Lanes:
    """Where an arm's seeds of a problem go on the y axis: the problem's row (the first on
    top), the arm's lane in it (side by side, the first on top), a little jitter."""

    rows: dict[str, int]
    arms: Sequence[str]
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    @property
    def height(self) -> float:
        return 0.8 / max(len(self.arms), 1)

    def centre(self, problem: str, arm: str) -> float:
        return self.rows[problem] + (self.arms.index(arm) - (len(self.arms) - 1) / 2) \
            * self.height

    def seeds(self, frame: pd.DataFrame) -> np.ndarray:
        """The y of each row of ``frame`` (its problem and arm), jittered in the lane."""
        at = [self.centre(p, a) for p, a in zip(frame["problem"], frame["arm"], strict=True)]
        return np.asarray(at, dtype=float) + self.rng.uniform(-0.3, 0.3, len(at)) * self.height


def rows_figure(frame: pd.DataFrame, palette: dict[str, Any], xlabel: str,
                missed: pd.Series | None = None) -> Rows | None:
    """One axes across problems: a row per ``frame["problem"]``, a lane per arm in the arm's
    colour, a dot per seed at its ``ratio`` (log scale, the row's best median at 1×) and a
    tick at the arm's median ratio; seeds that ``missed`` as red crosses in a column at the
    right. ``None`` when the frame is empty."""
    rows = list(dict.fromkeys(frame["problem"]))
    if not rows:
        return None
    arms = [a for a in palette if a in set(frame["arm"])]
    arms += [a for a in dict.fromkeys(frame["arm"]) if a not in arms]
    missed = missed if missed is not None else pd.Series(False, index=frame.index)
    drawn = frame[frame["ratio"].notna() & ~missed]
    row_in = max(ROW_IN, ARM_IN * len(arms) + 0.1)
    legend_cols = _legend_columns(arms, 8.0)
    fig = new_figure(8.0, len(rows) * row_in + 1.1 + 0.2 * math.ceil((len(arms) + 2)
                                                                      / legend_cols))
    ax = fig.subplots()
    ax.set_xscale("log")
    lanes = _Lanes({problem: i for i, problem in enumerate(rows)}, arms)
    medians = drawn.groupby(["problem", "arm"], sort=False)["ratio"].median()
    for arm in arms:
        style = style_of(palette, arm)
        own = drawn[drawn["arm"] == arm]
        ax.scatter(own["ratio"], lanes.seeds(own), s=16, color=style.color,
                   marker=style.marker or "o", alpha=0.75, lw=0, zorder=3)
        mine = medians[medians.index.get_level_values("arm") == arm]
        ax.scatter(mine.to_numpy(), [lanes.centre(p, a) for p, a in mine.index], marker="|",
                   s=(0.9 * lanes.height * row_in * 72) ** 2, color=style.color,
                   linewidths=2.2, zorder=4)
    ratios = drawn["ratio"].to_numpy(dtype=float)
    left = min([0.8 * 1.15, *ratios]) / 1.15  # at least 0.8× to 1.25×: a few ticks
    right = max([1.25 / 1.15, *ratios]) * 1.15
    ticks = _ratio_ticks(left, right)
    if missed.any():
        column = _missed_column(ax, frame[missed], lanes, right / left, right)
        ticks = [t for t in ticks if t <= right / column ** 0.15]  # none in the column
        right *= column
    _row_axes(ax, rows, left, right, ticks)
    if len(drawn):
        ax.axvline(1.0, color="0.35", ls="--", lw=1, zorder=2)
    ax.set_xlabel(xlabel)
    _row_legend(ax, arms, palette, bool(missed.any()), legend_cols)
    return Rows(fig, int((frame["ratio"].isna() & ~missed).sum()))


def _missed_column(ax: Axes, gone: pd.DataFrame, lanes: _Lanes, span: float,
                   edge: float) -> float:
    """Red crosses for the seeds that missed, in a column right of ``edge`` (about a sixth
    of the axis, the data spanning ``span``); returns the column's width as a factor."""
    column = float(10 ** max(0.18 * math.log10(span), 0.08))
    x = edge * math.sqrt(column)
    ax.scatter([x] * len(gone), lanes.seeds(gone), marker="x", color=MISS_COLOR, s=24,
               lw=1.2, zorder=3)
    ax.axvline(edge, color="0.6", ls=":", lw=1)
    ax.annotate("missed", (x, 0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                textcoords="offset points", ha="center", va="top", fontsize="small",
                color=MISS_COLOR)
    return column


def _row_legend(ax: Axes, arms: Sequence[str], palette: dict[str, Any], missed: bool,
                ncols: int) -> None:
    """The optimizers, the median tick and the misses, in a legend above the axes."""
    handles = [Line2D([], [], ls="none", marker=style_of(palette, a).marker or "o",
                      color=style_of(palette, a).color, label=a) for a in arms]
    handles.append(Line2D([], [], ls="none", marker="|", markersize=9, mew=2.2, color="0.3",
                          label="median"))
    if missed:
        handles.append(Line2D([], [], ls="none", marker="x", color=MISS_COLOR,
                              label="missed the target"))
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False,
              ncols=ncols, fontsize="small", borderaxespad=0.3, handletextpad=0.2,
              columnspacing=1.2)


def _legend_columns(arms: Sequence[str], width: float) -> int:
    """As many columns as the labels fit across the figure (two more: median, missed)."""
    longest = max([len(a) for a in arms] + [len("missed the target")])
    return max(1, min(len(arms) + 2, int(width // (0.065 * longest + 0.45))))


def _row_axes(ax: Axes, rows: Sequence[str], left: float, right: float,
              ticks: Sequence[float]) -> None:
    """Problems down the y axis (first on top) between thin lines; multiples on the x."""
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.yaxis.grid(False)
    if len(rows) > 1:
        ax.hlines([i + 0.5 for i in range(len(rows) - 1)], 0, 1,
                  transform=ax.get_yaxis_transform(), colors="0.8", lw=0.8)
    ax.set_xlim(left, right)
    ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    ax.xaxis.set_minor_locator(NullLocator())


def time_to_target_figure(ttt: pd.DataFrame, palette: dict[str, Any], column: str = "time_s",
                          label: str = "training seconds to target") -> Rows | None:
    """Across problems: each seed's cost to target (``column`` of the table, ``label`` on
    the axis) over the lowest median of an optimizer on its problem (over the seeds that
    reached it); misses as red crosses at the right."""
    frame = ttt[["problem", "arm"]].copy()
    missed = ~ttt["reached"].astype(bool)
    frame["ratio"] = relative_to_best(ttt.assign(value=ttt[column].where(~missed)), "value",
                                      higher_better=False)
    return rows_figure(frame, palette, f"× the best optimizer's median {label}", missed)


def per_seed_figure(summary: pd.DataFrame, column: str, label: str, palette: dict[str, Any],
                    *, higher_better: bool) -> Rows | None:
    """Across problems: each ``ok`` seed's ``column`` over the best optimizer's median on its
    problem (the highest if ``higher_better``, else the lowest). Rows are the ``problem``
    labels, which name the device when the run has several."""
    ok = summary[summary["status"] == Status.OK]
    ok = ok[pd.to_numeric(ok[column], errors="coerce").notna()]
    frame = ok[["problem", "arm"]].copy()
    frame["ratio"] = relative_to_best(ok, column, higher_better=higher_better)
    return rows_figure(frame, palette, f"× the best optimizer's median {label}")

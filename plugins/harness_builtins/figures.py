"""The tutorial's pictures, added to ``harness report`` through the ``report_figures`` hook.

Figures are chosen by what a problem's cells carry, not by the problem's name, so a
third-party problem that keeps the same artifacts gets the same picture:

============================================  ==========================================
artifacts (or curve columns)                  picture
============================================  ==========================================
``codes``, ``labels``                         3-D codes coloured by digit (autoencoder)
``x``, ``artist_lower``, ``paintings``        paintings against the artists' bounds (GAN)
``pre_activation``, ``batch_norm``            pre-activation histograms per layer, BN on/off
``x``, ``y``, ``prediction`` (``test_y``)     the fit over the data (regression, dropout)
``episode_returns``, ``episode_end_steps``    episode returns (DQN); with ``eval_steps``,
                                              ``eval_returns``: greedy evaluation beside it
curves with ``train_loss`` and ``test_loss``  train and test loss (dropout's over-fitting)
curves with ``lr`` (``lr.ROLE``)              the learning rate over steps (scheduled arms)
============================================  ==========================================

Each picture uses one seed (the lowest that finished ``ok``) per optimizer, as the
tutorial shows one run, except the loss curves and returns, which show every seed.
matplotlib is imported only when a report is drawn, so loading this
plugin costs ``harness list`` nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.hookspecs import hookimpl

if TYPE_CHECKING:
    from harness.report.model import CellView, ReportFigure, ReportRun

#: At most this many optimizers get their own panel in a per-optimizer picture.
MAX_PANELS = 6


@hookimpl
def report_figures(run: ReportRun, problem: str) -> list[ReportFigure] | None:
    cells = run.cells(problem)
    out: list[ReportFigure] = []
    for applies, draw in _DRAWERS:
        if applies(run, problem, cells):
            out.extend(draw(run, problem, cells))
    return out or None


# -- helpers --------------------------------------------------------------------------
def _has(cells: Sequence[CellView], *keys: str) -> bool:
    return any(all(k in c.artifacts for k in keys) for c in cells)


def _first_seed_per_panel(cells: Sequence[CellView], *keys: str) -> list[CellView]:
    """One cell (the lowest ok seed) per (variant, arm), in run order, capped."""
    chosen: dict[tuple[str, str], CellView] = {}
    for c in cells:
        if not all(k in c.artifacts for k in keys):
            continue
        key = (c.variant, c.arm)
        if key not in chosen or c.cell.seed < chosen[key].cell.seed:
            chosen[key] = c
    return list(chosen.values())[:MAX_PANELS]


def _panel_title(c: CellView, problem: str) -> str:
    variant = c.variant.removeprefix(problem).strip(" ()")
    return f"{c.arm}" + (f" ({variant})" if variant else "") + f", seed {c.cell.seed}"


def _figure(title: str, fig: Any, caption: str) -> ReportFigure:
    from harness.report.model import ReportFigure

    return ReportFigure(title=title, figure=fig, caption=caption)


def _panels(n: int, w: float = 3.6, h: float = 3.0, ncols: int = 3,
            **subplot_kw: Any) -> tuple[Any, list[Any]]:
    from harness.report.figures import new_figure

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = new_figure(w * ncols, h * nrows)
    axes = [fig.add_subplot(nrows, ncols, i + 1, **subplot_kw) for i in range(n)]
    return fig, axes


# -- the autoencoder's codes --------------------------------------------------------------
def _codes(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import matplotlib
    import numpy as np

    from harness.report.figures import theme

    chosen = _first_seed_per_panel(cells, "codes", "labels")
    with theme():
        fig, axes = _panels(len(chosen), 3.8, 3.6, projection="3d")
        tab10 = matplotlib.colormaps["tab10"]  # seaborn's "tab10" is this one
        palette = [matplotlib.colors.to_rgb(tab10(i)) for i in range(10)]
        for ax, c in zip(axes, chosen, strict=True):
            codes = np.asarray(c.artifacts["codes"], dtype=float).reshape(-1, 3)
            labels = np.asarray(c.artifacts["labels"], dtype=int)
            colors = [palette[int(d) % 10] for d in labels]
            ax.scatter(codes[:, 0], codes[:, 1], codes[:, 2], c=colors, s=6, depthshade=False)
            for digit in sorted(set(labels.tolist()))[:10]:
                centre = codes[labels == digit].mean(axis=0)
                ax.text(*centre, str(digit), color=palette[digit % 10], fontsize=9,
                        fontweight="bold")
            ax.set_title(_panel_title(c, problem), fontsize="small")
            ax.tick_params(labelsize=6)
    return [_figure("3-D codes of held-out digits", fig,
                    "The encoder's three-dimensional code for each held-out image, coloured by "
                    "its digit (numbers mark each digit's centre); one seed per optimizer.")]


# -- the GAN's paintings ----------------------------------------------------------------
def _paintings(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import numpy as np

    from harness.report.figures import theme

    chosen = _first_seed_per_panel(cells, "x", "artist_lower", "artist_upper", "paintings")
    snapshots = max(len(c.artifacts["paintings"]) for c in chosen)
    ncols = min(snapshots, 4)
    with theme():
        from harness.report.figures import new_figure

        fig = new_figure(3.0 * ncols, 2.6 * len(chosen))
        grid = fig.subplots(len(chosen), ncols, squeeze=False, sharey=True)
        for row, c in zip(grid, chosen, strict=True):
            x = np.asarray(c.artifacts["x"], dtype=float)
            lower = np.asarray(c.artifacts["artist_lower"], dtype=float)
            upper = np.asarray(c.artifacts["artist_upper"], dtype=float)
            steps = sorted(c.artifacts["paintings"], key=lambda s: int(s))
            # the first snapshot, then evenly up to the last
            picks = [steps[round(i * (len(steps) - 1) / max(ncols - 1, 1))]
                     for i in range(min(ncols, len(steps)))]
            for ax, step in zip(row, picks, strict=False):
                ax.fill_between(x, lower, upper, color="#f4d03f", alpha=0.35,
                                label="artist's range")
                ax.plot(x, upper, color="#c0392b", lw=1.5, label="upper bound")
                ax.plot(x, lower, color="#2471a3", lw=1.5, label="lower bound")
                for painting in c.artifacts["paintings"][step]:
                    ax.plot(x, np.asarray(painting, dtype=float), color="#1e8449", lw=0.7,
                            alpha=0.45)
                ax.set_title(f"{_panel_title(c, problem)}, step {step}", fontsize="x-small")
            for ax in row[len(picks):]:
                ax.set_visible(False)
        grid[0][0].legend(fontsize="x-small", loc="upper center")
    return [_figure("Paintings against the artists' bounds", fig,
                    "Generated paintings (green, 16 fixed ideas) at snapshots through training, "
                    "against the range of the artist's curves a·x² + (a − 1), a in [1, 2]; "
                    "one seed per optimizer.")]


# -- batch norm's pre-activations ---------------------------------------------------------
def _histograms(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import numpy as np

    from harness.report.figures import new_figure, theme

    # one cell per (arm, batch_norm), lowest seed
    chosen: dict[tuple[str, bool], CellView] = {}
    for c in cells:
        if "pre_activation" not in c.artifacts:
            continue
        key = (c.arm, bool(c.artifacts.get("batch_norm")))
        if key not in chosen or c.cell.seed < chosen[key].cell.seed:
            chosen[key] = c
    arms = list(dict.fromkeys(a for a, _ in chosen))[:MAX_PANELS]
    settings = sorted({bn for _, bn in chosen})
    n_layers = max(len(c.artifacts["pre_activation"]) for c in chosen.values())
    palette = {False: "#e67e22", True: "#2874a6"}  # BN on/off carries the colour
    figures: list[ReportFigure] = []
    with theme():
        fig = new_figure(1.45 * n_layers, 1.6 * len(arms) + 0.6)
        grid = fig.subplots(len(arms), n_layers, squeeze=False)
        for r, arm in enumerate(arms):
            for bn in settings:
                shown = chosen.get((arm, bn))
                if shown is None:
                    continue
                for layer in shown.artifacts["pre_activation"]:
                    i = int(layer["layer"])
                    counts = np.asarray(layer["counts"], dtype=float)
                    edges = np.asarray(layer["edges"], dtype=float)
                    ax = grid[r][i]
                    ax.stairs(counts, edges, fill=True, alpha=0.45, color=palette[bn],
                              label="with BN" if bn else "without BN")
                    ax.set_yticks([])
                    ax.tick_params(labelsize=6)
                    if r == 0:
                        ax.set_title("input" if i == 0 else f"layer {i}", fontsize="x-small")
            grid[r][0].set_ylabel(arm, fontsize="x-small")
        grid[0][0].legend(fontsize="xx-small", loc="upper left")
        missing = {False: "without", True: "with"}
        note = "" if len(settings) == 2 else \
            f" This run has only cells {missing[settings[0]]} batch norm."
        figures.append(_figure(
            "Pre-activation histograms per layer", fig,
            "Histogram of each layer's input (before batch norm and the activation) on the test "
            "points after training, with and without batch normalisation; one seed per "
            "optimizer." + note))
    return figures


# -- fits over the data -----------------------------------------------------------------
def _fits(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import numpy as np

    from harness.report.figures import theme

    chosen = _first_seed_per_panel(cells, "x", "y", "prediction")
    with theme():
        fig, axes = _panels(len(chosen))
        for ax, c in zip(axes, chosen, strict=True):
            x = np.asarray(c.artifacts["x"], dtype=float)
            ax.scatter(x, np.asarray(c.artifacts["y"], dtype=float), s=8, color="0.45",
                       alpha=0.6, label="train data" if "test_y" in c.artifacts else "data")
            if "test_y" in c.artifacts:
                ax.scatter(x, np.asarray(c.artifacts["test_y"], dtype=float), s=8,
                           color="#2e86c1", alpha=0.6, label="test data")
            order = np.argsort(x, kind="stable")
            ax.plot(x[order], np.asarray(c.artifacts["prediction"], dtype=float)[order],
                    color="#c0392b", lw=2, label="prediction")
            ax.set_title(_panel_title(c, problem), fontsize="small")
            ax.set_xlabel("x")
        axes[0].legend(fontsize="x-small")
    return [_figure("Fit over the data", fig,
                    "The trained model's prediction over the data it was evaluated on; one seed "
                    "per optimizer.")]


# -- DQN returns ----------------------------------------------------------------------
def _returns(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import numpy as np

    from harness.report.figures import arm_styles, new_figure, theme

    with_returns = [c for c in cells if c.artifacts.get("episode_returns")]
    evaluated = [c for c in cells if c.artifacts.get("eval_returns")]
    styles = arm_styles(run.arms())  # the run's: an arm looks the same in every figure
    env = next((str(c.artifacts["env"]) for c in with_returns if "env" in c.artifacts), "")
    with theme():
        fig = new_figure(11.0 if evaluated else 8.5, 3.4)
        axes = fig.subplots(1, 2 if evaluated else 1, squeeze=False)[0]
        ax = axes[0]
        labelled: set[str] = set()
        for c in with_returns:
            returns = np.asarray(c.artifacts["episode_returns"], dtype=float)
            ends = np.asarray(c.artifacts.get("episode_end_steps") or
                              np.arange(1, len(returns) + 1), dtype=float)
            k = min(10, len(returns))
            smooth = np.convolve(returns, np.ones(k) / k, mode="valid")
            style = styles[c.arm]
            ax.plot(ends[: len(returns)], returns, color=style.color, lw=0.5, alpha=0.25)
            ax.plot(ends[k - 1: len(returns)], smooth, lw=1.6,
                    label=None if c.arm in labelled else c.arm, **style.line())
            labelled.add(c.arm)
        ax.set_xlabel("environment step at the episode's end")
        ax.set_ylabel("training episode return")
        ax.legend(fontsize="small")
        if evaluated:
            ax = axes[1]
            for c in evaluated:
                ax.plot(c.artifacts.get("eval_steps") or [], c.artifacts["eval_returns"],
                        lw=1.2, **{"marker": ".", "markersize": 3, **styles[c.arm].line()})
            solved = {float(c.artifacts["solved_return"]) for c in evaluated
                      if isinstance(c.artifacts.get("solved_return"), int | float)}
            for value in solved:
                ax.axhline(value, color="0.3", ls="--", lw=1)
            ax.set_xlabel("environment step")
            ax.set_ylabel("greedy evaluation return (mean)")
    title = "Episode returns" + (f" on {env}" if env else "")
    caption = ("Each training episode's return (faint) and its moving average over 10 "
               "episodes (solid), one line per seed, coloured by optimizer.")
    if evaluated:
        caption += (" Right: at each evaluation, the greedy policy's mean return over its "
                    "evaluation episodes (the target metric, eval_return); the dashed line "
                    "is the return that counts as solved.")
    return [_figure(title, fig, caption)]


# -- dropout's train and test curves ----------------------------------------------------------
def _has_train_test(run: ReportRun, problem: str) -> bool:
    cols = run.curves.columns
    if "train_loss" not in cols or "test_loss" not in cols:
        return False
    rows = run.curves[run.curves["model"] == problem]
    return bool(rows["train_loss"].notna().any() and rows["test_loss"].notna().any())


def _train_test(run: ReportRun, problem: str, cells: Sequence[CellView]) -> list[ReportFigure]:
    import numpy as np

    from harness.report import stats
    from harness.report.figures import new_figure, theme

    ok_ids = {c.cell_id for c in cells}
    rows = run.curves[run.curves["cell_id"].isin(ok_ids)]
    variants = list(dict.fromkeys(rows["variant"]))[:MAX_PANELS]
    arms = list(dict.fromkeys(rows["arm"]))
    with theme():
        fig = new_figure(3.6 * len(arms), 2.9 * len(variants))
        grid = fig.subplots(len(variants), len(arms), squeeze=False, sharey=True)
        for v, variant in enumerate(variants):
            for r, arm in enumerate(arms):
                ax = grid[v][r]
                sub = rows[(rows["arm"] == arm) & (rows["variant"] == variant)]
                for metric, color in (("train_loss", "#c0392b"), ("test_loss", "#2471a3")):
                    evals = sub.dropna(subset=[metric])
                    pieces = [(g["step"].to_numpy(), g[metric].to_numpy())
                              for _, g in evals.groupby("cell_id", sort=False)]
                    axis, matrix = stats.common_axis(pieces)
                    if len(axis) == 0:
                        continue
                    median, lo, hi = stats.median_band(matrix)
                    ax.plot(axis, median, color=color, lw=1.6,
                            label=f"{metric.replace('_', ' ')} (n={matrix.shape[0]})")
                    if np.isfinite(lo).any():
                        ax.fill_between(axis, lo, hi, color=color, alpha=0.2, lw=0)
                if stats.spans_decades(sub[["train_loss", "test_loss"]].to_numpy()):
                    ax.set_yscale("log")
                ax.set_title(arm if variant == problem else f"{arm}, {variant}",
                             fontsize="small")
                ax.set_xlabel("step")
                ax.legend(fontsize="xx-small")
    return [_figure("Train and test loss", fig,
                    "Loss on the training points and on fresh test points, evaluated during "
                    "training: the gap between them is over-fitting. Median over seeds, 95% "
                    "bootstrap band of the median with at least 3 seeds.")]


def _lr_columns(run: ReportRun, problem: str) -> list[str]:
    rows = run.curves[run.curves["model"] == problem]
    return [c for c in rows.columns
            if (c == "lr" or str(c).startswith("lr.")) and rows[c].notna().any()]


def _learning_rates(run: ReportRun, problem: str,
                    cells: Sequence[CellView]) -> list[ReportFigure]:
    from harness.report.figures import new_figure, theme

    ok_ids = {c.cell_id for c in cells}
    rows = run.curves[(run.curves["model"] == problem) & run.curves["cell_id"].isin(ok_ids)]
    columns = _lr_columns(run, problem)
    with theme():
        fig = new_figure(5.0, 3.2)
        ax = fig.subplots()
        for arm in dict.fromkeys(rows["arm"]):
            sub = rows[rows["arm"] == arm]
            first = sub[sub["cell_id"] == sub["cell_id"].iloc[0]]  # one seed: rates are equal
            for col in columns:
                pts = first.dropna(subset=[col])
                if len(pts):
                    label = arm if col == "lr" else f"{arm}, {col[3:]}"
                    ax.plot(pts["step"], pts[col], lw=1.4, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.legend(fontsize="xx-small")
    return [_figure("Learning rate", fig,
                    "The learning rate each scheduled arm's optimizer used, at the last step "
                    "of each window (the same for every seed).")]


Applies = Callable[["ReportRun", str, "Sequence[CellView]"], bool]
Draw = Callable[["ReportRun", str, "Sequence[CellView]"], "list[ReportFigure]"]

_DRAWERS: tuple[tuple[Applies, Draw], ...] = (
    (lambda run, p, cells: _has(cells, "codes", "labels"), _codes),
    (lambda run, p, cells: _has(cells, "x", "artist_lower", "artist_upper", "paintings"),
     _paintings),
    (lambda run, p, cells: _has(cells, "pre_activation"), _histograms),
    (lambda run, p, cells: _has(cells, "x", "y", "prediction"), _fits),
    (lambda run, p, cells: _has(cells, "episode_returns"), _returns),
    (lambda run, p, cells: bool(cells) and _has_train_test(run, p), _train_test),
    (lambda run, p, cells: bool(cells) and bool(_lr_columns(run, p)), _learning_rates),
)

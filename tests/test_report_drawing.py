"""How the report draws: the overview's figures across problems (one axes, a row per
problem, values relative to the best optimizer's median), their tables, and the saving that
draws each figure once, without the minor ticks nobody sees, pixel for pixel as before."""

from __future__ import annotations

import gc
import io
import math
from pathlib import Path
from typing import Any

import matplotlib.image as mimage
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from harness.cell import Cell
from harness.hookspecs import hookimpl
from harness.outcome import CellResult
from harness.report import build_report, tables
from harness.report import figures as F
from harness.report import overview as O
from harness.report.model import ReportRun
from harness.results import RunDirectory

ARMS = ["sgd", "momentum", "adam"]


# -- values relative to the best optimizer ---------------------------------------------------
def test_relative_to_best_divides_by_the_best_median_of_each_row() -> None:
    frame = pd.DataFrame({
        "problem": ["a"] * 4 + ["b"] * 4,
        "arm": ["sgd", "sgd", "adam", "adam"] * 2,
        "v": [2.0, 4.0, 10.0, 30.0, 1.0, 3.0, 0.0, -1.0]})
    lower = O.relative_to_best(frame, "v", higher_better=False)
    # a: medians sgd 3, adam 20 -> best 3; b: sgd 2, adam has no positive value -> best 2
    assert lower.tolist()[:6] == pytest.approx([2 / 3, 4 / 3, 10 / 3, 10.0, 0.5, 1.5])
    assert lower.iloc[6:].isna().all()  # not positive: no place on a log axis
    higher = O.relative_to_best(frame, "v", higher_better=True)
    assert higher.tolist()[:4] == pytest.approx([0.1, 0.2, 0.5, 1.5])  # best: adam's 20
    none = O.relative_to_best(frame.assign(v=0.0), "v", higher_better=True)
    assert none.isna().all()


def _summary(problems: list[str], devices: tuple[str, ...] = ("cpu",)) -> pd.DataFrame:
    rows = []
    for p_i, problem in enumerate(problems):
        for device in devices:
            label = f"{problem} @ {device}" if len(devices) > 1 else problem
            for a_i, arm in enumerate(ARMS):
                for seed in (0, 1):
                    rows.append({"problem": label, "variant": problem, "arm": arm,
                                 "device": device, "seed": seed, "status": "ok",
                                 "samples_per_s": 1000.0 * (p_i + 1) * (a_i + 1) + seed,
                                 "peak_mem_mb": 10.0 + a_i})
    return pd.DataFrame(rows)


def test_throughput_is_one_axes_with_a_row_per_problem_and_a_lane_per_optimizer(
        tmp_path: Path) -> None:
    problems = [f"problem-{i}" for i in range(11)]
    with F.theme():
        drawn = O.per_seed_figure(_summary(problems), "samples_per_s", "throughput",
                                  F.arm_palette(ARMS), higher_better=True)
        assert drawn is not None and drawn.left_out == 0
        (ax,) = drawn.figure.axes  # one axes, not one per problem
        assert [t.get_text() for t in ax.get_yticklabels()] == problems
        assert ax.get_xscale() == "log"
        assert ax.get_xlabel() == "× the best optimizer's median throughput"
        F.save(drawn.figure, tmp_path / "throughput.png")
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(label.endswith("×") for label in labels) and "1×" in labels
    # adam is the fastest everywhere: its dots sit around 1×, sgd's at a third of it
    dots = {c.get_facecolor()[0][:3].round(3).tobytes(): np.asarray(c.get_offsets())[:, 0]
            for c in ax.collections if len(c.get_offsets()) == 22}
    colours = F.arm_palette(ARMS)
    sgd = dots[np.round(np.array(colours["sgd"]), 3).tobytes()]
    adam = dots[np.round(np.array(colours["adam"]), 3).tobytes()]
    assert np.median(adam) == pytest.approx(1.0, abs=1e-3)
    assert np.median(sgd) == pytest.approx(1 / 3, abs=1e-3)


def test_two_devices_get_a_row_each() -> None:
    with F.theme():
        drawn = O.per_seed_figure(_summary(["toy"], ("cpu", "cuda")), "peak_mem_mb",
                                  "peak memory", F.arm_palette(ARMS), higher_better=False)
    assert drawn is not None
    (ax,) = drawn.figure.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["toy @ cpu", "toy @ cuda"]


def _fig_height(problems: int, tmp_path: Path) -> tuple[float, float]:
    """The figure's height and one row's height, in inches, for this many problems."""
    with F.theme():
        drawn = O.per_seed_figure(_summary([f"p{i}" for i in range(problems)]),
                                  "samples_per_s", "throughput", F.arm_palette(ARMS),
                                  higher_better=True)
        assert drawn is not None
        fig = drawn.figure
        F.save(fig, tmp_path / f"rows-{problems}.png")
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = ax.get_legend()
    assert legend is not None
    box, frame = legend.get_window_extent(renderer), fig.bbox
    assert box.y0 >= ax.bbox.y1 - 1 and box.y1 <= frame.y1 + 1  # above the axes, in the figure
    assert ax.get_tightbbox(renderer).y0 >= frame.y0 - 1  # type: ignore[union-attr]
    return fig.get_figheight(), ax.bbox.height / fig.dpi / problems


def test_the_figure_grows_with_its_rows_and_stays_readable_for_one(tmp_path: Path) -> None:
    one, row_one = _fig_height(1, tmp_path)
    eleven, row_eleven = _fig_height(11, tmp_path)
    assert eleven > one >= 1.5
    assert row_one >= row_eleven >= 0.3  # each optimizer's lane keeps its room


# -- cost to target ---------------------------------------------------------------------------
def _ttt() -> pd.DataFrame:
    """Two problems; on "b", sgd misses both seeds and momentum one."""
    rows = []
    for problem, costs in (("a", {"sgd": (100, 300), "momentum": (200, 200), "adam": (50, 70)}),
                           ("b", {"sgd": (None, None), "momentum": (4000, None),
                                  "adam": (1000, 3000)})):
        for arm, pair in costs.items():
            for seed, cost in enumerate(pair):
                rows.append({"problem": problem, "arm": arm, "seed": seed,
                             "reached": cost is not None,
                             "steps": math.nan if cost is None else float(cost)})
    return pd.DataFrame(rows)


def test_cost_to_target_table_gives_medians_and_seeds_that_reached() -> None:
    table = tables.cost_to_target(_ttt(), "steps").set_index(["problem", "arm"])
    assert table.loc[("a", "sgd"), "median"] == 200
    assert table.loc[("b", "momentum"), "median"] == 4000  # over the seeds that reached it
    assert math.isnan(table.loc[("b", "sgd"), "median"])
    assert table["reached"].tolist() == [2, 2, 2, 0, 1, 2]
    assert (table["seeds"] == 2).all() and (table["cost"] == "steps").all()


def test_cost_to_target_misses_sit_right_of_every_seed() -> None:
    with F.theme():
        drawn = O.time_to_target_figure(_ttt(), F.arm_palette(ARMS), "steps", "steps to target")
    assert drawn is not None
    (ax,) = drawn.figure.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    red = [c for c in ax.collections if c.get_offsets().shape[0] == 3
           and tuple(np.round(c.get_edgecolor()[0][:3], 3)) == (0.753, 0.224, 0.169)]
    assert len(red) == 1  # sgd's two misses and momentum's one, all on row b
    misses = red[0].get_offsets()
    assert (np.abs(misses[:, 1] - 1) < 0.5).all()
    dots = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if c not in red])
    assert misses[:, 0].min() > dots.max() and misses[:, 0].max() < ax.get_xlim()[1]
    # b's best median over the seeds that reached is adam's 2000: momentum's seed at 2×
    assert any(np.isclose(dots, 2.0)) and any(np.isclose(dots, 0.5))


def _write(run_dir: RunDirectory, device: str, optimizer: str, seed: int, rate: float,
           reached: bool) -> None:
    cell = Cell(problem="toy", optimizer=optimizer, device=device, seed=seed, steps=20,
                batch_size=4)
    run_dir.write_cell(CellResult(cell=cell, status="ok", summary={
        "final_loss": 0.5, "samples_per_s": rate, "peak_mem_mb": 5.0 + seed,
        "step_time_ms": 1.0, "target_metric": "final_loss", "target_threshold": 0.6,
        "target_mode": "min", "time_to_target_s": 0.2 if reached else None,
        "steps_to_target": 10 if reached else None}))


def test_a_two_device_report_keeps_devices_apart_and_tables_the_costs(tmp_path: Path) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    for device, rate in (("cpu", 100.0), ("cuda", 5000.0)):
        for optimizer in ("sgd", "adam"):
            for seed in (0, 1):
                _write(run_dir, device, optimizer, seed, rate * (1 + seed),
                       reached=optimizer == "adam" or seed == 0)
    index = build_report(tmp_path / "run", workers=1)
    page = index.read_text("utf-8")
    through = pd.read_csv(index.parent / "throughput.csv")
    assert sorted(set(through["device"])) == ["cpu", "cuda"]
    assert set(through["problem"]) == {"toy"}
    assert through.groupby("device")["samples_per_s_median"].first().to_dict() == \
        {"cpu": 150.0, "cuda": 7500.0}  # the absolute numbers the figure no longer shows
    assert "one row per problem and device" in page
    cost = pd.read_csv(index.parent / "cost_to_target.csv")
    assert set(cost["problem"]) == {"toy @ cpu", "toy @ cuda"}
    assert cost.set_index(["problem", "arm"]).loc[("toy @ cpu", "sgd"), "reached"] == 1
    assert "<td>1/2</td>" in page and "<td>2/2</td>" in page  # the panels' old k/n
    assert "median steps to target (seeds that reached it)" in page
    names = sorted(p.name for p in index.parent.glob("fig-00-*.png"))
    assert [n.split("-", 3)[3] for n in names] == [
        "performance-profile.png", "cost-to-target-steps.png", "throughput.png",
        "peak-memory.png"]
    shapes = {n: mimage.imread(index.parent / n).shape for n in names}
    assert all(h < w for h, w, _ in shapes.values())  # one axes: wider than tall


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


def test_pngs_are_encoded_at_the_report_compress_level(tmp_path: Path) -> None:
    with F.theme():
        ours = _log_figure(1e4)
        F.save(ours, tmp_path / "ours.png")
        default = io.BytesIO()
        again = _log_figure(1e4)
        F.save(again, tmp_path / "again.png")
        again.savefig(default, format="png", dpi=F.DPI)  # zlib's default level
    data = (tmp_path / "ours.png").read_bytes()
    assert data == (tmp_path / "again.png").read_bytes()
    assert data != default.getvalue()
    default.seek(0)
    assert np.array_equal(mimage.imread(tmp_path / "ours.png"), mimage.imread(default))


# -- drawing away from the garbage collector ------------------------------------------------------
class _FreezeProbe:
    """A figures plugin that records whether the report froze its objects while drawing."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    @hookimpl
    def report_figures(self, run: ReportRun, problem: str) -> None:
        self.counts.append(gc.get_freeze_count())


def test_drawing_runs_with_the_loaded_objects_frozen(tmp_path: Path, register_plugin: Any) -> None:
    run_dir = RunDirectory(tmp_path / "run")
    for optimizer in ("sgd", "adam"):
        _write(run_dir, "cpu", optimizer, 0, 100.0, True)
    probe = _FreezeProbe()
    register_plugin(probe, "freeze-probe")
    assert gc.get_freeze_count() == 0
    build_report(tmp_path / "run", workers=1)
    assert probe.counts and all(n > 0 for n in probe.counts)
    assert gc.get_freeze_count() == 0  # unfrozen after
    gc.freeze()  # a caller's own frozen objects stay frozen
    try:
        build_report(tmp_path / "run", out_dir=tmp_path / "again", workers=1)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_minor_ticks_with_a_mark_or_a_grid_line_are_kept(tmp_path: Path) -> None:
    with F.theme():
        fig = _log_figure(1e4)
        marked, gridded = fig.axes
        marked.tick_params(axis="y", which="minor", left=True)  # a visible tick mark
        gridded.yaxis.grid(True, which="minor")
        F.save(fig, tmp_path / "kept.png")
    assert not isinstance(marked.yaxis.get_minor_locator(), NullLocator)
    assert not isinstance(gridded.yaxis.get_minor_locator(), NullLocator)


# -- the theme: seaborn's, as data ----------------------------------------------------------
def test_the_theme_and_palette_are_what_the_installed_seaborn_gives() -> None:
    """The report draws in seaborn's whitegrid style, notebook context at 0.8 and
    colour-blind palette without importing seaborn; the copy must not drift from it."""
    import seaborn as sns
    from matplotlib.colors import to_rgb

    theirs = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.8)}
    assert theirs.pop("image.cmap") == "rocket"  # registered by seaborn on import: left out
    assert dict(theirs) == F.THEME
    assert [to_rgb(c) for c in F.PALETTE] == list(sns.color_palette("colorblind"))
    assert [s.color for s in F.arm_styles([f"a{i}" for i in range(10)]).values()] == \
        list(sns.color_palette("colorblind"))

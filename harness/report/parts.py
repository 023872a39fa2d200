"""The page's parts, drawn: the overview across problems (part 0) and one section per
problem (part k, the run's k-th), each its figures (PNGs written beside the page) and the
HTML around them. Drawing is most of a report's time, so the parts are drawn in forked
worker processes where there are several CPUs (:func:`draw_parts`), started from the
report's drawing process (:mod:`harness.report.painter`); this module is what imports
matplotlib.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.atomic import write_atomic
from harness.cell import safe_name
from harness.outcome import PEAK_MEM_METHODS
from harness.plugins import PluginHost
from harness.report import figures as F
from harness.report import html as H
from harness.report import overview as O
from harness.report import stats, tables
from harness.report import tuned as T
from harness.report.display import ranking_display
from harness.report.model import ReportFigure, ReportRun
from harness.report.painter import Page, usable_cpus
from harness.report.sweep import Sweep
from harness.results.schema import NOISY_DISPERSION

Drawn = tuple[list[H.Section], list[dict[str, str]]]


class _Writer:
    """Saves one page part's figures with unique names (the part's number, then the
    figure's), lists them in the part's list (:func:`part_list`) before writing each, and
    collects what went wrong drawing them."""

    def __init__(self, out: Path, part: int = 0) -> None:
        self.out = out
        self.part = part
        self.count = 0
        self.errors: list[dict[str, str]] = []
        self.names: list[str] = []

    def save(self, fig: Any, stem: str) -> str:
        self.count += 1
        name = f"fig-{self.part:02d}-{self.count:02d}-{safe_name(stem)[:60]}.png"
        self.names.append(name)
        write_atomic(self.out / part_list(self.part), json.dumps(self.names))  # before it
        F.save(fig, self.out / name)
        return name


def part_list(part: int) -> str:
    """A part's own figure list (parts are drawn in parallel); merged into the report's
    list of figures when the page is written."""
    return f".harness-figures-{part:02d}.json"


#: Set in the drawing process before its workers fork: what they draw from.
_DRAWING: tuple[Page, PluginHost, dict[str, Any]] | None = None


def _draw_part(part: int) -> Drawn:
    """Part 0 is the overview, part k the run's k-th problem; returns its sections and
    its figure errors (figures are written to the report's directory)."""
    assert _DRAWING is not None
    page, host, palette = _DRAWING
    writer = _Writer(page.out, part)
    with F.theme():
        if part == 0:
            sections = [_overview(page.run, writer, palette, *page.overview)]
        else:
            model = page.run.models()[part - 1]
            sections = _problem_sections(page.run, model, writer, palette, page.ranking,
                                         host, page.sweep, page.source)
    return sections, writer.errors


def default_workers(parts: int) -> int:
    """One worker per CPU this process may use, and no more than there are parts."""
    return max(1, min(usable_cpus(), parts))


def draw_parts(page: Page, host: PluginHost, workers: int | None) -> Drawn:
    """Draw the page's parts, in ``workers`` forked processes (default
    :func:`default_workers`), or in order in this process for one worker or where
    processes cannot fork; returns the sections in page order and the figure errors."""
    global _DRAWING
    parts = range(page.parts())
    workers = default_workers(len(parts)) if workers is None else workers
    # one colour and style per arm, in every figure
    _DRAWING = (page, host, F.arm_palette(page.run.arms()))
    # The run's tables and every module loaded so far stay: no collection walks them again
    # while the figures are drawn (about a tenth of drawing), nor copies their pages into
    # forked workers. Not when the caller froze objects of its own already.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            results = [_draw_part(i) for i in parts]
        else:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                results = list(pool.map(_draw_part, parts))
    finally:
        _DRAWING = None
        if freeze:
            gc.unfreeze()
    sections = [section for drawn, _ in results for section in drawn]
    return sections, [error for _, errors in results for error in errors]


# -- across problems --------------------------------------------------------------------------
def _overview(run: ReportRun, writer: _Writer, palette: dict[str, Any], ttt: pd.DataFrame,
              cost_table: pd.DataFrame, times: pd.DataFrame, scores: pd.DataFrame,
              profile: pd.DataFrame, throughput: pd.DataFrame, cost: str) -> H.Section:
    sec = H.Section("overview", "Across problems")
    axis = tables.COSTS[cost]
    sec.blocks.append(f"<h3>Performance profile on {H.esc(axis.label)}</h3>")
    sec.blocks.append(_cost_axes(run, cost))
    if profile.empty:
        sec.blocks.append(H.paragraph("No problem in this run has a target, so there is no "
                                      "cost to target and no performance profile."))
    else:
        fig = F.profile_figure(profile, scores.set_index("arm")["score"], palette, axis.label)
        if fig is not None:
            name = writer.save(fig, "performance-profile")
            unsolved = int((~np.isfinite(times)).all(axis=1).sum())
            caption = (f"For each optimizer, the fraction of problems on which its median "
                       f"{axis.label} (over seeds; a miss counts as never) is within τ times "
                       "the best optimizer's on that problem, for τ from 1 to 4, as in AlgoPerf. "
                       "The score is the area under the curve divided by 3: 1 means cheapest "
                       f"on every problem. {len(times)} problem(s)")
            caption += (f", of which {unsolved} no optimizer solved (a miss for all)."
                        if unsolved else ".")
            if times.isna().any().any():
                caption += (" Not every optimizer was run on every problem: each is scored "
                            "over the problems it was run on (the table's last column).")
            sec.blocks.append(H.figure(name, "Performance profile", caption))
        sec.blocks.append(H.table(scores.rename(columns={
            "arm": "optimizer", "score": f"score on {axis.label} (area under ρ, 0–1)",
            "problems_reached": "problems reached", "problems": "problems"})))

    sec.blocks.append(f"<h3>{H.esc(axis.label.capitalize())}</h3>")
    sec.blocks.extend(_cost_blocks(writer, palette, ttt, cost_table, cost))

    sec.blocks.append("<h3>Throughput and memory</h3>")
    drawn = O.per_seed_figure(run.summary, "samples_per_s", "throughput", palette,
                              higher_better=True)
    if drawn is None:
        sec.blocks.append(H.paragraph("No cell finished ok: no throughput to show."))
    else:
        name = writer.save(drawn.figure, "throughput")
        sec.blocks.append(H.figure(
            name, "Throughput",
            "Steady-state throughput (after the warm-up) of each seed as a multiple of the "
            "best optimizer's on its problem (the highest median over seeds; log scale), so "
            "problems counted in different units share one axis: one row per problem"
            + (" and device" if run.summary["device"].nunique() > 1 else "")
            + ", one lane per optimizer, a dot per seed, a tick at the optimizer's median."
            + _left_out(drawn.left_out, "a throughput that is not positive")
            + " The table below gives the throughput in each problem's own unit. Its "
            "dispersion is a seed's IQR / median over its steady windows; a seed above "
            f"{NOISY_DISPERSION:.0%} is counted noisy: its figure moved by more than that "
            "within the cell itself."))
        drawn = O.per_seed_figure(run.summary, "peak_mem_mb", "peak memory", palette,
                                  higher_better=False)
        if drawn is not None:
            name = writer.save(drawn.figure, "peak-memory")
            sec.blocks.append(H.figure(
                name, "Peak memory",
                "Each cell's own peak memory as a multiple of the best optimizer's on its "
                "problem (the lowest median over seeds; log scale), drawn as throughput is; "
                "in MiB in the table below."
                + _left_out(drawn.left_out, "a peak memory that is not positive")
                + " Measured as " + _memory_methods(run.summary) + "."))
        sec.blocks.append(H.table(throughput.rename(columns={
            "arm": "optimizer", "device_name": "device name",
            "samples_per_s_median": "per s (median)", "samples_per_s_min": "per s (min)",
            "samples_per_s_max": "per s (max)", "step_time_ms_median": "step ms (median)",
            "peak_mem_mb_median": "peak MiB (median)", "peak_mem_mb_max": "peak MiB (max)",
            "dispersion_max": "dispersion (max)", "noisy_seeds": "noisy seeds",
            "repeats": "timing runs (--repeats)",
            "repeat_dispersion_max": "their dispersion (max)"})))
    return sec


def _cost_blocks(writer: _Writer, palette: dict[str, Any], ttt: pd.DataFrame,
                 table: pd.DataFrame, cost: str) -> list[str]:
    """The cost-to-target figure across problems and its table of medians in the axis's
    unit (:func:`harness.report.tables.cost_to_target`), with how many seeds reached the
    target."""
    axis = tables.COSTS[cost]
    drawn = O.time_to_target_figure(ttt, palette, axis.column, axis.label) if len(ttt) else None
    if drawn is None:
        return [H.paragraph("No problem in this run has a target.")]
    name = writer.save(drawn.figure, f"cost-to-target-{cost}")
    caption = (f"The {axis.label} of each seed (until the target metric first crossed its "
               "threshold) as a multiple of the best optimizer's on its problem (the lowest "
               "median over the seeds that reached the target; log scale), so problems of "
               "different sizes share one axis: one row per problem, one lane per optimizer, "
               "a dot per seed, a tick at the optimizer's median over the seeds that reached "
               "it. Red crosses in the missed column at the right are seeds that never "
               "reached it (or did not finish ok)."
               + _left_out(drawn.left_out, f"{axis.label} that is zero or was not counted")
               + f" The table below gives each median in {axis.label} and how many seeds "
               "reached the target.")
    table = table.assign(reached=[f"{k}/{n}" for k, n in zip(table["reached"], table["seeds"],
                                                              strict=True)])
    return [H.figure(name, axis.label.capitalize(), caption),
            H.table(table.drop(columns=["cost", "seeds"]).rename(columns={
                "arm": "optimizer", "median": f"median {axis.label} (seeds that reached it)",
                "reached": "seeds that reached it"}))]


def _left_out(n: int, what: str) -> str:
    """The caption's note of the seeds a log axis cannot show."""
    return (f" {n} seed(s) with {what} cannot be drawn on a log scale: they are only in "
            "the table." if n else "")


def _memory_methods(summary: pd.DataFrame) -> str:
    """How the run's peak memory figures were measured, in words (peak_mem_method)."""
    methods = summary.get("peak_mem_method", pd.Series(dtype=object))
    used = [str(m) for m in dict.fromkeys(methods.dropna())]
    words = [f"{PEAK_MEM_METHODS.get(m, m)} ({m})" for m in used]
    if methods.isna().any() or not used:
        words.append("for cells recorded without peak_mem_method: the CUDA allocator's peak, "
                     "or on the CPU the process's resident set over its whole life")
    return "; ".join(words)


def _cost_axes(run: ReportRun, cost: str) -> str:
    """Which cost axes this run's numbers reproduce on, and the one the page is drawn on."""
    why = tables.reproducible(run)
    items = [f"{name} ({tables.COSTS[name].label}): {why[name]}"
             + (" (this page)" if name == cost else "") for name in tables.COSTS]
    return (H.paragraph("Cost axes (choose with harness report --cost "
                        f"{'|'.join(tables.COSTS)}):") + H.bullet_list(items))


# -- per problem ---------------------------------------------------------------------------
def _problem_sections(run: ReportRun, model: str, writer: _Writer, palette: dict[str, Any],
                      ranking: pd.DataFrame, host: PluginHost, found: Sweep | None = None,
                      source: ReportRun | None = None) -> list[H.Section]:
    sec = H.Section(f"problem-{safe_name(model)}", f"Problem: {model}")
    rows = run.summary[run.summary["model"] == model]
    if run.descriptions.get(model):
        sec.blocks.append(H.paragraph(run.descriptions[model], "description"))
    for problem in dict.fromkeys(rows["problem"]):
        if len(set(rows["problem"])) > 1 or problem != model:
            sec.blocks.append(f"<h3>{H.esc(problem)}</h3>")
        metric, mode = run.final_metric(str(problem))
        target = run.target(str(problem))
        if target is not None:
            sign = "≤" if target.mode == "min" else "≥"
            sec.blocks.append(H.paragraph(f"Target: {target.metric} {sign} "
                                          f"{H.fmt_number(target.threshold)}."))
        better = "lower" if mode == "min" else "higher"
        sec.blocks.append(H.paragraph(
            f"Ranking by the final {metric} ({better} is better): mean, median and a "
            f"{stats.LEVEL:.0%} interval of the mean over the seeds that finished ok with a "
            "final value (its method is named in each row and under 'How the numbers were "
            "computed') "
            "(a cell can finish ok without one, e.g. a DQN that has not played enough "
            "episodes for its moving average). An optimizer with a seed that diverged, "
            "failed or timed out ranks after every optimizer without one. The best "
            "optimizer is compared with each other one seed by seed (paired sign-flip "
            "permutation test, p-values Holm-adjusted in brackets). Where even the most "
            "extreme outcome could not reach p ≤ "
            f"{stats.ALPHA:g} with the seeds there are, the table says so instead of a p-value, "
            "with how many seeds would do."))
        sec.blocks.append(H.table(ranking_display(ranking[ranking["problem"] == problem])))
        if found is not None:
            sec.blocks.extend(T.problem_blocks(found, source or run, str(problem), writer,
                                               palette))
        result = F.convergence_figure(run, str(problem), palette)
        if result is not None:
            fig, caption = result
            name = writer.save(fig, f"convergence-{problem}")
            sec.blocks.append(H.figure(name, f"Convergence: {problem}", caption))
    sec.blocks.extend(_plugin_figures(run, model, writer, host))
    return [sec]


def _plugin_figures(run: ReportRun, model: str, writer: _Writer,
                    host: PluginHost) -> list[str]:
    blocks: list[str] = []
    for call in host.call_each("report_figures", run=run, problem=model):
        if call.error is not None:
            _figure_error(blocks, writer, call.plugin, model, call.error)
            continue
        if call.value is None:
            continue
        items = call.value if isinstance(call.value, list | tuple) else [call.value]
        for item in items:
            if not isinstance(item, ReportFigure):
                _close(item)
                _figure_error(blocks, writer, call.plugin, model,
                              f"returned {type(item).__name__}, expected ReportFigure")
                continue
            try:
                name = writer.save(item.figure, f"{model}-{call.plugin}-{item.title}")
            except Exception as exc:
                _close(item.figure)
                _figure_error(blocks, writer, call.plugin, model,
                              f"could not save figure {item.title!r}: "
                              f"{type(exc).__name__}: {exc}")
                continue
            blocks.append(H.figure(name, item.title, item.caption))
    return blocks


def _close(obj: Any) -> None:
    import sys

    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        if isinstance(obj, Figure):
            plt.close(obj)


def _figure_error(blocks: list[str], writer: _Writer, plugin: str, model: str,
                  error: str) -> None:
    writer.errors.append({"plugin": plugin, "problem": model, "error": error})
    blocks.append(f'<p class="error">Figure from plugin <code>{H.esc(plugin)}</code> failed: '
                  f"{H.esc(error)}</p>")

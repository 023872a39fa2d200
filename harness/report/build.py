"""``harness report DIR``: tables, figures and one HTML page from a finished run.

The order is the page's: what was run; across problems (performance profile,
time-to-target, throughput and memory); one section per problem (ranking table,
convergence curves, the pictures plugins contribute); the cells that failed; and
how the statistics were computed. Every figure is a PNG beside ``index.html``, every
table also a CSV there.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.atomic import make_dir, write_atomic
from harness.cell import safe_name
from harness.errors import UsageError
from harness.outcome import PEAK_MEM_METHODS
from harness.plugins import PluginHost, get_host
from harness.report import figures as F
from harness.report import html as H
from harness.report import overview as O
from harness.report import stats, tables
from harness.report import tuned as T
from harness.report.display import ranking_display
from harness.report.intro import intro as _intro
from harness.report.methods import failures_section, methods_section
from harness.report.model import ReportFigure, ReportRun
from harness.report.runs import load_runs
from harness.report.sweep import Sweep, best_configs_toml, default_view, sweep
from harness.report.sweep import format_pairs_text as fmt_pairs
from harness.results.schema import NOISY_DISPERSION

#: Where a report of several runs goes by default, inside the first run's folder.
COMBINED = "report-combined"
#: Beside a report's figures: the names of the figures that report wrote, so that the
#: next report into the folder removes those and never a file of the user's.
FIGURE_LIST = ".harness-figures.json"


class _Writer:
    """Saves one page part's figures with unique names (the part's number, then the
    figure's), lists them in the part's list beside :data:`FIGURE_LIST` before writing
    each, and collects what went wrong drawing them."""

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
        write_atomic(self.out / _part_list(self.part), json.dumps(self.names))  # before it
        F.save(fig, self.out / name)
        return name


def _part_list(part: int) -> str:
    """A part's own figure list (parts are drawn in parallel); merged into
    :data:`FIGURE_LIST` when the page is written."""
    return f".harness-figures-{part:02d}.json"


def _remove_previous(out: Path) -> None:
    """Remove the figures the previous report into ``out`` wrote: its list says which, and
    the part lists of a report that stopped before its page was written."""
    for listing in [out / FIGURE_LIST, *sorted(out.glob(".harness-figures-*.json"))]:
        try:
            previous = json.loads(listing.read_text("utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # no list, or a damaged one: remove nothing rather than a user's file
        for name in previous if isinstance(previous, list) else []:
            if isinstance(name, str) and re.fullmatch(r"fig-\d+-[\w.-]*\.png", name):
                (out / name).unlink(missing_ok=True)
        if listing.name != FIGURE_LIST:
            listing.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Page:
    """What every part of the page is drawn from (inherited by forked workers)."""

    run: ReportRun
    out: Path
    host: PluginHost
    palette: dict[str, Any]
    ranking: pd.DataFrame
    overview: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame,
                    pd.DataFrame, str]
    sweep: Sweep | None = None
    #: The whole run (``run`` is a sweep's view of it: one configuration per optimizer).
    source: ReportRun | None = None


_PAGE: _Page | None = None  # set in the parent before its workers fork


def _draw_part(part: int) -> tuple[list[H.Section], list[dict[str, str]]]:
    """Part 0 is the overview, part k the run's k-th problem; returns its sections and
    its figure errors (figures are written to the report's directory)."""
    page = _PAGE
    assert page is not None
    writer = _Writer(page.out, part)
    with F.theme():
        if part == 0:
            sections = [_overview(page.run, writer, page.palette, *page.overview)]
        else:
            model = page.run.models()[part - 1]
            sections = _problem_sections(page.run, model, writer, page.palette, page.ranking,
                                         page.host, page.sweep, page.source)
    return sections, writer.errors


def _draw_parts(page: _Page, workers: int | None) -> tuple[list[H.Section],
                                                          list[dict[str, str]]]:
    """Draw the page's parts, in forked worker processes where there are several CPUs
    (drawing is most of a report's time); in order, and in this process otherwise."""
    global _PAGE
    parts = range(len(page.run.models()) + 1)
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1, len(parts))
    _PAGE = page
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
        _PAGE = None
        if freeze:
            gc.unfreeze()
    sections = [section for drawn, _ in results for section in drawn]
    return sections, [error for _, errors in results for error in errors]


def build_report(run_dir: Path | str | Sequence[Path | str], *, out_dir: Path | None = None,
                 host: PluginHost | None = None, cost: str = tables.DEFAULT_COST,
                 workers: int | None = None) -> Path:
    """Write ``run_dir/report/index.html`` (or ``out_dir``) and return its path.

    ``run_dir`` may be several results directories: they are combined into one page
    (:mod:`harness.report.runs`), written by default to ``report-combined`` in the first.
    ``cost`` (a key of :data:`harness.report.tables.COSTS`) is the axis the performance
    profile, its scores and the cost-to-target figure are drawn on. The overview and each
    problem's section are drawn in ``workers`` forked processes (default: one per available
    CPU; ``1`` draws everything in this process); the page is the same either way.

    :raises harness.errors.UsageError: a ``run_dir`` is not a results directory or is given
        twice, or ``cost`` is no cost axis.
    :raises OSError: the report cannot be written; the error names the path.
    """
    paths = [Path(run_dir)] if isinstance(run_dir, str | Path) else [Path(p) for p in run_dir]
    if cost not in tables.COSTS:
        raise UsageError(f"no cost axis {cost!r}; choose one of {', '.join(tables.COSTS)}")
    host = host or get_host()
    source = load_runs(paths, host)
    found = sweep(source)
    run = found.view if found else source  # a sweep ranks one configuration per optimizer
    out = Path(out_dir) if out_dir else paths[0] / ("report" if len(paths) == 1
                                                      else COMBINED)
    make_dir(out)
    _remove_previous(out)
    write_atomic(out / FIGURE_LIST, "[]")
    palette = F.arm_palette(run.arms())  # one colour and style per arm, in every figure

    ranking = tables.ranking(run)
    ttt = tables.time_to_target(run)
    with_target = {p for p in run.summary["problem"] if run.target(str(p)) is not None}
    ttt = ttt[ttt["problem"].isin(with_target)].reset_index(drop=True)
    times = tables.profile_times(ttt, cost)
    scores = tables.profile_scores(times)
    profile = stats.performance_profile(times) if not times.empty else pd.DataFrame()
    throughput = tables.throughput(run)
    failures = tables.failures(source)
    cost_table = tables.cost_to_target(ttt, cost)

    _write_csv(out, {"ranking": ranking, "time_to_target": ttt,
                     "cost_to_target": cost_table, "throughput": throughput,
                     "performance_profile": profile.reset_index() if len(profile) else profile,
                     "profile_scores": scores, "failures": failures})

    searched = found is not None and found.searched
    defaults = _defaults(source, ranking) if searched else None
    if found is not None and searched:
        _write_sweep(out, found, defaults)
    page = _Page(run, out, host, palette, ranking,
                 (ttt, cost_table, times, scores, profile, throughput, cost), found, source)
    sections, figure_errors = _draw_parts(page, workers)
    if found is not None and searched:
        sections.insert(1, T.overview_section(found, defaults))
    _merge_lists(out)
    sections.append(failures_section(failures, figure_errors))
    sections.append(methods_section(cost, found if searched else None))

    title = " + ".join(src.name for src in run.runs) if len(run.runs) > 1 else run.path.name
    html = H.page(f"Benchmark report: {title}", _intro(source), sections)
    target = out / "index.html"
    write_atomic(target, html)
    return target


def _write_sweep(out: Path, found: Sweep, defaults: pd.DataFrame | None) -> None:
    """A sweep's own files: every configuration, the selections (also as grid-file lines)
    and, beside a default run, its ranking against the tuned one."""
    configs = found.configs.drop(columns=["cells"], errors="ignore")
    if "hyper" in configs:
        configs = configs.assign(hyper=[fmt_pairs(h) for h in configs["hyper"]])
    _write_csv(out, {"configurations": configs, "best_configs": found.choices})
    write_atomic(out / "best_configs.toml", best_configs_toml(found.choices))
    if defaults is not None:
        _write_csv(out, {"defaults_vs_tuned": defaults})


def _defaults(source: ReportRun, ranking: pd.DataFrame) -> pd.DataFrame | None:
    default = default_view(source)
    return T.defaults_beside(default, ranking) if default is not None else None


def _merge_lists(out: Path) -> None:
    """One :data:`FIGURE_LIST` of every figure the parts wrote (then their own lists go)."""
    parts = sorted(out.glob(".harness-figures-*.json"))
    names = [name for listing in parts for name in json.loads(listing.read_text("utf-8"))]
    write_atomic(out / FIGURE_LIST, json.dumps(names))
    for listing in parts:
        listing.unlink()


def _write_csv(out: Path, frames: dict[str, pd.DataFrame]) -> None:
    for name, frame in frames.items():
        write_atomic(out / f"{name}.csv", frame.to_csv(index=False))


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

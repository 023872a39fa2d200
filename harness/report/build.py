"""``harness report DIR``: tables, figures and one HTML page from a finished run.

The order is the page's: what was run; across problems (performance profile,
time-to-target, throughput and memory); one section per problem (ranking table,
convergence curves, the pictures plugins contribute); the cells that failed; and
how the statistics were computed. Every figure is a PNG beside ``index.html``, every
table also a CSV there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.atomic import make_dir, write_atomic
from harness.errors import UsageError
from harness.plugins import PluginHost, get_host
from harness.report import html as H
from harness.report import stats, tables
from harness.report.intro import intro as _intro
from harness.report.methods import failures_section, methods_section
from harness.report.model import ReportRun
from harness.report.painter import Page, Painter
from harness.report.runs import load_runs
from harness.report.sweep import Sweep, best_configs_toml, default_view, sweep
from harness.report.sweep import format_pairs_text as fmt_pairs

#: Where a report of several runs goes by default, inside the first run's folder.
COMBINED = "report-combined"
#: Beside a report's figures: the names of the figures that report wrote, so that the
#: next report into the folder removes those and never a file of the user's.
FIGURE_LIST = ".harness-figures.json"


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


def build_report(run_dir: Path | str | Sequence[Path | str], *, out_dir: Path | None = None,
                 host: PluginHost | None = None, cost: str = tables.DEFAULT_COST,
                 workers: int | None = None, painter: Painter | None = None) -> Path:
    """Write ``run_dir/report/index.html`` (or ``out_dir``) and return its path.

    ``run_dir`` may be several results directories: they are combined into one page
    (:mod:`harness.report.runs`), written by default to ``report-combined`` in the first.
    ``cost`` (a key of :data:`harness.report.tables.COSTS`) is the axis the performance
    profile, its scores and the cost-to-target figure are drawn on. The overview and each
    problem's section are drawn in ``workers`` forked processes (default: one per available
    CPU; ``1`` draws everything in this process); the page is the same either way. They are
    forked from a drawing process (:mod:`harness.report.painter`) started now, or ``painter``,
    started earlier by the caller (which then also decides ``workers``).

    :raises harness.errors.UsageError: a ``run_dir`` is not a results directory or is given
        twice, or ``cost`` is no cost axis.
    :raises OSError: the report cannot be written; the error names the path.
    """
    paths = [Path(run_dir)] if isinstance(run_dir, str | Path) else [Path(p) for p in run_dir]
    if cost not in tables.COSTS:
        raise UsageError(f"no cost axis {cost!r}; choose one of {', '.join(tables.COSTS)}")
    host = host or get_host()
    if painter is not None:
        return _build(paths, out_dir, host, cost, painter)
    with Painter(host, workers) as started:  # starts loading the drawing code now
        return _build(paths, out_dir, host, cost, started)


def _build(paths: list[Path], out_dir: Path | None, host: PluginHost, cost: str,
           painter: Painter) -> Path:
    source = load_runs(paths, host)
    found = sweep(source)
    run = found.view if found else source  # a sweep ranks one configuration per optimizer
    out = Path(out_dir) if out_dir else paths[0] / ("report" if len(paths) == 1
                                                      else COMBINED)
    make_dir(out)
    _remove_previous(out)
    write_atomic(out / FIGURE_LIST, "[]")

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
    page = Page(run, out, ranking, (ttt, cost_table, times, scores, profile, throughput, cost),
                found, source)
    sections, figure_errors = painter.draw(page)
    if found is not None and searched:
        from harness.report import tuned as T  # matplotlib: only a sweep's report needs it

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
    from harness.report import tuned as T

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

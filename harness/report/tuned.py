"""The report's parts for sweeps and tuning runs (:mod:`harness.report.sweep`): per problem
the configurations tried, the selection and the sensitivity figure; across problems the
tuning cost per optimizer, the best configurations (a CSV and grid-file lines to paste
back) and, next to a default run, the default ranking beside the tuned one."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report import html as H
from harness.report import tables
from harness.report.model import ReportRun
from harness.report.sensitivity import MARKS, scales, sensitivity_figure
from harness.report.sweep import Sweep, best_configs_toml


def selection_text(sw: Sweep, problem: str) -> str:
    """How one problem's configurations were selected and what the ranking is over."""
    rows = sw.choices[sw.choices["problem"] == problem]
    if rows.empty:
        return ""
    metric, split, better = (str(rows[c].iloc[0]) for c in ("metric", "split", "better"))
    side = "lowest" if better == "min" else "highest"
    text = (f"One configuration per optimizer: the one with the {side} mean {metric} over its "
            f"seeds ({split} split), never the test metric; a configuration with a seed that "
            "did not finish ok has no value.")
    if split == "training":
        text += (" This problem has no validation split, so the selection is on the training "
                 "loss.")
    if int(rows["final_seeds"].max()) > 0:
        text += (" The tuner selected it; the ranking below is over its final cells, on "
                 "seeds no trial used.")
    else:
        text += (" The ranking below is over the selected configuration's cells, the seeds "
                 "it was selected on: somewhat optimistic (a tuning run's fresh final seeds "
                 "are not).")
    return text


def choices_table(sw: Sweep, problem: str) -> pd.DataFrame:
    rows = sw.choices[sw.choices["problem"] == problem]
    return pd.DataFrame({
        "optimizer": rows["optimizer"], "selected configuration": rows["configuration"],
        "configurations tried": rows["configurations"],
        "selection value": [H.fmt_number(v) for v in rows["value"]],
        "on the edge": [f"yes: {e} (a better value may lie beyond)" if e else "no"
                        for e in rows["edge"]],
        "final seeds": [str(n) if n else "–" for n in rows["final_seeds"]],
    })


def problem_blocks(sw: Sweep, run: ReportRun, problem: str, writer: Any,
                   palette: dict[str, Any]) -> list[str]:
    """The configurations block of one problem's section (empty outside sweeps)."""
    if sw.choices.empty or problem not in set(sw.choices["problem"]):
        return []
    rows = sw.choices[sw.choices["problem"] == problem]
    single = bool((rows["configurations"] == 1).all()) and not rows["final_seeds"].any()
    if not sw.searched or single:
        return [H.paragraph("Settings on this problem (each optimizer ran one configuration "
                            "here, ranked under its name): "
                            + "; ".join(str(c) for c in rows["configuration"]) + ".")]
    blocks = ["<h3>Configurations tried</h3>", H.paragraph(selection_text(sw, problem)),
              H.table(choices_table(sw, problem))]
    model = str(sw.choices.loc[sw.choices["problem"] == problem, "model"].iloc[0])
    drawn = sensitivity_figure(sw.configs, problem, palette, scales(run), model)
    if drawn is not None:
        fig, keys = drawn
        name = writer.save(fig, f"sensitivity-{problem}")
        legend = "; ".join(text for _, _, text in MARKS.values())
        blocks.append(H.figure(
            name, f"Sensitivity: {problem}",
            f"The selection metric of each configuration against {', '.join(keys)}, one "
            "line per optimizer (log axis where the search space is log, or where a sweep "
            f"spans a decade or more). Marks: {legend}; configurations without a value are "
            "drawn at the top edge."))
    return blocks


def cost_table(sw: Sweep) -> pd.DataFrame:
    """Per optimizer, over every problem: configurations tried, cells, training seconds
    and FLOPs spent on them, and how many trials the pruner stopped."""
    c = sw.configs
    if c.empty:
        return pd.DataFrame()
    rows = []
    for group, g in c.groupby("group", sort=False):
        rows.append({
            "optimizer": group, "configurations": len(g),
            "cells": int(g["seeds"].sum()),
            "training seconds": float(g["train_s"].sum()),
            "FLOPs": float(g["flops"].sum()),
            "pruned": int(g["pruned"].sum()), "without a value": int(
                g["value"].isna().sum()),
            "seconds saved by pruning (est.)": float(g["saved_s"].sum()),
            "FLOPs saved by pruning": float(g["saved_flops"].sum()),
        })
    return pd.DataFrame(rows)


def overview_section(sw: Sweep, defaults: pd.DataFrame | None) -> H.Section:
    """Across problems: cost, best configurations, and defaults beside tuned."""
    title = "Tuning" if sw.tuned else "Sweeps"
    sec = H.Section("tuning", title)
    sec.blocks.append(H.paragraph(
        "Each optimizer's configurations on each problem are grouped: the page ranks one "
        "configuration per optimizer and problem, selected on the validation metric (see each "
        "problem's section). Every configuration's own numbers are in configurations.csv."))
    sec.blocks.append("<h3>Cost of the search per optimizer</h3>")
    cost = cost_table(sw)
    pruned = int(cost["pruned"].sum()) if len(cost) else 0
    sec.blocks.append(H.paragraph(
        "Training seconds (evaluation excluded) and FLOPs (FLOPs of a step × steps trained) "
        "over the configurations tried, all problems together"
        + (f"; {pruned} trial(s) stopped early by the pruner cost only what they ran. "
           "Saved: the FLOPs of the steps they did not run (exact), and those steps at each "
           "trial's own rate in seconds (an estimate)." if pruned else
           "; no trial was pruned.")))
    if not pruned and len(cost):
        cost = cost.drop(columns=["seconds saved by pruning (est.)", "FLOPs saved by pruning"])
    sec.blocks.append(H.table(cost))
    sec.blocks.append("<h3>Best configuration per problem and optimizer</h3>")
    edges = int((sw.choices["edge"] != "").sum())
    sec.blocks.append(H.paragraph(
        "As best_configs.csv beside this page; its grid column, as the lines below "
        "(best_configs.toml), pastes into a grid file to run these settings per problem."
        + (f" {edges} selection(s) sit on the edge of what was tried: a better value may lie "
           "beyond it." if edges else "")))
    sec.blocks.append(H.table(sw.choices[["problem", "optimizer", "hyperparameters", "metric",
                                          "value", "edge", "configurations"]]))
    sec.blocks.append(f"<pre>{H.esc(best_configs_toml(sw.choices))}</pre>")
    if defaults is not None and len(defaults):
        sec.blocks.append("<h3>Defaults against tuned</h3>")
        sec.blocks.append(H.paragraph(
            "Per problem, the ranking of the default run (each optimizer at the settings it "
            "was run with) beside the tuned ranking (each optimizer at its selected "
            "configuration): the rank, mean and interval of the final metric."))
        sec.blocks.append(H.table(defaults))
    return sec


def defaults_beside(default: ReportRun, tuned: pd.DataFrame) -> pd.DataFrame:
    """Problem by problem, the default run's ranking beside the tuned one (rank, mean and
    the interval of each side), one row per optimizer."""
    base = tables.ranking(default)
    rows = []
    for problem in dict.fromkeys(tuned["problem"]):
        b = base[base["problem"] == problem].set_index("arm")
        t = tuned[tuned["problem"] == problem].set_index("arm")
        for arm in dict.fromkeys([*t.index, *b.index]):
            rows.append({"problem": problem, "optimizer": arm,
                         **_side("default", b, arm), **_side("tuned", t, arm)})
    return pd.DataFrame(rows)


def _side(name: str, frame: pd.DataFrame, arm: str) -> dict[str, str]:
    if arm not in frame.index:
        return {f"{name} rank": "–", f"{name} mean [95% CI]": "not run"}
    row = frame.loc[[arm]].iloc[0].to_dict()
    low, high, place = (float(row[c]) for c in ("ci_low", "ci_high", "rank"))
    ci = f" [{H.fmt_number(low)}, {H.fmt_number(high)}]" if math.isfinite(low) else ""
    rank = "–" if not math.isfinite(place) else str(int(place))
    return {f"{name} rank": rank,
            f"{name} mean [95% CI]": H.fmt_number(row["mean"]) + ci}


__all__ = ["choices_table", "cost_table", "defaults_beside", "overview_section",
           "problem_blocks", "selection_text"]

"""The sensitivity figure of a sweep or tuning run: the selection metric against each
tuned hyperparameter, one line of points per optimizer, the selected point marked.

Configurations without a value (a seed that failed, or a trial the pruner stopped) are
drawn along the top edge; those that missed the target or ended at chance level get a
marker of their own, so a flat region of failures reads as one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report import stats
from harness.report.figures import _grid, style_of
from harness.report.model import ReportRun

#: How each kind of configuration is drawn (marker, face, legend text), in legend order.
MARKS = {
    "selected": ("*", "full", "selected"),
    "missed": ("o", "none", "missed the target"),
    "at_chance": ("v", "0.6", "at chance level"),
    "pruned": ("s", "0.8", "pruned (no final value)"),
    "failed": ("X", "#c0392b", "a seed not ok (no value)"),
}


def scales(run: ReportRun) -> dict[tuple[str, str, str], str]:
    """(model, optimizer, hyperparameter) -> its search space's scale (``log``, ``linear``,
    ``one-minus-log``, ...), from each run's ``tuning.json`` where there is one; a schedule's
    parameter is named ``SCHEDULE.KEY``, as the configurations name it."""
    out: dict[tuple[str, str, str], str] = {}
    for src in run.runs:
        try:
            data = json.loads((Path(src.path) / "tuning.json").read_text("utf-8"))
            studies = data.get("studies") or []
        except (OSError, ValueError, AttributeError):
            continue
        for study in studies if isinstance(studies, list) else []:
            space = study.get("space") if isinstance(study, dict) else None
            for key, dim in (space or {}).items() if isinstance(space, dict) else ():
                if isinstance(dim, dict) and isinstance(dim.get("scale"), str):
                    if dim.get("owner") == "schedule" and study.get("schedule"):
                        key = f"{study['schedule']}.{key}"
                    out[(str(study.get("model")), str(study.get("optimizer")), str(key))] = \
                        dim["scale"]
    return out


def _numeric(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def _kind(row: Mapping[Any, Any]) -> str | None:
    for kind in ("failed", "pruned", "at_chance", "missed"):
        if row.get(kind):
            return kind
    return None


def sensitivity_figure(configs: pd.DataFrame, problem: str, palette: dict[str, Any],
                       scale_of: Mapping[tuple[str, str, str], str],
                       model: str) -> tuple[Figure, list[str]] | None:
    """One panel per varied numeric hyperparameter; None when nothing numeric varied.
    Returns the figure and the hyperparameters drawn."""
    rows = configs[configs["problem"] == problem]
    keys = sorted({k for h in rows["hyper"] for k, v in h.items() if not math.isnan(_numeric(v))})
    keys = [k for k in keys if len({_numeric(h.get(k)) for h in rows["hyper"]}) > 1]
    if not keys:
        return None
    fig, axes = _grid(len(keys), ncols=min(3, len(keys)), w=4.6, h=3.2)
    values = rows["value"].to_numpy(dtype=float)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    metric, split = str(rows["metric"].iloc[0]), str(rows["split"].iloc[0])
    seen: set[str] = set()
    for ax, key in zip(axes, keys, strict=True):
        for group, g in rows.groupby("group", sort=False):
            _draw_group(ax, g, key, str(group), palette, top, seen)
        xs = [_numeric(h.get(key)) for h in rows["hyper"]]
        scale = next((s for (m, _, k), s in scale_of.items() if m == model and k == key), None)
        _x_scale(ax, key, scale, xs)
        if stats.spans_decades(values):
            ax.set_yscale("log")
        ax.set_ylabel(f"{metric} ({split})")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(f"{problem}: {metric} against the tuned hyperparameters")
    return fig, keys


def _draw_group(ax: Any, g: pd.DataFrame, key: str, group: str, palette: dict[str, Any],
                top: float, seen: set[str]) -> None:
    style = style_of(palette, group)
    pts = sorted(((_numeric(h.get(key)), float(v), r) for h, v, r in
                  zip(g["hyper"], g["value"], g.to_dict("records"), strict=True)),
                 key=lambda t: t[0])
    good = [(x, y) for x, y, _ in pts if math.isfinite(x) and math.isfinite(y)]
    if good:
        ax.plot(*zip(*good, strict=True), color=style.color, lw=1, alpha=0.6, marker="o",
                markersize=4, label=group)
    for x, y, r in pts:
        kind = "selected" if r.get("selected") else _kind(r)
        if kind is None or not math.isfinite(x):
            continue
        marker, face, text = MARKS[kind]
        label = text if kind not in seen else None
        seen.add(kind)
        ax.scatter([x], [y if math.isfinite(y) else top], marker=marker, s=90 if
                   kind == "selected" else 40, facecolors=style.color if face == "full"
                   else face, edgecolors=style.color, linewidths=1.2, zorder=4, label=label)


def _x_scale(ax: Any, key: str, scale: str | None, xs: list[float]) -> None:
    finite = [x for x in xs if math.isfinite(x)]
    positive = bool(finite) and min(finite) > 0
    if scale == "log" or (scale is None and positive and max(finite) / min(finite) >= 10):
        ax.set_xscale("log")
        ax.set_xlabel(f"{key} (log scale)")
    elif scale == "one-minus-log" and finite and max(finite) < 1:
        ax.set_xscale("function", functions=(lambda x: -np.log10(np.clip(1 - x, 1e-12, None)),
                                             lambda y: 1 - 10.0 ** (-y)))
        ax.set_xlabel(f"{key} (1 − {key} on a log scale)")
    else:
        ax.set_xlabel(key)

"""Text and JSON views for ``harness list`` and ``harness show``."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness.cell import format_value
from harness.errors import UsageError
from harness.plugins import PluginHost
from harness.results import RunDirectory


def catalogue(host: PluginHost) -> dict[str, Any]:
    problems = []
    for p in host.problems:
        owner = host.problems.owner(p.name)
        problems.append({
            "name": p.name,
            "description": p.description,
            "plugin": owner.name,
            "distribution": owner.distribution,
            "version": owner.version,
            "params": {q.name: {"default": q.default,
                                "choices": list(q.choices) if q.choices else None,
                                "help": q.help} for q in p.params},
            "batch_size": p.batch_size,
            "steps": p.steps,
            "metrics": list(p.metrics),
            "target": None if p.target is None else asdict(p.target),
        })
    optimizers = []
    for o in host.optimizers:
        owner = host.optimizers.owner(o.name)
        optimizers.append({
            "name": o.name,
            "description": o.description,
            "plugin": owner.name,
            "distribution": owner.distribution,
            "version": owner.version,
            "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in o.defaults.items()},
        })
    executors = [{"name": e.name, "description": e.description,
                  "plugin": host.executors.owner(e.name).name, "settings": list(e.settings)}
                 for e in host.executors]
    return {
        "problems": problems,
        "optimizers": optimizers,
        "executors": executors,
        "plugins": [asdict(p) for p in host.plugins],
    }


def format_catalogue(data: dict[str, Any]) -> str:
    lines = ["Models:"]
    for p in data["problems"]:
        params = " ".join(f"{k}={format_value(v['default'])}" for k, v in p["params"].items())
        target = p["target"]
        tgt = f"{target['metric']} {'<=' if target['mode'] == 'min' else '>='} " \
              f"{target['threshold']:g}" if target else "-"
        lines.append(f"  {p['name']:<22} {p['description']}")
        lines.append(f"  {'':<22} batch {p['batch_size']}, {p['steps']} steps, target {tgt}"
                     + (f", params: {params}" if params else "") + f"  [{p['plugin']}]")
    lines.append("Optimizers:")
    for o in data["optimizers"]:
        defaults = ", ".join(f"{k}={format_value(v)}" for k, v in o["defaults"].items())
        lines.append(f"  {o['name']:<22} {defaults}  [{o['plugin']}]")
    lines.append("Executors:")
    for e in data.get("executors", []):
        lines.append(f"  {e['name']:<22} {e['description']}  [{e['plugin']}]")
    lines.append("Plugins:")
    for p in data["plugins"]:
        dist = f"{p['distribution']} {p['version']}" if p["distribution"] else "in-process"
        lines.append(f"  {p['name']:<22} {dist:<24} {p['status']}")
        if p["error"]:
            lines.append(f"  {'':<22} error: {p['error']}")
    return "\n".join(lines)


def print_catalogue(host: PluginHost, as_json: bool) -> None:
    data = catalogue(host)
    print(json.dumps(data, indent=2, default=str) if as_json else format_catalogue(data))


SHOW_COLUMNS = ("model", "params", "optimizer", "device", "seed", "status", "final_loss",
                "time_to_target_s", "samples_per_s", "peak_mem_mb")


def load_summary(path: Path) -> tuple[pd.DataFrame, RunDirectory]:
    run_dir = RunDirectory(path)
    if not path.is_dir():
        raise UsageError(f"no results directory at {str(path)!r}")
    if not (path / "cells").is_dir() and not (path / "summary.parquet").exists():
        raise UsageError(f"{str(path)!r} holds no harness results")
    summary, _ = run_dir.tables()
    return summary, run_dir


def format_summary(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "(no finished cells)"
    params = _param_names(summary)  # a parameter named test_size is not a metric
    metrics = [c for c in summary.columns
               if c.startswith(("test_", "train_", "eval_")) and c not in params]
    if "target_metric" in summary.columns:  # a problem's target metric, whatever its name
        metrics += [m for m in dict.fromkeys(summary["target_metric"].dropna())
                    if isinstance(m, str) and m in summary.columns and m not in metrics]
    cols = [c for c in SHOW_COLUMNS if c in summary.columns]
    cols = cols[:7] + metrics + cols[7:]
    frame = summary[cols].copy()
    if "params" in frame and (frame["params"] == "").all():
        frame = frame.drop(columns="params")
    varying = _varying_hyperparameters(summary)
    if varying:
        at = list(frame.columns).index("optimizer") + 1
        frame.insert(at, "hyperparameters", [
            " ".join(f"{k}={_value(row[f'hp.{k}'])}" for k in varying
                     if not _missing(row[f"hp.{k}"]))
            for _, row in summary.iterrows()])
    return frame.to_string(index=False, float_format=_fmt, na_rep="-")


def _param_names(summary: pd.DataFrame) -> set[str]:
    """The problem parameters' names, read off the ``params`` column (``k=v,k2=v2``)."""
    if "params" not in summary.columns:
        return set()
    return {name for text in summary["params"].dropna()
            for name in re.findall(r"(?:^|,)([a-z0-9][a-z0-9._-]*)=", str(text))}


def _varying_hyperparameters(summary: pd.DataFrame) -> list[str]:
    """The hyperparameters that take more than one value for some optimizer: what tells
    its rows apart."""
    names = [c[3:] for c in summary.columns if c.startswith("hp.")]
    if "optimizer" not in summary.columns:
        return []
    return [k for k in names
            if any(g[f"hp.{k}"].map(_value).nunique(dropna=False) > 1
                   for _, g in summary.groupby("optimizer", sort=False))]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(value: Any) -> str:
    return "-" if _missing(value) else _fmt(value) if isinstance(value, float) else str(value)


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"

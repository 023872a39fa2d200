"""``harness export DIR --format pytest-benchmark``: our results in pytest-benchmark's JSON.

pytest-benchmark's ``compare`` command (and the dashboards and CI tools that read
its files) then show our cells next to theirs. One benchmark per cell that finished
``ok``; its rounds are the cell's steady-state logging windows, each round's value
the seconds per training step in that window (so ``ops`` is steps per second), and
``iterations`` the steps per window. The statistics are computed as
pytest-benchmark computes them (``pytest_benchmark.stats.Stats``), so its tables
and ours agree. Cells not ``ok`` have no timing and are left out.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import platform
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.atomic import make_dir, naming
from harness.cell import Cell, format_pairs
from harness.errors import UsageError
from harness.outcome import Status
from harness.report.model import ReportRun, steady_windows

FORMATS = ("pytest-benchmark",)
#: The file-format version written when pytest-benchmark is not installed.
FALLBACK_VERSION = "5.1.0"


def export(run_dir: Path, fmt: str) -> tuple[dict[str, Any], list[str]]:
    """The exported document and the cell ids left out (not ``ok``, or no timing)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    run = ReportRun.load(run_dir)
    return pytest_benchmark_document(run)


def pytest_benchmark_document(run: ReportRun) -> tuple[dict[str, Any], list[str]]:
    labels = run.summary.set_index("cell_id")[["variant", "arm", "problem"]]
    benchmarks, skipped = [], []
    for rec in run.records:
        cell = Cell.from_dict(rec["cell"])
        windows = steady_windows(rec) if rec.get("status") == Status.OK else []
        summary = rec.get("summary") or {}
        if not windows and rec.get("status") == Status.OK:
            step_ms = summary.get("step_time_ms")
            steps = int(summary.get("steps_done") or cell.steps)
            if isinstance(step_ms, int | float) and math.isfinite(step_ms) and step_ms > 0:
                windows = [(steps, step_ms / 1000 * steps)]
        if not windows:
            skipped.append(rec["cell_id"])
            continue
        per_step = [dt / n for n, dt in windows]
        variant, arm, _ = labels.loc[rec["cell_id"]]
        stats = benchmark_stats(per_step)
        stats["iterations"] = round(statistics.median(n for n, _ in windows))
        params: dict[str, Any] = {"device": cell.device, "seed": cell.seed,
                                  **{k: _plain(v) for k, v in cell.params},
                                  **{f"hp.{k}": _plain(v) for k, v in cell.hyper}}
        benchmarks.append({
            "group": str(variant),
            "name": f"{arm}[{cell.device}-seed{cell.seed}]",
            "fullname": fullname(cell),
            "params": params,
            "param": f"{cell.device}-seed{cell.seed}",
            "extra_info": _extra(rec, summary),
            "options": {"timer": "perf_counter", "disable_gc": False, "min_rounds": 1,
                        "max_time": None, "min_time": None, "warmup": True},
            "stats": stats,
        })
    doc = {
        "machine_info": machine_info(run.manifest),
        "commit_info": commit_info(run.manifest),
        "benchmarks": benchmarks,
        "datetime": run.manifest.get("created", ""),
        "version": _pytest_benchmark_version(),
    }
    return doc, skipped


def fullname(cell: Cell) -> str:
    """Stable across runs of the same grid (no versions, no hashes): compare matches on it."""
    roles = "".join(f";{role}={opt}[{format_pairs(h)}]" for role, opt, h in cell.roles)
    return (f"harness::{cell.problem}[{format_pairs(cell.params)}]::{cell.optimizer}"
            f"[{format_pairs(cell.hyper)}{roles}]::{cell.device}::seed{cell.seed}")


def benchmark_stats(data: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's ``Stats`` fields for ``data`` (seconds per iteration)."""
    d = sorted(float(x) for x in data)
    n = len(d)
    mean = statistics.mean(d)
    stddev = statistics.stdev(d) if n > 1 else 0.0
    q1, q3 = _quartiles(d)
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for x in d if x < lo or x > hi)
    stddev_outliers = sum(1 for x in d if x < mean - stddev or x > mean + stddev)
    total = sum(d)
    return {
        "min": d[0], "max": d[-1], "mean": mean, "stddev": stddev, "rounds": n,
        "median": statistics.median(d), "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": iqr_outliers, "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": d[0] if n == 1 else d[bisect_left(d, lo)],
        "hd15iqr": d[0] if n == 1 else d[bisect_right(d, hi) - 1],
        "ops": n / total if total else 0, "total": total, "data": list(data),
    }


def _quartiles(d: Sequence[float]) -> tuple[float, float]:
    """Quartiles by pytest-benchmark's rule (Wikipedia's methods 2 and 3)."""
    n = len(d)
    if n == 1:
        return d[0], d[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * d[k - 1] + 0.75 * d[k], 0.75 * d[3 * k] + 0.25 * d[3 * k + 1]
        return 0.75 * d[k] + 0.25 * d[k + 1], 0.25 * d[3 * k + 1] + 0.75 * d[3 * k + 2]
    return statistics.median(d[: n // 2]), statistics.median(d[n // 2:])


def machine_info(manifest: dict[str, Any]) -> dict[str, Any]:
    machine = manifest.get("machine") or {}
    versions = manifest.get("versions") or {}
    return {
        "node": machine.get("hostname", ""),
        "processor": machine.get("cpu", ""),
        "machine": platform.machine(),
        "python_implementation": "CPython",
        "python_version": versions.get("python", ""),
        "platform": machine.get("platform", ""),
        "cpu": {"brand_raw": machine.get("cpu", ""), "count": machine.get("cpu_count"),
                "torch_threads": machine.get("torch_threads")},
        "devices": manifest.get("devices") or {},
        "versions": {k: v for k, v in versions.items() if k != "plugins"},
    }


def commit_info(manifest: dict[str, Any]) -> dict[str, Any]:
    """The commit of the user's code: the repository the run was started in (manifests
    written before it was recorded: harness's own, as then). Harness's own checkout is
    under ``harness``."""
    own = manifest.get("git") or {}
    if "repository" not in manifest:
        return _commit(own, "harness")
    user = manifest.get("repository") or {}
    project = Path(user["path"]).name if isinstance(user.get("path"), str) else None
    return {**_commit(user, project), "harness": _commit(own, "harness")}


def _commit(git: dict[str, Any], project: str | None) -> dict[str, Any]:
    return {"id": git.get("commit") or "unversioned", "dirty": bool(git.get("dirty")),
            "project": project, "branch": git.get("branch"), "time": None,
            "author_time": None}


def _extra(rec: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("samples_per_s", "sample_unit", "step_time_ms", "final_loss", "time_to_target_s",
            "peak_mem_mb", "data_source", "target_metric")
    extra = {k: summary.get(k) for k in keys if k in summary}
    metric = summary.get("target_metric")
    if isinstance(metric, str) and metric in summary:
        extra[metric] = summary[metric]
    extra["cell_id"] = rec["cell_id"]
    return extra


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _pytest_benchmark_version() -> str:
    try:
        return md.version("pytest-benchmark")
    except md.PackageNotFoundError:
        return FALLBACK_VERSION


def write(doc: dict[str, Any], out: Path | None) -> str:
    """The JSON text; written to ``out`` when given.

    :raises OSError: ``out`` cannot be written; the error names it.
    """
    text = json.dumps(_finite(doc), indent=2, allow_nan=False, default=str)
    if out is not None:  # written in place, not atomically: ``out`` may be a device
        make_dir(out.parent)
        with naming(out):
            out.write_text(text + "\n", encoding="utf-8")
    return text


def _finite(value: Any) -> Any:
    """JSON has no NaN: missing numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

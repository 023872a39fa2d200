"""What a report is built from: a run read back, labelled for display.

:class:`ReportRun` is also what plugins' ``report_figures`` hooks receive, so it is
small and stable: the manifest, the summary and curves tables (with the display
labels added), and each cell's record with its artifacts. :class:`ReportFigure` is
what such a hook returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.cell import Cell, format_pairs, format_value
from harness.errors import UsageError
from harness.outcome import Status
from harness.results import RunDirectory, curves_frame, summary_frame
from harness.results.schema import BY_NAME
from harness.schedules import describe
from harness.target import Target, parse_directions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from harness.plugins import PluginHost

#: Metric names that are better when larger, for runs whose problem is not installed.
_MAX_WORDS = ("accuracy", "acc", "return", "reward", "score", "f1", "auc", "precision", "recall",
              "margin")


@dataclass(frozen=True)
class ReportFigure:
    """One picture a plugin adds to a problem's section of the report.

    :param title: a short heading, shown as text (escaped).
    :param figure: a matplotlib figure; the report saves it as a PNG and closes it.
        Draw it with seaborn or matplotlib; the report sets the ``Agg`` backend.
    :param caption: what the picture shows and how to read it (escaped).
    """

    title: str
    figure: Figure
    caption: str = ""


@dataclass(frozen=True)
class CellView:
    """One finished cell: its identity, outcome, summary and problem artifacts."""

    cell: Cell
    cell_id: str
    status: str
    error: str | None
    summary: Mapping[str, Any]
    artifacts: Mapping[str, Any]
    #: Display labels (see :func:`label_cells`).
    variant: str = ""
    arm: str = ""


@dataclass(frozen=True)
class RunSource:
    """One results directory a report reads: its name on the page, where it is, its
    manifest and the cells it holds (a cell in several runs is in each one's set)."""

    name: str
    path: Path
    manifest: dict[str, Any]
    cells: frozenset[str]


def read_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The valid records and the manifest of a results directory; :class:`UsageError`
    when ``path`` is none."""
    if not path.is_dir():
        raise UsageError(f"no results directory at {str(path)!r}")
    run_dir = RunDirectory(path)
    records = run_dir.records()
    if not records:
        raise UsageError(f"{str(path)!r} holds no harness results (no cells/*.json)")
    return records, run_dir.manifest()


@dataclass
class ReportRun:
    """A results directory, read once, with display labels.

    ``summary`` and ``curves`` are :meth:`RunDirectory.tables` plus three columns:
    ``variant`` (the model and the parameters that vary across its cells),
    ``arm`` (the optimizer and the hyperparameters that vary across its cells) and
    ``problem`` (the variant, with the device when the run has several): the unit
    the ranking, profiles and time-to-target compare over.
    """

    path: Path
    manifest: dict[str, Any]
    summary: pd.DataFrame
    curves: pd.DataFrame
    records: list[dict[str, Any]]
    targets: dict[str, Target] = field(default_factory=dict)
    #: Problem descriptions from the installed plugins (absent when not installed).
    descriptions: dict[str, str] = field(default_factory=dict)

    #: The runs this report combines, in the order given (one for ``harness report DIR``).
    runs: list[RunSource] = field(default_factory=list)
    #: cell_id -> (variant, arm, problem), as in ``summary`` (see :func:`label_cells`).
    labels: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, host: PluginHost | None = None) -> ReportRun:
        """Read ``path``; :class:`UsageError` when it is not a results directory."""
        records, manifest = read_run(path)
        source = RunSource(path.name or str(path), path, manifest,
                           frozenset(str(r["cell_id"]) for r in records))
        return cls.from_records(path, manifest, records, host, [source],
                                label_cells(records, capabilities_in(manifest)))

    @classmethod
    def from_records(cls, path: Path, manifest: dict[str, Any], records: list[dict[str, Any]],
                     host: PluginHost | None, runs: list[RunSource],
                     labels: dict[str, tuple[str, str, str]]) -> ReportRun:
        """A report's run from records already read and labelled (one run or several:
        :func:`harness.report.runs.load_runs`). ``summary`` gets a ``run`` column: the
        name of the first run that holds the cell."""
        summary, curves = summary_frame(records), curves_frame(records)
        summary = _with_labels(summary, labels)
        curves = _with_labels(curves, labels)
        first = {cid: src.name for src in reversed(runs) for cid in src.cells}
        summary["run"] = [first.get(str(c), "") for c in summary["cell_id"]] \
            if "cell_id" in summary.columns else []
        return cls(path=path, manifest=manifest, summary=summary, curves=curves,
                   records=records, targets=_targets(summary, curves, records, host),
                   descriptions=_descriptions(summary, manifest, host), runs=runs,
                   labels=labels)

    # -- what plugins use ------------------------------------------------------------
    def models(self) -> list[str]:
        """The problem (model) names of the run, in run order."""
        return list(dict.fromkeys(self.summary["model"])) if len(self.summary) else []

    def arms(self) -> list[str]:
        """Every arm of the run, in run order: what :func:`harness.report.figures.arm_styles`
        is given, so that an arm has one colour and style in every figure of the report."""
        return list(dict.fromkeys(self.summary["arm"])) if len(self.summary) else []

    def cells(self, problem: str, *, ok_only: bool = True) -> list[CellView]:
        """The cells of one problem (model name), with their artifacts."""
        labels = self.labels or label_cells(self.records, capabilities_in(self.manifest))
        out = []
        for rec in self.records:
            if rec["cell"]["problem"] != problem:
                continue
            if ok_only and rec.get("status") != Status.OK:
                continue
            variant, arm, _ = labels[rec["cell_id"]]
            out.append(CellView(
                cell=Cell.from_dict(rec["cell"]), cell_id=rec["cell_id"],
                status=rec.get("status", "?"), error=rec.get("error"),
                summary=rec.get("summary") or {}, artifacts=rec.get("artifacts") or {},
                variant=variant, arm=arm,
            ))
        return out

    def target(self, problem: str) -> Target | None:
        """The target of a ``problem`` label, or of a model name (its first label's)."""
        return self.targets.get(problem)

    def final_metric(self, problem: str) -> tuple[str, str]:
        """The column ranked for a ``problem`` label (or model) and its direction.

        The problem's target metric when it has one, else the final training loss; its
        direction is :meth:`direction`'s.
        """
        t = self.targets.get(problem)
        if t is not None and t.metric in self.summary.columns:
            return t.metric, self.direction(problem, t.metric)
        return "final_loss", "min"

    def direction(self, problem: str, metric: str) -> str:
        """``min`` or ``max``: which side of ``metric`` is better on a ``problem`` label (or
        model). The cells' ``metric_directions`` column says; for records written before it,
        the target's direction when ``metric`` is the target's, the summary schema's for
        its own columns (``final_loss``...), else the metric's name."""
        rows = self._rows(problem)
        for text in rows.get("metric_directions", pd.Series(dtype=object)).dropna():
            side = parse_directions(text).get(metric)
            if side is not None:
                return side
        t = self.targets.get(problem)
        if t is not None and t.metric == metric:
            return t.mode
        column = BY_NAME.get(metric)
        if column is not None and column.better is not None:
            return column.better
        return metric_mode(metric)

    def validation_metric(self, problem: str) -> str | None:
        """The metric a ``problem`` label's (or model's) hyperparameters are selected on
        (its cells' ``validation_metric`` column), when the problem has one and the cells
        recorded it; None: only the training loss can select."""
        rows = self._rows(problem)
        names = [m for m in rows.get("validation_metric", pd.Series(dtype=object)).dropna()
                 if isinstance(m, str) and m and m in self.summary.columns]
        return names[0] if names else None

    def _rows(self, problem: str) -> pd.DataFrame:
        s = self.summary
        if s.empty:
            return s
        rows = s[s["problem"] == problem]
        return rows if len(rows) else s[s["model"] == problem]


def metric_mode(metric: str) -> str:
    """Best guess at a metric's direction from its name, for uninstalled problems."""
    words = metric.lower().replace("-", "_").split("_")
    return "max" if any(w in _MAX_WORDS for w in words) else "min"


def _targets(summary: pd.DataFrame, curves: pd.DataFrame, records: list[dict[str, Any]],
             host: PluginHost | None) -> dict[str, Target]:
    """The target and its direction of each ``problem`` label, and of each model name
    (its first label's: a target may depend on the parameters, see
    :meth:`harness.Problem.target_for`).

    The direction is the one the cells recorded (``target_mode``). Records written
    before that column existed take it from the installed problem when a host is given,
    else from a cell that reached the target (its metric at that step is on the good side
    of the threshold), else from the metric's name.
    """
    out: dict[str, Target] = {}
    if summary.empty or "target_metric" not in summary.columns:
        return out
    cells = {str(r["cell_id"]): r["cell"] for r in records}
    for label, rows in summary.groupby("problem", sort=False):
        model = str(rows["model"].iloc[0])
        metrics = [m for m in rows["target_metric"] if isinstance(m, str) and m]
        if not metrics:
            continue
        metric = metrics[0]
        raw = rows["target_threshold"] if "target_threshold" in rows.columns \
            else pd.Series(dtype=float)
        thresholds = pd.to_numeric(raw, errors="coerce").dropna()
        threshold = float(thresholds.iloc[0]) if len(thresholds) else math.nan
        recorded = [m for m in rows.get("target_mode", ()) if m in ("min", "max")]
        mode = recorded[0] if recorded else \
            _observed_mode(rows, curves, metric, threshold) or metric_mode(metric)
        if not recorded and host is not None and model in host.problems:
            params = Cell.from_dict(cells[str(rows["cell_id"].iloc[0])]).params
            try:
                declared = host.problems.get(model).target_for(dict(params))
            except Exception:  # a plugin's bug must not stop the report
                declared = None
            if declared is not None and declared.metric == metric:
                mode = declared.mode
        out[str(label)] = Target(metric, threshold, "max" if mode == "max" else "min")
        out.setdefault(model, out[str(label)])
    return out


def _observed_mode(rows: pd.DataFrame, curves: pd.DataFrame, metric: str,
                   threshold: float) -> str | None:
    """"min" or "max", read off the first cell that reached the target; None if none did."""
    if metric not in curves.columns or not math.isfinite(threshold):
        return None
    reached = rows[pd.to_numeric(rows["steps_to_target"], errors="coerce").notna()]
    for _, row in reached.iterrows():
        at = curves[(curves["cell_id"] == row["cell_id"])
                    & (curves["step"] == row["steps_to_target"])][metric].dropna()
        if len(at) and float(at.iloc[0]) != threshold:
            return "min" if float(at.iloc[0]) < threshold else "max"
    return None


def _descriptions(summary: pd.DataFrame, manifest: Mapping[str, Any] | None,
                  host: PluginHost | None) -> dict[str, str]:
    """Each problem's one-line description: as its run recorded it (``problems`` in the
    manifest), else, for a run recorded before that, from the installed problem (the
    plugins' registration runs then, importing torch)."""
    recorded = (manifest or {}).get("problems")
    recorded = recorded if isinstance(recorded, Mapping) else {}
    out: dict[str, str] = {}
    for model in dict.fromkeys(summary["model"]) if "model" in summary.columns else ():
        info = recorded.get(model)
        if isinstance(info, Mapping) and isinstance(info.get("description"), str):
            out[model] = info["description"]
        elif host is not None and model in host.problems:
            out[model] = host.problems.get(model).description
    return out


# -- labels ----------------------------------------------------------------------------
def capabilities_in(manifest: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Optimizer name -> the capabilities the manifest records for it (closure, ...)."""
    optimizers = (manifest or {}).get("optimizers")
    if not isinstance(optimizers, Mapping):
        return {}
    return {str(name): [str(c) for c in info.get("capabilities", [])]
            for name, info in optimizers.items() if isinstance(info, Mapping)}


def label_cells(records: Iterable[Mapping[str, Any]],
                capabilities: Mapping[str, Sequence[str]] | None = None,
                ) -> dict[str, tuple[str, str, str]]:
    """cell_id -> (variant, arm, problem) display labels.

    Only what varies is named: a model run with one parameter setting is just its
    name, an optimizer run with one set of hyperparameters just its name. The learning-rate
    schedule counts as a setting of the arm (``adam (schedule=warmup-cosine(warmup=0.1))``);
    an optimizer's capabilities follow its name (``lbfgs [closure]``).
    """
    cells = {str(r["cell_id"]): Cell.from_dict(r["cell"]) for r in records}
    model_keys = _varying(cells.values(), "problem",
                          lambda c: {**dict(c.params), "steps": c.steps,
                                     "batch_size": c.batch_size})
    arm_keys = _varying(cells.values(), "optimizer", _arm_values)
    devices = {c.device for c in cells.values()}
    out: dict[str, tuple[str, str, str]] = {}
    for cid, c in cells.items():
        pv = {**dict(c.params), "steps": c.steps, "batch_size": c.batch_size}
        variant = _name_with(c.problem, pv, model_keys[c.problem])
        caps = (capabilities or {}).get(c.optimizer)
        named = f"{c.optimizer} [{', '.join(caps)}]" if caps else c.optimizer
        arm = _name_with(named, _arm_values(c), arm_keys[c.optimizer])
        problem = f"{variant} @ {c.device}" if len(devices) > 1 else variant
        out[cid] = (variant, arm, problem)
    return out


def group_labels(records: Iterable[Mapping[str, Any]],
                 capabilities: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """cell_id -> the cell's optimizer group: its arm label without the hyperparameters and
    the schedule's settings (what a sweep or a tuning study varies), so the arms of one
    sweep share a group (``sgd``) and arms of other schedules or role optimizers do not."""
    cells = {str(r["cell_id"]): Cell.from_dict(r["cell"]) for r in records}
    keys = _varying(cells.values(), "optimizer", _group_values)
    out: dict[str, str] = {}
    for cid, c in cells.items():
        caps = (capabilities or {}).get(c.optimizer)
        named = f"{c.optimizer} [{', '.join(caps)}]" if caps else c.optimizer
        out[cid] = _name_with(named, _group_values(c), keys[c.optimizer])
    return out


def _group_values(c: Cell) -> dict[str, Any]:
    values = {k: v for k, v in _arm_values(c).items() if k == _ROLES}
    values["schedule"] = c.schedule or "constant"
    return values


def _arm_values(c: Cell) -> dict[str, Any]:
    """Hyperparameters, plus the roles trained by another optimizer (a GAN's discriminator)."""
    values: dict[str, Any] = dict(c.hyper)
    values["schedule"] = describe(c.schedule, dict(c.schedule_params)) or "constant"
    if c.role_schedules:
        given = dict(c.role_schedule_params)
        values["schedule"] += "; " + ", ".join(
            f"{r}: {describe(n, dict(given[r])) if r in given else n}"
            for r, n in c.role_schedules)
    if c.roles:
        values[_ROLES] = "; ".join(
            f"{role}: {opt}" + (f" {format_pairs(hyper)}" if hyper else "")
            for role, opt, hyper in c.roles)
    return values


_ROLES = "\x00roles"  # a key no hyperparameter can have; shown as its value alone


def _varying(cells: Iterable[Cell], attr: str, values: Any) -> dict[str, list[str]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by_name.setdefault(getattr(c, attr), []).append(values(c))
    out: dict[str, list[str]] = {}
    for name, rows in by_name.items():
        keys = sorted({k for row in rows for k in row})
        out[name] = [k for k in keys
                     if len({format_value(row[k]) if k in row else None for row in rows}) > 1]
    return out


def _name_with(name: str, values: Mapping[str, Any], keys: list[str]) -> str:
    if not keys:
        return name
    # A cell without role overrides trains every network with its own optimizer: nothing
    # to add for it (a "-" would read as a setting).
    parts = [str(values[k]) if k == _ROLES else f"{k}={format_value(values.get(k, '-'))}"
             for k in keys if k != _ROLES or k in values]
    return f"{name} ({', '.join(parts)})" if parts else name


def _with_labels(frame: pd.DataFrame, labels: Mapping[str, tuple[str, str, str]]) -> pd.DataFrame:
    frame = frame.copy()
    ids = frame["cell_id"] if "cell_id" in frame.columns else pd.Series([], dtype=object)
    for i, col in enumerate(("variant", "arm", "problem")):
        frame[col] = [labels.get(str(c), ("", "", ""))[i] for c in ids]
    return frame


# -- timing windows ----------------------------------------------------------------------------
def steady_windows(record: Mapping[str, Any]) -> list[tuple[int, float]]:
    """(steps, seconds) of each logging window after the warm-up, from a cell record.

    The curve's ``elapsed_s`` is cumulative training time at each window edge, and the
    warm-up ends on a window edge with ``elapsed_s == warmup_s``; the windows after it
    are the ones ``samples_per_s`` is measured over. Their spread is the noise of a
    cell's throughput when there is only one seed to compare.
    """
    curve = record.get("curve") or []
    warmup_s = (record.get("summary") or {}).get("warmup_s")
    warm = float(warmup_s) if isinstance(warmup_s, int | float) else 0.0
    out: list[tuple[int, float]] = []
    prev_step, prev_t = 0, 0.0
    for point in curve:
        step, t = point.get("step"), point.get("elapsed_s")
        if not isinstance(step, int | float) or not isinstance(t, int | float):
            continue
        n, dt = int(step) - prev_step, float(t) - prev_t
        if t > warm * (1 + 1e-9) + 1e-12 and n > 0 and dt > 0:
            out.append((n, dt))
        prev_step, prev_t = int(step), float(t)
    return out

"""Several runs on one page: ``harness report DIR [DIR ...]``.

A default run and a tuning run, say, are read into one :class:`ReportRun`:

* **Names.** Each run is named on the page by its folder's name; runs whose folders share
  a name are named by as much of their paths as tells them apart.
* **Identical cells.** A cell is identified by its content key (problem, parameters,
  optimizer, hyperparameters, schedule, device, seed, code versions), so a cell present in
  several runs is the same computation: it is counted once (its record from the first run
  given that holds it) and belongs to each of those runs (:attr:`RunSource.cells`).
* **Arms.** Arms are labelled over all the runs' cells together, as within one run: an
  optimizer is named with the hyperparameters that vary across the cells, so ``adam
  (lr=0.001)`` of one run and ``adam (lr=0.0031)`` of another are two arms, and the same
  configuration in two runs is one arm (its seeds pooled). Only when the same arm has the
  same seed on the same problem in two runs as different cells (other code versions, say)
  are they told apart by their run: ``adam (lr=0.01) [run: NAME]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.report.model import (
    ReportRun,
    RunSource,
    capabilities_in,
    label_cells,
    read_run,
)

if TYPE_CHECKING:
    from harness.plugins import PluginHost


def run_names(paths: Sequence[Path]) -> list[str]:
    """A short, distinct name per run: the folder's name, or as many of its last path parts
    as tell it apart from the others."""
    parts = [Path(p).resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def load_runs(paths: Sequence[Path], host: PluginHost | None = None) -> ReportRun:
    """One run, or several combined as the module docstring says.

    :raises UsageError: no path, a path given twice, or one that is no results directory.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("no results directory given")
    if len(paths) == 1:
        return ReportRun.load(paths[0], host)
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise UsageError(f"{str(paths[i])!r} is given twice")
    read = [read_run(p) for p in paths]
    names = run_names(paths)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    sources: list[RunSource] = []
    for path, name, (recs, manifest) in zip(paths, names, read, strict=True):
        sources.append(RunSource(name, path, manifest,
                                 frozenset(str(r["cell_id"]) for r in recs)))
        for rec in recs:
            if str(rec["cell_id"]) not in seen:
                seen.add(str(rec["cell_id"]))
                records.append(rec)
    manifest = combined_manifest([m for _, m in read])
    labels = label_cells(records, capabilities_in(manifest))
    labels = _apart_by_run(records, labels, sources)
    return ReportRun.from_records(paths[0], manifest, records, host, sources, labels)


def _apart_by_run(records: list[dict[str, Any]], labels: dict[str, tuple[str, str, str]],
                  sources: list[RunSource]) -> dict[str, tuple[str, str, str]]:
    """Name the run in the arms that hold the same seed of the same problem twice (cells of
    two runs that differ in what an arm's label does not show, such as code versions)."""
    first = {cid: src.name for src in reversed(sources) for cid in src.cells}
    slots: dict[tuple[str, str, Any], set[str]] = {}
    for rec in records:
        cid = str(rec["cell_id"])
        _, arm, problem = labels[cid]
        slots.setdefault((problem, arm, rec["cell"].get("seed")), set()).add(first[cid])
    clashing = {arm for (_, arm, _), runs in slots.items() if len(runs) > 1}
    return {cid: (variant, f"{arm} [run: {first[cid]}]" if arm in clashing else arm, problem)
            for cid, (variant, arm, problem) in labels.items()}


def combined_manifest(manifests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The first run's manifest, with what the others add: their grid cells, devices and
    problems and optimizers (the report reads those across runs)."""
    out = dict(manifests[0])
    out["cells"] = [c for m in manifests for c in (m.get("cells") or [])]
    for key in ("devices", "problems", "optimizers"):
        merged: dict[str, Any] = {}
        for m in manifests:
            value = m.get(key)
            if isinstance(value, dict):
                merged = {**value, **merged}
        if merged:
            out[key] = merged
    out.pop("cell_order", None)
    return out

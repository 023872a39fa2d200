"""The report's header: what was run, on what, from which code (the run's provenance)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness.report import html as H
from harness.report.model import ReportRun


def intro(run: ReportRun) -> str:
    """What was run, where, with which code: the report's header, as a list of facts."""
    m, s = run.manifest, run.summary
    grid_cells = m.get("cells") or []

    def axis(key: str, fallback: Iterable[Any]) -> str:
        values = [c.get(key) for c in grid_cells] if grid_cells else list(fallback)
        return ", ".join(str(v) for v in dict.fromkeys(values))

    versions = m.get("versions") or {}
    libs = ", ".join(f"{k} {v}" for k, v in versions.items()
                     if k != "plugins" and v not in (None, ""))
    plugins = ", ".join([f"{k} {v}" for k, v in (versions.get("plugins") or {}).items()]
                        + _plugin_files(m))
    devices = "; ".join(f"{d}: {name}" for d, name in (m.get("devices") or {}).items()) \
        or ", ".join(dict.fromkeys(s["device"]))
    sources = "; ".join(
        f"{model}: {', '.join(str(x) for x in dict.fromkeys(g['data_source'].dropna()))}"
        for model, g in s.groupby("model", sort=False) if g["data_source"].notna().any())
    counts = s["status"].value_counts().to_dict()
    git = m.get("git") or {}
    machine = m.get("machine") or {}
    several = len(run.runs) > 1
    recorded = (f"{len(s)} recorded of {len(grid_cells) or len(s)}" if not several else
                f"{len(s)} recorded, each counted once ({_shared(run)})")
    items: list[tuple[str, Any]] = [
        *(_runs(run) if several else [
            ("Run", str(run.path)),
            ("Created", m.get("created", "unknown")),
            ("Command", " ".join(m.get("command", [])) or "unknown")]),
        ("Models", axis("problem", s["model"])),
        ("Optimizers", axis("optimizer", s["optimizer"])),
        ("Devices", devices),
        ("Seeds", axis("seed", sorted(set(s["seed"])))),
        ("Cells", f"{recorded}: " + ", ".join(f"{n} {k}" for k, n in counts.items())),
        ("Data sources", sources or "not recorded"),
        ("Versions", libs or "not recorded"),
        ("Plugins", plugins or "not recorded"),
        ("Machine", ", ".join(f"{k} {v}" for k, v in machine.items() if k != "hostname")
         or "not recorded"),
        *([("Worker warm-up", _warmups(s))] if "worker_warmup_s" in s.columns else []),
        *([("Repository", _commit_text(m["repository"], with_path=True))]
          if "repository" in m else []),
        ("Harness commit" if "repository" in m else "Git commit", _commit_text(git)),
    ]
    return H.meta_list(items)


def _runs(run: ReportRun) -> list[tuple[str, Any]]:
    """One line per run of a report that combines several: name, path, command, date."""
    return [(f"Run {src.name}",
             f"{src.path}: {' '.join(src.manifest.get('command', [])) or 'command unknown'} "
             f"({src.manifest.get('created', 'date unknown')}; {len(src.cells)} cells)")
            for src in run.runs]


def _shared(run: ReportRun) -> str:
    """How many cells several runs hold (the same content key: the same computation)."""
    counted: dict[str, int] = {}
    for src in run.runs:
        for cid in src.cells:
            counted[cid] = counted.get(cid, 0) + 1
    shared = sum(1 for n in counted.values() if n > 1)
    if not shared:
        return "no cell is in more than one run"
    return (f"{shared} identical cell(s), the same content key, are in more than one run: "
            "each is counted once, its record read from the first run given")


def _plugin_files(manifest: dict[str, Any]) -> list[str]:
    """The run's local plugin files (``--plugin``): path and the start of their hash."""
    out = []
    for info in manifest.get("plugins") or []:
        if isinstance(info, dict) and info.get("source") and info.get("status") == "loaded":
            digest = str(info.get("sha256") or "").removeprefix("sha256:")[:12]
            out.append(f"{info['source']} (sha256 {digest})")
    return out


def _commit_text(git: dict[str, Any] | None, *, with_path: bool = False) -> str:
    if not git:
        return "not a git checkout" if with_path else "not recorded"
    where = f"{git.get('path')} at " if with_path and git.get("path") else ""
    return f"{where}{git.get('commit')}" + (" (dirty)" if git.get("dirty") else "")


def _warmups(summary: Any) -> str:
    """The workers' one-time warm-ups, which no cell's wall_s includes."""
    values = pd.to_numeric(summary["worker_warmup_s"], errors="coerce").dropna()
    return (f"{len(values)} worker(s), {values.median():.3g} s each (median), paid before "
            "their first cell and not counted in its wall_s")

"""The gate's false-alarm rate: identical reruns of the gate grid, compared pair by pair.

    python benchmarks/gate_false_alarms.py [--pairs 20] [--grid benchmarks/gate.toml]
        [--out DIR] [--repeats K] [-- extra harness run flags]
    python benchmarks/gate_false_alarms.py --rejudge DIR   # the kept pairs, today's gate

Runs the grid 2 x PAIRS times (``harness run GRID --quiet``, each in a process of its own,
one after the other) and compares each pair with ``harness compare`` (in this process:
:func:`harness.report.compare.compare_runs`). The code, the grid and the seeds are the same
in both runs of a pair, so every ``regressed`` verdict is a false alarm. Prints a Markdown
table (one row per pair: the 1-minute load average before each run, the groups' throughput
verdicts, whether the gate failed) and the rates: pairs whose gate failed, and groups whose
throughput read ``regressed``, over all compared groups. Measure on an IDLE machine: the
script says when the load average at a run's start was above half the usable cores (the
rate then measures the machine's neighbours, not the gate). The runs stay in ``--out``
(default: a temporary directory, removed at the end) with ``false_alarms.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from harness.report.compare import compare_runs

GRID = Path(__file__).resolve().parent / "gate.toml"
VERDICTS = ("regressed", "inconclusive", "unchanged", "improved", "n/a")


def _load() -> float:
    return os.getloadavg()[0]


def _run(grid: Path, out: Path, repeats: int, extra: list[str]) -> float:
    """One run of the grid into ``out``; the load average at its start."""
    load = _load()
    command = [sys.executable, "-m", "harness", "run", str(grid), "--out", str(out), "--quiet",
               *(["--repeats", str(repeats)] if repeats else []), *extra]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"harness run failed ({proc.returncode}): {proc.stderr.strip()}")
    return load


def pair(index: int, grid: Path, root: Path, repeats: int, extra: list[str]) -> dict[str, Any]:
    """Two runs of ``grid`` and their comparison."""
    base, new = root / f"pair-{index:02d}" / "base", root / f"pair-{index:02d}" / "new"
    load_base = _run(grid, base, repeats, extra)
    load_new = _run(grid, new, repeats, extra)
    return judged(index, base, new, load_base, load_new)


def judged(index: int, base: Path, new: Path, load_base: float,
           load_new: float) -> dict[str, Any]:
    """A pair's row: today's ``harness compare`` of its two runs."""
    cmp = compare_runs(base, new)
    verdicts = Counter(str(v) for v in cmp.table["throughput_verdict"])
    return {"pair": index, "load_base": load_base, "load_new": load_new,
            "groups": len(cmp.table), **{v: verdicts.get(v, 0) for v in VERDICTS},
            "metric_regressed": int((cmp.table["metric_verdict"] == "regressed").sum()),
            "gate_failed": cmp.failed(),
            "regressed_groups": [c for c, v in zip(cmp.table["cell"],
                                                   cmp.table["throughput_verdict"], strict=True)
                                 if v == "regressed"]}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| pair | load base | load new | groups | regressed | inconclusive | unchanged "
             "| improved | gate |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['load_base']:.2f} | {r['load_new']:.2f} | "
                     f"{r['groups']} | {r['regressed']} | {r['inconclusive']} | "
                     f"{r['unchanged']} | {r['improved']} | "
                     f"{'FAILED' if r['gate_failed'] else 'passed'} |")
    pairs = len(rows)
    failed = sum(r["gate_failed"] for r in rows)
    groups = sum(r["groups"] for r in rows)
    regressed = sum(r["regressed"] for r in rows)
    lines.append("")
    share = 100 * regressed / max(groups, 1)
    lines.append(f"false alarms: {failed} of {pairs} pairs failed the gate "
                 f"({100 * failed / max(pairs, 1):.0f} %); {regressed} of {groups} group "
                 f"comparisons read throughput regressed ({share:.1f} %)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=0, help="harness run --repeats K")
    parser.add_argument("--rejudge", type=Path, metavar="DIR",
                        help="run nothing: compare again, with today's gate, the pairs an "
                             "earlier --out DIR kept (its false_alarms.json gives the loads)")
    parser.add_argument("extra", nargs="*", help="more harness run flags, after --")
    args = parser.parse_args(argv)
    if args.rejudge:
        kept = json.loads((args.rejudge / "false_alarms.json").read_text("utf-8"))
        rows = [judged(r["pair"], args.rejudge / f"pair-{r['pair']:02d}" / "base",
                       args.rejudge / f"pair-{r['pair']:02d}" / "new", r["load_base"],
                       r["load_new"]) for r in kept["pairs"]]
        print(f"{args.rejudge}: {len(rows)} pairs (--repeats {kept['repeats']}) judged again")
        print(table(rows))
        return 0
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="gate-false-alarms-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(args.pairs):
            rows.append(pair(i, args.grid, root, args.repeats, args.extra))
            print(f"pair {i}: {rows[-1]['regressed']} regressed, gate "
                  f"{'FAILED' if rows[-1]['gate_failed'] else 'passed'}", file=sys.stderr)
        (root / "false_alarms.json").write_text(json.dumps(
            {"grid": str(args.grid), "repeats": args.repeats, "cores": cores, "pairs": rows},
            indent=1), "utf-8")
        busy = [r for r in rows if max(r["load_base"], r["load_new"]) > (cores or 1) / 2]
        print(f"grid {args.grid}, {args.pairs} pairs, --repeats {args.repeats}, {cores} usable "
              f"cores; load average at the end: {_load():.2f}")
        print(table(rows))
        if busy:
            print(f"warning: {len(busy)} of {len(rows)} pairs started a run with the load "
                  f"average above {(cores or 1) / 2:g} (half the cores): the machine was not "
                  "idle, and the rate measures its neighbours too")
    return 0


if __name__ == "__main__":
    sys.exit(main())

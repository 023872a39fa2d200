"""Wall-clock latency of harness commands, for two source trees side by side.

    python benchmarks/command_latency.py --tree before=/path/to/old/checkout --tree after=. \
        --repeat 5 --out /tmp/latency.md [--report-run results/quick]

Each command runs as a user runs it (``python -m harness ...`` in a fresh process), with
``PYTHONPATH`` pointing at the tree's ``harness`` and ``plugins``. Trees alternate run by
run, so a load change on the machine hits both alike. "cold" is each tree's first run of a
command (imports not yet in the OS page cache for that tree's files, as far as an earlier
command left them), "warm" the median of the others. Prints a Markdown table.
``--report-run DIR`` adds ``harness report DIR`` (into a scratch folder) for a finished run,
e.g. of ``harness run --preset quick``. The last row is no command: the time to start Python
and import torch and ``torch._dynamo`` (collector off, no interpreter teardown), which every
worker that steps a torch optimizer needs first: the floor of a one-cell run on the machine
at that moment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = (Path(__file__).parent / "baseline").resolve()


#: The floor of a one-cell run: a worker cannot step a torch optimizer before this is done.
FLOOR = "import gc, os; gc.disable(); import torch, torch._dynamo; os._exit(0)"
FLOOR_LABEL = "floor: python, import torch and torch._dynamo"


def commands(scratch: Path, report_run: Path | None = None) -> dict[str, list[str]]:
    table = {
        "harness --help": ["--help"],
        "harness list": ["list"],
        "harness show benchmarks/baseline": ["show", str(BASELINE)],
        "harness compare baseline baseline": ["compare", str(BASELINE), str(BASELINE)],
        "harness export baseline": ["export", str(BASELINE), "--format", "pytest-benchmark"],
        "one-cell run (regression, adam, 10 steps)": [
            "run", "-m", "regression", "-o", "adam", "-s", "0", "--steps", "10", "--quiet",
            "--out", str(scratch / "run-{n}")],
    }
    if report_run is not None:
        table[f"harness report {report_run.name}"] = [
            "report", str(report_run), "--out", str(scratch / "report-{n}")]
    table[FLOOR_LABEL] = ["-c", FLOOR]
    return table


def once(tree: Path, args: list[str], n: int, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}",
           "HARNESS_PLUGINS": "harness"}
    args = [a.replace("{n}", f"{tree.name}-{n}") for a in args]
    t0 = time.perf_counter()
    # not from a checkout: ``python -m`` puts the working directory first on sys.path
    argv = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "harness",
                                                              *args]
    done = subprocess.run(argv, env=env, cwd=cwd,
                          capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{tree}: harness {' '.join(args)} failed: {done.stderr[-500:]}")
    return took


def calibration_ms() -> float:
    """A fixed Python loop, in ms: how fast the machine runs at this moment (it drifts)."""
    t0 = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report-run", type=Path, help="a finished run to time the report of")
    opts = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in opts.tree)}
    scratch = Path(tempfile.mkdtemp(prefix="harness-latency-"))
    table = commands(scratch, opts.report_run.resolve() if opts.report_run else None)
    times: dict[tuple[str, str], list[float]] = {}
    loops = [calibration_ms() for _ in range(3)]
    for label, args in table.items():
        for n in range(opts.repeat):
            for name, tree in trees.items():
                times.setdefault((label, name), []).append(once(tree, args, n, scratch))
    head = "| command | " + " | ".join(f"{n} cold | {n} warm" for n in trees) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(trees)]
    for label in table:
        cells = []
        for name in trees:
            t = times[(label, name)]
            cells += [f"{t[0]:.2f} s", f"{statistics.median(t[1:] or t):.2f} s"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    loops += [calibration_ms() for _ in range(3)]
    lines.append(f"\nCPU calibration (a fixed Python loop, before and after): "
                 f"{min(loops):.0f}-{max(loops):.0f} ms")
    text = "\n".join(lines)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

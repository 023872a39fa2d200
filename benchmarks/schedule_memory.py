"""Memory a cell takes before its first step, against its step budget (issue 21).

    python benchmarks/schedule_memory.py [--old-up-to 10000000]

For each budget from 10**3 to 10**12 steps, in a fresh process: build the cell's schedule
(:class:`harness.train.schedule.Schedule`, what the loop builds from the budget) and find
its first window edges, as the loop does before the first step. Reported: the peak of
Python allocations during that (tracemalloc) and the growth of the process's resident
memory. For comparison, the loop's old way (sets over ``range(steps)`` of the window and
evaluation edges) up to ``--old-up-to`` steps. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = r"""
import itertools, json, resource, sys, tracemalloc
from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.schedule import Schedule

steps, old = int(sys.argv[1]), sys.argv[2] == "old"
problem = get_host().problems.get("regression")
cell = Cell(problem="regression", optimizer="adam", device="cpu", seed=0, steps=steps,
            batch_size=8, params=(), hyper=())
options = RunOptions()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
s = Schedule.for_cell(cell, problem, options)
if old:  # the loop before issue 21's fix: every edge enumerated up front
    log = set(range(s.log_every, steps + 1, s.log_every)) | {steps, s.warmup}
    evals = set(range(s.eval_every, steps + 1, s.eval_every)) | {steps}
    first = sorted(log | evals)[:3]
else:
    first = list(itertools.islice(s.edges_after(0), 3))
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": peak / 1024, "rss_kib": rss1 - rss0, "first": first}))
"""


def measure(steps: int, old: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(steps), "old" if old else "new"],
                         capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-up-to", type=int, default=10**7,
                        help="largest budget to measure the old enumeration at")
    args = parser.parse_args()
    print("| steps | schedule: peak allocated | RSS growth | old sets: peak allocated "
          "| RSS growth |")
    print("|---|---|---|---|---|")
    for exponent in range(3, 13):
        steps = 10**exponent
        new = measure(steps, old=False)
        cells = [f"10^{exponent}", f"{new['peak_kib']:.1f} KiB", f"{new['rss_kib']:.0f} KiB"]
        if steps <= args.old_up_to:
            old = measure(steps, old=True)
            cells += [f"{old['peak_kib'] / 1024:.1f} MiB", f"{old['rss_kib'] / 1024:.0f} MiB"]
        else:
            cells += ["not run", "not run"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

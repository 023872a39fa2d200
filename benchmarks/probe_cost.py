"""What the once-per-cell step probe (FLOP count and step-0 loss, harness.train.flops) costs
against the cell it runs in.

    python benchmarks/probe_cost.py [--steps 200] [--repeat 3] [--problems regression,cnn,...]

For each problem: the probe's seconds (median over ``--repeat`` probes of a freshly built
task, after one untimed probe that pays the process's one-time imports) and the wall-clock
seconds of one cell of ``--steps`` steps with Adam (run_cell, the probe included), and their
ratio. Prints a Markdown table with the machine's load (``uptime``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import torch

from harness.executor import RunOptions
from harness.plugins import get_host
from harness.testing.cells import make_cell
from harness.train.flops import probe_step
from harness.train.loop import build_optimizers, build_task, run_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--problems", default="regression,classification,cnn,gan,dqn")
    args = parser.parse_args()
    torch.set_num_threads(1)
    host = get_host()
    spec = host.optimizers.get("adam")
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("| problem | flops_per_step | probe (ms, median) | cell of "
          f"{args.steps} steps (s) | probe / cell |")
    print("|---|---:|---:|---:|---:|")
    first = True
    for name in args.problems.split(","):
        problem = host.problems.get(name)
        cell = make_cell(problem, spec, steps=args.steps)
        times, flops = [], float("nan")
        for i in range(args.repeat + (1 if first else 0)):
            task = build_task(problem, cell, RunOptions())
            opts = build_optimizers(cell, problem, task, spec, {}, RunOptions())
            t0 = time.perf_counter()
            flops = probe_step(task, opts, torch.device("cpu")).flops
            if not (first and i == 0):
                times.append(time.perf_counter() - t0)
        first = False
        wall = run_cell(cell, problem, spec, RunOptions()).summary["wall_s"]
        probe = statistics.median(times)
        print(f"| {name} | {flops:,.0f} | {1000 * probe:.1f} | {wall:.2f} | "
              f"{100 * probe / wall:.1f} % |")
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()

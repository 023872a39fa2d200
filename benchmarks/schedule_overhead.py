"""What a learning-rate schedule costs a step, and how many loss evaluations LBFGS makes.

    OMP_NUM_THREADS=1 python benchmarks/schedule_overhead.py --repeat 5 --steps 600

For the ``cnn`` and ``regression`` problems on the CPU, cells with Adam on the ``constant``
schedule and on ``warmup-cosine`` alternate (so a load change on the machine hits both
alike); each cell's steady-state ``samples_per_s`` is the harness's own figure. Prints the
medians and the schedule's cost in percent (target: at most 2 %), then ``lbfgs``'s and
``sam``'s loss evaluations per step on ``regression``. A Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.loop import run_cell


def cell_for(problem: str, optimizer: str, steps: int, schedule: str | None) -> Cell:
    host = get_host()
    p, o = host.problems.get(problem), host.optimizers.get(optimizer)
    params: tuple = ()
    if schedule is not None:
        params = tuple(sorted(host.schedules.get(schedule).resolve({}).items()))
    return Cell(problem=problem, optimizer=optimizer, device="cpu", seed=0, steps=steps,
                batch_size=p.batch_size, params=tuple(sorted(p.defaults().items())),
                hyper=tuple(sorted(o.resolve({}).items())), schedule=schedule,
                schedule_params=params)


def rate(cell: Cell) -> float:
    host = get_host()
    result = run_cell(cell, host.problems.get(cell.problem), host.optimizers.get(cell.optimizer),
                      RunOptions(windows=10, eval_every=cell.steps))
    assert result.status == "ok", result.error
    return float(result.summary["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| problem | constant (samples/s) | warmup-cosine (samples/s) | cost |")
    print("|---|---:|---:|---:|")
    for problem in ("cnn", "regression"):
        plain = cell_for(problem, "adam", args.steps, None)
        scheduled = cell_for(problem, "adam", args.steps, "warmup-cosine")
        rate(plain)  # warm the process (first-cell imports, allocator)
        a, b = [], []
        for _ in range(args.repeat):
            a.append(rate(plain))
            b.append(rate(scheduled))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {problem} | {ma:,.0f} | {mb:,.0f} | {100 * (ma - mb) / ma:+.1f} % |")
    print()
    print("| optimizer | loss evaluations per step (regression) | final loss |")
    print("|---|---:|---:|")
    host = get_host()
    for name in ("lbfgs", "sam", "adam"):
        c = dataclasses.replace(cell_for("regression", name, 200, None))
        result = run_cell(c, host.problems.get("regression"), host.optimizers.get(name),
                          RunOptions(windows=10, eval_every=c.steps))
        evals = result.summary.get("loss_evals", 1.0)
        print(f"| {name} | {evals:.2f} | {result.summary['final_loss']:.4g} |")


if __name__ == "__main__":
    main()

"""Issue 6's CPU benchmarks beyond the hand-written loop.

1. The device-resident data path against the DataLoader path (same process, alternating
   rounds, steady-state samples/s).
2. Grid overhead: the quick preset's wall time against the sum of its cells' training
   time with 1 worker, and the speed-up of 2 workers over 1 (both through the CLI, with
   1 torch thread per worker so the two runs do the same work).

Usage: python benchmarks/grid_overhead.py [--skip-grid] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import pandas as pd

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.loop import run_cell

BATCH = {"cnn": 50, "lstm": 64, "regression": 64, "autoencoder": 64}


def loader_rate(model: str, loader: str, steps: int) -> float:
    host = get_host()
    problem = host.problems.get(model)
    cell = Cell(problem=model, optimizer="adam", device="cpu", seed=0, steps=steps,
                batch_size=BATCH[model], params=tuple(sorted(problem.defaults().items())),
                hyper=(("betas", (0.9, 0.99)), ("lr", 0.001)))
    r = run_cell(cell, problem, host.optimizers.get("adam"),
                 RunOptions(loader=loader, eval_every=steps, windows=10))
    assert r.status == "ok", r.error
    return float(r.summary["samples_per_s"])


def loaders(models: list[str], steps: int, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        rates: dict[str, list[float]] = {"device": [], "dataloader": []}
        for r in range(rounds):
            for loader in (("device", "dataloader") if r % 2 == 0 else ("dataloader", "device")):
                rates[loader].append(loader_rate(m, loader, steps))
        dev, dl = statistics.median(rates["device"]), statistics.median(rates["dataloader"])
        rows.append({"model": m, "device": dev, "dataloader": dl, "ratio": dev / dl})
    return rows


def quick(workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness", "run", "--preset", "quick",
                        "--workers", str(workers), "--threads", "1", "--out", f"{tmp}/r",
                        "--quiet"], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        curves = pd.read_parquet(f"{tmp}/r/curves.parquet")
        train = float(curves.groupby("cell_id")["elapsed_s"].max().sum())
        cells = float(pd.read_csv(f"{tmp}/r/summary.csv")["wall_s"].sum())
    return {"workers": workers, "wall_s": wall, "training_s": train, "cells_wall_s": cells}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cnn,lstm,regression,autoencoder")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "torch": torch.__version__}
    out["loaders"] = loaders(args.models.split(","), args.steps, args.rounds)
    print("| model (batch) | device-resident samples/s | DataLoader samples/s | ratio |")
    print("|---|---:|---:|---:|")
    for r in out["loaders"]:
        print(f"| {r['model']} ({BATCH[r['model']]}) | {r['device']:,.0f} | "
              f"{r['dataloader']:,.0f} | {r['ratio']:.2f} |", flush=True)
    if not args.skip_grid:
        one, two = quick(1), quick(2)
        out["grid"] = {"one": one, "two": two,
                       "overhead_1_worker": one["wall_s"] / one["training_s"],
                       "speedup_2_workers": one["wall_s"] / two["wall_s"]}
        g = out["grid"]
        print(f"\nquick preset, 1 worker: wall {one['wall_s']:.1f} s, training "
              f"{one['training_s']:.1f} s, cells' own wall {one['cells_wall_s']:.1f} s -> "
              f"overhead {g['overhead_1_worker']:.2f}x")
        print(f"quick preset, 2 workers: wall {two['wall_s']:.1f} s -> speed-up "
              f"{g['speedup_2_workers']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

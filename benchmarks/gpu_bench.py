"""Issue 6's GPU comparisons, in one process per table, for a lent GPU machine.

1. eager: the harness's cell runner against a hand-written device-resident loop;
2. graphs: ``--cuda-graphs`` against a hand-written whole-step CUDA-graph loop with the
   same optimizer implementation (Adam, fused, capturable), plus the largest difference
   between the graphed and eager loss curves (they must agree to float tolerance);
3. packing: N cells of one model at once on the GPU (``--workers-per-device N``) against
   one, through the CLI: aggregate samples/s.

Usage: python benchmarks/gpu_bench.py --out DIR (writes gpu_bench.json and prints tables).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.loop import build_task, run_cell, synchronize

BATCH = {"cnn": 50, "lstm": 64, "regression": 64, "autoencoder": 64}
HYPER = (("betas", (0.9, 0.99)), ("lr", 0.001))


DEVICE = "cuda"


def make_cell(model: str, steps: int) -> Cell:
    problem = get_host().problems.get(model)
    return Cell(problem=model, optimizer="adam", device=DEVICE, seed=0, steps=steps,
                batch_size=BATCH[model], params=tuple(sorted(problem.defaults().items())),
                hyper=HYPER)


def hand_step(cell: Cell, graphs: bool) -> Callable[[], None]:
    """The hand-written loop's step: eager, or the whole step replayed from a CUDA graph."""
    task: Any = build_task(get_host().problems.get(cell.problem), cell, RunOptions())
    model, loss_fn, fwd = task.model, task.loss_fn, task.forward
    xs, ys = task.built.inputs, task.built.targets
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.99), fused=True,
                           capturable=graphs)  # the harness's choice on CUDA (--opt-impl auto)
    n, bs = xs.shape[0], cell.batch_size
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    perm, pos = torch.randperm(n, device=DEVICE, generator=gen), 0

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal perm, pos
        if pos + bs > n:
            perm, pos = torch.randperm(n, device=DEVICE, generator=gen), 0
        idx = perm[pos:pos + bs]
        pos += bs
        return xs[idx], ys[idx]

    def body(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = loss_fn(model(x) if fwd is None else fwd(model, x), y)
        loss.backward()
        opt.step()
        return loss

    if graphs:
        sx, sy = batch()
        sx, sy = sx.clone(), sy.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                body(sx, sy)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            body(sx, sy)

        def step() -> None:
            x, y = batch()
            sx.copy_(x)
            sy.copy_(y)
            g.replay()
    else:
        def step() -> None:
            x, y = batch()
            opt.zero_grad(set_to_none=True)
            body(x, y)

    step.alive = (model, opt, task)  # type: ignore[attr-defined]  # a graph writes into them
    return step


def timed(step: Callable[[], object], steps: int, warmup: int, batch: int,
          sync_every: int = 0) -> float:
    """Samples/s of ``steps`` calls of ``step`` after ``warmup``; ``sync_every`` > 0
    synchronises the device that often, as the harness does at its window edges."""
    device = torch.device(DEVICE)
    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step()
        if sync_every and i % sync_every == 0:
            synchronize(device)
    synchronize(device)
    return steps * batch / (time.perf_counter() - t0)


def hand(cell: Cell, steps: int, warmup: int, graphs: bool, sync_every: int = 0) -> float:
    """Samples/s of the hand-written loop."""
    return timed(hand_step(cell, graphs), steps, warmup, cell.batch_size, sync_every)


def ours(cell: Cell, steps: int, warmup: int, graphs: bool) -> tuple[float, list[float]]:
    c = Cell(**{**cell.__dict__, "steps": steps + warmup})
    host = get_host()
    r = run_cell(c, host.problems.get(c.problem), host.optimizers.get("adam"),
                 RunOptions(warmup_steps=warmup, eval_every=steps + warmup, windows=20,
                            opt_impl="fused", cuda_graphs=graphs))
    if r.status != "ok":
        raise RuntimeError(f"{c.problem}: {r.status}: {r.error}")
    if graphs and r.summary.get("cuda_graphs") != "yes":
        raise RuntimeError(f"{c.problem}: not graphed: {r.summary.get('cuda_graphs')}")
    return float(r.summary["samples_per_s"]), [row["loss"] for row in r.curve]


def compare(models: list[str], steps: int, warmup: int, rounds: int, graphs: bool) -> list[dict]:  # type: ignore[type-arg]
    rows = []
    for m in models:
        cell = make_cell(m, steps)
        h, o = [], []
        for r in range(rounds):
            pair = [("h", hand), ("o", ours)] if r % 2 == 0 else [("o", ours), ("h", hand)]
            for who, _ in pair:
                if who == "h":
                    h.append(hand(cell, steps, warmup, graphs))
                else:
                    o.append(ours(cell, steps, warmup, graphs)[0])
        row: dict[str, Any] = {
            "model": m, "batch": BATCH[m], "mode": "cuda-graphs" if graphs else "eager",
            "hand": statistics.median(h), "harness": statistics.median(o),
            "hand_all": h, "harness_all": o}
        row["ratio"] = row["harness"] / row["hand"]
        if graphs:
            _, eager_curve = ours(cell, steps, warmup, False)
            _, graph_curve = ours(cell, steps, warmup, True)
            row["max_abs_loss_diff_vs_eager"] = max(
                abs(a - b) for a, b in zip(eager_curve, graph_curve, strict=True))
            row["final_loss_eager"], row["final_loss_graphs"] = eager_curve[-1], graph_curve[-1]
        rows.append(row)
    return rows


def packing(model: str, n: int, steps: int, extra: list[str], rounds: int = 1) -> dict[str, Any]:
    """Aggregate training throughput of n cells at once on the GPU against one cell.

    ``steady``: the sum of the cells' steady-state samples/s (each measured by the cell
    over its own training windows, build and evaluation excluded) — what the cells did
    together while they trained side by side; ``overlap`` (shortest cell wall time over
    the longest) says how far they did. ``end-to-end``: all samples over the longest
    cell's whole wall time, build, data loading and evaluation included, never more than
    ``steady`` — what a grid of such cells gains. With ``rounds`` > 1 the one-cell and
    n-cell runs alternate and each figure is the median over the rounds (a single cell's
    rate moves by ±10 % between runs on a shared machine).
    """
    out: dict[str, Any] = {"model": model, "cells": n, "steps": steps, "flags": " ".join(extra),
                           "rounds": rounds}
    runs: dict[int, list[dict[str, float]]] = {1: [], n: []}
    out["timeline"] = []  # (cells, start, end) in epoch seconds, to line up GPU samples
    for r in range(rounds):
        for per in (1, n) if r % 2 == 0 else (n, 1):
            t0 = time.time()
            runs[per].append(_pack_run(model, n, per, steps, extra))
            out["timeline"].append((per, t0, time.time()))
    for per, measured in runs.items():
        for key in measured[0]:
            out[f"{key}_{per}"] = statistics.median(m[key] for m in measured)
        out[f"steady_{per}_all"] = [m["steady"] for m in measured]
    out["speedup"] = out[f"steady_{n}"] / out["steady_1"]
    out["speedup_end_to_end"] = out[f"end_to_end_{n}"] / out["end_to_end_1"]
    return out


def _pack_run(model: str, n: int, per: int, steps: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        seeds = "0" if per == 1 else f"0-{n - 1}"
        cmd = [sys.executable, "-m", "harness", "run", "-m", model, "-o", "adam", "-d",
               DEVICE, "-s", seeds, "--steps", str(steps), "--workers-per-device",
               str(per), "--out", f"{tmp}/run", "--quiet", *extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"harness run {' '.join(extra)} exited {done.returncode}: {said}")
        s = pd.read_csv(f"{tmp}/run/summary.csv")
        assert (s["status"] == "ok").all(), s[["status", "error"]]
        total = float((s["steps_done"] * s["batch_size"]).sum())
        steady = float(s["samples_per_s"].sum())
        return {"steady": steady,
                "end_to_end": min(total / float(s["wall_s"].max()), steady),
                "overlap": float(s["wall_s"].min() / s["wall_s"].max()),
                "train_s": float((s["steps_done"] * s["step_time_ms"]).max() / 1000),
                "wall_s": float(s["wall_s"].max())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--models", default="cnn,lstm,regression,autoencoder")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--graph-steps", type=int, default=2000,
                    help="graphed steps are short (400 regression steps take 20 ms): time more")
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--pack-steps", type=int, default=12000,
                    help="long enough that training, not start-up, fills most of a cell")
    ap.add_argument("--pack-rounds", type=int, default=1,
                    help="alternate the one-cell and packed runs this often; medians")
    ap.add_argument("--pack-variant", action="append", default=[],
                    help="harness run flags for one packing row, '' for plain eager "
                         "(repeatable; default: '' and '--cuda-graphs')")
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    ap.add_argument("--modes", default="eager,graphs", help="which tables (0 --pack: none)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    Path(args.out).mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    name = torch.cuda.get_device_name(0) if DEVICE.startswith("cuda") else DEVICE
    env = {"device": name, "torch": torch.__version__,
           "cuda": torch.version.cuda, "python": sys.version.split()[0],
           "cpu_count": os.cpu_count()}
    result: dict[str, Any] = {"environment": env}
    print(f"# {env['device']} | torch {env['torch']} | CUDA {env['cuda']}", flush=True)
    modes = args.modes.split(",")
    wanted = [g for g, m in ((False, "eager"), (True, "graphs")) if m in modes]
    for graphs in wanted if DEVICE.startswith("cuda") else [g for g in wanted if not g]:
        steps = args.graph_steps if graphs else args.steps
        rows = compare(models, steps, args.warmup, args.rounds, graphs)
        result["graphs" if graphs else "eager"] = rows
        print(f"\n## {'cuda-graphs' if graphs else 'eager'} (Adam fused; {steps} steps, "
              f"median of {args.rounds} alternating rounds)")
        print("| model (batch) | hand-written samples/s | harness samples/s | ratio |"
              + (" max loss diff vs eager |" if graphs else ""))
        for r in rows:
            extra = f" {r['max_abs_loss_diff_vs_eager']:.2e} |" if graphs else ""
            print(f"| {r['model']} ({r['batch']}) | {r['hand']:,.0f} | {r['harness']:,.0f} | "
                  f"{r['ratio']:.3f} |{extra}", flush=True)
    variants = args.pack_variant or ["", "--cuda-graphs"]
    if not DEVICE.startswith("cuda"):
        variants = [v for v in variants if "--cuda-graphs" not in v]
    result["packing"] = []
    n = args.pack
    if args.pack:
        print(f"\n## packing: {n} cnn cells on one GPU vs 1, {args.pack_steps} steps each"
              f" (median of {args.pack_rounds} alternating rounds)")
        print(f"| cnn | 1 cell steady | {n} cells steady | speed-up | overlap | "
              f"1 cell end-to-end | {n} cells end-to-end | speed-up |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for v in variants if args.pack else []:
        try:
            p = packing("cnn", n, args.pack_steps, v.split(), args.pack_rounds)
        except RuntimeError as exc:  # one variant failing (say, no MPS here) ends only its row
            print(f"| {v or 'eager'} | failed: {exc} |", flush=True)
            continue
        result["packing"].append(p)
        print(f"| {p['flags'] or 'eager'} | {p['steady_1']:,.0f} | {p[f'steady_{n}']:,.0f} | "
              f"{p['speedup']:.2f}x | {p[f'overlap_{n}']:.2f} | {p['end_to_end_1']:,.0f} | "
              f"{p[f'end_to_end_{n}']:,.0f} | {p['speedup_end_to_end']:.2f}x |", flush=True)
        Path(args.out, "gpu_bench.json").write_text(json.dumps(result, indent=1))
    plain = [p for p in result["packing"] if not p["flags"]]
    for p in result["packing"] if plain else []:  # against one cell run without any flag
        if p["flags"]:
            print(f"{n} cells with {p['flags']} vs 1 plain eager cell: steady "
                  f"{p[f'steady_{n}'] / plain[0]['steady_1']:.2f}x, end-to-end "
                  f"{p[f'end_to_end_{n}'] / plain[0]['end_to_end_1']:.2f}x", flush=True)
    Path(args.out, "gpu_bench.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Operators per training step: the harness's eager step against the hand-written one.

A launch-bound step costs what it launches. Packed on one GPU, cells share the card's
time, so a step that issued more operators (kernels, on CUDA) than the hand-written loop
would fall behind it there even where a single cell keeps up. This counts the ATen
operators of ``steps`` steps under ``torch.profiler`` for both (the same cell, Adam fused)
and lists every operator whose count differs. On CPU it needs no GPU: the operators a
step dispatches are the same on either device.

Usage: python benchmarks/step_ops.py [--device cpu] [--models cnn,lstm,regression,autoencoder]
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import gpu_bench

from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.loop import build_optimizers, build_task


def count(step: Callable[[], object], steps: int) -> collections.Counter[str]:
    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::"))


def harness_step(model: str, steps: int) -> Callable[[], object]:
    host = get_host()
    cell = gpu_bench.make_cell(model, steps)
    options = RunOptions(opt_impl="fused")
    problem = host.problems.get(model)
    task = build_task(problem, cell, options)
    optimizers = build_optimizers(cell, problem, task, host.optimizers.get("adam"), {},
                                  options)
    step: Callable[[], object] = task.step_function(optimizers)  # type: ignore[attr-defined]
    return step


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="cnn,lstm,regression,autoencoder")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    gpu_bench.DEVICE = args.device
    torch.set_num_threads(1)
    print("| model | hand-written ops/step | harness ops/step | operators that differ "
          "(hand → harness, per step) |\n|---|---:|---:|---|")
    for model in args.models.split(","):
        hand = count(gpu_bench.hand_step(gpu_bench.make_cell(model, args.steps), False),
                     args.steps)
        ours = count(harness_step(model, args.steps), args.steps)
        differ = ", ".join(f"{name.removeprefix('aten::')} {hand[name] / args.steps:g} → "
                           f"{ours[name] / args.steps:g}"
                           for name in sorted(set(hand) | set(ours)) if hand[name] != ours[name])
        print(f"| {model} | {sum(hand.values()) / args.steps:g} | "
              f"{sum(ours.values()) / args.steps:g} | {differ or 'none'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

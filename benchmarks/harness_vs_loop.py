"""Harness vs a hand-written training loop, in the same process.

For each model, the same architecture, data, batch size and optimizer are trained
by (a) a plain loop a user would write on device-resident tensors and (b) the
harness's cell runner; rounds alternate between the two so that machine noise
hits both alike. The figure of merit is the ratio of steady-state samples/s
(median over rounds). Run::

    python benchmarks/harness_vs_loop.py --device cpu --models cnn,lstm --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.run.manifest import cpu_model, device_name
from harness.train.loop import build_task, run_cell, synchronize

DEFAULT_BATCH = {"cnn": 50, "lstm": 64, "regression": 64, "autoencoder": 64}


def hand_loop(cell: Cell, steps: int, warmup: int) -> float:
    """What a user writes: tensors on the device, randperm epochs, zero_grad/forward/backward/step.

    Returns steady-state samples per second (after ``warmup`` steps).
    """
    host = get_host()
    problem = host.problems.get(cell.problem)
    # Build the problem only to get its model and tensors; the loop below is ours.
    task: Any = build_task(problem, cell, RunOptions(data_dir=DATA_DIR))
    model, loss_fn, forward = task.model, task.loss_fn, task.forward
    x_all, y_all = task.built.inputs, task.built.targets
    opt = torch.optim.Adam(model.parameters(), **dict(cell.hyper))
    device = torch.device(cell.device)
    n, bs = x_all.shape[0], cell.batch_size
    gen = torch.Generator(device=device).manual_seed(cell.seed)
    perm, pos = torch.randperm(n, device=device, generator=gen), 0

    def step() -> None:
        nonlocal perm, pos
        if pos + bs > n:
            perm, pos = torch.randperm(n, device=device, generator=gen), 0
        idx = perm[pos:pos + bs]
        pos += bs
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad(set_to_none=True)
        out = model(x) if forward is None else forward(model, x)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * bs / (time.perf_counter() - t0)


def harness_run(cell: Cell, steps: int, warmup: int) -> float:
    host = get_host()
    c = Cell(**{**cell.__dict__, "steps": steps + warmup})
    result = run_cell(c, host.problems.get(c.problem), host.optimizers.get("adam"),
                      RunOptions(data_dir=DATA_DIR, warmup_steps=warmup, eval_every=steps + warmup,
                                 windows=10))
    if result.status != "ok":
        raise RuntimeError(f"{cell.problem}: {result.status} {result.error}")
    return float(result.summary["samples_per_s"])


DATA_DIR = os.path.expanduser(os.environ.get("HARNESS_DATA_DIR", "~/.cache/harness/data"))


def measure(model: str, device: str, steps: int, warmup: int, rounds: int) -> dict[str, Any]:
    batch = DEFAULT_BATCH.get(model, 64)
    cell = Cell(problem=model, optimizer="adam", device=device, seed=0, steps=steps,
                batch_size=batch, params=tuple(sorted(get_host().problems.get(model)
                                                      .defaults().items())),
                hyper=(("betas", (0.9, 0.99)), ("lr", 0.001)))
    runners: list[tuple[str, Callable[[Cell, int, int], float]]] = [
        ("hand", hand_loop), ("harness", harness_run)]
    rates: dict[str, list[float]] = {"hand": [], "harness": []}
    for r in range(rounds):
        order = runners if r % 2 == 0 else runners[::-1]
        for name, fn in order:
            rates[name].append(fn(cell, steps, warmup))
    hand, ours = statistics.median(rates["hand"]), statistics.median(rates["harness"])
    return {"model": model, "device": device, "batch": batch, "steps": steps, "rounds": rounds,
            "hand_samples_per_s": hand, "harness_samples_per_s": ours, "ratio": ours / hand,
            "hand_all": rates["hand"], "harness_all": rates["harness"]}


def environment(device: str) -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "device": device_name(device), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn,lstm")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    env = environment(args.device)
    results = [measure(m, args.device, args.steps, args.warmup, args.rounds)
               for m in args.models.split(",")]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": results}, f, indent=1)
    print(f"# {env['device']} | torch {env['torch']} | python {env['python']} | "
          f"{env['torch_threads']} threads")
    if args.markdown:
        print("| model (batch) | device | hand-written loop samples/s | harness samples/s "
              "| ratio |")
        print("|---|---|---:|---:|---:|")
    for r in results:
        if args.markdown:
            print(f"| {r['model']} ({r['batch']}) | {r['device']} | {r['hand_samples_per_s']:,.0f} "
                  f"| {r['harness_samples_per_s']:,.0f} | {r['ratio']:.3f} |")
        else:
            print(f"{r['model']:<12} hand {r['hand_samples_per_s']:>12,.0f}  harness "
                  f"{r['harness_samples_per_s']:>12,.0f}  ratio {r['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What packing can gain on this machine without the harness: N plain processes at once.

Each child runs, after a common start time, either the hand-written eager device-resident
loop of ``gpu_bench.py`` (the cnn, Adam fused) or a pure-Python arithmetic loop (which
shows how far the CPU's own speed per core falls when N cores are busy). The sum of the
children's rates against one child's is the ceiling for ``--workers-per-device N``.

With ``--pin`` each child is also run pinned to a physical core of its own (as
``harness run --pin-cpus`` places workers), to tell the CPU's speed per core from the
scheduler's placement. With ``--cuda-mps`` each row is also run with the children as
clients of a private MPS daemon (as ``harness run --cuda-mps`` runs its GPU workers).

Usage: python benchmarks/pack_hand.py --n 8 [--device cuda] [--steps 4000] [--pin]
       [--cuda-mps]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from harness.run import cuda_mps, placement


def child(kind: str, device: str, steps: int, start: float, cpus: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    if cpus:
        os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
    if kind in ("cnn", "cnn-synced"):
        import gpu_bench
        import torch

        torch.set_num_threads(1)  # as the harness's workers do: the GPU does the work
        gpu_bench.DEVICE = device
        cell = gpu_bench.make_cell("cnn", steps)
        time.sleep(max(0.0, start - time.time()))
        # cnn-synced: synchronised every 2 % of the steps, as a 50-window harness cell is
        rate = gpu_bench.hand(cell, steps, 50, False,
                              sync_every=max(1, steps // 50) if kind == "cnn-synced" else 0)
    else:
        time.sleep(max(0.0, start - time.time()))
        t0, x, n = time.perf_counter(), 0, 0
        while time.perf_counter() - t0 < 5.0:
            for i in range(10_000):
                x += i * i
            n += 10_000
        rate = n / (time.perf_counter() - t0)
    print(json.dumps({"rate": rate}), flush=True)


def together(kind: str, n: int, device: str, steps: int, pin: bool,
             env: dict[str, str] | None = None) -> list[float]:
    # imports and data loading happen before the common start
    start = time.time() + (2.0 if kind == "python" else 12.0)
    sets = placement.plan([1] * n, placement.physical_cores()) if pin else None
    if pin and sets is None:
        raise SystemExit(f"{n} processes do not fit this machine's CPUs")
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, "--device", device,
                               "--steps", str(steps), "--start", str(start), "--cpus",
                               ",".join(map(str, sets[i])) if sets else ""],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
             for i in range(n)]
    rates = []
    for p in procs:
        out, _ = p.communicate()
        assert p.returncode == 0, f"child failed ({p.returncode})"
        rates.append(json.loads(out.strip().splitlines()[-1])["rate"])
    return rates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--child")
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--out")
    ap.add_argument("--pin", action="store_true", help="also run every row pinned")
    ap.add_argument("--cuda-mps", action="store_true",
                    help="also run every GPU row under a private MPS daemon")
    ap.add_argument("--kinds", default="python,cnn",
                    help="which loops: python, cnn, cnn-synced (synchronised 50 times)")
    ap.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.device, args.steps, args.start, args.cpus)
        return 0
    if args.cuda_mps and cuda_mps.find_control() is None:
        raise SystemExit(f"--cuda-mps: no {cuda_mps.CONTROL} on this machine")
    result = {}
    print(f"| {args.n} processes at once | 1 process | {args.n} together (sum) | speed-up "
          "| slowest / fastest |\n|---|---:|---:|---:|---:|")
    kinds = args.kinds.split(",")
    rows = [(k, p, m) for m in (False, True)[:1 + args.cuda_mps]
            for p in (False, True)[:1 + args.pin] for k in kinds if not (m and k == "python")]
    for kind, pin, mps in rows:
        with ExitStack() as stack:
            env = stack.enter_context(cuda_mps.daemon()).env() if mps else None
            one = together(kind, 1, args.device, args.steps, pin, env)[0]
            many = together(kind, args.n, args.device, args.steps, pin, env)
        result[kind + (" pinned" if pin else "") + (" mps" if mps else "")] = {
            "one": one, "many": many, "speedup": sum(many) / one}
        label = "pure-Python loop (iterations/s)" if kind == "python" else \
            f"hand-written eager cnn loop on {args.device} (samples/s)"
        label += ", synchronised every 2 % of its steps" if kind == "cnn-synced" else ""
        label += ", pinned to own cores" if pin else ""
        label += ", under MPS" if mps else ""
        print(f"| {label} | {one:,.0f} | {sum(many):,.0f} | {sum(many) / one:.2f}x | "
              f"{min(many) / max(many):.2f} |", flush=True)
    if args.out:
        Path(args.out, "pack_hand.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What packing can gain on this machine without the harness: N plain processes at once.

Each child runs, after a common start time, either the hand-written eager device-resident
loop of ``gpu_bench.py`` (the cnn, Adam fused) or a pure-Python arithmetic loop (which
shows how far the CPU's own speed per core falls when N cores are busy). The sum of the
children's rates against one child's is the ceiling for ``--workers-per-device N``.

Usage: python benchmarks/pack_hand.py --n 8 [--device cuda] [--steps 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def child(kind: str, device: str, steps: int, start: float) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    if kind == "cnn":
        import gpu_bench
        import torch

        torch.set_num_threads(1)  # as the harness's workers do: the GPU does the work
        gpu_bench.DEVICE = device
        cell = gpu_bench.make_cell("cnn", steps)
        time.sleep(max(0.0, start - time.time()))
        rate = gpu_bench.hand(cell, steps, 50, False)
    else:
        time.sleep(max(0.0, start - time.time()))
        t0, x, n = time.perf_counter(), 0, 0
        while time.perf_counter() - t0 < 5.0:
            for i in range(10_000):
                x += i * i
            n += 10_000
        rate = n / (time.perf_counter() - t0)
    print(json.dumps({"rate": rate}), flush=True)


def together(kind: str, n: int, device: str, steps: int) -> list[float]:
    start = time.time() + 12.0  # imports and data loading happen before it
    procs = [subprocess.Popen([sys.executable, __file__, "--child", kind, "--device", device,
                               "--steps", str(steps), "--start", str(start)],
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
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
    args = ap.parse_args()
    if args.child:
        child(args.child, args.device, args.steps, args.start)
        return 0
    result = {}
    print(f"| {args.n} processes at once | 1 process | {args.n} together (sum) | speed-up "
          "| slowest / fastest |\n|---|---:|---:|---:|---:|")
    for kind in ("python", "cnn"):
        one = together(kind, 1, args.device, args.steps)[0]
        many = together(kind, args.n, args.device, args.steps)
        result[kind] = {"one": one, "many": many, "speedup": sum(many) / one}
        label = "pure-Python loop (iterations/s)" if kind == "python" else \
            f"hand-written eager cnn loop on {args.device} (samples/s)"
        print(f"| {label} | {one:,.0f} | {sum(many):,.0f} | {sum(many) / one:.2f}x | "
              f"{min(many) / max(many):.2f} |", flush=True)
    if args.out:
        Path(args.out, "pack_hand.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU utilisation during each packing run of ``gpu_bench.py`` (from nvidia-smi samples).

``gpu_check.sh`` samples ``utilization.gpu`` (the share of time some kernel ran), the SM
clock and the power draw every 100 ms while ``gpu_bench.py`` packs cells, and the bench
records when each run started and ended. This lines them up: per run, the mean over the
middle 60 % of its time (start-up and tear-down left out).

Usage: python benchmarks/gpu_util.py OUT/pack/gpu_bench.json OUT/pack/gpu_util.csv
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
from pathlib import Path


def main(bench: str, samples: str) -> int:
    rows = []
    with open(samples) as f:
        for line in f:
            parts = [p.strip() for p in line.split(",")]
            try:
                when = dt.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
                util, clock, power = (float(p.split()[0]) for p in parts[1:4])
            except (ValueError, IndexError):
                continue
            rows.append((when, util, clock, power))
    print("| packing run | cells | GPU busy % | SM clock MHz | power W |")
    print("|---|---:|---:|---:|---:|")
    packing = json.loads(Path(bench).read_text())["packing"]
    for entry in packing:
        for cells, start, end in entry.get("timeline", []):
            lo, hi = start + 0.2 * (end - start), end - 0.2 * (end - start)
            inside = [r for r in rows if lo <= r[0] <= hi]
            if not inside:
                continue
            util, clock, power = (statistics.mean(r[i] for r in inside) for i in (1, 2, 3))
            print(f"| {entry['flags'] or 'eager'} | {cells} | {util:.0f} | {clock:.0f} | "
                  f"{power:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

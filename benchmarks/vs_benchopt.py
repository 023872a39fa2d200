"""The 20-cell regression benchmark in harness and in benchopt, side by side.

    python benchmarks/vs_benchopt.py --benchopt /path/to/venv/bin/benchopt \\
        --peer ../shared/peers/benchopt-regression --repeat 5

The same work both ways: the built-in ``regression`` problem (500 steps, batches of 100,
evaluated every 10 steps) with SGD, momentum, RMSprop and Adam, 5 seeds each. harness:
``harness run`` then ``harness report`` (HTML with figures); benchopt: ``benchopt run . -r 5
--no-cache`` in the peer benchmark, which also writes its HTML (without ``--no-cache`` a
repeated run reads its results back from benchopt's cache). Both with ``OMP_NUM_THREADS=1``. The two
alternate run by run, so a change of load on the machine hits both alike; prints the median
wall time of each and their ratio as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-800:]}")
    return took


def harness_once(scratch: Path, n: int, env: dict[str, str]) -> tuple[float, float]:
    out = scratch / f"harness-{n}"
    run = _timed([sys.executable, "-m", "harness", "run", "-m", "regression", "-o",
                  "sgd,momentum,rmsprop,adam", "-s", "0-4", "--quiet", "--out", str(out)],
                 scratch, env)
    report = _timed([sys.executable, "-m", "harness", "report", str(out)], scratch, env)
    return run, report


def benchopt_once(benchopt: str, peer: Path, n: int, env: dict[str, str]) -> float:
    # --no-cache: benchopt otherwise returns a finished run's results from its disk cache
    return _timed([benchopt, "run", ".", "-r", "5", "--no-display", "--no-cache", "--output",
                   f"vs-harness-{n}"], peer, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchopt", required=True, help="the benchopt executable")
    parser.add_argument("--peer", type=Path, required=True, help="the benchopt benchmark")
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="harness-vs-benchopt-"))
    peer = scratch / "peer"
    shutil.copytree(opts.peer, peer)  # benchopt writes its outputs into the benchmark
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARNESS_PLUGINS": "harness",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    runs: list[float] = []
    reports: list[float] = []
    peers: list[float] = []
    for n in range(opts.repeat):
        run, report = harness_once(scratch, n, env)
        runs.append(run)
        reports.append(report)
        peers.append(benchopt_once(opts.benchopt, peer, n, env))
        print(f"round {n}: harness {run:.2f} + {report:.2f} s, benchopt {peers[-1]:.2f} s",
              file=sys.stderr)
    both = [a + b for a, b in zip(runs, reports, strict=True)]
    h, b = statistics.median(both), statistics.median(peers)
    print(f"| tool | run | report | total (median of {opts.repeat}) |")
    print("|---|---:|---:|---:|")
    print(f"| harness | {statistics.median(runs):.2f} s | {statistics.median(reports):.2f} s "
          f"| {h:.2f} s |")
    print(f"| benchopt (`benchopt run . -r 5 --no-cache`, HTML included) | | | {b:.2f} s |")
    print(f"\nharness / benchopt: {h / b:.2f}")


if __name__ == "__main__":
    main()

"""Where a CUDA-graphed step's time goes: the harness's graph step taken apart, on a GPU.

Same process, same model, batch, Adam (fused, capturable) and data for every variant;
alternating rounds, median samples/s:

* ``hand``: the hand-written whole-step graph loop of ``gpu_bench.py`` (two gathers and
  two copies into the static inputs per step, then the replay), one sync at the end;
* ``hand+syncs``: the same, synchronised every ``--window`` steps (the cost of the
  harness's window edges alone);
* ``copy feed``: the harness's graph step, fed by copying each batch in, in a bare loop;
* ``gather feed``: the harness's graph step as it runs its own batches (only the indices
  are copied in, the graph gathers), in a bare loop;
* ``harness``: the whole cell runner (``run_cell``, ``--windows`` windows, loss sums read
  at every edge): what ``harness run --cuda-graphs`` measures.

With ``--profile`` it also writes torch.profiler's table for 200 steps of ``hand`` and of
the gather feed (``profile.txt``). Usage: python benchmarks/graph_ablation.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import gpu_bench  # its cells and batch sizes

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import get_host
from harness.train.fastpaths import capture_step
from harness.train.loop import build_task, run_cell, synchronize


class Replayable:
    """The harness's batch source behind another type: the graph copies batches in."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.next()  # type: ignore[no-any-return]

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()  # type: ignore[no-any-return]

    def load_state_dict(self, state: Any) -> None:
        self.inner.load_state_dict(state)


def graph_step(model_name: str, steps: int, feed: str) -> tuple[Callable[[], None], int]:
    cell = gpu_bench.make_cell(model_name, steps)
    task: Any = build_task(get_host().problems.get(model_name), cell, RunOptions())
    opt = torch.optim.Adam(task.model.parameters(), lr=0.001, betas=(0.9, 0.99), fused=True,
                           capturable=True)
    batches = task.batches if feed == "gather" else Replayable(task.batches)
    step = capture_step(task.model, task.loss_fn, task.forward, batches, opt)
    expected = "GatherGraphStep" if feed == "gather" else "GraphStep"
    assert type(step).__name__ == expected, type(step).__name__
    return step, cell.batch_size


def variants(model_name: str, steps: int, warmup: int, window: int,
             windows: int) -> dict[str, Callable[[], float]]:
    cell = gpu_bench.make_cell(model_name, steps)
    copy_step, bs = graph_step(model_name, steps, "copy")
    gather_step, _ = graph_step(model_name, steps, "gather")
    hand_graph, hand_bs = _hand_graph(model_name, steps)

    def harness() -> float:
        c = Cell(**{**cell.__dict__, "steps": steps + warmup})
        host = get_host()
        r = run_cell(c, host.problems.get(c.problem), host.optimizers.get("adam"),
                     RunOptions(warmup_steps=warmup, eval_every=steps + warmup,
                                windows=windows, opt_impl="fused", cuda_graphs=True))
        assert r.status == "ok" and r.summary.get("cuda_graphs") == "yes", r.summary
        return float(r.summary["samples_per_s"])

    return {
        "hand": lambda: gpu_bench.timed(hand_graph, steps, warmup, hand_bs),
        "hand+syncs": lambda: gpu_bench.timed(hand_graph, steps, warmup, hand_bs, window),
        "copy feed": lambda: gpu_bench.timed(copy_step, steps, warmup, bs),
        "gather feed": lambda: gpu_bench.timed(gather_step, steps, warmup, bs),
        "harness": harness,
    }


def _hand_graph(model_name: str, steps: int) -> tuple[Callable[[], None], int]:
    """gpu_bench.hand's graphed step, built once and returned instead of timed."""
    cell = gpu_bench.make_cell(model_name, steps)
    return gpu_bench.hand_step(cell, True), cell.batch_size


def profile(model_name: str, out: Path) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    lines = []
    for name, (step, _) in (("hand", _hand_graph(model_name, 200)),
                            ("gather feed", graph_step(model_name, 200, "gather"))):
        for _ in range(50):
            step()
        synchronize(torch.device("cuda"))
        with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            for _ in range(200):
                step()
            synchronize(torch.device("cuda"))
        lines.append(f"## {model_name}: {name}, 200 steps\n")
        lines.append(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    out.joinpath("profile.txt").write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--models", default="regression,autoencoder")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--windows", type=int, default=20, help="the harness's windows per cell")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    window = max(1, (args.steps + args.warmup) // args.windows)
    print(f"# {torch.cuda.get_device_name(0)} | torch {torch.__version__}", flush=True)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0),
                              "torch": torch.__version__, "rows": []}
    for m in args.models.split(","):
        runs = variants(m, args.steps, args.warmup, window, args.windows)
        rates: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for k in order:
                rates[k].append(runs[k]())
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"\n## {m}: median samples/s of {args.rounds} rounds, {args.steps} steps "
              f"(syncs every {window} steps)")
        print("| variant | samples/s | µs per step | vs hand |")
        print("|---|---:|---:|---:|")
        bs = gpu_bench.BATCH[m]
        for k, v in med.items():
            print(f"| {k} | {v:,.0f} | {1e6 * bs / v:.1f} | {v / med['hand']:.3f} |")
        result["rows"].append({"model": m, "median": med, "all": rates})
    if args.profile:
        profile(args.models.split(",")[0], Path(args.out))
    Path(args.out, "graph_ablation.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rankings at one shared learning rate against rankings after tuning (issue 22, "Measured").

    python benchmarks/tuned_rankings.py [--out DIR] [--trials 8] [--final-seeds 6]
        [--workers N]

Runs, with the harness itself, on five built-in problems (regression, rnn-regression,
autoencoder, cnn at 200 steps, gan at 1,000 steps) and six optimizers (sgd, momentum,
adagrad, rmsprop, adam, adamw):

1. the **default** run: every optimizer at the shared ``lr = 0.01`` on seeds 1-6
   (``harness run GRID --set lr=0.01``);
2. the **tuned** run: ``harness tune GRID`` with ``--trials`` Sobol trials of ``lr`` in each
   optimizer's declared space on seed 0, selected on the validation metric (training loss
   for gan, which has no validation split), the selected rate re-run on the final seeds 1-6;
3. ``harness report DEFAULT TUNED``, whose ``defaults_vs_tuned.csv`` holds both rankings.

Prints, per problem, the ranking metric, the winner at the default and after tuning, how
many of the six places moved, and the best-to-worst gap on each side (the ratio of the
worst to the best mean for a lower-is-better metric, the difference for a higher-is-better
one). The runs and the report stay in ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

PROBLEMS = ["regression", "rnn-regression", "autoencoder", "cnn", "gan"]
OPTIMIZERS = ["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"]
GRID = f"""# benchmarks/tuned_rankings.py: five problems x six optimizers
models = {PROBLEMS!r}
optimizers = {OPTIMIZERS!r}
devices = ["cpu"]
seeds = "1-6"

[model.cnn]
steps = 200

[model.gan]
steps = 1000
""".replace("'", '"')


def harness(*args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True)
    if proc.returncode not in (0, 3):  # 3: some cells not ok (a diverged trial is expected)
        raise SystemExit(f"harness {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stderr.strip()}")
    return time.perf_counter() - start


def _mean(text: str) -> float:
    """The mean of a report cell (``0.0038 [0.0034, 0.0043]``, ``60,936,644,187``)."""
    head = str(text).split(" [")[0].replace(",", "")
    return float(head) if head not in ("not run", "nan", "") else float("nan")


def summarise(csv: Path, directions: dict[str, str]) -> pd.DataFrame:
    table = pd.read_csv(csv, dtype=str)
    rows = []
    for problem, part in table.groupby("problem", sort=False):
        d = part.assign(d_rank=pd.to_numeric(part["default rank"], errors="coerce"),
                        t_rank=pd.to_numeric(part["tuned rank"], errors="coerce"),
                        d_mean=part["default mean [95% CI]"].map(_mean),
                        t_mean=part["tuned mean [95% CI]"].map(_mean))
        higher = directions.get(str(problem)) == "max"

        def gap(col: str, frame: pd.DataFrame = d, up: bool = higher) -> str:
            values = frame[col].dropna()
            if values.empty:
                return "–"
            if up:
                return f"{values.max() - values.min():.3g} (difference)"
            return f"{values.max() / values.min():.3g}×" if values.min() > 0 else "–"

        rows.append({
            "problem": problem,
            "default winner": d.sort_values("d_rank")["optimizer"].iloc[0],
            "tuned winner": d.sort_values("t_rank")["optimizer"].iloc[0],
            "places moved": int((d["d_rank"] != d["t_rank"]).sum()),
            "gap at lr 0.01": gap("d_mean"),
            "gap tuned": gap("t_mean"),
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/tuned-rankings")
    parser.add_argument("--trials", default="8")
    parser.add_argument("--final-seeds", default="6")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--summarise-only", action="store_true",
                        help="read the runs and report already in --out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = out / "grid.toml"
    grid.write_text(GRID, "utf-8")
    common = ["--workers", args.workers, "--quiet"]
    if args.summarise_only:
        return _summarise(out, None)
    t_default = harness("run", str(grid), "--set", "lr=0.01", "--out", str(out / "default"),
                        *common)
    t_tuned = harness("tune", str(grid), "--trials", args.trials, "--tune-params", "lr",
                      "--tune-seeds", "1", "--final-seeds", args.final_seeds,
                      "--out", str(out / "tuned"), *common)
    harness("report", str(out / "default"), str(out / "tuned"), "--out", str(out / "report"))
    return _summarise(out, (t_default, t_tuned))


def _summarise(out: Path, took: tuple[float, float] | None) -> int:
    summary = pd.read_csv(out / "tuned" / "summary.csv")
    directions = {str(p): str(d) for p, d in
                  summary.groupby("model")["target_mode"].first().items()} \
        if "target_mode" in summary else {}
    table = summarise(out / "report" / "defaults_vs_tuned.csv", directions)
    if took is not None:
        print(f"default run {took[0] / 60:.1f} min, tuning run {took[1] / 60:.1f} min\n")
    print(markdown(table))
    table.to_csv(out / "rankings.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

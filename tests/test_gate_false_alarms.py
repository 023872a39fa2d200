"""benchmarks/gate_false_alarms.py, run on 2 pairs of a small grid: it runs each pair, compares
it, counts the regressed verdicts and prints the table (the 20 pairs of the README's figure
are measured on an idle machine, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gate_false_alarms.py"


@pytest.mark.long
@pytest.mark.slow
def test_two_pairs_are_run_compared_and_counted(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["regression"]\noptimizers = ["sgd", "adam"]\nseeds = "0-2"\n'
                    "steps = 60\n")
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pairs", "2", "--grid", str(grid),
                           "--out", str(out), "--", "--workers", "1"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [ln for ln in lines if ln.startswith("| 0 |") or ln.startswith("| 1 |")]
    assert len(rows) == 2
    data = json.loads((out / "false_alarms.json").read_text("utf-8"))
    assert [p["pair"] for p in data["pairs"]] == [0, 1]
    for p in data["pairs"]:
        assert p["groups"] == 2
        assert sum(p[v] for v in ("regressed", "inconclusive", "unchanged", "improved",
                                  "n/a")) == 2
        assert p["metric_regressed"] == 0  # the losses are bit-identical
        assert (out / f"pair-{p['pair']:02d}" / "new" / "summary.csv").exists()
    regressed = sum(p["regressed"] for p in data["pairs"])
    assert f"{regressed} of 4 group comparisons read throughput regressed" in proc.stdout
    # the kept pairs judged again, running nothing: the same verdicts with today's gate
    again = subprocess.run([sys.executable, str(SCRIPT), "--rejudge", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{out}: 2 pairs (--repeats 0) judged again" in again.stdout
    assert [ln for ln in again.stdout.splitlines() if ln.startswith(("| 0 |", "| 1 |"))] == rows

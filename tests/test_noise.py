"""Throughput comes with its noise: the dispersion (IQR / median) of the steady windows'
throughput and their number, and ``show`` flags a cell whose dispersion passes 10 %."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.cli.read import format_summary
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.testing.cells import make_cell
from harness.train.loop import run_cell
from harness.train.state import dispersion


def test_dispersion_is_the_iqr_over_the_median() -> None:
    rates = [90.0, 100.0, 110.0, 130.0, 100.0]
    q1, q2, q3 = np.percentile(rates, [25, 50, 75])
    assert dispersion(rates) == ((q3 - q1) / q2, 5)
    assert dispersion([100.0, 100.0, 100.0]) == (0.0, 3)
    value, n = dispersion([100.0])
    assert math.isnan(value) and n == 1
    assert dispersion([10.0, 30.0]) == ((25.0 - 15.0) / 20.0, 2)


def test_a_cell_records_its_throughput_dispersion(host: PluginHost) -> None:
    problem, spec = host.problems.get("regression"), host.optimizers.get("adam")
    result = run_cell(make_cell(problem, spec, steps=100), problem, spec,
                      RunOptions(windows=10))
    s = result.summary
    assert s["throughput_windows"] >= 2 and s["throughput_dispersion"] >= 0


def test_show_flags_noisy_cells() -> None:
    rows = pd.DataFrame({
        "model": ["m", "m"], "params": ["", ""], "optimizer": ["a", "b"],
        "device": ["cpu", "cpu"], "seed": [0, 0], "status": ["ok", "ok"],
        "final_loss": [0.1, 0.2], "samples_per_s": [1000.0, 900.0],
        "throughput_dispersion": [0.25, 0.05], "peak_mem_mb": [1.0, 1.0]})
    lines = format_summary(rows).splitlines()
    assert "noisy" in lines[0]
    assert "±25%" in lines[1] and "±" not in lines[2]
    quiet = format_summary(rows.assign(throughput_dispersion=[0.01, 0.02]))
    assert "noisy" not in quiet


def test_the_report_counts_noisy_seeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from harness.cli import main
    from harness.report import build_report

    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "adam", "-s", "0-1", "--steps", "60",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    index = build_report(out)
    table = pd.read_csv(index.parent / "throughput.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert table["dispersion_max"].iloc[0] == summary["throughput_dispersion"].max()
    assert table["noisy_seeds"].iloc[0] == int((summary["throughput_dispersion"] > 0.1).sum())
    assert "noisy seeds" in index.read_text("utf-8")


def test_a_cell_records_the_machine_state_around_it(host: PluginHost) -> None:
    """Load average at start and end, and the CPU share other processes took: a process
    burning a core alongside the cell shows in it."""
    import subprocess
    import sys

    problem, spec = host.problems.get("regression"), host.optimizers.get("adam")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        s = run_cell(make_cell(problem, spec, steps=300), problem, spec,
                     RunOptions()).summary
    finally:
        burner.kill()
        burner.wait()
    assert s["load_start"] >= 0 and s["load_end"] >= 0
    assert 0 < s["other_cpu_share"] <= 1  # the burner had a core


def test_the_manifest_records_the_machine_around_the_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Per run: load averages at start and end, the CPUs' frequency and governor where Linux
    exposes them, the usable cores, and the CPU share other processes took while it ran (a
    burner alongside shows in it; the run's own workers do not)."""
    import glob
    import json
    import subprocess
    import sys

    from harness.cli import main

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        out = tmp_path / "run"
        assert main(["run", "-m", "regression", "-o", "adam", "-s", "0-1", "--steps", "100",
                     "--workers", "1", "--out", str(out), "--quiet"]) == 0
    finally:
        burner.kill()
        burner.wait()
    machine = json.loads((out / "manifest.json").read_text("utf-8"))["machine"]
    assert len(machine["load_start"]) == 3 and len(machine["load_end"]) == 3
    assert 0 < machine["other_cpu_share"] <= 1
    assert machine["usable_cpus"] >= 1 and machine["cpu"]
    if glob.glob("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"):
        assert machine["governor"]
    if glob.glob("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"):
        assert machine["cpu_mhz"] > 0

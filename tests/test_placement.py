"""--pin-cpus: workers on their own physical cores (real processes, real affinity)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.run import placement
from tests.helpers import run_cli


def fake_sysfs(root: Path, topology: dict[int, tuple[int, int]]) -> Path:
    """cpuN/topology/{physical_package_id,core_id} as Linux lays them out."""
    for cpu, (package, core) in topology.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{package}\n")
        (d / "core_id").write_text(f"{core}\n")
    return root


def test_hyperthread_siblings_form_one_core(tmp_path: Path) -> None:
    # Two sockets, two cores each, two hyperthreads per core, numbered as Linux often does.
    topo = {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1),
            4: (0, 0), 5: (0, 1), 6: (1, 0), 7: (1, 1)}
    sysfs = fake_sysfs(tmp_path, topo)
    assert placement.physical_cores(range(8), sysfs) == [(0, 4), (1, 5), (2, 6), (3, 7)]
    # Only CPUs this process may use are handed out.
    assert placement.physical_cores([1, 4, 5], sysfs) == [(4,), (1, 5)]


def test_missing_topology_counts_each_cpu_as_a_core(tmp_path: Path) -> None:
    assert placement.physical_cores([3, 1], tmp_path) == [(1,), (3,)]


def test_plan_hands_out_whole_cores_then_single_hyperthreads() -> None:
    cores = [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert placement.plan([1, 1], cores) == [(0, 4), (1, 5)]
    assert placement.plan([2, 1, 1], cores) == [(0, 1, 4, 5), (2, 6), (3, 7)]
    # Six one-core workers on four cores: split the siblings, first hyperthreads first.
    assert placement.plan([1] * 6, cores) == [(0,), (1,), (2,), (3,), (4,), (5,)]
    assert placement.plan([1] * 9, cores) is None
    sets = placement.plan([2, 3, 3], cores)
    assert sets is not None and sorted(c for s in sets for c in s) == list(range(8))


def test_describe() -> None:
    assert placement.describe([8, 0, 1, 2, 3, 10]) == "0-3,8,10"
    assert placement.describe([5]) == "5"


@pytest.mark.slow
def test_pinned_workers_run_on_disjoint_cpus(tmp_path: Path) -> None:
    usable = placement.usable_cpus()
    if len(usable) < 2:
        pytest.skip("needs two usable CPUs")
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "-s", "0-3", "--steps", "20",
                   "--workers", "2", "--pin-cpus", "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "run" / "summary.csv", dtype={"cpus": str})
    assert (summary["status"] == "ok").all()
    # The column holds the affinity each worker process really had, read back in it.
    seen = {cpus(text) for text in summary["cpus"]}
    assert len(seen) == 2, seen
    a, b = seen
    assert a and b and not a & b and a | b <= set(usable), seen


def cpus(text: str) -> frozenset[int]:
    """'0-2,5' back to {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return frozenset(out)


@pytest.mark.slow
def test_workers_that_do_not_fit_run_unpinned_with_a_warning(tmp_path: Path) -> None:
    n = len(placement.usable_cpus()) + 1
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "-s", f"0-{n - 1}", "--steps", "5",
                   "--workers", str(n), "--pin-cpus", "--out", str(tmp_path / "run"),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "workers are not pinned" in proc.stderr
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert (summary["status"] == "ok").all() and "cpus" not in summary.columns


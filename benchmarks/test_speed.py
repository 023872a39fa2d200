"""Training-step speed of built-in problems, under pytest-benchmark.

Not part of the test suite (``testpaths`` is ``tests``), and timed only when asked::

    pytest benchmarks --benchmark-enable --benchmark-autosave
    pytest benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:10%
    pytest benchmarks --benchmark-enable --bench-device=cuda

Each test times rounds of a cell's training steps through the harness's own hot
path (the ``harness_cell`` fixture: warm-up rounds, the device synchronised around
every round). Without ``--benchmark-enable`` (the project's pytest settings
disable benchmarks) each runs its steps once, as a smoke test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.harness_plugins("harness")

#: (problem, steps per round): rounds of tens of milliseconds on a CPU.
CASES = [("regression", 50), ("classification", 50), ("cnn", 10), ("lstm", 10),
         ("autoencoder", 20)]


@pytest.mark.parametrize(("problem", "steps"), CASES)
def test_step_speed(benchmark: Any, harness_cell: Callable[..., Any], bench_device: str,
                    problem: str, steps: int) -> None:
    benchmark.group = problem
    timing = harness_cell(problem, "adam", steps=steps, rounds=5, warmup_rounds=2,
                          device=bench_device)
    assert timing.samples_per_round > 0

"""A cell's window, evaluation and checkpoint edges, computed arithmetically: the edges a
set enumeration over ``range(steps)`` gives, in constant memory; ``--windows N`` rows."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import pytest

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost
from harness.train.schedule import Schedule


def enumerated(steps: int, log_every: int, eval_every: int, warmup: int,
               checkpoint_every: int | None, start: int) -> tuple[list[int], set[int], set[int]]:
    """The edges as the loop built them before (sets over the whole step range), the
    evaluating edges, and the edges that checkpoint (window by window from ``start``)."""
    log = set(range(log_every, steps + 1, log_every)) | {steps, warmup}
    if eval_every >= log_every:
        log |= set(range(eval_every, steps + 1, eval_every))
    edges = sorted(e for e in log if e > start)
    saves, evals, prev = set(), set(), start
    for i in edges:
        if checkpoint_every and i // checkpoint_every > prev // checkpoint_every and i < steps:
            saves.add(i)
        if i == steps or i // eval_every > prev // eval_every:
            evals.add(i)
        prev = i
    return edges, evals, saves


def test_edges_are_those_the_sets_gave(host: PluginHost) -> None:
    problem = host.problems.get("regression")
    compared = 0
    for steps, windows, eval_every, warmup, every in itertools.product(
            (0, 1, 2, 3, 7, 10, 11, 49, 50, 97, 100, 503), (1, 3, 10, 100, 1000),
            (None, 1, 4, 7, 60), (None, 0, 3, 64), (None, 1, 5, 20)):
        options = RunOptions(windows=windows, eval_every=eval_every, warmup_steps=warmup,
                             checkpoint_every=every)
        cell = Cell(problem="regression", optimizer="adam", device="cpu", seed=0, steps=steps,
                    batch_size=8, params=(), hyper=())
        s = Schedule.for_cell(cell, problem, options)
        for start in sorted({0, 1, steps // 3, steps // 2, max(0, steps - 1)}):
            edges, evals, saves = enumerated(steps, s.log_every, s.eval_every, s.warmup,
                                             every, start)
            got = list(s.edges_after(start))
            assert got == edges, (steps, windows, eval_every, warmup, start)
            assert {e for p, e in zip([start, *got], got, strict=False)
                    if s.evaluates(p, e)} == evals
            assert {e for p, e in zip([start, *got], got, strict=False)
                    if s.checkpoints(p, e)} == saves
            compared += 1
    assert compared > 5000


@pytest.mark.parametrize(("steps", "log_every", "eval_every", "warmup"),
                         [(10, 3, 4, 2), (12, 4, 6, 5), (5, 1, 1, 1), (0, 1, 1, 1)])
def test_edges_by_hand(steps: int, log_every: int, eval_every: int, warmup: int) -> None:
    s = Schedule(steps, log_every, eval_every, warmup)
    expected = {(10, 3): [2, 3, 4, 6, 8, 9, 10], (12, 4): [4, 5, 6, 8, 12],
                (5, 1): [1, 2, 3, 4, 5], (0, 1): [1]}[steps, log_every]
    assert list(s.edges_after(0)) == expected


def test_a_trillion_steps_in_constant_memory(host: PluginHost) -> None:
    """The sets took 1.3 GB per 1e8 steps; the schedule takes next to nothing (measured in
    allocated bytes, not seconds: no wall-clock bound in the fast tier)."""
    steps = 10**12
    tracemalloc.start()
    s = Schedule.for_cell(
        Cell(problem="regression", optimizer="adam", device="cpu", seed=0, steps=steps,
             batch_size=8, params=(), hyper=()),
        host.problems.get("regression"),
        RunOptions(windows=10, eval_every=5 * 10**11, checkpoint_every=3 * 10**11))
    first = list(itertools.islice(s.edges_after(0), 3))
    last = list(s.edges_after(steps - 2 * s.log_every))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20  # a set of 10**11-step edges would be gigabytes
    assert (s.log_every, s.warmup) == (10**11, 50)
    assert first == [50, 10**11, 2 * 10**11]
    assert last == [9 * 10**11, 10**12]
    assert s.evaluates(9 * 10**11, 10**12) and s.evaluates(4 * 10**11, 5 * 10**11)
    assert not s.evaluates(3 * 10**11, 4 * 10**11)
    assert s.checkpoints(2 * 10**11, 3 * 10**11) and not s.checkpoints(9 * 10**11, steps)


@pytest.mark.parametrize(("steps", "windows", "eval_every"),
                         [(100, 4, 10), (500, 50, 10), (3000, 50, 25), (20000, 50, 500),
                          (400, 50, 10), (10, 3, 1), (7, 50, 2), (10**9, 50, 10),
                          (10**9, 50, 10**7)])
def test_a_curve_has_about_windows_rows_whatever_the_evaluation_interval(
        host: PluginHost, steps: int, windows: int, eval_every: int) -> None:
    """``--windows N``: at most N windows, the warm-up's end, and an edge per evaluation
    only when evaluations are at least a window apart (so at most N more); a window that
    crossed a multiple of ``eval_every`` evaluates, and so does the last."""
    s = Schedule.for_cell(
        Cell(problem="regression", optimizer="adam", device="cpu", seed=0, steps=steps,
             batch_size=8, params=(), hyper=()),
        host.problems.get("regression"), RunOptions(windows=windows, eval_every=eval_every))
    edges = list(itertools.islice(s.edges_after(0), 2 * windows + 3))
    assert len(edges) <= 2 * windows + 1
    assert edges[-1] == steps and s.evaluates(edges[-2] if len(edges) > 1 else 0, steps)
    pairs = list(zip([0, *edges], edges, strict=False))
    assert all(s.evaluates(p, e) == (e == steps or e // eval_every > p // eval_every)
               for p, e in pairs)
    if eval_every >= s.log_every:  # evaluations at their own steps, as declared
        assert {e for p, e in pairs if s.evaluates(p, e)} == \
            {*range(eval_every, steps + 1, eval_every), steps}


def test_a_run_records_windows_rows(tmp_path: Path) -> None:
    """Through the command line: 4 windows of 25 steps and the warm-up's end (step 10),
    each window evaluating, not a row at each of the problem's evaluations every 10 steps
    as well (12 rows before)."""
    import json

    from harness.cli import main

    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "100",
                 "--windows", "4", "--workers", "0", "--out", str(out), "--quiet"]) == 0
    [record] = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    curve = record["curve"]
    assert [p["step"] for p in curve] == [0, 10, 25, 50, 75, 100]  # 0: before training
    assert all("test_loss" in p for p in curve)  # each window crossed a multiple of 10

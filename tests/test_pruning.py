"""Successive halving between rounds (docs/tuning.md, "Pruning"): each rung's threshold is
where Optuna's ``SuccessiveHalvingPruner``, told the recorded trials in trial order, would
prune one more trial. Known answers, the same answers from Optuna driven by hand, the
harness's own rung check agreeing with Optuna just above and below a threshold, and a
pruned tuning run resumed after each round selecting what an uninterrupted one does."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from harness.cell import Cell
from harness.cli import main
from harness.errors import PrunedError
from harness.grid.tune import TuneSpec
from harness.plugins import PluginHost
from harness.space import SearchSpace
from harness.train.rungs import check_rung, format_rungs
from harness.tune.protocol import StudyState, Trial, rung_thresholds
from harness.tune.pruning import rung_steps
from harness.tune.studies import Dim, Study

#: A trial's values at the rung steps, per cell (None: no row there; the trial stopped).
Values = Sequence[Sequence[float | None]]

NAN = math.nan


def _state(trials: Sequence[Values], rungs: Sequence[int], *, budget: int = 90,
           direction: str = "min") -> tuple[StudyState, dict[str, dict[str, Any]]]:
    """A study whose trials' cells recorded ``trials`` (per trial, per cell, the value at
    each of ``rungs``), and a final evaluation at ``budget`` when they got there; its
    metric ``val_loss``, or ``val_accuracy`` where better is higher."""
    metric = "val_loss" if direction == "min" else "val_accuracy"
    template = Cell("regression", "sgd", "cpu", 0, budget, 16)
    study = Study("s", template, (Dim("lr", "optimizer", SearchSpace.log(1e-4, 1.0)),),
                  metric, direction)
    state, records = StudyState(study), {}
    for n, cells in enumerate(trials):
        values = {"lr": 10 ** -(1 + n / 10)}
        trial = Trial(n, values, study.trial_cells(n, values, range(len(cells))))
        for cell, at in zip(trial.cells, cells, strict=True):
            curve = [{"step": s, metric: v} for s, v in zip(rungs, at, strict=True)
                     if v is not None]
            done = len(curve) == len(rungs) and all(math.isfinite(r[metric]) for r in curve)
            if done:
                curve.append({"step": budget, metric: 0.0})
            records[cell.key] = {"status": "ok" if done else "pruned", "curve": curve}
        state.trials.append(trial)
    return state, records


def _means(trials: Sequence[Values]) -> list[list[float | None]]:
    """Each trial's value at each rung as the harness reads it: the mean over its cells."""
    out = []
    for cells in trials:
        row: list[float | None] = []
        for j in range(len(cells[0])):
            seen = [c[j] for c in cells]
            ok = all(v is not None and math.isfinite(v) for v in seen)
            row.append(math.fsum(v for v in seen if v is not None) / len(seen) if ok else None)
        out.append(row)
    return out


def _finite(history: Sequence[Sequence[float | None]], rung: int) -> list[float]:
    return [v for row in history if (v := row[rung]) is not None and math.isfinite(v)]


def _optuna_keeps(history: Sequence[Sequence[float | None]], rungs: Sequence[int], eta: int,
                  direction: str, rung: int, value: float, budget: int = 90) -> bool:
    """Optuna's own pruner, driven by hand: the recorded trials in order, each reporting at
    each rung until it has no value or is pruned; then one more trial, passing the rungs
    before ``rung`` with the best recorded value there, reports ``value`` at ``rung``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if direction == "min" else "maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=math.ceil(budget / eta ** 2), reduction_factor=eta,
            min_early_stopping_rate=0))
    for values in history:
        trial = study.ask()
        for step, v in zip(rungs, values, strict=True):
            if v is None or not math.isfinite(v):
                break
            trial.report(v, step)
            if trial.should_prune():
                break
        study.tell(trial, state=TrialState.PRUNED)
    best = min if direction == "min" else max
    trial = study.ask()
    for j, step in enumerate(rungs[:rung]):
        trial.report(best(_finite(history, j)), step)
        assert not trial.should_prune()
    trial.report(value, rungs[rung])
    return not trial.should_prune()


def _optuna_threshold(history: Sequence[Sequence[float | None]], rungs: Sequence[int],
                      eta: int, direction: str, rung: int, budget: int = 90) -> float | None:
    """The worst recorded value at ``rung`` Optuna keeps one more trial with (a linear
    scan, checking the decision is monotone); None when it would keep any value (no
    trial it was told has a value there)."""
    values = sorted(set(_finite(history, rung)), reverse=direction == "max")
    worst = math.inf if direction == "min" else -math.inf
    keeps = [_optuna_keeps(history, rungs, eta, direction, rung, v, budget)
             for v in [*values, worst]]
    assert keeps == sorted(keeps, reverse=True), "Optuna's decision is not monotone"
    return None if keeps[-1] or not keeps[0] else values[keeps.count(True) - 1]


# Each case: trials (per trial, per cell, the values at rungs 10 and 30), the direction,
# eta and the thresholds known by hand from Optuna's rule (a value goes on when it is
# among the best 1/eta of the values at the rung so far, itself included; the best while
# fewer than eta have one). The old rule (the max(1, n // eta)-th best of every trial with
# a value there) gave {10: 2.0, 30: 0.5} for the first: trials 2 and 3 ran on past rung 10
# in the first round, but Optuna, told them in order, stops them there.
CASES: dict[str, tuple[list[Values], str, int, dict[int, float]]] = {
    "min": ([[[5.0, 3.0]], [[3.0, 2.0]], [[4.0, 1.0]], [[6.0, 0.5]], [[2.0, None]],
             [[NAN, None]]], "min", 3, {10: 3.0, 30: 2.0}),
    "max": ([[[5.0, 3.0]], [[3.0, 2.0]], [[4.0, 1.0]], [[6.0, 0.5]], [[2.0, None]],
             [[NAN, None]]], "max", 3, {10: 5.0, 30: 3.0}),
    # ties: equal values go on, so every trial reaches rung 30 and the bar is the tie
    "ties": ([[[1.0, 2.0]], [[1.0, 2.0]], [[1.0, 2.0]], [[1.0, 2.0]], [[1.0, 2.0]]],
             "min", 3, {10: 1.0, 30: 2.0}),
    # two seeds a trial: the mean, and a trial one of whose cells diverged (inf, NaN) or
    # stopped has no value there and sets no bar
    "seeds": ([[[4.0, 2.0], [2.0, 1.0]], [[1.0, math.inf], [1.0, 0.5]],
               [[2.0, NAN], [2.5, 0.1]], [[0.5, None], [0.5, 0.2]]],
              "min", 3, {10: 0.5, 30: 1.5}),
    # a diverged trial first: it never sets the bar (the next trial is alone at the rung)
    "diverged": ([[[math.inf, 0.0]], [[3.0, 9.0]], [[7.0, 8.0]]], "min", 3,
                 {10: 3.0, 30: 9.0}),
    # trial 1 ran on past rung 10 in the first round, but Optuna would have stopped it
    # there: its 0.1 at rung 30 does not count (the old rule's bar there was 0.1)
    "stopped": ([[[1.0, 5.0]], [[2.0, 0.1]]], "min", 3, {10: 1.0, 30: 5.0}),
    # nothing recorded at rung 30 (all pruned or stopped at 10): no threshold there
    "none-at-30": ([[[3.0, None]], [[2.0, None]]], "min", 3, {10: 2.0}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rung_thresholds_are_optunas_successive_halving_told_the_trials_in_order(
        case: str) -> None:
    trials, direction, eta, known = CASES[case]
    state, records = _state(trials, [10, 30], direction=direction)
    got = rung_thresholds(state, TuneSpec(pruner="halving", eta=eta), records)
    assert got == known
    history = _means(trials)
    by_hand = {step: t for j, step in enumerate([10, 30])
               if (t := _optuna_threshold(history, [10, 30], eta, direction, j)) is not None}
    assert got == by_hand


def test_thresholds_match_optuna_on_many_random_histories() -> None:
    rng = random.Random(0)
    # budgets with Optuna's rungs at the evaluations 10 and 30 (for eta 2, the rung at
    # 2 * ceil(40 / 4) = 20 is decided at the next evaluation, 30)
    budgets = {2: 40, 3: 90, 4: 90}
    for n in range(1, 16):
        eta, direction = rng.choice([2, 3, 4]), rng.choice(["min", "max"])
        trials = [[[rng.choice([rng.random(), round(rng.random(), 1)]),
                    rng.choice([rng.random(), None])]] for _ in range(n)]
        state, records = _state(trials, [10, 30], budget=budgets[eta], direction=direction)
        got = rung_thresholds(state, TuneSpec(pruner="halving", eta=eta), records)
        history = _means(trials)
        assert got == {step: t for j, step in enumerate([10, 30]) if (t := _optuna_threshold(
            history, [10, 30], eta, direction, j, budgets[eta])) is not None}, n


@pytest.mark.parametrize("case", sorted(CASES))
def test_just_past_a_threshold_both_optuna_and_the_rung_check_prune(case: str) -> None:
    trials, direction, eta, _ = CASES[case]
    state, records = _state(trials, [10, 30], direction=direction)
    thresholds = rung_thresholds(state, TuneSpec(pruner="halving", eta=eta), records)
    problem = PluginHost().problems.get("regression")
    cell = state.study.trial_cells(len(trials), {"lr": 0.01}, [0],
                                   format_rungs(thresholds))[0]
    worse = math.inf if direction == "min" else -math.inf
    assert thresholds
    for j, step in enumerate([10, 30]):
        if step not in thresholds:
            continue
        at = thresholds[step]
        for value, goes_on in ((at, True), (math.nextafter(at, -worse), True),
                               (math.nextafter(at, worse), False)):
            assert _optuna_keeps(_means(trials), [10, 30], eta, direction, j, value) \
                is goes_on, (step, value)
            row = {"step": step, state.study.metric: value}
            if goes_on:
                check_rung(cell, problem, row)
            else:
                with pytest.raises(PrunedError):
                    check_rung(cell, problem, row)


def _decides(evaluations: Sequence[int], budget: int, eta: int) -> list[int]:
    """The evaluation steps at which Optuna's pruner decides: after a trial with 0.0 at
    every evaluation, one with 0.0 (a tie: kept) but 1.0 at step s is pruned at s."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for s in evaluations:
        study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=math.ceil(budget / eta ** 2), reduction_factor=eta))
        for bad in (None, s):
            trial = study.ask()
            for step in evaluations:
                trial.report(1.0 if step == bad else 0.0, step)
                if trial.should_prune():
                    out.append(step)
                    break
            study.tell(trial, state=TrialState.PRUNED)
    return out


@pytest.mark.parametrize(("budget", "every", "eta", "known"), [
    (90, 10, 3, [10, 30]), (500, 10, 3, [60, 170]), (200, 10, 3, [30, 70]),
    (400, 10, 3, [50, 140]), (40, 10, 3, [10, 20]), (200, 10, 2, [50, 100]),
    # Optuna's rung 1 is at 3 * ceil(300 / 9) = 102, so the evaluation at 110 (the old
    # rule's was at 100, the first at or after 300 / 3)
    (300, 10, 3, [40, 110]),
    # evaluations too sparse for two rungs: Optuna decides both at step 45
    (90, 45, 3, [45]),
])
def test_the_rungs_are_where_optunas_pruner_decides(budget: int, every: int, eta: int,
                                                    known: list[int]) -> None:
    evaluations = list(range(every, budget + 1, every))
    assert rung_steps(evaluations, budget, eta) == known
    # the pruner also decides at the last step when a rung falls on it; the harness does
    # not (a trial there has run its budget: stopping it saves nothing)
    assert [s for s in _decides(evaluations, budget, eta) if s < budget] == known


def test_a_pruned_tuning_run_resumed_after_each_round_selects_what_a_whole_one_does(
        tmp_path: Path) -> None:
    args = ["tune", "-m", "regression", "-o", "sgd", "--steps", "90", "--workers", "0",
            "--trials", "6", "--final-seeds", "1", "--prune", "halving", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "tuning.json").read_text())
    assert "pruned" in {t["state"] for t in whole["studies"][0]["trials"]}
    names = sorted(p.name for p in (tmp_path / "whole" / "cells").glob("*.json"))
    for after in (2, 4):  # rounds of 2: interrupted after the first, then the second round
        cut = tmp_path / f"cut{after}"
        shutil.copytree(tmp_path / "whole", cut)
        (cut / "tuning.json").unlink()
        for path in (cut / "cells").glob("*.json"):
            tune = dict(json.loads(path.read_text())["cell"]["tune"])
            if tune["phase"] == "final" or tune["trial"] >= after:
                path.unlink()
        assert main(["run", "--resume", str(cut), "--workers", "0", "--quiet"]) == 0
        assert sorted(p.name for p in (cut / "cells").glob("*.json")) == names
        resumed = json.loads((cut / "tuning.json").read_text())
        (a,), (b,) = whole["studies"], resumed["studies"]
        assert [(t["hyper"], t["state"]) for t in a["trials"]] == \
            [(t["hyper"], t["state"]) for t in b["trials"]]
        assert a["selected"] == b["selected"] and a["final_cells"] == b["final_cells"]

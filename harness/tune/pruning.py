"""Successive halving through Optuna's ``SuccessiveHalvingPruner``, applied between rounds:
a fresh in-memory study per decision, told the recorded trials in trial-number order, so a
rung's threshold depends only on the records (never on timing, on which trials ran beside
each other, or on a study kept in memory between rounds).

Not live in each worker: there the pruner would compare a trial with whichever trials had
reported before it, which depends on the workers' timing, and a resumed run would see
them in another order than the interrupted one did. Between rounds, the trials of a round
are held to thresholds computed from the earlier rounds' records, carried in their cells.

Optuna's pruner (asynchronous successive halving, minimum early-stopping rate 0) decides at
rung ``k`` when a trial first reports at a step at or after ``min_resource * eta**k``: it is
promoted when its value is among the best ``1/eta`` of the values every trial had at that
rung so far, itself included (the best of them while fewer than ``eta`` have one). Here
``min_resource`` is ``ceil(steps / eta**2)``, so the rungs are the first evaluations at or
after about ``steps / eta**2`` and ``steps / eta``; the last step is never a rung (a trial
that has reached it has nothing left to save).

What a trial of a later round is held to at a rung is the value at which the pruner's
decision flips for one more trial reporting there after the recorded ones: its rule is
monotone in the value and compares with one of the recorded values, so the threshold is
found by probing them (a binary search, each probe on a fresh rebuild). A trial at the
threshold goes on, as with Optuna (``harness.train.rungs``: pruned when worse).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import optuna
from optuna.trial import TrialState

#: Each trial's value at each rung (None: none there, since it stopped before the rung,
#: failed or diverged; such a trial stops there and never sets a bar).
History = Sequence[Sequence[float | None]]


def min_resource(budget: int, eta: int) -> int:
    """The pruner's ``min_resource`` for a budget of ``budget`` steps: ``ceil(budget/eta²)``."""
    return max(1, -(-budget // eta ** 2))


def rung_steps(steps: Iterable[int], budget: int, eta: int) -> list[int]:
    """The steps among ``steps`` (a trial's evaluations) at which the pruner decides: for
    each rung ``k``, the first at or after ``min_resource * eta**k``, before ``budget``.
    Two rungs that fall on one evaluation are one step (the pruner decides both there)."""
    evaluations = sorted(set(steps))
    base, out, k = min_resource(budget, eta), [], 0
    while (target := base * eta ** k) < budget:
        at = next((s for s in evaluations if s >= target), budget)
        if at >= budget:
            break
        if at not in out:
            out.append(at)
        k += 1
    return out


def _study(budget: int, eta: int, direction: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="minimize" if direction == "min" else "maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),  # asked for nothing: never draws
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource(budget, eta), reduction_factor=eta,
            min_early_stopping_rate=0))


def _replay(history: History, rungs: Sequence[int], budget: int, eta: int,
            direction: str) -> tuple[optuna.Study, list[list[float]]]:
    """The study after the recorded trials, in order: each reports its value at each rung
    until it has none there or the pruner stops it (as it would have stopped it live).
    Also the values the pruner saw at each rung."""
    study = _study(budget, eta, direction)
    seen: list[list[float]] = [[] for _ in rungs]
    for values in history:
        trial, state, last = study.ask(), TrialState.COMPLETE, None
        for j, (step, value) in enumerate(zip(rungs, values, strict=True)):
            if value is None or not math.isfinite(value):
                state = TrialState.PRUNED
                break
            trial.report(value, step)
            seen[j].append(value)
            last = value
            if trial.should_prune():
                state = TrialState.PRUNED
                break
        study.tell(trial, last if state == TrialState.COMPLETE else None, state=state)
    return study, seen


def kept(history: History, rungs: Sequence[int], budget: int, eta: int, direction: str,
         rung: int, value: float) -> bool:
    """Whether the pruner, after the recorded trials, lets one more trial go on when it
    reports ``value`` at ``rungs[rung]`` (having passed the rungs before with the best
    value there is)."""
    study, _ = _replay(history, rungs, budget, eta, direction)
    trial = study.ask()
    best = -math.inf if direction == "min" else math.inf
    for step in rungs[:rung]:
        trial.report(best, step)
        if trial.should_prune():
            return False
    trial.report(value, rungs[rung])
    return not trial.should_prune()


def thresholds(history: History, rungs: Sequence[int], budget: int, eta: int,
               direction: str) -> dict[int, float]:
    """Each rung's threshold: the worst recorded value there with which one more trial
    would go on (better or equal goes on, worse is pruned). No entry for a rung at which
    the pruner would let any value go on (none of the trials it was told has a value
    there)."""
    if not rungs:
        return {}
    _, seen = _replay(history, rungs, budget, eta, direction)
    out = {}
    for j, step in enumerate(rungs):
        candidates = sorted(set(seen[j]), reverse=direction == "max")  # best first
        lo, hi = 0, len(candidates)  # kept for a prefix: find its end
        while lo < hi:
            mid = (lo + hi) // 2
            if kept(history, rungs, budget, eta, direction, j, candidates[mid]):
                lo = mid + 1
            else:
                hi = mid
        worst = math.inf if direction == "min" else -math.inf
        if lo and (lo < len(candidates)
                   or not kept(history, rungs, budget, eta, direction, j, worst)):
            out[step] = candidates[lo - 1]
    return out

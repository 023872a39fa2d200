"""Proposals through Optuna's samplers: a fresh in-memory study per proposal, told the
recorded trials, so what is proposed depends only on the seed, the space and the records
(never on timing or on a study kept in memory between rounds)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from harness.tune.studies import Dim

Values = dict[str, Any]


def _distribution(dim: Dim) -> BaseDistribution:
    space = dim.space
    if space.scale == "choice":
        return CategoricalDistribution(list(range(len(space.choices))))
    if space.scale in ("int", "log-int"):
        return IntDistribution(int(space.low), int(space.high), log=space.scale == "log-int")
    if space.scale == "one-minus-log":  # the parameter Optuna sees is 1 - x
        return FloatDistribution(1 - space.high, 1 - space.low, log=True)
    return FloatDistribution(space.low, space.high, log=space.scale == "log")


def _internal(dim: Dim, value: Any) -> Any:
    space = dim.space
    if space.scale == "choice":
        return space.choices.index(value)
    if space.scale == "one-minus-log":
        dist = _distribution(dim)
        assert isinstance(dist, FloatDistribution)
        return min(max(1 - value, dist.low), dist.high)
    return value


def external(dim: Dim, x: Any) -> Any:
    """A sampled value as the hyperparameter takes it: floats to 4 significant digits
    (readable, and pasted back unchanged), kept inside the space."""
    space = dim.space
    if space.scale == "choice":
        return space.choices[int(x)]
    if space.scale in ("int", "log-int"):
        return int(x)
    value = 1 - float(x) if space.scale == "one-minus-log" else float(x)
    value = float(f"{value:.4g}")
    return min(max(value, space.low), space.high)


def _grid_values(dim: Dim, per_dim: int) -> list[Any]:
    space = dim.space
    if space.scale == "choice":
        return list(range(len(space.choices)))
    values = [space.at(i / (per_dim - 1)) for i in range(per_dim)]
    if space.scale in ("int", "log-int"):
        values = sorted({round(v) for v in values})
    return [_internal(dim, external(dim, _internal(dim, v))) for v in values]


def grid_size(dims: Sequence[Dim], trials: int) -> int:
    """Points per dimension of an exhaustive grid of about ``trials`` points."""
    root: float = float(trials) ** (1 / max(1, len(dims)))
    return max(2, round(root))


def trial_count(sampler: str, dims: Sequence[Dim], trials: int) -> int:
    """How many trials a study runs: ``trials``, or the full grid's points for ``grid``."""
    if sampler != "grid":
        return trials
    per_dim = grid_size(dims, trials)
    return int(math.prod(len(_grid_values(d, per_dim)) for d in dims))


def _sampler(name: str, dims: Sequence[Dim], seed: int, trials: int) -> optuna.samplers.BaseSampler:
    # QMCSampler is marked experimental since Optuna 3.0; the warning says nothing to a user.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                          warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        per_dim = grid_size(dims, trials)
        return optuna.samplers.GridSampler({d.name: _grid_values(d, per_dim) for d in dims},
                                           seed=seed)
    startup = max(2, min(10, trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def propose(sampler: str, dims: Sequence[Dim], n: int, *, seed: int, direction: str,
            history: Sequence[tuple[Mapping[str, Any], float]] = (),
            trials: int | None = None) -> list[Values]:
    """``n`` configurations from ``sampler`` seeded with ``seed``, after telling it
    ``history`` (configurations and their values, NaN: failed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {d.name: _distribution(d) for d in dims}
    study = optuna.create_study(
        direction="minimize" if direction == "min" else "maximize",
        sampler=_sampler(sampler, dims, seed, trials or n))
    for values, value in history:
        params = {d.name: _internal(d, values[d.name]) for d in dims}
        ok = math.isfinite(value)
        study.add_trial(create_trial(params=params, distributions=dists,
                                     value=value if ok else None,
                                     state=TrialState.COMPLETE if ok else TrialState.FAIL))
    if sampler == "sobol" and not history:
        # QMCSampler draws a study's first trial with its independent (random) sampler;
        # this throw-away trial takes that draw, so the trials are the sequence's points.
        study.ask(dists)
    out = []
    for _ in range(n):
        trial = study.ask(dists)
        out.append({d.name: external(d, trial.params[d.name]) for d in dims})
    return out

"""A grid file's ``[tune]`` table (and ``harness tune``'s flags): the tuning protocol's
settings, checked and normalised into plain values that a manifest keeps
(docs/tuning.md). Torch-free and Optuna-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.grid.spec import clip, did_you_mean, parse_int, parse_seeds
from harness.space import SearchSpace

SAMPLERS = ("sobol", "tpe", "random", "grid")
EDGES = ("flag", "extend")
PRUNERS = ("none", "halving")
#: The paired sign-flip test's smallest two-sided p-value with n seeds is 2/2^n; 6 is
#: the fewest seeds with which it can go below 0.05 (harness.report.stats).
DEFAULT_FINAL_SEEDS = 6
MAX_TRIALS = 10_000
#: Extensions of a space whose edge was selected (``edge = "extend"``), at most.
MAX_EXTENSIONS = 2
KEYS = ("trials", "sampler", "seed", "seeds", "final_seeds", "metric", "hyperparameters",
        "edge", "extend_trials", "batch", "space", "pruner", "eta")


@dataclass(frozen=True)
class TuneSpec:
    """The protocol, normalised (:func:`parse_tune`); ``asdict`` of it is what the
    manifest's ``grid_spec.tune`` holds."""

    trials: int = 8
    sampler: str = "sobol"
    seed: int = 0
    #: Trial seeds (None: the grid's first seed, one seed per trial).
    seeds: list[int] | None = None
    #: Final seeds: a list, or a count of seeds after the largest trial seed.
    final_seeds: list[int] | int = DEFAULT_FINAL_SEEDS
    #: ``validation``, ``training`` or a metric's name.
    metric: str = "validation"
    hyperparameters: list[str] = field(default_factory=lambda: ["lr"])
    edge: str = "flag"
    #: Trials per extension of a space (``edge = "extend"``); 0: half of ``trials``.
    extend_trials: int = 0
    #: Trials proposed per round by an adaptive sampler (tpe).
    batch: int = 4
    #: ``halving``: successive halving (Optuna's ``SuccessiveHalvingPruner``, reduction
    #: factor ``eta``, applied between rounds), rungs at about steps/eta^2 and steps/eta;
    #: a trial of a later round that the pruner, told the earlier rounds' trials in
    #: order, would stop at a rung stops there.
    pruner: str = "none"
    eta: int = 3
    #: Search-space overrides: ``{"lr": {...}}`` for every optimizer, ``{"adam": {"lr":
    #: {...}}}`` for one optimizer or schedule.
    space: dict[str, Any] = field(default_factory=dict)

    def trial_seeds(self, grid_seeds: list[int]) -> list[int]:
        return list(self.seeds) if self.seeds is not None else list(grid_seeds[:1])

    def final(self, grid_seeds: list[int]) -> list[int]:
        """The final seeds: never trial seeds (UsageError if a listed one is)."""
        trial = self.trial_seeds(grid_seeds)
        if isinstance(self.final_seeds, int):
            start = max(trial) + 1
            return list(range(start, start + self.final_seeds))
        shared = sorted(set(trial) & set(self.final_seeds))
        if shared:
            raise UsageError(f"tune: final seed {shared[0]} is also a trial seed; the final "
                             "seeds must be fresh")
        return list(self.final_seeds)

    def spaces_for(self, owner: str) -> dict[str, SearchSpace]:
        """The overriding spaces for an optimizer or schedule named ``owner``."""
        out = {k: SearchSpace.from_dict(v, f"tune.space.{k}")
               for k, v in self.space.items() if "scale" in v or "low" in v or "choices" in v}
        own = self.space.get(owner)
        if isinstance(own, Mapping) and not ({"scale", "low", "choices"} & set(own)):
            out.update({k: SearchSpace.from_dict(v, f"tune.space.{owner}.{k}")
                        for k, v in own.items()})
        return out


def parse_tune(table: Any, where: str = "tune") -> dict[str, Any]:
    """A ``[tune]`` table, checked, as the plain dict :class:`TuneSpec` is built from."""
    if not isinstance(table, Mapping):
        raise UsageError(f"{where}: expected a table of tuning settings")
    for key in table:
        if key not in KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, KEYS)}")
    out: dict[str, Any] = {}
    if "trials" in table:
        out["trials"] = parse_int(table["trials"], f"{where}.trials", MAX_TRIALS)
    for key, known in (("sampler", SAMPLERS), ("edge", EDGES), ("pruner", PRUNERS)):
        if key in table:
            out[key] = _word(table[key], known, f"{where}.{key}")
    if "seed" in table:
        out["seed"] = parse_int(table["seed"], f"{where}.seed", 2**31 - 1, 0)
    if "seeds" in table:
        value = table["seeds"]
        out["seeds"] = list(range(parse_int(value, f"{where}.seeds", 10_000))) \
            if isinstance(value, int) else parse_seeds(value, f"{where}.seeds")
    if "final_seeds" in table:
        value = table["final_seeds"]
        out["final_seeds"] = parse_int(value, f"{where}.final_seeds", 10_000) \
            if isinstance(value, int) else parse_seeds(value, f"{where}.final_seeds")
    if "metric" in table:
        metric = table["metric"]
        if not isinstance(metric, str) or not metric.strip():
            raise UsageError(f"{where}.metric: expected validation, training or a metric "
                             f"name, got {clip(repr(metric))}")
        out["metric"] = metric.strip()
    if "hyperparameters" in table:
        names = table["hyperparameters"]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise UsageError(f"{where}.hyperparameters: expected a list of names, such as "
                             f"[\"lr\", \"momentum\"], got {clip(repr(names))}")
        out["hyperparameters"] = list(names)
    if "eta" in table:
        out["eta"] = parse_int(table["eta"], f"{where}.eta", 100, 2)
    for key in ("extend_trials", "batch"):
        if key in table:
            out[key] = parse_int(table[key], f"{where}.{key}", MAX_TRIALS)
    if "space" in table:
        out["space"] = _spaces(table["space"], f"{where}.space")
    return out


def _word(value: Any, known: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise UsageError(f"{where}: expected one of {', '.join(known)}, got "
                         f"{clip(repr(value))}{did_you_mean(str(value), known)}")
    return value


def _spaces(value: Any, where: str) -> dict[str, Any]:
    """``[tune.space]``: ``NAME = {...}`` for every optimizer, ``[tune.space.OWNER]`` for
    one; each space is checked here."""
    if not isinstance(value, Mapping):
        raise UsageError(f"{where}: expected a table of spaces")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(item, Mapping):
            raise UsageError(f"{where}.{name}: expected a space like {{ low = 1e-4, "
                             "high = 1.0, scale = \"log\" }}")
        if {"scale", "low", "high", "choices"} & set(item):
            out[name] = SearchSpace.from_dict(item, f"{where}.{name}").to_dict()
        else:
            out[name] = {k: SearchSpace.from_dict(v, f"{where}.{name}.{k}").to_dict()
                         for k, v in item.items()}
    return out


def tune_spec(data: Mapping[str, Any] | None) -> TuneSpec | None:
    """The :class:`TuneSpec` of a grid spec's ``tune`` dict (None: not a tuning run)."""
    if data is None:
        return None
    return TuneSpec(**data)

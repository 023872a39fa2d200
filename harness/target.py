"""What counts as solved: one :class:`Target`, declared by a problem and read back by the
report and ``harness compare``. Torch-free, so the read side shares it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: Which side of a metric is better: ``"min"`` (lower) or ``"max"`` (higher).
Better = Literal["min", "max"]
#: Name endings that say a metric is better low, and better high (:func:`better_side`).
LOWER_IS_BETTER = ("loss", "error", "distance", "perplexity", "regret", "mse", "mae")
HIGHER_IS_BETTER = ("accuracy", "return", "reward", "score", "auc", "f1")
#: The tuning selection metrics on the training split (lower is better), for a problem
#: without a validation metric.
TRAINING_METRICS = ("final_loss", "best_loss")


@dataclass(frozen=True)
class Target:
    """What counts as converged, for time-to-target: ``metric`` crossing ``threshold``;
    ``mode`` says which side is solved (``"min"``: at or below, ``"max"``: at or above)."""

    metric: str
    threshold: float
    mode: Literal["min", "max"] = "min"

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value <= self.threshold if self.mode == "min" else value >= self.threshold


#: How much better than its chance level a metric must end to count as learned something
#: (five points of accuracy): a 10-class classifier at 0.12 is at chance, one at 0.2 not.
CHANCE_MARGIN = 0.05


def at_chance(value: float, chance: float, better: Better | None) -> bool:
    """Whether a final ``value`` is no better than ``chance`` (within :data:`CHANCE_MARGIN`
    of it, or worse). A non-finite value is not at chance: the cell's status says more."""
    if not math.isfinite(value) or better is None:
        return False
    return value <= chance + CHANCE_MARGIN if better == "max" else value >= chance - CHANCE_MARGIN


def better_side(metric: str) -> Better | None:
    """Whether a metric is better low or high, read off its name (``test_loss``: ``min``,
    ``val_accuracy``: ``max``); None when the name does not say."""
    name = metric.lower()
    if name.endswith(LOWER_IS_BETTER):
        return "min"
    if name.endswith(HIGHER_IS_BETTER):
        return "max"
    return None


def format_directions(directions: dict[str, Better]) -> str:
    """The ``metric_directions`` summary column: ``test_loss=min,val_accuracy=max``."""
    return ",".join(f"{metric}={side}" for metric, side in directions.items())


def parse_directions(text: object, metrics: tuple[str, ...] | list[str] = ()) -> dict[str, Better]:
    """Each metric's better side from a summary's ``metric_directions`` column; for records
    written before the column existed (``text`` missing or NaN), read off the names of
    ``metrics`` (:func:`better_side`), leaving out those whose names do not say."""
    directions: dict[str, Better] = {}
    if isinstance(text, str):
        for pair in filter(None, text.split(",")):
            metric, _, side = pair.partition("=")
            if side in ("min", "max"):
                directions[metric] = "min" if side == "min" else "max"
    for metric in metrics:
        guessed = better_side(metric)
        if metric not in directions and guessed is not None:
            directions[metric] = guessed
    return directions

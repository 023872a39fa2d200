"""The search-space contract: the range and scale a tuning run samples a hyperparameter
(or a schedule parameter) from.

An optimizer declares one per tunable hyperparameter (``OptimizerSpec(space={"lr":
SearchSpace.log(1e-5, 1.0)})``), a schedule per parameter, and a grid file's
``[tune.space]`` may replace any of them (docs/tuning.md). Torch-free and Optuna-free:
the grid and the catalogue read spaces without importing either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import UsageError

#: ``log``: log-uniform float; ``linear``: uniform float; ``one-minus-log``: ``1 - x``
#: log-uniform (momentum, betas: 0.9, 0.99, 0.999 equally far apart); ``int``: uniform
#: integer, ``log-int``: log-uniform integer; ``choice``: one of ``choices``.
Scale = Literal["log", "linear", "one-minus-log", "int", "log-int", "choice"]
SCALES: tuple[str, ...] = ("log", "linear", "one-minus-log", "int", "log-int", "choice")
#: A selected value in the outer tenth of its space (on the space's scale) is on an edge.
EDGE_BAND = 0.1


@dataclass(frozen=True)
class SearchSpace:
    """Where a tuning run samples one hyperparameter: ``low``..``high`` on ``scale``, or
    one of ``choices``. Build one with :meth:`log`, :meth:`linear`, :meth:`one_minus_log`,
    :meth:`integer` or :meth:`choice`."""

    scale: Scale
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(f"search space {self.describe()}: {problem}")

    @classmethod
    def log(cls, low: float, high: float) -> SearchSpace:
        return cls("log", float(low), float(high))

    @classmethod
    def linear(cls, low: float, high: float) -> SearchSpace:
        return cls("linear", float(low), float(high))

    @classmethod
    def one_minus_log(cls, low: float, high: float) -> SearchSpace:
        """``low``..``high`` (below 1) with ``1 - x`` log-uniform."""
        return cls("one-minus-log", float(low), float(high))

    @classmethod
    def integer(cls, low: int, high: int, *, log: bool = False) -> SearchSpace:
        return cls("log-int" if log else "int", int(low), int(high))

    @classmethod
    def choice(cls, *choices: Any) -> SearchSpace:
        return cls("choice", choices=tuple(choices))

    def problem(self) -> str | None:
        """What is wrong with this space, or None."""
        if self.scale not in SCALES:
            return f"unknown scale {self.scale!r}; known: {', '.join(SCALES)}"
        if self.scale == "choice":
            if not self.choices:
                return "choice needs at least one value"
            return None
        lo, hi = self.low, self.high
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            return "needs finite low < high"
        if self.scale in ("log", "log-int") and lo <= 0:
            return "a log scale needs low > 0"
        if self.scale == "one-minus-log" and not hi < 1:
            return "one-minus-log needs high < 1"
        if self.scale in ("int", "log-int") and (lo != int(lo) or hi != int(hi)):
            return "an integer space needs integer bounds"
        return None

    # -- the space's own coordinate: 0 at low, 1 at high ---------------------------------
    def unit(self, value: float) -> float:
        """Where ``value`` lies on the space's scale, 0 at ``low`` and 1 at ``high``."""
        lo, hi, v = self.low, self.high, float(value)
        if self.scale in ("log", "log-int"):
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        if self.scale == "one-minus-log":
            return (math.log(1 - lo) - math.log(1 - v)) / (math.log(1 - lo) - math.log(1 - hi))
        return (v - lo) / (hi - lo)

    def at(self, u: float) -> float:
        """The value at ``u`` on the space's scale (the inverse of :meth:`unit`)."""
        lo, hi = self.low, self.high
        if self.scale in ("log", "log-int"):
            return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if self.scale == "one-minus-log":
            return 1 - math.exp(math.log(1 - lo) + u * (math.log(1 - hi) - math.log(1 - lo)))
        return lo + u * (hi - lo)

    def contains(self, value: Any) -> bool:
        if self.scale == "choice":
            return value in self.choices
        return isinstance(value, int | float) and not isinstance(value, bool) \
            and self.low <= value <= self.high

    def edge(self, value: Any) -> str | None:
        """``"low"`` or ``"high"`` when ``value`` is in the outer :data:`EDGE_BAND` of the
        space on its scale (a choice space has no edge), else None."""
        if self.scale == "choice" or not self.contains(value):
            return None
        u = self.unit(value)
        return "low" if u <= EDGE_BAND else "high" if u >= 1 - EDGE_BAND else None

    def widened(self, side: str) -> SearchSpace | None:
        """The space grown past its ``side`` edge by half its span on its scale (kept
        valid: above 0 on a log scale, below 1 for one-minus-log); None for a choice."""
        if self.scale == "choice":
            return None
        u = -0.5 if side == "low" else 1.5
        value = self.at(u)
        if self.scale in ("int", "log-int"):
            value = math.floor(value) if side == "low" else math.ceil(value)
            if self.scale == "log-int":
                value = max(1, value)
        low, high = (value, self.high) if side == "low" else (self.low, value)
        if low >= high:
            return None
        return SearchSpace(self.scale, low, high)

    def describe(self) -> str:
        """``log[1e-05, 1]``, ``choice[relu, tanh]``."""
        if self.scale == "choice":
            return "choice[" + ", ".join(str(c) for c in self.choices) + "]"
        return f"{self.scale}[{self.low:g}, {self.high:g}]"

    def to_dict(self) -> dict[str, Any]:
        if self.scale == "choice":
            return {"scale": "choice", "choices": list(self.choices)}
        return {"scale": self.scale, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> SearchSpace:
        """A space from a grid file's ``{ low = 1e-4, high = 1.0, scale = "log" }`` or
        ``{ choices = [...] }``; UsageError naming ``where`` if it is not one."""
        if not isinstance(data, Mapping):
            raise UsageError(f"{where}: expected a space like {{ low = 1e-4, high = 1.0, "
                             f"scale = \"log\" }}, got {data!r}")
        unknown = set(data) - {"scale", "low", "high", "choices"}
        if unknown:
            raise UsageError(f"{where}: unknown key {sorted(unknown)[0]!r} (a space takes "
                             "scale, low, high or choices)")
        scale = data.get("scale", "choice" if "choices" in data else "log")
        try:
            if scale == "choice":
                choices = data.get("choices")
                if not isinstance(choices, list):
                    raise ValueError("choice needs choices = [...]")
                return cls("choice", choices=tuple(tuple(c) if isinstance(c, list) else c
                                                   for c in choices))
            low, high = data.get("low"), data.get("high")
            if not all(isinstance(v, int | float) and not isinstance(v, bool)
                       for v in (low, high)):
                raise ValueError("needs numbers low and high")
            assert isinstance(low, int | float) and isinstance(high, int | float)
            return cls(scale, float(low), float(high))
        except ValueError as exc:
            raise UsageError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None


def element(name: str) -> tuple[str, int | None]:
    """``"betas[0]"`` as ``("betas", 0)`` (an element of a tuple-valued hyperparameter);
    ``"lr"`` as ``("lr", None)``."""
    base, sep, rest = name.partition("[")
    if sep and rest.endswith("]") and rest[:-1].isdigit():
        return base, int(rest[:-1])
    return name, None


def check_spaces(spaces: Any, owner: str) -> None:
    """A plugin's declared spaces: a mapping of names to :class:`SearchSpace` (TypeError)."""
    if not isinstance(spaces, Mapping) or not all(
            isinstance(k, str) and isinstance(v, SearchSpace) for k, v in spaces.items()):
        raise TypeError(f"{owner}: space must map hyperparameter names to "
                        f"harness.SearchSpace(...), got {spaces!r}")

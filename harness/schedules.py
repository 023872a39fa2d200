"""The learning-rate schedule contract: a named multiplier of the optimizer's learning rate.

A schedule is a function ``multiplier(step, steps, **params) -> float``: the factor on each
parameter group's own learning rate for the step numbered ``step`` (0 for the first, ``steps
- 1`` for the last) of a cell whose budget is ``steps``. It is a pure function of the step,
so a cell resumed from a checkpoint continues on the same schedule. Its parameters are grid
axes (``--set warmup-cosine.warmup=0.1``, ``[schedule.warmup-cosine]``). ``constant`` is the
default, and a cell on it has the content key it always had.

Torch-free: the grid, the report and the catalogue read schedules without importing torch.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.space import SearchSpace, check_spaces

#: ``multiplier(step, steps, **params)``: the factor on the learning rate at ``step``.
Multiplier = Callable[..., float]

#: The schedule every cell has unless the grid says otherwise: the learning rate as set.
CONSTANT = "constant"

#: What a schedule declares of a multiplier (its last step's, its first warm-up step's): the
#: name of the parameter that gives it (``"final_lr_ratio"``), a number, or a function
#: ``declared(steps, **params) -> float``.
Declared = str | float | Callable[..., float]


@dataclass(frozen=True)
class ScheduleSpec:
    """A registered learning-rate schedule."""

    name: str
    multiplier: Multiplier
    #: Its parameters and their defaults; every one may be set from a grid file or --set.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: Never rises after its warm-up (its ``warmup`` parameter, if any); checked by the
    #: conformance kit.
    monotone: bool = True
    #: The multiplier at the last step (:data:`Declared`); None: not declared. The
    #: conformance kit checks the multiplier against it.
    final: Declared | None = None
    #: The parameter that holds its warm-up, read by :func:`warmup_steps` (below 1 a
    #: fraction of the steps, else a count); None: no warm-up (a parameter named
    #: ``warmup`` still counts as one for ``monotone``). The conformance kit checks that
    #: the multiplier rises over the warm-up to 1.
    warmup: str | None = None
    #: The multiplier at the first step of the warm-up (:data:`Declared`); None: not
    #: declared.
    warmup_start: Declared | None = None
    #: Where a tuning run samples each tunable parameter (docs/tuning.md).
    space: Mapping[str, SearchSpace] = field(default_factory=dict)

    def resolve(self, overrides: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
        """Defaults updated by ``overrides``, after checking every name and type."""
        where = where or f"schedule {self.name}"
        for key, value in overrides.items():
            if key not in self.defaults:
                close = difflib.get_close_matches(key, sorted(self.defaults), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                takes = ", ".join(sorted(self.defaults)) or "none"
                raise UsageError(f"{where}: unknown parameter {key!r}{hint}; it takes: {takes}")
            _check_value(key, value, self.defaults[key], where)
        return {**self.defaults, **overrides}

    def at(self, step: int, steps: int, params: Mapping[str, Any]) -> float:
        """The multiplier at ``step`` of ``steps`` with ``params``."""
        return float(self.multiplier(step, steps, **params))

    def declared(self, which: str, steps: int, params: Mapping[str, Any]) -> float | None:
        """What the schedule declares of ``which`` (``"final"`` or ``"warmup_start"``) for a
        cell of ``steps`` with ``params``; None when it declares nothing."""
        value = self.final if which == "final" else self.warmup_start
        if value is None:
            return None
        if isinstance(value, str):
            return float(params[value])
        if callable(value):
            return float(value(steps, **params))
        return float(value)

    def warmup_parameter(self) -> str | None:
        """The parameter that holds the warm-up: :attr:`warmup`, else one named ``warmup``."""
        return self.warmup or ("warmup" if "warmup" in self.defaults else None)


def _check_value(key: str, value: Any, default: Any, where: str) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, int | float) and not isinstance(default, bool):
        if not number or not math.isfinite(value) or value < 0:
            raise UsageError(f"{where}: {key} must be a number >= 0, got {value!r}")
    elif not isinstance(value, type(default)):
        raise UsageError(f"{where}: {key} must look like {default!r}, got {value!r}")


def check_schedule(spec: ScheduleSpec) -> None:
    """Cheap checks when a schedule is registered: its multiplier is callable as
    ``multiplier(step, steps, **defaults)`` and gives a finite number there."""
    where = f"schedule {spec.name!r}"
    if not callable(spec.multiplier):
        raise TypeError(f"{where}: multiplier {spec.multiplier!r} is not callable")
    if not isinstance(spec.defaults, Mapping) or not all(isinstance(k, str)
                                                         for k in spec.defaults):
        raise TypeError(f"{where}: defaults must map parameter names to values")
    check_spaces(spec.space, where)
    for key in spec.space:
        if key not in spec.defaults:
            raise TypeError(f"{where}: search space for {key!r}, which is not one of its "
                            f"parameters ({', '.join(spec.defaults) or 'none'})")
    try:
        inspect.signature(spec.multiplier).bind(0, 10, **spec.defaults)
    except TypeError as exc:
        raise TypeError(f"{where}: multiplier(step, steps, **defaults) cannot be called: "
                        f"{exc}") from None
    except ValueError:
        pass  # a signature that cannot be read: trust it
    for field_name in ("final", "warmup_start", "warmup"):
        declared = getattr(spec, field_name)
        if isinstance(declared, str) and declared not in spec.defaults:
            raise TypeError(f"{where}: {field_name}={declared!r} is not one of its parameters "
                            f"({', '.join(sorted(spec.defaults)) or 'none'})")
    value = spec.multiplier(0, 10, **spec.defaults)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{where}: multiplier(0, 10) returned {value!r}, not a finite number")


def warmup_steps(warmup: float, steps: int) -> int:
    """A ``warmup`` parameter as a step count: below 1 a fraction of ``steps``, else a count."""
    if warmup <= 0:
        return 0
    count = round(warmup * steps) if warmup < 1 else int(warmup)
    return max(1, min(count, steps))


def describe(name: str | None, params: Mapping[str, Any]) -> str:
    """``warmup-cosine(warmup=0.1)``: a schedule as labels show it; "" for constant."""
    if not name or name == CONSTANT:
        return ""
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}({inner})" if inner else name

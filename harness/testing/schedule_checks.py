"""The conformance checks of a learning-rate schedule (see :mod:`harness.testing.conformance`):
its multipliers are finite, non-negative and a pure function of the step, and they do what
the spec declares: the final rate at the last step (``final``), never rising after the
warm-up (``monotone``), a warm-up that starts where it says (``warmup_start``) and rises to
the optimizer's own rate (``warmup``).

Each check runs the multiplier over several step budgets, with the schedule's defaults and
with the declared parameters moved (a ``final`` parameter at 0.25, a warm-up of a fifth of
the steps and of 10 steps), so a schedule that ignores one of its parameters is caught.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

from harness.schedules import ScheduleSpec, warmup_steps
from harness.testing.conformance import (
    CheckContext,
    ConformanceFailure,
    ConformanceSkip,
    _check_identity,
    _describe,
    _schedule_check,
)

#: The step budgets every check runs the multiplier over: the edge cases and two real ones.
BUDGETS = (1, 2, 3, 7, 100, 1001)
#: How close a multiplier must be to what the schedule declares.
REL_TOL, ABS_TOL = 1e-6, 1e-9


def _sfail(check: str, spec: ScheduleSpec) -> Callable[[str], ConformanceFailure]:
    return lambda detail: ConformanceFailure(check, "schedule", spec.name, detail)


def _variants(spec: ScheduleSpec) -> Iterator[dict[str, Any]]:
    """The defaults, then each declared parameter moved: what every check runs on."""
    yield dict(spec.defaults)
    if isinstance(spec.final, str):
        yield {**spec.defaults, spec.final: 0.25}
    warmup = spec.warmup_parameter()
    if warmup is not None:
        yield {**spec.defaults, warmup: 0.2}
        yield {**spec.defaults, warmup: 10}


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "no parameters"


def _values(spec: ScheduleSpec, steps: int, params: dict[str, Any],
            fail: Callable[[str], ConformanceFailure]) -> list[float]:
    where = f"with {_shown(params)} over {steps} steps"
    try:
        values = [spec.at(i, steps, params) for i in range(steps)]
    except Exception as exc:
        raise fail(f"{where}: the multiplier raised {_describe(exc)}") from exc
    for i, v in enumerate(values):
        if not math.isfinite(v) or v < 0:
            raise fail(f"{where}: the multiplier at step {i} is {v!r} (it must be a finite "
                       "number >= 0)")
    return values


def _runs(spec: ScheduleSpec, check: str) -> Iterator[tuple[int, dict[str, Any], list[float],
                                                            Callable[[str], ConformanceFailure]]]:
    fail = _sfail(check, spec)
    for params, steps in itertools.product(_variants(spec), BUDGETS):
        yield steps, params, _values(spec, steps, params, fail), fail


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


@_schedule_check
def schedule_metadata(spec: ScheduleSpec, context: CheckContext) -> None:
    """A valid name, a one-line description, and what it declares names its parameters."""
    fail = _sfail("metadata", spec)
    _check_identity(fail, "schedule", spec.name, spec.description)
    for field_name in ("final", "warmup_start", "warmup"):
        declared = getattr(spec, field_name)
        if isinstance(declared, str) and declared not in spec.defaults:
            raise fail(f"{field_name}={declared!r} is not one of its parameters "
                       f"({', '.join(sorted(spec.defaults)) or 'none'})")


@_schedule_check
def schedule_values(spec: ScheduleSpec, context: CheckContext) -> None:
    """Finite multipliers >= 0 at every step, the same when asked again in another order
    (a pure function of the step: a resumed cell continues on the same rates)."""
    for steps, params, values, fail in _runs(spec, "values"):
        again = [spec.at(i, steps, params) for i in reversed(range(steps))][::-1]
        for i, (a, b) in enumerate(zip(values, again, strict=True)):
            if a != b:
                raise fail(f"with {_shown(params)} over {steps} steps: the multiplier at step "
                           f"{i} was {a!r}, then {b!r} (it must depend on the step only)")


@_schedule_check
def schedule_final_rate(spec: ScheduleSpec, context: CheckContext) -> None:
    """The multiplier at the last step is the final rate the spec declares (``final``)."""
    if spec.final is None:
        raise ConformanceSkip(f"schedule {spec.name!r} declares no final rate "
                              "(ScheduleSpec.final)")
    for steps, params, values, fail in _runs(spec, "final_rate"):
        declared = spec.declared("final", steps, params)
        assert declared is not None
        if not _close(values[-1], declared):
            raise fail(f"with {_shown(params)} over {steps} steps: the multiplier at the last "
                       f"step ({steps - 1}) is {values[-1]!r}, not the declared {declared!r}")


@_schedule_check
def schedule_monotone(spec: ScheduleSpec, context: CheckContext) -> None:
    """Declared ``monotone``: the multiplier never rises after the warm-up."""
    if not spec.monotone:
        raise ConformanceSkip(f"schedule {spec.name!r} is not declared monotone")
    warmup = spec.warmup_parameter()
    for steps, params, values, fail in _runs(spec, "monotone"):
        w = min(warmup_steps(params[warmup], steps), steps - 1) if warmup else 0
        for i in range(w, steps - 1):
            if values[i + 1] > values[i] * (1 + REL_TOL) + ABS_TOL:
                raise fail(f"with {_shown(params)} over {steps} steps: the multiplier rises "
                           f"from {values[i]!r} at step {i} to {values[i + 1]!r} at step "
                           f"{i + 1}, after the warm-up (declared monotone)")


@_schedule_check
def schedule_warmup(spec: ScheduleSpec, context: CheckContext) -> None:
    """A declared warm-up (``warmup``) rises, starts at the declared ``warmup_start`` and
    reaches 1 (the optimizer's own rate) at its last step."""
    warmup = spec.warmup_parameter()
    if warmup is None:
        raise ConformanceSkip(f"schedule {spec.name!r} declares no warm-up (ScheduleSpec.warmup)")
    for steps, params, values, fail in _runs(spec, "warmup"):
        w = warmup_steps(params[warmup], steps)
        if w == 0 or w >= steps:
            continue  # no warm-up, or nothing after it: nothing a warm-up promises
        where = f"with {_shown(params)} over {steps} steps ({w} warm-up steps)"
        start = spec.declared("warmup_start", steps, params)
        if start is not None and not _close(values[0], start):
            raise fail(f"{where}: the multiplier at step 0 is {values[0]!r}, not the declared "
                       f"warm-up start {start!r}")
        if any(b < a - ABS_TOL for a, b in itertools.pairwise(values[:w])):
            raise fail(f"{where}: the multiplier falls during the warm-up: {values[:w]}")
        if not _close(values[w - 1], 1.0):
            raise fail(f"{where}: the multiplier at the warm-up's last step ({w - 1}) is "
                       f"{values[w - 1]!r}, not 1 (the optimizer's own rate)")
        if w > 1 and not values[0] < values[w - 1]:
            raise fail(f"{where}: the multiplier does not rise during the warm-up "
                       f"({values[0]!r} at step 0)")

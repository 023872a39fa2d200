"""``--set [NAME.]KEY=VALUE[,VALUE...]``: command-line settings over the grid file's."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.grid.spec import (
    GridSpec,
    clip,
    did_you_mean,
    nesting_too_deep,
    too_long_integer,
    too_long_message,
)
from harness.limits import MAX_NESTING

if TYPE_CHECKING:
    from harness.registry import OptimizerRegistry, ProblemRegistry, ScheduleRegistry


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (number, bool, list, quoted string) or a bare word."""
    text = text.strip()
    if nesting_too_deep(f"v = {text}") is not None:  # before tomllib, which would recurse and fail
        raise UsageError(f"the value {clip(text)} is nested more than {MAX_NESTING} levels "
                         "deep")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except ValueError:  # an integer with more digits than int() reads
        number = too_long_integer(text)
        raise UsageError(too_long_message(number) if number else "an integer is too long") \
            from None


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_set(assignment: str) -> tuple[str | None, str, list[Any]]:
    """``[NAME.]KEY=VALUE[,VALUE...]`` -> (NAME or None, KEY, values)."""
    shown = clip(assignment, 40)
    if "=" not in assignment:
        raise UsageError(f"--set {shown!r}: expected KEY=VALUE, e.g. --set adam.lr=0.001")
    lhs, rhs = assignment.split("=", 1)
    lhs = lhs.strip()
    if not re.fullmatch(r"([a-z0-9][a-z0-9_-]*\.)?[A-Za-z_][A-Za-z0-9_]*", lhs):
        raise UsageError(f"--set {shown!r}: {clip(lhs)!r} is not KEY or NAME.KEY")
    scope, _, key = lhs.rpartition(".")
    if not rhs.strip():
        raise UsageError(f"--set {shown!r}: the value is empty")
    raw = split_top_level(rhs)
    if any(not r.strip() for r in raw):
        raise UsageError(f"--set {shown!r}: an empty value in the list")
    try:
        values = [parse_value(r) for r in raw]
    except UsageError as exc:
        raise UsageError(f"--set {lhs}: {exc}") from None
    return (scope or None), key, values


def apply_sets(spec: GridSpec, assignments: Sequence[str], problems: ProblemRegistry,
               optimizers: OptimizerRegistry, schedules: ScheduleRegistry | None = None) -> None:
    """Apply ``--set`` flags (they override the grid file's settings). ``schedule=A,B`` is
    the schedule axis; ``SCHEDULE.KEY=V`` a schedule's parameter."""
    parsed = [parse_set(text) for text in assignments]
    schedule_names = schedules.names() if schedules is not None else []
    for scope, key, values in parsed:
        if scope is None and key == "schedule":
            if not all(isinstance(v, str) for v in values):
                raise UsageError(f"--set schedule: expected schedule names, got {values!r}")
            spec.schedules = [str(v) for v in values]
            for table in spec.model.values():  # over [problems.NAME] schedule too
                table.pop("schedule", None)
    parsed = [p for p in parsed if not (p[0] is None and p[1] == "schedule")]
    assignments = [a for a in assignments if a.split("=", 1)[0].strip() != "schedule"]
    # A bare flag (``lr=0.05``) overrides the grid file's scoped settings of that key
    # (``[optimizer.adam] lr``, ``[model.cnn] activation``) as well as its bare ones; a
    # scoped flag (``adam.lr=0.001``) still beats a bare flag, whatever their order.
    for scope, key, _ in parsed:
        if scope is None:
            for table in (*spec.model.values(), *spec.optimizer.values(),
                          *(t for p in spec.problems.values() for t in p.values())):
                table.pop(key, None)
    for text, (scope, key, values) in zip(assignments, parsed, strict=True):
        if scope is None:
            spec.params[key] = values
            given = f"params.{key}"
        elif scope in problems:
            spec.model.setdefault(scope, {})[key] = values
            given = f"model.{scope}"
        elif scope in optimizers:
            spec.optimizer.setdefault(scope, {})[key] = values
            given = f"optimizer.{scope}"
        elif scope in schedule_names:
            spec.schedule.setdefault(scope, {})[key] = values
            given = f"schedule.{scope}"
        else:
            hint = did_you_mean(scope, problems.names() + optimizers.names() + schedule_names)
            raise UsageError(f"--set {clip(text, 40)!r}: no model, optimizer or schedule "
                             f"named {scope!r}{hint}")
        if given not in spec.set_keys:
            spec.set_keys.append(given)

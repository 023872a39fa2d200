"""The grid before expansion (:class:`GridSpec`) and the parsers of its values."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.limits import BOUNDS, MAX_NESTING, MAX_SEED, MAX_SEEDS

#: Settings of a problem that are not its parameters: top-level, or in [model.NAME].
PROBLEM_SETTINGS = ("steps", "batch_size")


@dataclass
class GridSpec:
    """The axes of a grid before expansion; built from presets, a file, then flags."""

    models: list[str] | None = None
    optimizers: list[str] | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int | None = None
    batch_size: int | None = None
    #: Bare settings: apply to every selected model or optimizer that takes them.
    params: dict[str, list[Any]] = field(default_factory=dict)
    #: Per-model settings (parameters, plus steps and batch_size).
    model: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: Per-optimizer hyperparameters.
    optimizer: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: The learning-rate schedules, an axis (None: constant only).
    schedules: list[str] | None = None
    #: Per-schedule parameters: ``[schedule.warmup-cosine] warmup = [0.05, 0.1]``.
    schedule: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: Per-model, per-role optimizer settings: ``[model.gan.role.discriminator]``
    #: with an optional ``optimizer = "NAME"`` and single-valued hyperparameters.
    roles: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: What the grid file or preset selected, recorded by :func:`apply_toml` as
    #: ``{"models": [...], "optimizers": [...]}`` (None for a list the file leaves out:
    #: every registered name). It lets :func:`expand` ignore the file's settings for names
    #: that ``-m``/``-o`` narrowed away, while settings for names the file never selected
    #: stay errors. None when no file or preset was applied.
    file_selection: dict[str, list[str] | None] | None = None
    #: What ``--set`` gave (``"params.KEY"``, ``"model.NAME"``, ``"optimizer.NAME"``): the
    #: user asked for these on the command line, so they always need a selected taker.
    set_keys: list[str] = field(default_factory=list)
    #: Per-problem optimizer settings: ``[problems.cnn] adam.lr = 0.001`` is
    #: ``{"cnn": {"adam": {"lr": [0.001]}}}``; they beat ``[optimizer.adam]`` for that
    #: problem's cells (a pasted best configuration, docs/tuning.md). A schedule's
    #: parameters are kept the same way (``warmup-cosine.warmup``), and the problem's own
    #: ``schedule = "NAME"`` in :attr:`model`.
    problems: dict[str, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)
    #: The tuning protocol (``[tune]``, :func:`harness.grid.tune.parse_tune`); None: a
    #: plain grid.
    tune: dict[str, Any] | None = None


#: An integer as the command line and grid values spell it: ASCII digits, ``_`` between.
INTEGER = re.compile(r"[+-]?[0-9](?:_?[0-9])*")


def check_spec(spec: GridSpec) -> None:
    """The checks of a grid's own values (seeds, steps, batch size), as the command line
    and grid files apply them: :func:`harness.grid.expand` runs them on every spec, so a
    spec read back from a manifest by ``--resume`` passes the same ones (UsageError)."""
    if not isinstance(spec.seeds, list):
        raise UsageError(f"seeds: expected a list of integers, got {clip(repr(spec.seeds))}")
    parse_seeds(spec.seeds)
    for key in ("steps", "batch_size"):
        value = getattr(spec, key)
        if value is not None:
            parse_bounded(value, key, key)


def clip(text: str, width: int = 24) -> str:
    """``text`` shortened to about ``width`` characters, keeping both ends, for a message."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return f"{text[:half]}…{text[-half:]}"


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'X'?)`` for the known name closest to ``name``, or nothing."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_scalar(value: Any) -> bool:
    return not isinstance(value, list | tuple | dict)


def _digits(number: str) -> int:
    return sum(ch.isdigit() for ch in number)


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"{what}: expected a comma-separated list, got {text!r}")
    return items


def parse_seeds(value: Any, what: str = "seeds") -> list[int]:
    """Seeds from ``3``, ``[0, 1]``, ``"0-4"`` or ``"0-2,7"``; ``what`` names them in errors."""
    expected = f"{what}: expected integers or a range like 0-4, got"
    if isinstance(value, bool):
        raise UsageError(f"{expected} {value!r}")
    if isinstance(value, int):
        parts: list[Any] = [value]
    elif isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise UsageError(f"{expected} {clip(repr(value))}")
    seeds: list[int] = []
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            seeds.append(part)
        elif isinstance(part, str):
            seeds.extend(_seed_range(part, what))
        else:
            raise UsageError(f"{expected} {clip(repr(part))}")
    if not seeds:
        raise UsageError(f"{what}: the list is empty")
    for s in seeds:
        if s < 0 or s > MAX_SEED:
            raise UsageError(f"{what}: {clip(str(s))} is out of range (0 to {MAX_SEED})")
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"{what}: more than {MAX_SEEDS} seeds")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{what}: a seed is listed twice")
    return seeds


def _seed_range(part: str, what: str) -> range:
    """The seeds of ``"4"`` or ``"0-4"``."""
    m = re.fullmatch(r"([0-9]+)(?:\s*-\s*([0-9]+))?", part)  # ASCII digits only
    if not m:
        raise UsageError(f"{what}: {clip(part)!r} is not a seed or a range like 0-4")
    for bound in m.groups():
        # Read no more digits than a seed can have: int() refuses over 4,300 of them.
        if bound is not None and len(bound.lstrip("0")) > len(str(MAX_SEED)):
            raise UsageError(f"{what}: {clip(bound)} ({len(bound)} digits) is out of "
                             f"range (0 to {MAX_SEED})")
    lo = int(m.group(1).lstrip("0") or "0")
    hi = int(m.group(2).lstrip("0") or "0") if m.group(2) is not None else lo
    if hi < lo:
        raise UsageError(f"{what}: range {clip(part)!r} is empty (it counts down)")
    if hi - lo + 1 > MAX_SEEDS:
        raise UsageError(f"{what}: range {clip(part)!r} has more than {MAX_SEEDS} seeds")
    return range(lo, hi + 1)


def parse_int(value: Any, what: str, maximum: int, minimum: int = 1,
              expected: str | None = None) -> int:
    """An integer in [minimum, maximum] from a TOML value or a command-line string.

    ``expected`` names it in the error (default: a positive integer, or a whole number
    when 0 is allowed).
    """
    expected = expected or ("a positive integer" if minimum >= 1 else "a whole number")
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: int() also reads other scripts' digits (int("\u0663") is 3)
        if not INTEGER.fullmatch(text):
            raise UsageError(f"{what}: expected {expected}, got {clip(repr(value))}")
        try:
            value = int(text)
        except ValueError:  # an integer too long for int()
            raise UsageError(f"{what}: {clip(text)} ({_digits(text)} digits) is out of "
                             f"range ({minimum} to {maximum})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what}: expected {expected}, got {clip(repr(value))}")
    if not minimum <= value <= maximum:
        raise UsageError(f"{what}: {clip(str(value))} is out of range ({minimum} to {maximum})")
    return value


def parse_bounded(value: Any, what: str, option: str) -> int:
    """:func:`parse_int` in the range :data:`harness.limits.BOUNDS` gives ``option``."""
    minimum, maximum = BOUNDS[option]
    return parse_int(value, what, maximum, minimum)


def too_long_integer(text: str) -> str | None:
    """The first integer literal in ``text`` with more digits than ``int()`` will read."""
    limit = sys.get_int_max_str_digits()
    for m in re.finditer(r"(?<![\w.])[+-]?\d(?:_?\d)*", text):  # not in a float or a word
        if limit and _digits(m.group()) > limit:
            return m.group()
    return None


def too_long_message(number: str) -> str:
    return (f"the integer {clip(number)} has {_digits(number)} digits; at most "
            f"{sys.get_int_max_str_digits()} can be read")


def nesting_too_deep(text: str, limit: int = MAX_NESTING) -> int | None:
    """The offset in a TOML text where arrays and inline tables first nest deeper than
    ``limit`` (strings, comments and ``[table]`` headers skipped), or None."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#" or (ch == "[" and not depth and not text[text.rfind("\n", 0, i) + 1:i]
                         .strip()):  # a comment, or a [table] header: to the end of its line
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if ch == '"' and text[j] == "\\" else 1
            i = j + len(quote) - 1
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return i
        elif ch in "]}" and depth:
            depth -= 1
        i += 1
    return None

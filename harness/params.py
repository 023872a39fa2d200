"""Problem parameters: what a grid file or ``--set`` can spell, and how it is checked.

Torch-free, so that cells, records and every reader of a run can use these types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError

#: A problem parameter's value: what a TOML file or ``--set`` can spell.
ParamValue = bool | int | float | str | tuple[Any, ...]

#: ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
#: A hyperparameter's or metric's name: a column of the tables (``hp.NAME``), a key of
#: a grid file and of a record. Upper case is allowed (a factory's keyword may have it);
#: a blank, a comma, a slash, a quote or a line break, which would break a CSV header,
#: a file name or the report, is not.
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")


def check_name(kind: str, name: str) -> None:
    """Reject names that could not be used as a grid key or inside a file name (the
    whole name must match: ``"adam\\n"`` is no name)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'"
        )


def check_field_name(kind: str, name: object) -> None:
    """Reject a hyperparameter or metric name that would break a table's header, a file
    name or the report: empty, a blank, a comma, '/', a quote, a line break."""
    if not isinstance(name, str) or not FIELD_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or '_'"
        )


#: The types a parameter's default may have (a tuple's items: the first four).
_SCALARS: tuple[type, ...] = (bool, int, float, str)
_KINDS: tuple[type, ...] = (*_SCALARS, tuple)
_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               tuple: "a list"}


def _kind(value: object) -> type | None:
    """bool, int, float, str or tuple: the ParamValue type ``value`` is (bool before int)."""
    return next((k for k in _KINDS if isinstance(value, k)), None)


def _scalars(items: Iterable[object]) -> bool:
    """Every item a bool, int, finite float or str: what a tuple parameter may hold."""
    return all(_kind(v) in _SCALARS and not (isinstance(v, float) and not math.isfinite(v))
               for v in items)


@dataclass(frozen=True)
class Param:
    """A problem parameter; a list of values for it in a grid makes it an axis.

    ``default`` (and each of ``choices``) is what a grid file or ``--set`` can spell:
    a bool, int, float (finite), str, or a tuple of those; anything else raises
    TypeError here, so a plugin declaring it fails to load with that error.
    """

    name: str
    default: ParamValue
    choices: tuple[ParamValue, ...] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        kind = _kind(self.default)
        if kind is None:
            hint = " (use a tuple)" if isinstance(self.default, list) else ""
            raise TypeError(
                f"Param {self.name!r}: default {self.default!r} is a "
                f"{type(self.default).__name__}{hint}; a default must be a bool, int, float, "
                "str or a tuple of those (what a grid file can spell)")
        if isinstance(self.default, tuple) and not _scalars(self.default):
            raise TypeError(f"Param {self.name!r}: default {self.default!r} must be a tuple of "
                            "booleans, numbers or strings (finite)")
        if kind is float and not math.isfinite(self.default):  # type: ignore[arg-type]
            raise ValueError(f"Param {self.name!r}: default {self.default!r} must be finite")
        if self.choices is not None and not isinstance(self.choices, tuple):
            raise TypeError(f"Param {self.name!r}: choices must be a tuple or None, "
                            f"got {self.choices!r}")
        for choice in self.choices or ():
            try:
                self._convert(choice, where=f"Param {self.name!r}: choice {choice!r} is rejected")
            except UsageError as exc:
                raise (ValueError if _kind(choice) is kind else TypeError)(str(exc)) from None

    def _convert(self, value: Any, *, where: str) -> ParamValue:
        """``value`` as this parameter's type (the default's), or UsageError; no choices."""
        kind = _kind(self.default)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int or kind is float:
            ok = not isinstance(value, bool) and isinstance(value, int if kind is int else
                                                            int | float)
        elif kind is str:
            ok = isinstance(value, str)
        elif kind is tuple:
            ok = isinstance(value, list | tuple)
        else:  # only reachable past the constructor's check
            raise TypeError(f"parameter {self.name!r} has a default of unsupported type "
                            f"{type(self.default).__name__}")
        if not ok:
            raise UsageError(f"{where}: {self.name} must be {_KIND_WORDS[kind]}, got {value!r}")
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise UsageError(f"{where}: {self.name} must be finite, got {value!r}")
        if kind is tuple:
            if not _scalars(value):
                raise UsageError(f"{where}: {self.name} must be a list of booleans, numbers "
                                 f"or strings, got {value!r}")
            value = tuple(value)
        return value  # type: ignore[no-any-return]

    def coerce(self, value: Any, *, where: str) -> ParamValue:
        """Return ``value`` converted to this parameter's type, or raise UsageError."""
        converted = self._convert(value, where=where)
        if self.choices is not None and converted not in self.choices:
            options = ", ".join(str(c) for c in self.choices)
            raise UsageError(f"{where}: {self.name} must be one of {options}; got {converted!r}")
        return converted

"""Which cell group of one run is closest to a group of another that matches none, and
exactly which keys tell the two apart: what ``harness compare`` says when groups do not
match. Torch-free, as the whole read side is.

A group is a cell's content key without its seed and code versions. Its keys are flattened
so that one hyperparameter that differs is named alone (``hyper.lr``), never a whole
mapping of another optimizer's settings: ``problem``, ``optimizer``, ``device``, ``steps``,
``batch_size``, ``params.NAME``, ``hyper.NAME`` and ``roles.ROLE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Cell fields that are not part of a group (a group pools its seeds; compare compares
#: versions).
NOT_GROUP_KEYS = ("seed", "versions", "cell_id")


def group_keys(cell: Mapping[str, Any]) -> dict[str, str]:
    """A cell's group as flat ``key -> value text`` (see the module docstring)."""
    out: dict[str, str] = {}
    for field, value in cell.items():
        if field in NOT_GROUP_KEYS:
            continue
        if field in ("params", "hyper", "roles") and isinstance(value, Mapping):
            for name, inner in value.items():
                out[f"{field}.{name}"] = _text(inner)
        else:
            out[field] = _text(value)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Difference:
    """One key of two groups: its value in the base group and in the new one (None: the
    group has no such key)."""

    key: str
    base: str | None
    new: str | None

    def describe(self) -> str:
        return f"{self.key} (base {_shown(self.base)}; new {_shown(self.new)})"


def _shown(value: str | None, width: int = 40) -> str:
    if value is None:
        return "absent"
    return value if len(value) <= width else value[: width - 3] + "..."


def differences(base: Mapping[str, str], new: Mapping[str, str]) -> list[Difference]:
    """Every key whose value differs between two groups, in key order."""
    return [Difference(k, base.get(k), new.get(k))
            for k in sorted(base.keys() | new.keys()) if base.get(k) != new.get(k)]


def closest(new: Mapping[str, str],
            candidates: Iterable[tuple[str, Mapping[str, str]]],
            ) -> tuple[str, list[Difference]] | None:
    """The candidate group closest to ``new`` and what differs: the same problem first,
    then the same optimizer, then the fewest differing keys (the first such candidate on
    a tie). None without candidates."""
    best: tuple[tuple[int, int, int], str, list[Difference]] | None = None
    for label, keys in candidates:
        diff = differences(keys, new)
        rank = (int(keys.get("problem") != new.get("problem")),
                int(keys.get("optimizer") != new.get("optimizer")), len(diff))
        if best is None or rank < best[0]:
            best = (rank, label, diff)
    return None if best is None else (best[1], best[2])


def explain(new: Mapping[str, str], candidates: Iterable[tuple[str, Mapping[str, str]]],
            most: int = 4) -> str:
    """``closest base group LABEL differs in KEY (base X; new Y), ...``; at most ``most``
    keys, then how many more."""
    found = closest(new, candidates)
    if found is None:
        return "the base run has no cell groups"
    label, diff = found
    if not diff:
        return f"the same keys as base group {label}"
    shown = ", ".join(d.describe() for d in diff[:most])
    more = f" and {len(diff) - most} more" if len(diff) > most else ""
    return f"closest base group {label} differs in {shown}{more}"

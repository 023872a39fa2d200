"""Longest cells first, so a grid does not end waiting on one straggler.

Each finished cell teaches the cost book how long its kind of cell takes (seconds per
step, and the fixed cost of building and evaluating it), keyed by problem, parameters,
device, batch size and optimizer. Before a grid runs, cells are ordered by their
estimated wall time, longest first; cells never seen before go first of all, since
nothing says they are short. Those first cells are the probe: as soon as a cell of an
unknown kind reports its first logging window, its seconds per step price every other
cell of that kind, and the local executors re-order the cells still waiting. The book
lives in ``$HARNESS_CACHE_DIR`` (default ``~/.cache/harness``). Order never changes
results: every cell is seeded on its own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.atomic import write_atomic
from harness.cell import Cell, format_pairs
from harness.executor import CostEstimates


def cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


def _kind(cell: Cell) -> str:
    return "|".join([cell.problem, format_pairs(cell.params), cell.device,
                     str(cell.batch_size), cell.optimizer])


#: A finished cell re-orders the waiting ones when its kind's estimate moves this much.
_MOVED = 0.25


class CostBook:
    """What each kind of cell cost, read from ``path`` and saved back by :meth:`save`.

    It is a cache: a book that cannot be read, or does not hold an object mapping kinds to
    finite, non-negative ``per_step_s`` and ``fixed_s``, is ignored with a warning (and
    replaced by the next :meth:`save`); it never fails a run.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "costs.json"
        self.entries: dict[str, dict[str, float]] = {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not valid JSON"
            data = _damaged(self.path, str(reason))
        problem = _book_problem(data)
        self.entries = _damaged(self.path, problem) if problem else data
        self.version = 0

    def estimate(self, cell: Cell) -> float | None:
        entry = self.entries.get(_kind(cell))
        if entry is None:
            return None
        return entry["per_step_s"] * cell.steps + entry["fixed_s"]

    def learn(self, cell: Cell, summary: dict[str, Any]) -> None:
        wall = summary.get("wall_s")
        steps = summary.get("steps_done") or 0
        step_ms = summary.get("step_time_ms")
        if not isinstance(wall, int | float) or not steps or not isinstance(step_ms, int | float) \
                or not math.isfinite(step_ms):
            return
        per_step = step_ms / 1000
        before = self.estimate(cell)
        self.entries[_kind(cell)] = {"per_step_s": per_step,
                                     "fixed_s": max(0.0, wall - per_step * steps)}
        after = self.estimate(cell)
        if before is None or after is None or abs(after - before) > _MOVED * max(before, 1e-9):
            self.version += 1

    def observe(self, cell: Cell, steps_done: int, train_s: float) -> None:
        """A running cell's logging window: the probe for a kind not known yet (its
        seconds per step so far, warm-up included; the fixed cost is learnt at the end)."""
        kind = _kind(cell)
        if kind in self.entries or steps_done <= 0 or not (0 < train_s < math.inf):
            return
        self.entries[kind] = {"per_step_s": train_s / steps_done, "fixed_s": 0.0}
        self.version += 1

    def save(self) -> None:
        with contextlib.suppress(OSError):  # a read-only home must not fail a run
            write_atomic(self.path, json.dumps(self.entries, indent=0, sort_keys=True))


def _book_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "it does not hold an object"
    for kind, entry in data.items():
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), int | float) and not isinstance(entry.get(k), bool)
                and 0 <= entry[k] < math.inf for k in ("per_step_s", "fixed_s")):
            return f"its entry {kind[:60]!r} is not per_step_s and fixed_s in seconds"
    return None


def _damaged(path: Path, reason: str) -> dict[str, dict[str, float]]:
    print(f"harness: warning: the cost book {path} is damaged ({reason}); it is ignored "
          "and rewritten at the end of the run", file=sys.stderr)
    return {}


def longest_first(cells: Iterable[Cell], book: CostEstimates) -> list[Cell]:
    """Unknown cells first (in grid order), then known ones by estimated time, longest first."""
    cells = list(cells)
    estimates = [book.estimate(c) for c in cells]
    unknown = [c for c, e in zip(cells, estimates, strict=True) if e is None]
    known = sorted(((e, i) for i, e in enumerate(estimates) if e is not None), reverse=True)
    return unknown + [cells[i] for _, i in known]

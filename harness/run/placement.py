"""Placing worker processes on CPU cores (``--pin-cpus``).

Launch-bound GPU cells and single-threaded CPU cells are limited by the speed of the one
core their Python loop runs on. Left to the OS scheduler, two workers can land on the two
hyperthreads of one physical core, or migrate between cores mid-run; pinned, each worker
owns whole physical cores for the whole grid. Only the CPUs this process may use
(``os.sched_getaffinity``, which honours cgroup/cpuset limits) are handed out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

_SYSFS = Path("/sys/devices/system/cpu")


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores(cpus: Iterable[int] | None = None,
                   sysfs: Path = _SYSFS) -> list[tuple[int, ...]]:
    """``cpus`` (default: the usable ones) grouped by physical core, hyperthread siblings
    together, ordered by package (socket) and core. Without topology information every
    logical CPU counts as a core of its own."""
    groups: dict[tuple[int, int], list[int]] = {}
    for cpu in sorted(usable_cpus() if cpus is None else cpus):
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            key = (int((topology / "physical_package_id").read_text()),
                   int((topology / "core_id").read_text()))
        except (OSError, ValueError):
            key = (-1, cpu)
        groups.setdefault(key, []).append(cpu)
    return [tuple(groups[key]) for key in sorted(groups)]


def plan(demands: Sequence[int], cores: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]] | None:
    """Disjoint CPU sets for workers needing ``demands[i]`` cores each, or None if they do
    not fit. Whole physical cores are handed out while they last; when they do not suffice,
    hyperthreads are handed out one by one instead (still disjoint)."""
    total = sum(demands)
    if total <= len(cores):
        units = list(cores)
    else:
        units = _interleave(cores)
        if total > len(units):
            return None
    sets, at = [], 0
    for need in demands:
        sets.append(tuple(sorted(cpu for unit in units[at:at + need] for cpu in unit)))
        at += need
    return sets


def _interleave(cores: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """First hyperthreads of every core, then the second ones: consecutive workers then sit
    on different physical cores as long as possible."""
    depth = max((len(c) for c in cores), default=0)
    return [(core[i],) for i in range(depth) for core in cores if i < len(core)]


def pin(cpus: Sequence[int]) -> None:
    """Restrict this process (and the threads it starts later) to ``cpus``."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def describe(cpus: Sequence[int]) -> str:
    """'0-3,8' for (0, 1, 2, 3, 8)."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(cpus):
        if run and cpu != run[-1] + 1:
            parts.append(_span(run))
            run = []
        run.append(cpu)
    if run:
        parts.append(_span(run))
    return ",".join(parts)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"

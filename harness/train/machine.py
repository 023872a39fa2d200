"""The machine's state around one cell, and around a whole run: what else ran while it was timed.

Per cell: the 1-minute load average at its start and end, the CPUs' mean frequency at its
start where Linux exposes it, and the share of the machine's busy CPU time that other
processes took during the cell (``/proc/stat``'s busy time minus this process's own, over
the machine's total). A figure that cannot be read here is left out.

Per run (:func:`run_start`, :func:`run_end`, for the manifest's ``machine``): the load
averages (1, 5 and 15 minutes) at its start and end, the CPUs' mean frequency and their
frequency governor(s), the cores this process may use, and the share of the machine's CPU
time that processes other than the run (the ``harness`` process and its reaped workers)
took while it ran.
"""

from __future__ import annotations

import glob
import os
import resource
from typing import Any


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / tick, total / tick


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # a data loader's workers
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def _mean_mhz() -> float | None:
    values = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            with open(path) as f:
                values.append(int(f.read()) / 1000)
        except (OSError, ValueError):
            continue
    return sum(values) / len(values) if values else None


class MachineState:
    """Read at a cell's start (:meth:`__init__`) and end (:meth:`summary`)."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.mhz = _mean_mhz()
        self.times = _cpu_times()
        self.own = _own_cpu()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.load_start is not None:
            out["load_start"] = self.load_start
            out["load_end"] = os.getloadavg()[0]
        if self.mhz is not None:
            out["cpu_mhz"] = self.mhz
        end = _cpu_times()
        if self.times is not None and end is not None and end[1] > self.times[1]:
            busy = end[0] - self.times[0]
            mine = _own_cpu() - self.own
            out["other_cpu_share"] = min(1.0, max(0.0, (busy - mine) / (end[1] - self.times[1])))
        return out


def _governors() -> list[str]:
    found: set[str] = set()
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            with open(path) as f:
                found.add(f.read().strip())
        except OSError:
            continue
    return sorted(g for g in found if g)


def _loads() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run_start() -> tuple[dict[str, Any], MachineState]:
    """The machine at a run's start, for the manifest, and the state :func:`run_end` reads."""
    out: dict[str, Any] = {}
    loads = _loads()
    if loads is not None:
        out["load_start"] = loads
    mhz = _mean_mhz()
    if mhz is not None:
        out["cpu_mhz"] = round(mhz, 1)
    governors = _governors()
    if governors:
        out["governor"] = ",".join(governors)
    if hasattr(os, "sched_getaffinity"):
        out["usable_cpus"] = len(os.sched_getaffinity(0))
    return out, MachineState()


def run_end(state: MachineState) -> dict[str, Any]:
    """The machine at a run's end: load averages, and other processes' share of the CPU
    time while it ran (its workers counted as the run's once they were reaped)."""
    out: dict[str, Any] = {}
    loads = _loads()
    if loads is not None:
        out["load_end"] = loads
    share = state.summary().get("other_cpu_share")
    if share is not None:
        out["other_cpu_share"] = round(share, 4)
    return out

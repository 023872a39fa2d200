"""The machine's state around one cell: what else ran while it was timed.

Per cell: the 1-minute load average at its start and end, the CPUs' mean frequency at its
start where Linux exposes it, and the share of the machine's busy CPU time that other
processes took during the cell (``/proc/stat``'s busy time minus this process's own, over
the machine's total). A figure that cannot be read here is left out.
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

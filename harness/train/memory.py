"""A cell's own peak memory, and the worker's one-time warm-up that keeps it (and the first
cell's ``wall_s``) free of what the process pays once.

On CUDA the peak is the caching allocator's (``torch.cuda.max_memory_allocated``), reset at
the cell's start. On the CPU a process's peak resident set only grows, so the figure would
describe the process (the torch import, earlier cells) rather than the cell. On Linux the
high-water mark ``VmHWM`` can be reset to the current resident set by writing ``5`` to
``/proc/self/clear_refs``: it is reset before each cell (and again after the FLOP probe's
copy is freed), and the cell's peak is ``VmHWM`` minus a baseline, the worker's resident set
after its imports and warm-up (:func:`set_baseline`), or, in a process that set none
(``--workers 0``), the resident set at the cell's start. Where the mark cannot be reset,
the peak is the process's resident set sampled at window edges, as before.
``peak_mem_method`` names which one a cell's figure is
(:data:`harness.outcome.PEAK_MEM_METHODS`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from typing import Any

import torch

from harness.train.device import rss_mb

_baseline_mb: float | None = None


def set_baseline() -> None:
    """This worker's resident set now (after its imports and warm-up, with what they freed
    given back, as it is at each cell's start): what its cells' CPU peaks are measured
    above."""
    global _baseline_mb
    _release_freed()
    _baseline_mb = rss_mb()


def reset_high_water_mark() -> bool:
    """Reset this process's VmHWM to its current resident set (Linux); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _high_water_mark_mb() is not None
    except OSError:
        return False


def _release_freed() -> bool:
    """Give memory earlier cells freed back to the OS (garbage, and the C heap's free pages
    through glibc's ``malloc_trim``), so that it neither counts in this cell's peak nor
    hides what the cell allocates. Always True (it only helps the measurement)."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        _libc().malloc_trim(0)
    return True


@functools.cache
def _libc() -> Any:
    """The C library, found once: ``find_library`` runs ``ldconfig -p`` each time it is
    asked (twice a cell, before its memory baseline and as it starts)."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _high_water_mark_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class CellMemory:
    """The peak memory of one cell on ``device``: :meth:`start` at the cell's start,
    :meth:`restart` when something that is not the cell's (the probe's copy) is freed,
    :meth:`peak` at the end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = math.nan
        self.method = "rss-sampled"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda-allocator"
        elif self.device.type == "cpu" and _release_freed() and reset_high_water_mark():
            self.baseline = _baseline_mb if _baseline_mb is not None else rss_mb()
            self.method = ("vmhwm-above-worker-baseline" if _baseline_mb is not None
                           else "vmhwm-above-cell-start")

    def restart(self) -> None:
        if self.method == "cuda-allocator":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method.startswith("vmhwm"):
            reset_high_water_mark()

    def peak(self, sampled_mb: float) -> float:
        """The cell's peak in MiB; ``sampled_mb``: the resident set sampled at window edges."""
        if self.method == "cuda-allocator":
            return torch.cuda.max_memory_allocated(self.device) / 2**20 \
                if torch.cuda.is_available() else math.nan
        if self.method.startswith("vmhwm"):
            mark = _high_water_mark_mb()
            return max(0.0, mark - self.baseline) if mark is not None else math.nan
        return sampled_mb


def warm_up(device: torch.device) -> float:
    """Pay this process's one-time costs (autograd, the optimizers' kernels, the FLOP
    counter, a copy) on a throw-away network before the first cell; returns the seconds."""
    from harness.train.flops import probe_step

    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 1)).to(device)
    x = torch.randn(64, 16, generator=generator).to(device)
    y = torch.randn(64, 1, generator=generator).to(device)

    class _Task:
        def train_step(self, optimizers: dict[str, torch.optim.Optimizer]) -> torch.Tensor:
            optimizers["model"].zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizers["model"].step()
            return loss

    for opt in (torch.optim.Adam(model.parameters()), torch.optim.SGD(model.parameters())):
        probe_step(_Task(), {"model": opt}, device)
        for _ in range(3):
            _Task().train_step({"model": opt})
    with torch.no_grad():
        float(model(x).sum())
    return time.perf_counter() - t0

"""A window's losses: the hot loop that runs the steps, and the means read at its edge.

Which one a cell uses is a property of its step: a CUDA-graphed step sums its own loss
(:class:`GraphSum`); a step that returns one loss tensor has it kept and summed in step
order at the edge (:class:`KeptLosses`); a task's own step returns a mapping of losses,
summed on the device as they come (:class:`SummedLosses`). Either way the loss is read
only at window edges, so the hot loop has no host synchronisation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

#: A training step: one loss tensor, a mapping of them, or None (a graph keeps its own sum).
Step = Callable[[], Tensor | Mapping[str, Tensor] | None]

#: Step losses kept before they are packed into one tensor (a window's memory bound).
_KEEP = 4096


class WindowLosses(ABC):
    #: After :meth:`read`: the step of the window (1 for its first) whose loss was the first
    #: non-finite one, where the accumulator kept each step's loss; else None.
    first_nonfinite: int | None = None

    @abstractmethod
    def run(self, step: Step, n: int) -> None:
        """The hot loop: ``n`` steps, nothing but the step and keeping its loss."""

    @abstractmethod
    def read(self, n: int) -> dict[str, float]:
        """The mean losses of the ``n`` steps run since the last read; starts a new window."""


def window_losses(step: Step, one_loss: bool) -> WindowLosses:
    """The accumulator for ``step``; ``one_loss``: it returns one loss tensor per call."""
    graph_sum = getattr(step, "window_sum", None)
    if isinstance(graph_sum, Tensor):
        return GraphSum(graph_sum)
    return KeptLosses() if one_loss else SummedLosses()


class GraphSum(WindowLosses):
    """The step is a CUDA graph that adds each loss to ``window_sum`` inside the graph."""

    def __init__(self, window_sum: Tensor) -> None:
        self.window_sum = window_sum

    def run(self, step: Step, n: int) -> None:
        for _ in range(n):
            step()

    def read(self, n: int) -> dict[str, float]:
        total = float(self.window_sum.item())
        self.window_sum.zero_()
        return {"loss": total / n}


class KeptLosses(WindowLosses):
    """Each step's loss is kept, not summed, in the loop (no kernel of ours between two
    steps), then summed in step order at the window edge."""

    def __init__(self) -> None:
        self.kept: list[Tensor] = []
        self.packed: list[Tensor] = []  # earlier losses of a long window, _KEEP to a tensor

    def run(self, step: Step, n: int) -> None:
        keep = self.kept.append
        for done in range(0, n, _KEEP):
            for _ in range(min(_KEEP, n - done)):
                keep(step().detach())  # type: ignore[union-attr]
            if len(self.kept) >= _KEEP:  # bound the memory of a long window
                self.packed.append(torch.stack(self.kept))
                self.kept.clear()

    def read(self, n: int) -> dict[str, float]:
        if not (self.kept or self.packed):
            return {}
        total, self.first_nonfinite = _window_sum(self.packed, self.kept)
        self.kept.clear()
        self.packed.clear()
        return {"loss": total / n}


class SummedLosses(WindowLosses):
    """A task's own step: its losses are summed on the device as they come. A bare tensor
    is the loss of every step; a mapping's mean for a key is over the steps that gave it."""

    def __init__(self) -> None:
        self.acc: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def run(self, step: Step, n: int) -> None:
        add = self.add
        for _ in range(n):
            add(step())

    def add(self, out: Tensor | Mapping[str, Tensor] | None) -> None:
        acc, counts = self.acc, self.counts
        if out is None:
            return
        if isinstance(out, Tensor):  # every step returns it: the window's mean is over n
            if "loss" in acc:
                acc["loss"] += out.detach()
            else:
                acc["loss"] = out.detach().clone()
            return
        for k, v in out.items():
            if k in acc:
                acc[k] += v.detach()
                counts[k] += 1
            else:
                acc[k] = v.detach().clone()
                counts[k] = 1

    def read(self, n: int) -> dict[str, float]:
        means = {k: float(v.item()) / self.counts.get(k, n) for k, v in self.acc.items()}
        self.acc, self.counts = {}, {}
        return means


def _window_sum(packed: list[Tensor], kept: list[Tensor]) -> tuple[float, int | None]:
    """The losses' sum (``packed`` 1-D tensors of them, then single ones), added one by
    one in step order in their own dtype, as a running sum on the device (and the
    in-graph sum of a CUDA-graphed step) adds them: the curve does not depend on how the
    sum is taken. A gather and a copy per window. Also which step (from 1) first gave a
    non-finite loss, when the sum is not finite (None when it is)."""
    values = torch.cat([*packed, torch.stack(kept)] if kept else packed).cpu()
    if values.dtype in (torch.float32, torch.float64):
        total = float(np.add.accumulate(values.numpy())[-1])
    else:
        acc = values[0].clone()
        for v in values[1:]:
            acc += v
        total = float(acc)
    if math.isfinite(total):
        return total, None
    bad = torch.nonzero(~torch.isfinite(values.float()))
    return total, int(bad[0]) + 1 if len(bad) else None

"""One training step on a copy of the task: its work in floating-point operations, and its
losses at initialisation (the curve's step 0).

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the operators it has a
formula for (matrix products, convolutions, attention: the work that dominates a step),
forward and backward, whatever the device or the timing. The count depends only on the
shapes, so it is the same on every run of a cell: a deterministic cost axis.

The probe runs one step of the task's own ``train_step`` on a deep copy of the task and its
optimizers, with every random number generator (Python's, NumPy's global one, torch's on
the CPU and the cell's CUDA device) saved before and restored after. The copy reaches into
the closures of the task's functions too (a loss function that counts its calls counts on
its copy), so the cell's model, optimizer state, data order, closures and random streams
are untouched and its training is bit-identical to a run without the probe. A task that
cannot be copied or stepped that way gets no count (NaN): the probe never fails a cell.
"""

from __future__ import annotations

import copy
import math
import random
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.train.steps import capabilities_of, track


@dataclass(frozen=True)
class StepProbe:
    """What one training step on a copy of the task found out."""

    #: FLOPs of the step, forward and backward; NaN: not countable.
    flops: float = math.nan
    #: The losses the step returned: the training losses at initialisation, on the first
    #: batch (empty when the step returned none, or could not run on a copy).
    losses: dict[str, float] = field(default_factory=dict)


@contextmanager
def random_streams_kept(device: torch.device) -> Iterator[None]:
    """Python's, NumPy's global and torch's random streams (the CPU's and ``device``'s)
    are as they were before the block, whatever it draws."""
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def probe_step(task: object, optimizers: Mapping[str, torch.optim.Optimizer],
               device: torch.device) -> StepProbe:
    """One training step of ``task`` on a copy: its FLOPs and its losses. The task, its
    optimizers and the random streams are not changed; never raises."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with random_streams_kept(device):
            with _closures_copied():
                memo: dict[int, Any] = {}
                probe_task, probe_optimizers = copy.deepcopy((task, dict(optimizers)), memo)
                for role, copied in probe_optimizers.items():
                    _attributes_copied(optimizers[role], copied, memo)
                    track(copied, capabilities_of(optimizers[role]))  # closure, graph, modes
            with FlopCounterMode(display=False) as counter:
                out = probe_task.train_step(probe_optimizers)  # type: ignore[attr-defined]
            probe = StepProbe(float(counter.get_total_flops()), _losses(out))
            del probe_task, probe_optimizers, out
    except Exception:  # a task that cannot be copied or stepped on its copy: no count
        probe = StepProbe()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return probe


def _attributes_copied(original: object, copied: object, memo: dict[int, Any]) -> None:
    """What torch's ``Optimizer.__getstate__`` leaves out of a copy (LBFGS's parameter list,
    pytorch-optimizer's settings), copied in the same copy as the rest."""
    for name, value in vars(original).items():
        if name not in vars(copied):
            setattr(copied, name, copy.deepcopy(value, memo))


def count_step_flops(task: object, optimizers: Mapping[str, torch.optim.Optimizer],
                     device: torch.device) -> float:
    """FLOPs of one training step (forward and backward) of ``task``; NaN when it cannot
    be counted. The task and optimizers are not changed."""
    return probe_step(task, optimizers, device).flops


def _losses(out: object) -> dict[str, float]:
    if isinstance(out, torch.Tensor):
        return {"loss": float(out.detach())}
    if isinstance(out, Mapping):
        return {str(k): float(v.detach()) for k, v in out.items()
                if isinstance(v, torch.Tensor) and v.numel() == 1}
    return {}


def _copy_function(fn: types.FunctionType, memo: dict[int, Any]) -> types.FunctionType:
    """A function whose closure holds deep copies (in the same copy as everything else)."""
    if not fn.__closure__:
        return fn
    cells = tuple(types.CellType() for _ in fn.__closure__)
    out = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells)
    out.__kwdefaults__, out.__dict__ = fn.__kwdefaults__, dict(fn.__dict__)
    memo[id(fn)] = out  # before the contents: a closure may hold the function itself
    for mine, theirs in zip(cells, fn.__closure__, strict=True):
        try:
            contents = theirs.cell_contents
        except ValueError:  # a name not bound yet
            continue
        mine.cell_contents = copy.deepcopy(contents, memo)
    return out


@contextmanager
def _closures_copied() -> Iterator[None]:
    """Within the block, ``copy.deepcopy`` copies functions' closures instead of sharing
    the functions (it treats functions as atoms)."""
    dispatch = copy._deepcopy_dispatch  # type: ignore[attr-defined]
    before = dispatch.get(types.FunctionType)
    dispatch[types.FunctionType] = _copy_function
    try:
        yield
    finally:
        dispatch[types.FunctionType] = before

"""The work of one training step in floating-point operations, counted on a copy.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the operators it has a
formula for (matrix products, convolutions, attention: the work that dominates a step),
forward and backward, whatever the device or the timing. The count depends only on the
shapes, so it is the same on every run of a cell: a deterministic cost axis.

The probe runs one step of the task's own ``train_step`` on a deep copy of the task and its
optimizers, with every random number generator (Python's, NumPy's global one, torch's on
the CPU and the cell's CUDA device) saved before and restored after. The cell's model,
optimizer state, data order and random streams are untouched, so its training is
bit-identical to a run without the probe. A task that cannot be copied or stepped that way
gets no count (NaN): the probe never fails a cell.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping

import numpy as np
import torch


def count_step_flops(task: object, optimizers: Mapping[str, torch.optim.Optimizer],
                     device: torch.device) -> float:
    """FLOPs of one training step (forward and backward) of ``task``; NaN when it cannot
    be counted. The task and optimizers are not changed."""
    from torch.utils.flop_counter import FlopCounterMode

    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            probe_task, probe_optimizers = copy.deepcopy((task, dict(optimizers)))
            with FlopCounterMode(display=False) as counter:
                probe_task.train_step(probe_optimizers)  # type: ignore[attr-defined]
            total = float(counter.get_total_flops())
            del probe_task, probe_optimizers
    except Exception:  # a task that cannot be copied or stepped on its copy: no count
        total = math.nan
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return total

"""Saving a cell's checkpoint at a window edge, and continuing from it (the file format is
:mod:`harness.train.checkpoints`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.cell import Cell
from harness.executor import RunOptions
from harness.problem import Task
from harness.train import checkpoints
from harness.train.state import CellState, Counters


class Checkpointer:
    """Checkpoints for one cell, in ``checkpoint_dir`` under the cell's id."""

    def __init__(self, cell: Cell, path: Path) -> None:
        self.cell, self.path = cell, path
        self.device = torch.device(cell.device)

    @classmethod
    def for_cell(cls, cell: Cell, task: Task, options: RunOptions,
                 state: CellState) -> Checkpointer | None:
        """The cell's checkpointer, or None when it does not checkpoint (and, when it was
        asked to but the task cannot be resumed, the state says so)."""
        if not options.checkpoint_every or options.checkpoint_dir is None:
            return None
        state.checkpoint_every = options.checkpoint_every
        state.checkpointing = task.state_dict() is not None
        if not state.checkpointing:
            return None
        return cls(cell, options.checkpoint_dir / f"{cell.cell_id}.pt")

    def save(self, task: Task, optimizers: Mapping[str, torch.optim.Optimizer],
             curve: list[dict[str, Any]], counters: Counters, step: int) -> None:
        checkpoints.save_atomic(self.path, {
            "format": checkpoints.FORMAT,
            "key": self.cell.key,
            "step": step,
            "modules": {k: m.state_dict() for k, m in task.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "task": task.state_dict(),
            "rng": checkpoints.rng_state(self.device),
            "curve": [dict(r) for r in curve],
            "loop": counters.to_checkpoint(),
        })

    def resume(self, task: Task, optimizers: Mapping[str, torch.optim.Optimizer],
               curve: list[dict[str, Any]], state: CellState) -> int:
        """Continue from the cell's checkpoint if there is one; return the step reached."""
        # Read onto the CPU: modules and optimizers copy their tensors to their own devices,
        # and generator states must be CPU byte tensors even for a CUDA generator.
        data = checkpoints.load(self.path)
        if data is None or data.get("key") != self.cell.key:
            return 0
        for name, module in task.modules().items():
            module.load_state_dict(data["modules"][name])
        for role, opt in optimizers.items():
            opt.load_state_dict(data["optimizers"][role])
        task.load_state_dict(data["task"])
        checkpoints.set_rng_state(data["rng"], self.device)
        curve[:] = data["curve"]
        state.counters = Counters.from_checkpoint(data["loop"])
        state.resumed_from_step = int(data["step"])
        return int(data["step"])

    def discard(self) -> None:
        """The cell finished: its checkpoint is no longer needed."""
        self.path.unlink(missing_ok=True)

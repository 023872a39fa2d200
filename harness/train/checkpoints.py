"""Checkpoints and saved models: ``state_dict`` files, loaded with ``weights_only=True``.

A checkpoint is written at a window edge, atomically, and holds everything a cell
needs to continue exactly where it stopped: the networks' and optimizers' state
dicts, the task's own resumable state (batch order, carried hidden states), every
random generator, and the curve and counters so far. On the CPU a resumed cell
produces the same losses, bit for bit, as one that was never interrupted.

Nothing here pickles a module: the tutorial's ``torch.save(net)`` would make
loading a results directory run arbitrary code. Checkpoints and models are plain
tensors and containers, and are read back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.atomic import write_atomic

FORMAT = 1


def save_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    write_atomic(path, buffer.getvalue())


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """A checkpoint or saved model, or None when absent or unreadable. Never unpickles code."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # a truncated or foreign file: start the cell from scratch
        return None
    return data if isinstance(data, dict) else None


def rng_state(device: torch.device) -> dict[str, Any]:
    np_state: Any = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "cached": float(np_state["gauss"])},
        "python": _to_lists(random.getstate()),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": n["keys"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["cached"]})
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def save_model(path: Path, modules: Mapping[str, torch.nn.Module], cell_key: str) -> None:
    """The trained networks of a cell, as state dicts on the CPU."""
    save_atomic(path, {
        "format": FORMAT,
        "key": cell_key,
        "modules": {name: {k: v.detach().cpu() for k, v in m.state_dict().items()}
                    for name, m in modules.items()},
    })


def load_model(path: Path, modules: Mapping[str, torch.nn.Module]) -> None:
    """Load :func:`save_model`'s file into freshly built networks (weights only)."""
    data = load(path)
    if data is None:
        raise FileNotFoundError(f"no readable saved model at {path}")
    for name, module in modules.items():
        module.load_state_dict(data["modules"][name])

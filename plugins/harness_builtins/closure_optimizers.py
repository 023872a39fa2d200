"""Optimizers whose step needs a closure: torch's LBFGS (made copyable) and sharpness-aware
minimisation around a base optimizer (``sam``), registered in ``optimizers.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

#: The base optimizers ``sam`` can wrap, and the hyperparameters each is given.
BASES: dict[str, tuple[type[torch.optim.Optimizer], tuple[str, ...]]] = {
    "sgd": (torch.optim.SGD, ("lr", "momentum", "weight_decay")),
    "adam": (torch.optim.Adam, ("lr", "betas", "weight_decay")),
    "adamw": (torch.optim.AdamW, ("lr", "betas", "weight_decay")),
}


class LBFGS(torch.optim.LBFGS):
    """torch's LBFGS, which also survives ``copy.deepcopy`` (torch's own loses its list of
    parameters: the harness steps a copy once per cell to count FLOPs and the step-0 loss)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._params = self.param_groups[0]["params"]
        self._numel_cache = None


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation (Foret et al., 2021) around a base optimizer.

    Each step evaluates the loss twice on the same batch: once at ``w`` for the gradient
    ``g``, once at ``w + rho * g / ||g||`` (the sharpest nearby point); the base optimizer
    then steps from ``w`` with the second gradient. ``base`` picks the base optimizer
    (``sgd``, ``adam`` or ``adamw``); the other hyperparameters go to it where it takes
    them (``momentum`` to SGD, ``betas`` to Adam). The parameter groups are the base
    optimizer's own, so a learning-rate schedule reaches it; the state dict is its own.
    """

    def __init__(self, params: Iterable[Any], base: str = "sgd", rho: float = 0.05,
                 lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        if base not in BASES:
            raise ValueError(f"sam: base must be one of {', '.join(BASES)}, got {base!r}")
        if rho < 0:
            raise ValueError(f"sam: rho must be >= 0, got {rho!r}")
        cls, takes = BASES[base]
        given: dict[str, Any] = {"lr": lr, "momentum": momentum,
                                 "weight_decay": weight_decay, "betas": betas}
        super().__init__(params, {"rho": rho, "lr": lr})
        self.base = cls(self.param_groups, **{k: given[k] for k in takes})
        self.param_groups = self.base.param_groups
        self.base_name = base

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        if closure is None:
            raise RuntimeError("SAM needs a closure that recomputes the loss and gradients")
        with torch.enable_grad():
            loss = closure()
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) \
            if grads else torch.zeros(())
        moved: list[tuple[Tensor, Tensor]] = []
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = p.grad * scale.to(p)
                p.add_(e_w)
                moved.append((p, e_w))
        with torch.enable_grad():
            closure()
        for p, e_w in moved:
            p.sub_(e_w)  # back to w; the base optimizer steps with the gradient at w + e
        self.base.step()
        return loss

    def __getstate__(self) -> dict[str, Any]:  # torch keeps only its own fields: add ours
        return {**super().__getstate__(), "base": self.base, "base_name": self.base_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.param_groups = self.base.param_groups  # shared with the base, as when built

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups

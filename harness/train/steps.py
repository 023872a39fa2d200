"""One optimizer step, whatever the optimizer needs: a closure, the gradients' graph, or
train/eval modes (:class:`harness.optimizer.Capabilities`).

The harness's supervised step uses :func:`take_step` for every optimizer that declares a
capability, and a :class:`~harness.problem.Task` may call it (``harness.take_step``) in its
own step. The optimizers harness builds are tracked here with their spec's capabilities
and a count of the loss evaluations their steps made (the ``loss_evals`` column).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.optimizer import PLAIN, Capabilities


@dataclass
class _Tracked:
    capabilities: Capabilities
    #: Loss evaluations (forward and backward) made by closure steps since the last drain.
    loss_evals: int = 0
    #: Closure steps not taken because every group's learning rate was 0.
    zero_lr_steps: int = 0


_TRACKED: weakref.WeakKeyDictionary[torch.optim.Optimizer, _Tracked] = \
    weakref.WeakKeyDictionary()


def track(optimizer: torch.optim.Optimizer, capabilities: Capabilities) -> None:
    """Remember what ``optimizer``'s step needs (done when harness builds it)."""
    _TRACKED[optimizer] = _Tracked(capabilities)


def capabilities_of(optimizer: torch.optim.Optimizer) -> Capabilities:
    """The capabilities ``optimizer`` was built with; none for one harness did not build."""
    tracked = _TRACKED.get(optimizer)
    return tracked.capabilities if tracked is not None else PLAIN


def take_step(optimizer: torch.optim.Optimizer, compute_loss: Callable[[], Tensor]) -> Tensor:
    """Zero the gradients, compute the loss, backpropagate and step, as ``optimizer`` needs.

    ``compute_loss()`` runs the forward pass on the step's batch and returns the scalar
    loss. A *closure* optimizer is given a closure that zeroes the gradients and
    recomputes loss and gradients on that same batch, as often as it asks (each call is
    counted in ``loss_evals``); a *second-order* one gets gradients that keep their graph.
    Returns the loss at the parameters the step started from: the first evaluation (for
    LBFGS, also what its ``step`` returns), detached for a closure optimizer.

    A closure optimizer whose every parameter group has learning rate 0 (the last step of a
    schedule that decays to 0) is not stepped: the closure is evaluated once for the step's
    loss and the parameters stay, as a step of size 0 would leave them (torch's LBFGS
    divides by the step size in its line search). Such steps are counted
    (:func:`drain_zero_lr_steps`, the ``zero_lr_steps`` column).
    """
    caps = capabilities_of(optimizer)
    if not caps.closure:
        optimizer.zero_grad(set_to_none=True)
        loss = compute_loss()
        loss.backward(create_graph=caps.second_order)
        optimizer.step()
        if caps.second_order:  # the gradients' graph refers back to the parameters: free it
            optimizer.zero_grad(set_to_none=True)
        return loss
    tracked = _TRACKED[optimizer]
    first: list[Tensor] = []

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = compute_loss()
            loss.backward(create_graph=caps.second_order)
        tracked.loss_evals += 1
        if not first:
            first.append(loss.detach())
        return loss

    if all(float(g.get("lr", 1.0)) == 0.0 for g in optimizer.param_groups):
        tracked.zero_lr_steps += 1
        closure()
        optimizer.zero_grad(set_to_none=True)
        return first[0]
    optimizer.step(closure)  # type: ignore[arg-type]  # torch types closure as -> float
    if not first:
        raise RuntimeError(f"{type(optimizer).__name__} is declared a closure optimizer but "
                           "its step never called the closure")
    return first[0]


def drain_loss_evals(optimizers: Iterable[torch.optim.Optimizer]) -> int | None:
    """The loss evaluations closure steps made since the last call (and reset the count);
    None when none of ``optimizers`` takes a closure."""
    counted = [_TRACKED[o] for o in optimizers if capabilities_of(o).closure]
    if not counted:
        return None
    total = sum(t.loss_evals for t in counted)
    for t in counted:
        t.loss_evals = 0
    return total


def drain_zero_lr_steps(optimizers: Iterable[torch.optim.Optimizer]) -> int:
    """The closure steps not taken at learning rate 0 since the last call (and reset)."""
    counted = [_TRACKED[o] for o in optimizers if capabilities_of(o).closure]
    total = sum(t.zero_lr_steps for t in counted)
    for t in counted:
        t.zero_lr_steps = 0
    return total


def train_modes(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """``optimizer.train()`` on every optimizer with modes, before the first step (a
    schedule-free optimizer starts in eval mode and refuses to step in it)."""
    for o in optimizers:
        if capabilities_of(o).modes:
            o.train()  # type: ignore[attr-defined]


@contextmanager
def eval_modes(optimizers: Iterable[torch.optim.Optimizer]) -> Iterator[None]:
    """``optimizer.eval()`` on every optimizer with train/eval modes, ``.train()`` after:
    around evaluations and saved models.

    The parameters are put back bit for bit afterwards (``train()`` after ``eval()`` is a
    round trip in floating point, not an identity), so evaluating never changes what a
    cell trains: its curve does not depend on how often it is evaluated, and a cell
    resumed from a checkpoint (which keeps the training state, in train mode) follows the
    same path as one never stopped."""
    moded = [o for o in optimizers if capabilities_of(o).modes]
    saved = [[p.detach().clone() for g in o.param_groups for p in g["params"]] for o in moded]
    for o in moded:
        o.eval()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        with torch.no_grad():
            for o, kept in zip(moded, saved, strict=True):
                o.train()  # type: ignore[attr-defined]
                params = [p for g in o.param_groups for p in g["params"]]
                for p, k in zip(params, kept, strict=True):
                    p.copy_(k)

"""Fast training paths, chosen per cell and recorded in its row.

* The optimizer implementation: ``fused`` or ``foreach`` kernels where torch has them
  for the device (``--opt-impl``), so a step is a handful of kernels, not one per tensor.
* The ``DataLoader`` path (``--loader dataloader``): the tutorial's way, kept as a
  baseline and for data that needs it; the default keeps tensors on the device.
* ``--compile``: ``torch.compile`` of the model inside the harness's step; the first
  step (where compilation happens) is reported as ``compile_s``.
* ``--cuda-graphs``: the whole supervised step (forward, loss, backward, optimizer step)
  captured once in a CUDA graph and replayed; the harness's own batches are gathered
  inside the graph from the batch's indices, other sources are copied into static
  inputs. Tiny models on a GPU are bound by kernel launches, and this removes them. When
  a problem or optimizer cannot be captured the cell runs eagerly and its row says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness.optimizer import OptimizerSpec
from harness.problem import ShuffledBatches

OPT_IMPLS = ("auto", "fused", "foreach", "loop")
LOADERS = ("device", "dataloader")


class GraphUnsupported(Exception):
    """Why a cell's step cannot be captured; the cell then runs eagerly."""


# -- optimizer implementation ------------------------------------------------------------
def implementation_hyper(spec: OptimizerSpec, hyper: Mapping[str, Any], device: torch.device,
                         opt_impl: str, capturable: bool) -> dict[str, Any]:
    """Hyperparameters plus the implementation switches this optimizer and device allow.

    Explicit ``foreach``/``fused``/``capturable`` hyperparameters always win.
    """
    accepted = spec.accepted() or set()
    out = dict(hyper)
    if "fused" in hyper or "foreach" in hyper:
        return out
    want = opt_impl
    if want == "auto":
        want = "fused" if device.type == "cuda" and "fused" in accepted else "default"
    if want == "fused" and "fused" in accepted:
        out["fused"] = True
    elif want in ("foreach", "fused") and "foreach" in accepted:
        out["foreach"] = True  # fused asked but not offered: the next best
    elif want == "loop" and "foreach" in accepted:
        out["foreach"] = False
    if capturable and "capturable" in accepted:
        out.setdefault("capturable", True)
    return out


def implementation_of(optimizer: torch.optim.Optimizer) -> str:
    d = optimizer.defaults
    if d.get("fused"):
        return "fused"
    if d.get("foreach"):
        return "foreach"
    if d.get("foreach") is False:
        return "loop"
    return "default"


# -- the DataLoader path ------------------------------------------------------------------
class DataLoaderBatches:
    """Batches from a ``torch.utils.data.DataLoader`` over host tensors, moved per batch.

    Shuffled by a seeded generator that only the sampler draws from, so the order is
    the same whatever ``num_workers`` (the loader's own generator also seeds its worker
    processes, once per pass or, with persistent workers, once). Last partial batch
    dropped, epochs chained.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, seed: int,
                 device: torch.device, num_workers: int = 0, pin_memory: bool = False) -> None:
        dataset = torch.utils.data.TensorDataset(inputs.cpu(), targets.cpu())
        self.batch_size = min(batch_size, len(dataset))
        sampler = torch.utils.data.RandomSampler(
            dataset, generator=torch.Generator().manual_seed(seed))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True,
            num_workers=num_workers, pin_memory=pin_memory and device.type == "cuda",
            generator=torch.Generator().manual_seed(seed + 1),
            persistent_workers=num_workers > 0,
        )
        self.device = device
        self.non_blocking = pin_memory and device.type == "cuda"
        self._it: Iterator[Any] = iter(self.loader)
        #: A batch taken early for a copy (see :meth:`__deepcopy__`), served next.
        self._pending: tuple[Tensor, Tensor] | None = None

    def _take(self) -> tuple[Tensor, Tensor]:
        if self._pending is not None:
            batch, self._pending = self._pending, None
            return batch
        try:
            x, y = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            x, y = next(self._it)
        return x, y

    def next(self) -> tuple[Tensor, Tensor]:
        x, y = self._take()
        return (x.to(self.device, non_blocking=self.non_blocking),
                y.to(self.device, non_blocking=self.non_blocking))

    def __deepcopy__(self, memo: dict[int, Any]) -> _FixedBatch:
        """A loader's iterator cannot be copied: the copy (for the step probe of
        :mod:`harness.train.flops`) serves the batch this source serves next, which is
        taken now and kept here, so this source's order does not change."""
        if self._pending is None:
            self._pending = self._take()
        x, y = self._pending
        return _FixedBatch(x.clone().to(self.device), y.clone().to(self.device))


class _FixedBatch:
    """One batch, served on every call."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def next(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y


# -- CUDA graphs ---------------------------------------------------------------------------
def capture_step(model: nn.Module, loss_fn: Callable[[Any, Tensor], Tensor],
                 forward: Callable[[nn.Module, Tensor], Any] | None, batches: Any,
                 optimizer: torch.optim.Optimizer, warmup: int = 3) -> GraphStep:
    """Capture forward, loss, backward and the optimizer step in one CUDA graph.

    With the harness's own :class:`~harness.problem.ShuffledBatches` the batch is
    gathered from the device-resident dataset inside the graph: each step copies only
    the batch's indices in (one launch instead of two gathers and two copies, which is
    what a tiny model's step is made of). Any other replayable source has its batches
    copied into static inputs.

    Warm-up iterations (which CUDA graphs need) run on a side stream on the first batch;
    afterwards the parameters, buffers, optimizer state, batch order and random state
    are put back exactly as they were, so the captured run trains on the same batches
    from the same start as the eager one would.
    """
    if isinstance(batches, DataLoaderBatches):
        raise GraphUnsupported("the DataLoader path cannot be replayed (use --loader device)")
    if not hasattr(batches, "state_dict"):
        raise GraphUnsupported("the problem's batch source cannot be replayed")
    device = next(model.parameters()).device
    if device.type != "cuda":
        raise GraphUnsupported(f"CUDA graphs need a CUDA device, not {device.type}")
    restore = _snapshot(model, optimizer, batches, device)

    gather = (type(batches) is ShuffledBatches and batches.inputs.device == device
              and batches.targets.device == device)
    static: tuple[Tensor, ...]
    if gather:
        static = (batches.next_indices().clone(),)
        inputs, targets = batches.inputs, batches.targets

        def batch() -> tuple[Tensor, Tensor]:
            idx = static[0]
            return inputs.index_select(0, idx), targets.index_select(0, idx)
    else:
        x, y = batches.next()
        static = (x.clone(), y.clone())

        def batch() -> tuple[Tensor, Tensor]:
            return static[0], static[1]

    window_sum = torch.zeros((), device=device)

    def body() -> Tensor:
        bx, by = batch()
        out = model(bx) if forward is None else forward(model, bx)
        loss = loss_fn(out, by)
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(side):
            for _ in range(warmup):
                optimizer.zero_grad(set_to_none=True)
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            # The window's loss sum is kept inside the graph: no extra launch per step.
            window_sum.add_(body().detach())
    except Exception as exc:  # the model or optimizer does something capture forbids
        raise GraphUnsupported(" ".join(f"capture failed: {type(exc).__name__}: {exc}"
                                        .split())[:300]) from exc
    finally:
        restore()  # undo the warm-up: same start, same batches, same random numbers as eager
        window_sum.zero_()
    kind = GatherGraphStep if gather else GraphStep
    return kind(graph, batches, static, window_sum, keep=(model, optimizer))


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Any,
              device: torch.device) -> Callable[[], None]:
    """A function that puts the parameters, buffers, optimizer state (state created after
    the snapshot is zeroed), batch order and CUDA random state back as they are now."""
    source_state = batches.state_dict()
    rng = torch.cuda.get_rng_state(device)
    tensors = [*model.parameters(), *model.buffers()]
    saved = [t.detach().clone() for t in tensors]
    opt_saved = {id(v): v.detach().clone() for s in optimizer.state.values()
                 for v in s.values() if isinstance(v, Tensor)}

    def restore() -> None:
        with torch.no_grad():
            for t, s in zip(tensors, saved, strict=True):
                t.copy_(s)
            for state in optimizer.state.values():
                for v in state.values():
                    if isinstance(v, Tensor):
                        v.copy_(opt_saved[id(v)]) if id(v) in opt_saved else v.zero_()
        batches.load_state_dict(source_state)
        torch.cuda.set_rng_state(rng, device)

    return restore


class GraphStep:
    """One replay per call, each batch copied into the graph's static inputs; the losses
    add up in :attr:`window_sum` on the device, which the training loop reads and zeroes
    at each window edge.

    A graph holds raw device addresses, not references: the step keeps the model and the
    optimizer (whose parameters, gradients and state the graph writes) alive as long as
    it can be replayed, or a replay would write into memory handed to other tensors.
    """

    def __init__(self, graph: Any, batches: Any, static: tuple[Tensor, ...],
                 window_sum: Tensor, keep: tuple[Any, ...] = ()) -> None:
        self.graph, self.batches, self.static = graph, batches, static
        self.window_sum = window_sum
        self._keep = keep
        self._replay = graph.replay

    def __call__(self) -> None:
        xb, yb = self.batches.next()
        sx, sy = self.static
        sx.copy_(xb, non_blocking=True)
        sy.copy_(yb, non_blocking=True)
        self._replay()


class GatherGraphStep(GraphStep):
    """One replay per call; only the batch's indices are copied in, the graph gathers."""

    def __call__(self) -> None:
        self.static[0].copy_(self.batches.next_indices(), non_blocking=True)
        self._replay()

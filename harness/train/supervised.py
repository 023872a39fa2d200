"""The harness-owned training step for :class:`~harness.problem.Supervised` problems, and
what the training loop may ask of any task's step (:class:`StepCapabilities`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol, cast

import torch
from torch import Tensor, nn

from harness.executor import RunOptions
from harness.problem import ShuffledBatches, Supervised, Task
from harness.train.fastpaths import DataLoaderBatches, GraphUnsupported, capture_step
from harness.train.losses import Step
from harness.train.state import Choice, Paths
from harness.train.steps import capabilities_of as optimizer_capabilities
from harness.train.steps import take_step


@dataclass(frozen=True)
class StepCapabilities:
    """What the harness may do with a task's training step."""

    #: The task builds a hot-path step itself (``step_function(optimizers)``), which may
    #: be captured in a CUDA graph or compiled as the run's options ask.
    fast_step: bool = False
    #: The step can be captured in a CUDA graph (on CUDA, with ``--cuda-graphs``).
    cuda_graphs: bool = False
    #: The step's model can go through torch.compile (``--compile``).
    compile: bool = False
    #: The step returns one loss tensor, not a mapping of them.
    one_loss: bool = False


class FastStepTask(Protocol):
    """A task whose capabilities say ``fast_step``."""

    #: How its step was built (set by :meth:`step_function`).
    paths: Paths

    def step_function(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Step: ...


#: A problem that owns its training step: the harness calls its ``train_step`` as it is.
OWN_STEP = StepCapabilities()


def capabilities_of(task: Task) -> StepCapabilities:
    caps = getattr(task, "capabilities", OWN_STEP)
    return caps if isinstance(caps, StepCapabilities) else OWN_STEP


def step_of(task: Task, optimizers: Mapping[str, torch.optim.Optimizer],
            paths: Paths | None = None) -> Step:
    """The step the loop times: the task's fast step where it offers one (``paths`` then
    gets how it was built), else its own ``train_step``."""
    if capabilities_of(task).fast_step:
        fast = cast(FastStepTask, task)
        step = fast.step_function(optimizers)
        if paths is not None:
            paths.update(fast.paths)
        return step
    return partial(task.train_step, optimizers)


def unavailable_paths(task: Task, options: RunOptions, device: torch.device) -> Paths:
    """The fast paths the run asked for that this task or device rules out, and why."""
    caps, paths = capabilities_of(task), Paths()
    if options.cuda_graphs and device.type != "cuda":
        paths.cuda_graphs = Choice.skipped(f"not applicable on {device.type}")
    elif options.cuda_graphs and not caps.cuda_graphs:
        paths.cuda_graphs = Choice.skipped("the problem owns its training step")
    if options.compile and not caps.compile:
        paths.compile = Choice.skipped("the problem owns its training step")
    return paths


class SupervisedTask(Task):
    """The harness-owned training step for :class:`Supervised` problems."""

    capabilities: ClassVar[StepCapabilities] = StepCapabilities(
        fast_step=True, cuda_graphs=True, compile=True, one_loss=True)

    def __init__(self, built: Supervised, batch_size: int, generator: torch.Generator,
                 options: RunOptions | None = None, seed: int = 0) -> None:
        self.built = built
        self.model = built.model
        self.loss_fn = built.loss_fn
        self.forward = built.forward
        self.options = options or RunOptions()
        #: How each path was chosen, for the cell's row.
        self.paths = Paths()
        if built.batches is not None:
            self.batches: Any = built.batches
            self.samples_per_step = batch_size
            self.paths.loader = "problem"
        elif self.options.loader == "dataloader":
            loader = DataLoaderBatches(built.inputs, built.targets, batch_size, seed,
                                       built.inputs.device, self.options.loader_workers,
                                       self.options.pin_memory)
            self.batches, self.samples_per_step = loader, loader.batch_size
            self.paths.loader = f"dataloader(num_workers={self.options.loader_workers})"
        else:
            shuffled = ShuffledBatches(built.inputs, built.targets, batch_size, generator)
            self.batches, self.samples_per_step = shuffled, shuffled.batch_size
            self.paths.loader = "device"
        self.data_source = built.data_source

    def parameter_groups(self) -> Mapping[str, Iterable[nn.Parameter]]:
        return {"model": self.model.parameters()}

    def modules(self) -> Mapping[str, nn.Module]:
        return {"model": self.model}

    def step_function(
        self, optimizers: Mapping[str, torch.optim.Optimizer], fast: bool = True
    ) -> Callable[[], Tensor | None]:
        """The hot path: one closure, no lookups, no host syncs.

        With ``fast`` the step may be a CUDA graph (which keeps its own loss sum and
        returns None) or compiled, as the run's options ask.
        """
        opt = optimizers["model"]
        if fast and self.options.cuda_graphs and self.built.inputs.device.type == "cuda":
            graphed = self._graphed(opt)
            if graphed is not None:
                return graphed
        model: Any = self.model
        if fast and self.options.compile:
            model = self._compiled()
        loss_fn, forward, batches = self.loss_fn, self.forward, self.batches

        caps = optimizer_capabilities(opt)
        if caps.closure or caps.second_order:
            def stepped() -> Tensor:  # the closure recomputes the loss on this batch
                x, y = batches.next()
                if forward is None:
                    return take_step(opt, lambda: loss_fn(model(x), y))
                return take_step(opt, lambda: loss_fn(forward(model, x), y))
            return stepped
        if forward is None:
            def step() -> Tensor:
                x, y = batches.next()
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                return loss
        else:
            def step() -> Tensor:
                x, y = batches.next()
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(forward(model, x), y)
                loss.backward()
                opt.step()
                return loss
        return step

    def _graphed(self, opt: torch.optim.Optimizer) -> Callable[[], None] | None:
        """The whole step captured in a CUDA graph, or None (and why) when it cannot be."""
        try:
            if not self.built.capturable:
                raise GraphUnsupported("the problem keeps state between steps")
            caps = optimizer_capabilities(opt)
            if caps.closure or caps.second_order:
                raise GraphUnsupported(
                    "the optimizer takes a closure" if caps.closure else
                    "the optimizer needs the gradients' graph (second order)")
            graphed = capture_step(self.model, self.loss_fn, self.forward, self.batches, opt)
        except GraphUnsupported as exc:
            self.paths.cuda_graphs = Choice.skipped(str(exc))
            return None
        self.paths.cuda_graphs = Choice.used()
        return graphed

    def _compiled(self) -> Any:
        # Each cell compiles afresh: reusing a graph an earlier cell of this process
        # compiled made compile_s and time_to_target_s depend on which cell ran first.
        torch.compiler.reset()
        options = self.options
        self.paths.compile = Choice.used(f"{options.compile_backend}" + (
            f"/{options.compile_mode}" if options.compile_mode else ""))
        return torch.compile(self.model, backend=options.compile_backend,
                             mode=options.compile_mode)

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        loss = self.step_function(optimizers, fast=False)()
        assert loss is not None
        return {"loss": loss}

    def state_dict(self) -> dict[str, Any] | None:
        if not hasattr(self.batches, "state_dict"):
            return None
        return {"batches": self.batches.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.batches.load_state_dict(state["batches"])

    def evaluate(self) -> Mapping[str, float]:
        with eval_mode(self.model):
            return dict(self.built.evaluate(self.model))

    def artifacts(self) -> Mapping[str, Any]:
        if self.built.artifacts is None:
            return {}
        with eval_mode(self.model):
            return dict(self.built.artifacts(self.model))


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and ``torch.no_grad`` for ``modules``; their modes are restored after."""
    was_training = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, was in zip(modules, was_training, strict=True):
            m.train(was)

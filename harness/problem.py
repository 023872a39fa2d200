"""The problem contract: what a model plugin registers.

A :class:`Problem` describes a benchmark (name, parameters, defaults, target) and
builds, for one device and one seed, either

* a :class:`Supervised` bundle (model, data, loss, evaluation). The harness owns
  the step (zero_grad, forward, loss, backward, optimizer step) so that speed-ups
  happen in one place; or
* a :class:`Task`, for problems with their own training loop and one optimizer
  per parameter group (a GAN's generator and discriminator, a DQN's Q-network).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from harness.params import NAME_PATTERN, Param, ParamValue, check_name
from harness.target import Better, Target, better_side

if TYPE_CHECKING:  # torch is imported where a cell is built, not with the contract
    import torch
    from torch import Tensor, nn

__all__ = [
    "NAME_PATTERN", "BatchSource", "BuildContext", "Param", "ParamValue", "Problem",
    "ShuffledBatches", "Supervised", "Target", "Task", "check_name",
]

@dataclass(frozen=True)
class BuildContext:
    """Everything a problem needs to build itself for one cell."""

    device: torch.device
    seed: int
    batch_size: int
    steps: int
    params: Mapping[str, ParamValue]
    data_dir: Path
    download: bool = False

    def generator(self, offset: int = 0) -> torch.Generator:
        """A generator on the cell's device seeded from the cell's seed (plus ``offset``)."""
        import torch

        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + offset)

    def cpu_generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the cell's seed, for data synthesised on the host."""
        import torch

        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)


class BatchSource(Protocol):
    """Yields training batches that already live on the cell's device.

    A source that also has ``state_dict()``/``load_state_dict(state)`` (tensors and
    plain values only) lets a cell resume mid-run from a checkpoint.
    """

    def next(self) -> tuple[Tensor, Tensor]: ...


class ShuffledBatches:
    """Epochs over device-resident tensors in a seeded random order.

    The permutation is drawn on the device; an epoch's last partial batch is
    dropped so every batch has the same shape. With fewer samples than the batch
    size, every step sees the whole set.
    """

    def __init__(
        self, inputs: Tensor, targets: Tensor, batch_size: int, generator: torch.Generator
    ) -> None:
        import torch

        self.inputs = inputs
        self.targets = targets
        self.n = int(inputs.shape[0])
        self.batch_size = min(batch_size, self.n)
        self.generator = generator
        self._perm = torch.empty(0, dtype=torch.long, device=inputs.device)
        self._pos = self.n  # forces a permutation on the first call

    def next_indices(self) -> Tensor:
        """The next batch's sample indices (a view of the epoch's permutation)."""
        if self._pos + self.batch_size > self.n:
            import torch

            self._perm = torch.randperm(
                self.n, device=self.inputs.device, generator=self.generator
            )
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def next(self) -> tuple[Tensor, Tensor]:
        idx = self.next_indices()
        return self.inputs.index_select(0, idx), self.targets.index_select(0, idx)

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self._perm, "pos": self._pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._perm = state["perm"].to(self.inputs.device)
        self._pos = int(state["pos"])
        self.generator.set_state(state["generator"])


@dataclass
class Supervised:
    """A supervised problem built for one cell; the harness owns its training step.

    ``forward(model, x)`` returns what ``loss_fn(output, y)`` takes (default
    ``model(x)``). ``evaluate(model)`` runs in eval mode under ``torch.no_grad``
    and returns the metrics the problem declares. ``batches`` defaults to
    :class:`ShuffledBatches` over ``inputs``/``targets``.
    """

    model: nn.Module
    loss_fn: Callable[[Any, Tensor], Tensor]
    inputs: Tensor
    targets: Tensor
    evaluate: Callable[[nn.Module], Mapping[str, float]]
    forward: Callable[[nn.Module, Tensor], Any] | None = None
    batches: BatchSource | None = None
    artifacts: Callable[[nn.Module], Mapping[str, Any]] | None = None
    data_source: str = "synthetic"
    #: False when a step is not a pure function of the parameters and the batch (the
    #: model keeps Python-side state between steps, such as a carried hidden state):
    #: a CUDA graph would replay the first step's state, so ``--cuda-graphs`` runs such
    #: a problem eagerly and says so.
    capturable: bool = True


class Task(ABC):
    """A problem that owns its training step and may train several parameter groups.

    Each role in :meth:`parameter_groups` gets its own optimizer instance; the
    grid's optimizer applies to every role unless the grid says otherwise.
    """

    #: Where the data came from, recorded in the summary.
    data_source: str = "synthetic"
    #: Samples (or environment steps) consumed by one call of :meth:`train_step`.
    samples_per_step: int = 1

    @abstractmethod
    def parameter_groups(self) -> Mapping[str, Iterable[nn.Parameter]]:
        """Role name -> the parameters one optimizer instance trains."""

    @abstractmethod
    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        """Run one step; return scalar losses as device tensors, including ``"loss"``.

        Do not call ``.item()`` here: the harness reads losses at window edges.
        """

    @abstractmethod
    def evaluate(self) -> Mapping[str, float]:
        """Return the declared metrics; runs outside the timed windows."""

    def artifacts(self) -> Mapping[str, Any]:
        """JSON-serialisable data kept for the report's pictures."""
        return {}

    def modules(self) -> Mapping[str, nn.Module]:
        """The networks, by name (used for state dicts and train/eval mode)."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """State beyond :meth:`modules` and the optimizers needed to resume mid-run
        exactly (data order, carried hidden states...), or None if the task cannot be
        resumed mid-run; ``--checkpoint-every`` is then recorded as unsupported."""
        return None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (required when it returns a dict). Its
        tensors arrive on the CPU: move those that belong on the task's device there."""
        raise NotImplementedError(f"{type(self).__name__} returns a state_dict but cannot load it")


class Problem(ABC):
    """A benchmark problem. Subclass it, set the class attributes, implement build."""

    #: Registered name: lowercase letters, digits, '.', '_' or '-'.
    name: str
    #: One line saying what is learned, from what.
    description: str = ""
    #: Parameters that may become grid axes.
    params: tuple[Param, ...] = ()
    #: Default batch size and step budget.
    batch_size: int = 64
    steps: int = 500
    #: Evaluate every this many steps (``None``: ten times per run) and at the end.
    eval_every: int | None = None
    #: Metric names :meth:`Supervised.evaluate` / :meth:`Task.evaluate` return.
    metrics: tuple[str, ...] = ()
    #: When the problem counts as solved, for time-to-target.
    target: Target | None = None
    #: The metric hyperparameters are selected on: one of :attr:`metrics`, measured on a
    #: validation split disjoint from the training and the test data (``val_loss``,
    #: ``val_accuracy``), reported at every evaluation next to its ``test_*`` twin.
    #: ``None``: the problem has no validation split, and a tuning protocol can select
    #: only on the training loss (selecting on a ``test_*`` metric would choose on the
    #: data the result is then reported on).
    validation_metric: str | None = None
    #: Which side is better for the metrics whose names do not say it (names ending in
    #: ``loss``, ``error``, ``distance``... are better low; ``accuracy``, ``return``,
    #: ``score``... high; see :meth:`better`), e.g. ``{"inside_bounds": "max"}``.
    metric_better: ClassVar[Mapping[str, Better]] = {}
    #: What a model that learned nothing scores on a metric, e.g. ``{"test_accuracy": 0.1}``
    #: for ten balanced classes: a cell that ends within
    #: :data:`harness.target.CHANCE_MARGIN` of it (or worse) is flagged in the summary's
    #: ``at_chance`` column and by ``harness show``.
    chance_level: ClassVar[Mapping[str, float]] = {}
    #: What ``samples_per_s`` counts.
    sample_unit: str = "samples"
    #: Parameter groups that each get their own optimizer instance (a :class:`Task`'s
    #: ``parameter_groups()`` keys); supervised problems have the one role "model".
    roles: tuple[str, ...] = ("model",)
    #: Conformance checks (``harness.testing``) that do not apply to this problem, each
    #: with the reason the suite reports, e.g. ``{"loss_decreases": "adversarial loss"}``.
    conformance_skip: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def build(self, ctx: BuildContext) -> Supervised | Task:
        """Build models and data on ``ctx.device``, seeded by ``ctx.seed``."""

    def prepare(self, data_dir: Path, download: bool) -> None:  # noqa: B027 (optional)
        """Fetch (with ``download``) or check the problem's data, once per run, in the
        harness's own process before any cell runs (not for ``--dry-run``). Raise
        :class:`harness.errors.DataUnavailableError` naming what is missing or damaged:
        the run then stops in one line with nothing written, instead of every cell
        failing alike. The default does nothing."""

    def target_for(self, params: Mapping[str, ParamValue]) -> Target | None:
        """The target of a cell with these parameters (default: :attr:`target`).

        Override when what counts as solved depends on a parameter, e.g. the environment.
        """
        return self.target

    def better(self, metric: str) -> Better | None:
        """Whether ``metric`` is better low (``"min"``) or high (``"max"``): as declared in
        :attr:`metric_better`, else the target's mode when the target is on it, else read
        off its name (:func:`harness.target.better_side`); None when none of them says."""
        if metric in self.metric_better:
            return self.metric_better[metric]
        if self.target is not None and self.target.metric == metric:
            return self.target.mode
        return better_side(metric)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, ParamValue]:
        return {p.name: p.default for p in self.params}

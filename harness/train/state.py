"""What a cell's run has found out so far: plain fields, turned into display text only by
:meth:`CellState.measured` when the summary is built."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from harness.cell import Cell
from harness.train.summary import Measured


@dataclass(frozen=True)
class Choice:
    """Whether a fast path was taken, and what was taken or why not."""

    taken: bool
    detail: str

    @classmethod
    def used(cls, detail: str = "yes") -> Choice:
        return cls(True, detail)

    @classmethod
    def skipped(cls, reason: str) -> Choice:
        return cls(False, reason)

    def display(self) -> str:
        return self.detail if self.taken else f"no: {self.detail}"


@dataclass
class Paths:
    """How the step was built: its batch source, CUDA graph and torch.compile choices."""

    loader: str | None = None
    cuda_graphs: Choice | None = None
    compile: Choice | None = None

    def update(self, other: Paths) -> None:
        """Take the choices ``other`` made."""
        for name in ("loader", "cuda_graphs", "compile"):
            if getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))

    @property
    def compiling(self) -> bool:
        """Whether the model went through torch.compile."""
        return self.compile is not None and self.compile.taken


@dataclass
class Counters:
    """The training loop's counters. A checkpoint carries them (its ``"loop"`` entry, one
    key per field, in this order)."""

    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    samples_to_target: int | None = None
    train_time: float = 0.0
    warmup_s: float = 0.0
    steady_time: float = 0.0
    steady_steps: int = 0
    first_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    rss_peak: float = math.nan
    steps_done: int = 0
    #: Each steady window's steps per second, in order (its dispersion is the noise).
    steady_rates: list[float] = field(default_factory=list)
    #: Loss evaluations made by closure optimizers' steps (None: no closure optimizer).
    loss_evals: int | None = None
    #: Closure steps not taken because the learning rate was 0 (:func:`take_step`).
    zero_lr_steps: int = 0

    def count_loss_evals(self, evals: int | None, zero_lr_steps: int = 0) -> None:
        if evals is not None:
            self.loss_evals = (self.loss_evals or 0) + evals
        self.zero_lr_steps += zero_lr_steps

    def add_window(self, elapsed: float, steps: int, warming_up: bool) -> None:
        """Count a window's seconds as warm-up, or as steady state (its steps too)."""
        self.train_time += elapsed
        if warming_up:
            self.warmup_s += elapsed
        else:
            self.steady_time += elapsed
            self.steady_steps += steps
            if elapsed > 0 and steps > 0:
                self.steady_rates.append(steps / elapsed)

    def add_loss(self, loss: float) -> None:
        self.losses.append(loss)
        if self.first_loss is None:
            self.first_loss = loss

    def to_checkpoint(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, loop: dict[str, Any]) -> Counters:
        # a checkpoint written before a field existed leaves it at its default
        return cls(**{f.name: loop[f.name] for f in fields(cls) if f.name in loop})


@dataclass
class CellState:
    """Everything the cell's summary is built from, besides its curve."""

    data_source: str | None = None
    opt_impl: str | None = None
    paths: Paths = field(default_factory=Paths)
    #: Whether the cell checkpoints every ``checkpoint_every`` steps (None: not asked to).
    checkpointing: bool | None = None
    checkpoint_every: int | None = None
    resumed_from_step: int | None = None
    samples_per_step: int | None = None
    first_step_s: float | None = None
    peak_mem_mb: float | None = None
    #: How ``peak_mem_mb`` was measured (a key of :data:`harness.outcome.PEAK_MEM_METHODS`).
    peak_mem_method: str | None = None
    #: FLOPs of one training step (:mod:`harness.train.flops`); NaN: not countable.
    flops_per_step: float = math.nan
    artifacts: dict[str, Any] = field(default_factory=dict)
    #: Set when training starts; None for a cell that failed before.
    counters: Counters | None = None

    def measured(self, cell: Cell, curve: list[dict[str, Any]]) -> Measured:
        c = self.counters
        steady_steps = c.steady_steps if c else 0
        steady_time = c.steady_time if c else 0.0
        if steady_steps == 0 and curve:
            # Too few steps for a warm-up: fall back to every window.
            steady_steps = c.steps_done if c else 0
            steady_time = curve[-1]["elapsed_s"]
        sps = self.samples_per_step if self.samples_per_step is not None else cell.batch_size
        rss = c.rss_peak if c else math.nan
        return Measured(
            steps_done=c.steps_done if c else 0,
            losses=c.losses if c else [],
            time_to_target_s=_float(c.time_to_target_s if c else None),
            steps_to_target=_float(c.steps_to_target if c else None),
            samples_to_target=_float(c.samples_to_target if c else None),
            flops_per_step=self.flops_per_step,
            throughput=(steady_steps * sps, steady_time, steady_steps),
            dispersion=dispersion(c.steady_rates if c else []),
            warmup_s=c.warmup_s if c else math.nan,
            peak_mem_mb=self.peak_mem_mb if self.peak_mem_mb is not None else rss,
            data_source=self.data_source,
            peak_mem_method=self.peak_mem_method,
            paths=self._displayed(),
            metrics=c.metrics if c else {},
        )

    def _displayed(self) -> dict[str, Any]:
        """The fast paths and checkpointing as the summary shows them, in its order."""
        out: dict[str, Any] = {}
        if self.checkpointing is not None:
            out["checkpoint"] = (f"every {self.checkpoint_every} steps" if self.checkpointing
                                 else "unsupported: the problem cannot be resumed mid-run")
        p = self.paths
        shown = {"resumed_from_step": self.resumed_from_step, "opt_impl": self.opt_impl,
                 "loader": p.loader,
                 "cuda_graphs": p.cuda_graphs.display() if p.cuda_graphs else None,
                 "compile": p.compile.display() if p.compile else None,
                 "first_step_s": self.first_step_s}
        out.update((k, v) for k, v in shown.items() if v is not None)
        c = self.counters
        if c is not None and c.loss_evals is not None and c.steps_done:
            out["loss_evals"] = c.loss_evals / c.steps_done
        if c is not None and c.zero_lr_steps:
            out["zero_lr_steps"] = c.zero_lr_steps
        if self.first_step_s is not None and p.compiling:
            out["compile_s"] = self.first_step_s
        return out


def dispersion(rates: list[float]) -> tuple[float, int]:
    """(IQR / median, n) of the steady windows' rates: the throughput's relative noise
    (quartiles interpolated linearly, as numpy's default); NaN with fewer than 2 windows."""
    if len(rates) < 2:
        return math.nan, len(rates)
    q1, q2, q3 = statistics.quantiles(rates, n=4, method="inclusive")
    return ((q3 - q1) / q2 if q2 > 0 else math.nan), len(rates)


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)

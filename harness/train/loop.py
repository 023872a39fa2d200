"""Running one cell: build, train with timed windows, evaluate, summarise.

Timing follows three rules. The loss is accumulated on the device and read only
at window edges, so the hot loop has no host synchronisation. The device is
synchronised at every window edge before the clock is read. Evaluation happens
at window edges with the clock stopped, so it never counts as training time.
Throughput is measured over the windows after the warm-up.
"""

from __future__ import annotations

import math
import os
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.cell import Cell
from harness.errors import DivergedError
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.outcome import CellResult, Status
from harness.problem import BuildContext, Problem, ShuffledBatches, Supervised, Task
from harness.train import checkpoints
from harness.train.fastpaths import (
    DataLoaderBatches,
    GraphUnsupported,
    capture_step,
    implementation_hyper,
    implementation_of,
)

#: A window's mean loss above this multiple of the first window's (or non-finite) is divergence.
DIVERGENCE_FACTOR = 1e4



#: Called at each window edge with the curve row just recorded (``step``, ``elapsed_s``,
#: losses, and metrics when evaluated) and the cell's step budget; a cell resumed from a
#: checkpoint first passes each row the checkpoint restored.
WindowCallback = Callable[[Mapping[str, Any], int], None]


class SupervisedTask(Task):
    """The harness-owned training step for :class:`Supervised` problems."""

    def __init__(self, built: Supervised, batch_size: int, generator: torch.Generator,
                 options: RunOptions | None = None, seed: int = 0) -> None:
        self.built = built
        self.model = built.model
        self.loss_fn = built.loss_fn
        self.forward = built.forward
        self.options = options or RunOptions()
        #: How each path was chosen, for the cell's row.
        self.paths: dict[str, Any] = {}
        if built.batches is not None:
            self.batches: Any = built.batches
            self.samples_per_step = batch_size
            self.paths["loader"] = "problem"
        elif self.options.loader == "dataloader":
            loader = DataLoaderBatches(built.inputs, built.targets, batch_size, seed,
                                       built.inputs.device, self.options.loader_workers,
                                       self.options.pin_memory)
            self.batches, self.samples_per_step = loader, loader.batch_size
            self.paths["loader"] = f"dataloader(num_workers={self.options.loader_workers})"
        else:
            shuffled = ShuffledBatches(built.inputs, built.targets, batch_size, generator)
            self.batches, self.samples_per_step = shuffled, shuffled.batch_size
            self.paths["loader"] = "device"
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
        model, loss_fn, forward, batches = self.model, self.loss_fn, self.forward, self.batches
        if fast and self.options.cuda_graphs and self.built.inputs.device.type == "cuda":
            try:
                if not self.built.capturable:
                    raise GraphUnsupported("the problem keeps state between steps")
                graphed = capture_step(model, loss_fn, forward, batches, opt)
            except GraphUnsupported as exc:
                self.paths["cuda_graphs"] = f"no: {exc}"
            else:
                self.paths["cuda_graphs"] = "yes"
                return graphed
        if fast and self.options.compile:
            # Each cell compiles afresh: reusing a graph an earlier cell of this process
            # compiled made compile_s and time_to_target_s depend on which cell ran first.
            torch.compiler.reset()
            compiled: Any = torch.compile(model, backend=self.options.compile_backend,
                                          mode=self.options.compile_mode)
            model = compiled
            self.paths["compile"] = f"{self.options.compile_backend}" + (
                f"/{self.options.compile_mode}" if self.options.compile_mode else "")

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_task(problem: Problem, cell: Cell, options: RunOptions) -> Task:
    device = torch.device(cell.device)
    seed_everything(cell.seed)
    ctx = BuildContext(
        device=device, seed=cell.seed, batch_size=cell.batch_size, steps=cell.steps,
        params=dict(cell.params), data_dir=options.data_dir, download=options.download,
    )
    built = problem.build(ctx)
    if isinstance(built, Supervised):
        return SupervisedTask(built, cell.batch_size, ctx.generator(), options, cell.seed)
    if isinstance(built, Task):
        return built
    raise TypeError(f"{problem.name}.build() returned {type(built).__name__}, "
                    "expected harness.Supervised or harness.Task")


def _boundaries(
    steps: int, log_every: int, eval_every: int, warmup: int
) -> tuple[set[int], set[int]]:
    log = set(range(log_every, steps + 1, log_every)) | {steps, warmup}
    evals = set(range(eval_every, steps + 1, eval_every)) | {steps}
    return log | evals, evals


def run_cell(
    cell: Cell,
    problem: Problem,
    optimizer: OptimizerSpec,
    options: RunOptions,
    on_window: WindowCallback | None = None,
    role_specs: Mapping[str, OptimizerSpec] | None = None,
) -> CellResult:
    """Train one cell and return its record. Never raises for a failure of the cell itself.

    ``role_specs`` maps the optimizer names of ``cell.roles`` to their specs.
    """
    t_start = time.perf_counter()
    device = torch.device(cell.device)
    curve: list[dict[str, Any]] = []
    state: dict[str, Any] = {"data_source": None, "sample_unit": problem.sample_unit}
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        task = build_task(problem, cell, options)
        state["data_source"] = task.data_source
        optimizers = _build_optimizers(cell, problem, task, optimizer, role_specs or {},
                                       options)
        state["opt_impl"] = ",".join(sorted({implementation_of(o) for o in optimizers.values()}))
        if options.cuda_graphs and device.type != "cuda":
            state["cuda_graphs"] = f"no: not applicable on {device.type}"
        elif options.cuda_graphs and not isinstance(task, SupervisedTask):
            state["cuda_graphs"] = "no: the problem owns its training step"
        if options.compile and not isinstance(task, SupervisedTask):
            state["compile"] = "no: the problem owns its training step"
        _train(cell, problem, task, optimizers, options, curve, state, on_window)
        status, error, tb = Status.OK, None, None
    except DivergedError as exc:
        status, error, tb = Status.DIVERGED, str(exc), None
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        status, error, tb = Status.OOM, _one_line(exc) or "MemoryError", traceback.format_exc()
    except Exception as exc:
        status = Status.OOM if _is_out_of_memory(exc) else Status.ERROR
        error, tb = _one_line(exc), traceback.format_exc()
    finally:
        if device.type == "cuda" and torch.cuda.is_available():
            state["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    summary = _summarise(cell, problem, curve, state, time.perf_counter() - t_start)
    return CellResult(cell=cell, status=status, summary=summary, curve=tuple(curve),
                      artifacts=state.get("artifacts", {}), error=error, traceback=tb)


def _build_optimizers(
    cell: Cell, problem: Problem, task: Task, optimizer: OptimizerSpec,
    role_specs: Mapping[str, OptimizerSpec], options: RunOptions | None = None,
) -> dict[str, torch.optim.Optimizer]:
    """One optimizer instance per parameter group, honouring per-role overrides."""
    groups = task.parameter_groups()
    overrides = {role: (name, dict(hyper)) for role, name, hyper in cell.roles}
    unknown = set(overrides) - set(groups)
    if unknown:
        raise ValueError(f"{problem.name} has no parameter group {sorted(unknown)[0]!r}; "
                         f"it trains {', '.join(groups)}")
    options = options or RunOptions()
    device = torch.device(cell.device)
    capture = options.cuda_graphs and device.type == "cuda" and isinstance(task, SupervisedTask)
    out = {}
    for role, params in groups.items():
        if role in overrides:
            name, hyper = overrides[role]
            spec = role_specs[name] if name != optimizer.name else optimizer
        else:
            spec, hyper = optimizer, dict(cell.hyper)
        hyper = implementation_hyper(spec, hyper, device, options.opt_impl, capture)
        out[role] = spec.build(list(params), hyper)
    return out


def _is_out_of_memory(exc: Exception) -> bool:
    """A failed allocation that is not reported as MemoryError.

    torch reports a failed CPU allocation as a RuntimeError, and libraries with their own C
    allocations say so in other types: pandas's CSV reader (the MNIST sample's loader) raises
    ``ParserError: Error tokenizing data. C error: out of memory`` under ``--max-memory-mb``.
    """
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | ValueError | OSError) and (
        "can't allocate memory" in text or "cannot allocate memory" in text
        or "out of memory" in text)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _train(
    cell: Cell,
    problem: Problem,
    task: Task,
    optimizers: Mapping[str, torch.optim.Optimizer],
    options: RunOptions,
    curve: list[dict[str, Any]],
    state: dict[str, Any],
    on_window: WindowCallback | None,
) -> None:
    device = torch.device(cell.device)
    steps = cell.steps
    log_every = max(1, steps // max(1, options.windows))
    eval_every = options.eval_every or problem.eval_every or max(1, steps // 10)
    warmup = options.warmup_steps if options.warmup_steps is not None else min(50, steps // 10)
    warmup = max(1, min(warmup, steps))
    edges, evals = _boundaries(steps, log_every, eval_every, warmup)
    # Checkpoints are saved at window edges and add none: the curve (and the last window's
    # loss) does not depend on whether or how often the cell checkpoints.
    saving = _checkpointing(cell, task, options, state)
    target = problem.target_for(dict(cell.params))

    state.update(time_to_target_s=None, steps_to_target=None, train_time=0.0, warmup_s=0.0,
                 steady_time=0.0, steady_steps=0, first_loss=None, losses=[], metrics={},
                 rss_peak=_rss_mb(), steps_done=0, samples_per_step=task.samples_per_step)
    # Resume before the step is built: a CUDA graph captures the addresses of the
    # optimizer's state, which loading a checkpoint replaces.
    start = _resume(cell, task, optimizers, options, curve, state) if saving else 0
    prev_edge = start
    if on_window is not None:  # the restored rows first: a cell killed later keeps them
        for restored in curve:
            on_window(restored, steps)

    step: Callable[[], Tensor | Mapping[str, Tensor] | None]
    if isinstance(task, SupervisedTask):
        step = task.step_function(optimizers)
        state.update(task.paths)
    else:
        def step() -> Tensor | Mapping[str, Tensor] | None:
            return task.train_step(optimizers)

    acc: dict[str, Tensor] = {}
    counts: dict[str, int] = {}  # steps that returned each key in this window
    graph_sum: Tensor | None = getattr(step, "window_sum", None)  # summed inside a graph

    graphs = _graphs_compiled() if _compiling(state) else 0
    synchronize(device)
    t0 = time.perf_counter()
    def add(out: Tensor | Mapping[str, Tensor] | None) -> None:
        if out is None:
            return  # a CUDA graph keeps its own sum
        if isinstance(out, Tensor):  # every step returns it: the window's mean is over n
            if "loss" in acc:
                acc["loss"] += out.detach()
            else:
                acc["loss"] = out.detach().clone()
            return
        for k, v in out.items():
            if k in acc:
                acc[k] += v.detach()
                counts[k] += 1
            else:
                acc[k] = v.detach().clone()
                counts[k] = 1

    # A supervised step's losses are kept, not summed, in the loop: no kernel of ours
    # between two steps. They are summed in step order at the window edge (_window_sum).
    kept: list[Tensor] = []
    packed: list[Tensor] = []  # earlier losses of a long window, _KEEP to a tensor
    supervised = graph_sum is None and isinstance(task, SupervisedTask)
    first_timed = False
    for i in sorted(e for e in edges if e > start):
        todo = i - prev_edge
        if not first_timed:
            # The first step pays lazy initialisation (and compilation): reported apart.
            out = step()
            if supervised:
                kept.append(out.detach())  # type: ignore[union-attr]
            else:
                add(out)
            synchronize(device)
            state["first_step_s"] = time.perf_counter() - t0
            first_timed, todo = True, todo - 1
            if _compiling(state) and _graphs_compiled() == graphs:
                state["compile"] = "no: torch.compile captured no graph of the model " \
                                   "(it runs eagerly)"
        # The hot loops: nothing but the step and, unless a graph sums it, the loss.
        if graph_sum is not None:
            for _ in range(todo):
                step()
        elif supervised:
            keep = kept.append
            for done in range(0, todo, _KEEP):
                for _ in range(min(_KEEP, todo - done)):
                    keep(step().detach())  # type: ignore[union-attr]
                if len(kept) >= _KEEP:  # bound the memory of a long window
                    packed.append(torch.stack(kept))
                    kept.clear()
        else:
            for _ in range(todo):
                add(step())
        # -- window edge: synchronise, read the clock, then the losses -------------
        synchronize(device)
        elapsed = time.perf_counter() - t0
        n = i - prev_edge
        state["train_time"] += elapsed
        # The first window after a resume pays lazy initialisation (and compilation) again.
        if i <= warmup or prev_edge == start > 0:
            state["warmup_s"] += elapsed
        else:
            state["steady_time"] += elapsed
            state["steady_steps"] += n
        row: dict[str, Any] = {"step": i, "elapsed_s": state["train_time"],
                               "samples": i * state["samples_per_step"]}
        if graph_sum is not None:
            acc = {"loss": graph_sum.clone()}
            graph_sum.zero_()
        for k, v in acc.items():
            row[k] = float(v.item()) / counts.get(k, n)
        if kept or packed:
            row["loss"] = _window_sum(packed, kept) / n
            kept, packed = [], []
        acc, counts = {}, {}
        loss = row.get("loss", math.nan)
        state["losses"].append(loss)
        if state["first_loss"] is None:
            state["first_loss"] = loss
        state["rss_peak"] = max(state["rss_peak"], _rss_mb())
        if i in evals:
            state["metrics"] = {k: float(v) for k, v in task.evaluate().items()}
            row.update(state["metrics"])
        curve.append(row)
        if target is not None and state["time_to_target_s"] is None:
            value = row.get(target.metric)
            if value is not None and target.reached(float(value)):
                state.update(time_to_target_s=state["train_time"], steps_to_target=i)
        state["steps_done"] = i
        if on_window is not None:
            on_window(row, steps)
        first = state["first_loss"]
        if not math.isfinite(loss) or (
            first is not None and math.isfinite(first)
            and loss > DIVERGENCE_FACTOR * max(abs(first), 1.0)
        ):
            raise DivergedError(f"loss {loss:.4g} at step {i} (first window {first:.4g})")
        every = options.checkpoint_every
        if saving and every and i // every > prev_edge // every and i < steps:
            _save_checkpoint(cell, task, optimizers, options, curve, state, i)  # N steps on
        prev_edge = i
        synchronize(device)
        t0 = time.perf_counter()
    state["artifacts"] = dict(task.artifacts())
    if options.models_dir is not None and task.modules():
        checkpoints.save_model(options.models_dir / f"{cell.cell_id}.pt", task.modules(),
                               cell.key)
    if saving:
        _checkpoint_path(cell, options).unlink(missing_ok=True)


def _compiling(state: Mapping[str, Any]) -> bool:
    """Whether the cell's model went through torch.compile (its ``compile`` is not "no...")."""
    return not str(state.get("compile", "no")).startswith("no")


def _graphs_compiled() -> int:
    """Graphs torch.compile has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


#: Step losses kept before they are packed into one tensor (a window's memory bound).
_KEEP = 4096


def _window_sum(packed: list[Tensor], kept: list[Tensor]) -> float:
    """The losses' sum (``packed`` 1-D tensors of them, then single ones), added one by
    one in step order in their own dtype, as a running sum on the device (and the
    in-graph sum of a CUDA-graphed step) adds them: the curve does not depend on how the
    sum is taken. A gather and a copy per window."""
    values = torch.cat([*packed, torch.stack(kept)] if kept else packed).cpu()
    if values.dtype in (torch.float32, torch.float64):
        return float(np.add.accumulate(values.numpy())[-1])
    total = values[0].clone()
    for v in values[1:]:
        total += v
    return float(total)


#: Loop counters a checkpoint carries (besides the curve).
_LOOP_STATE = ("time_to_target_s", "steps_to_target", "train_time", "warmup_s", "steady_time",
               "steady_steps", "first_loss", "losses", "metrics", "rss_peak", "steps_done")


def _checkpoint_path(cell: Cell, options: RunOptions) -> Path:
    assert options.checkpoint_dir is not None
    return options.checkpoint_dir / f"{cell.cell_id}.pt"


def _checkpointing(cell: Cell, task: Task, options: RunOptions, state: dict[str, Any]) -> bool:
    if not options.checkpoint_every or options.checkpoint_dir is None:
        return False
    if task.state_dict() is None:
        state["checkpoint"] = "unsupported: the problem cannot be resumed mid-run"
        return False
    state["checkpoint"] = f"every {options.checkpoint_every} steps"
    return True


def _save_checkpoint(cell: Cell, task: Task, optimizers: Mapping[str, torch.optim.Optimizer],
                     options: RunOptions, curve: list[dict[str, Any]], state: dict[str, Any],
                     step: int) -> None:
    checkpoints.save_atomic(_checkpoint_path(cell, options), {
        "format": checkpoints.FORMAT,
        "key": cell.key,
        "step": step,
        "modules": {k: m.state_dict() for k, m in task.modules().items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "task": task.state_dict(),
        "rng": checkpoints.rng_state(torch.device(cell.device)),
        "curve": [dict(r) for r in curve],
        "loop": {k: state[k] for k in _LOOP_STATE},
    })


def _resume(cell: Cell, task: Task, optimizers: Mapping[str, torch.optim.Optimizer],
            options: RunOptions, curve: list[dict[str, Any]], state: dict[str, Any]) -> int:
    """Continue from the cell's checkpoint if there is one; return the step reached."""
    device = torch.device(cell.device)
    # Read onto the CPU: modules and optimizers copy their tensors to their own devices,
    # and generator states must be CPU byte tensors even for a CUDA generator.
    data = checkpoints.load(_checkpoint_path(cell, options))
    if data is None or data.get("key") != cell.key:
        return 0
    for name, module in task.modules().items():
        module.load_state_dict(data["modules"][name])
    for role, opt in optimizers.items():
        opt.load_state_dict(data["optimizers"][role])
    task.load_state_dict(data["task"])
    checkpoints.set_rng_state(data["rng"], device)
    curve[:] = data["curve"]
    state.update(data["loop"])
    state["resumed_from_step"] = int(data["step"])
    return int(data["step"])


def _summarise(cell: Cell, problem: Problem, curve: list[dict[str, Any]],
               state: dict[str, Any], wall_s: float) -> dict[str, Any]:
    target = problem.target_for(dict(cell.params))
    losses = [x for x in state.get("losses", []) if math.isfinite(x)]
    steady_steps = state.get("steady_steps", 0)
    steady_time = state.get("steady_time", 0.0)
    sps = state.get("samples_per_step", cell.batch_size)
    if steady_steps == 0 and curve:
        # Too few steps for a warm-up: fall back to every window.
        steady_steps = state.get("steps_done", 0)
        steady_time = curve[-1]["elapsed_s"]
    rate = steady_steps * sps / steady_time if steady_time > 0 else math.nan
    summary: dict[str, Any] = {
        "steps_done": state.get("steps_done", 0),
        "final_loss": state["losses"][-1] if state.get("losses") else math.nan,
        "best_loss": min(losses) if losses else math.nan,
        "time_to_target_s": _or_nan(state.get("time_to_target_s")),
        "steps_to_target": _or_nan(state.get("steps_to_target")),
        "samples_per_s": rate,
        "step_time_ms": 1000 * steady_time / steady_steps if steady_steps else math.nan,
        "warmup_s": state.get("warmup_s", math.nan),
        "peak_mem_mb": state.get("peak_mem_mb", state.get("rss_peak", math.nan)),
        "wall_s": wall_s,
        "data_source": state.get("data_source"),
        "sample_unit": state.get("sample_unit"),
        "target_metric": target.metric if target else None,
        "target_threshold": target.threshold if target else math.nan,
        "target_mode": target.mode if target else None,
    }
    for extra in ("checkpoint", "resumed_from_step", "opt_impl", "loader", "cuda_graphs",
                  "compile", "first_step_s"):
        if extra in state:
            summary[extra] = state[extra]
    if "first_step_s" in state and _compiling(state):
        summary["compile_s"] = state["first_step_s"]
    for k, v in state.get("metrics", {}).items():
        summary[k] = v
    return summary


def summary_from_curve(cell: Cell, problem: Problem | None, rows: list[dict[str, Any]],
                       wall_s: float) -> dict[str, Any]:
    """A summary rebuilt from the curve rows alone: for cells killed mid-way."""
    losses = [float(r["loss"]) for r in rows if "loss" in r]
    finite = [x for x in losses if math.isfinite(x)]
    target = problem.target_for(dict(cell.params)) if problem is not None else None
    reached = next((r for r in rows if target is not None and target.metric in r
                    and target.reached(float(r[target.metric]))), None)
    metrics: dict[str, float] = {}
    for r in rows:
        if problem is not None and any(m in r for m in problem.metrics):
            metrics = {m: r[m] for m in problem.metrics if m in r}
    rate = step_ms = math.nan
    if len(rows) >= 2 and rows[-1]["elapsed_s"] > rows[0]["elapsed_s"]:
        span_s = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
        span_steps = rows[-1]["step"] - rows[0]["step"]
        # the samples the steps consumed (a DQN step is one environment step, not a batch)
        span_samples = rows[-1].get("samples", rows[-1]["step"] * cell.batch_size) \
            - rows[0].get("samples", rows[0]["step"] * cell.batch_size)
        rate = span_samples / span_s
        step_ms = 1000 * span_s / span_steps
    return {
        "steps_done": rows[-1]["step"] if rows else 0,
        "final_loss": losses[-1] if losses else math.nan,
        "best_loss": min(finite) if finite else math.nan,
        "time_to_target_s": reached["elapsed_s"] if reached else math.nan,
        "steps_to_target": reached["step"] if reached else math.nan,
        "samples_per_s": rate,
        "step_time_ms": step_ms,
        "warmup_s": math.nan,
        "peak_mem_mb": math.nan,
        "wall_s": wall_s,
        "data_source": None,
        "sample_unit": problem.sample_unit if problem is not None else None,
        "target_metric": target.metric if target else None,
        "target_threshold": target.threshold if target else math.nan,
        "target_mode": target.mode if target else None,
        **metrics,
    }


def _or_nan(value: float | int | None) -> float:
    return math.nan if value is None else float(value)

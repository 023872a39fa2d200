"""Running one cell: build, train with timed windows, evaluate, summarise.

Timing follows three rules. The loss is accumulated on the device and read only
at window edges, so the hot loop has no host synchronisation. The device is
synchronised at every window edge before the clock is read. Evaluation happens
at window edges with the clock stopped, so it never counts as training time.
Throughput is measured over the windows after the warm-up.

The pieces: :mod:`~harness.train.schedule` (where windows end),
:mod:`~harness.train.supervised` (the harness's step for supervised problems, and what
a step can do), :mod:`~harness.train.losses` (the hot loop and a window's losses),
:mod:`~harness.train.state` (what the run found out), :mod:`~harness.train.resume`
(checkpoints), :mod:`~harness.train.failures` (how a failed cell ended) and
:mod:`~harness.train.summary` (its summary).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch

from harness.cell import Cell
from harness.errors import DivergedError
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.outcome import CellResult, Status
from harness.params import check_field_name
from harness.problem import BuildContext, Problem, Supervised, Target, Task
from harness.train import checkpoints
from harness.train.device import graphs_compiled, rss_mb, seed_everything, synchronize
from harness.train.failures import classify
from harness.train.fastpaths import implementation_of
from harness.train.flops import StepProbe, probe_step, random_streams_kept
from harness.train.losses import window_losses
from harness.train.lr import ScheduledLr, graphs_fallback, schedule_specs
from harness.train.machine import MachineState
from harness.train.memory import CellMemory
from harness.train.optimizers import build_optimizers
from harness.train.resume import Checkpointer
from harness.train.rungs import check_rung
from harness.train.schedule import Schedule
from harness.train.state import CellState, Choice, Counters
from harness.train.steps import drain_loss_evals, drain_zero_lr_steps, eval_modes, train_modes
from harness.train.summary import summarise, summary_from_curve
from harness.train.supervised import (
    SupervisedTask,
    capabilities_of,
    eval_mode,
    step_of,
    unavailable_paths,
)

__all__ = ["DIVERGENCE_FACTOR", "SupervisedTask", "WindowCallback", "build_optimizers",
           "build_task", "eval_mode", "run_cell", "seed_everything", "summary_from_curve",
           "synchronize"]

#: A window's mean loss above this multiple of the first window's (or non-finite) is divergence.
DIVERGENCE_FACTOR = 1e4

#: Called at each window edge with the curve row just recorded (``step``, ``elapsed_s``,
#: losses, and metrics when evaluated) and the cell's step budget; a cell resumed from a
#: checkpoint first passes each row the checkpoint restored.
WindowCallback = Callable[[Mapping[str, Any], int], None]


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


def run_cell(
    cell: Cell,
    problem: Problem,
    optimizer: OptimizerSpec,
    options: RunOptions,
    on_window: WindowCallback | None = None,
    role_specs: Mapping[str, OptimizerSpec] | None = None,
) -> CellResult:
    """Train one cell and return its record. Never raises for a failure of the cell itself.

    ``role_specs`` maps the optimizer names of ``cell.roles`` to their specs. A timing run
    (``cell.timing_run``, ``--repeats``) neither checkpoints nor saves its networks: the
    cell's own run does, under the same cell id.
    """
    if cell.timing_run:
        options = replace(options, checkpoint_every=None, checkpoint_dir=None,
                          models_dir=None)
    t_start = time.perf_counter()
    device = torch.device(cell.device)
    curve: list[dict[str, Any]] = []
    state = CellState()
    status, error, tb = Status.OK, None, None
    memory, machine = CellMemory(device), MachineState()
    try:
        memory.start()
        task = build_task(problem, cell, options)
        state.data_source = task.data_source
        optimizers = build_optimizers(cell, problem, task, optimizer, role_specs or {}, options)
        state.opt_impl = ",".join(sorted({implementation_of(o) for o in optimizers.values()}))
        state.paths = unavailable_paths(task, options, device)
        train(cell, problem, task, optimizers, options, curve, state, on_window, memory)
    except Exception as exc:
        status, error, tb = classify(exc)
    finally:
        state.peak_mem_mb = memory.peak(state.counters.rss_peak if state.counters else math.nan)
        state.peak_mem_method = memory.method
    summary = {**summarise(cell, problem, state.measured(cell, curve),
                           time.perf_counter() - t_start), **machine.summary()}
    return CellResult(cell=cell, status=status, summary=summary, curve=tuple(curve),
                      artifacts=state.artifacts, error=error, traceback=tb)


def train(cell: Cell, problem: Problem, task: Task,
          optimizers: Mapping[str, torch.optim.Optimizer], options: RunOptions,
          curve: list[dict[str, Any]], state: CellState, on_window: WindowCallback | None,
          memory: CellMemory | None = None) -> None:
    """The loop: windows of steps, timed; at each edge a curve row, maybe an evaluation,
    maybe a checkpoint. Checkpoints add no edge: the curve does not depend on them."""
    device, schedule = torch.device(cell.device), Schedule.for_cell(cell, problem, options)
    saver = Checkpointer.for_cell(cell, task, options, state)
    target = problem.target_for(dict(cell.params))
    state.counters, state.samples_per_step = Counters(rss_peak=rss_mb()), task.samples_per_step
    train_modes(optimizers.values())  # before the probe's copy steps
    # Once per cell, on a copy and off the clock: the work of one step (FLOPs), and the
    # losses at initialisation.
    probe = probe_step(task, optimizers, device)
    state.flops_per_step = probe.flops
    if memory is not None:  # the copy's memory is not the cell's
        memory.restart()
    # The base learning rates are read before a checkpoint's (scheduled) ones are loaded.
    lr = ScheduledLr(cell, optimizers, schedule_specs(cell)) if cell.scheduled else None
    # Resume before the step is built: a CUDA graph captures the addresses of the
    # optimizer's state, which loading a checkpoint replaces.
    start = saver.resume(task, optimizers, curve, state) if saver else 0
    run = state.counters
    if start == 0:
        curve.append(_step_zero(task, probe, run, device, optimizers, lr))
        _note_target(target, run, curve[0])
    if on_window is not None:  # step 0, or the restored rows: a cell killed later keeps them
        for restored in curve:
            on_window(restored, cell.steps)

    _without_graphs(graphs_fallback(cell, options), task, state)
    step = step_of(task, optimizers, state.paths)
    losses = window_losses(step, capabilities_of(task).one_loss)
    if lr is not None:
        step = lr.wrap(step, start)
    graphs_before = graphs_compiled() if state.paths.compiling else 0
    prev = start
    synchronize(device)
    t0 = time.perf_counter()
    for i in schedule.edges_after(start):
        todo = i - prev
        if prev == start:  # the first step pays lazy set-up (and compilation): timed apart
            losses.run(step, 1)
            synchronize(device)
            state.first_step_s, todo = time.perf_counter() - t0, todo - 1
            if state.paths.compiling and graphs_compiled() == graphs_before:
                state.paths.compile = Choice.skipped(
                    "torch.compile captured no graph of the model (it runs eagerly)")
        losses.run(step, todo)  # the hot loop

        # -- window edge: synchronise, read the clock, then the losses ------------------
        synchronize(device)
        # The first window after a resume pays lazy set-up (and compilation) again.
        run.add_window(time.perf_counter() - t0, i - prev,
                       warming_up=i <= schedule.warmup or prev == start > 0)
        row: dict[str, Any] = {"step": i, "elapsed_s": run.train_time,
                               "samples": i * task.samples_per_step, **losses.read(i - prev),
                               **(lr.row() if lr is not None else {})}
        run.add_loss(row.get("loss", math.nan))
        run.rss_peak = max(run.rss_peak, rss_mb())
        run.count_loss_evals(drain_loss_evals(optimizers.values()),
                             drain_zero_lr_steps(optimizers.values()))
        if schedule.evaluates(prev, i):
            with eval_modes(optimizers.values()):
                run.metrics = _evaluated(task)
            row.update(run.metrics)
        curve.append(row)
        _note_target(target, run, row)
        run.steps_done = i
        if on_window is not None:
            on_window(row, cell.steps)
        _check_divergence(run, i, prev, losses.first_nonfinite)
        check_rung(cell, problem, row)
        if saver and schedule.checkpoints(prev, i):  # the training state, in train mode
            saver.save(task, optimizers, curve, run, i)
        prev = i
        synchronize(device)
        t0 = time.perf_counter()
    with eval_modes(optimizers.values()):
        _finish(cell, task, options, state, saver)


def _evaluated(task: Task) -> dict[str, float]:
    """The task's evaluation metrics. A name that would break a table's header, a file name
    or the report (only declared names are checked when the plugin loads) ends the cell,
    naming it."""
    metrics = task.evaluate()
    for name in metrics:
        check_field_name("metric", name)
    return {k: float(v) for k, v in metrics.items()}


def _step_zero(task: Task, probe: StepProbe, run: Counters, device: torch.device,
               optimizers: Mapping[str, torch.optim.Optimizer],
               lr: ScheduledLr | None) -> dict[str, Any]:
    """The step-0 row, evaluated in eval mode, with the rate the first step will take."""
    with eval_modes(optimizers.values()):
        row = _initial_row(task, probe, run, device)
    if lr is not None:
        lr.apply(0)
        row.update(lr.row())
    return row


def _initial_row(task: Task, probe: StepProbe, run: Counters,
                 device: torch.device) -> dict[str, Any]:
    """Step 0, off the clock: the losses of the first step at the initial parameters (from
    the probe, on a copy) and the evaluation metrics, drawing no random number the
    training would see."""
    row: dict[str, Any] = {"step": 0, "elapsed_s": 0.0, "samples": 0, **probe.losses}
    with random_streams_kept(device):
        run.metrics = _evaluated(task)
    row.update(run.metrics)
    return row


def _without_graphs(reason: str | None, task: Task, state: CellState) -> None:
    """``--cuda-graphs`` not taken for this cell: its step runs eagerly, its row says why."""
    if reason is not None and isinstance(task, SupervisedTask):
        task.options = replace(task.options, cuda_graphs=False)
        state.paths.cuda_graphs = Choice.skipped(reason)


def _note_target(target: Target | None, run: Counters, row: Mapping[str, Any]) -> None:
    """Time, steps and samples to the target, the first time a row meets it."""
    if target is None or run.time_to_target_s is not None:
        return
    value = row.get(target.metric)
    if value is not None and target.reached(float(value)):
        run.time_to_target_s, run.steps_to_target = run.train_time, row["step"]
        run.samples_to_target = row["samples"]


def _check_divergence(run: Counters, step: int, prev: int = 0,
                      first_bad: int | None = None) -> None:
    """Raise DivergedError when the window ending at ``step`` (after ``prev``) diverged,
    naming the step whose loss first went non-finite where the window kept each step's
    loss (``first_bad``, from 1), else the window's steps."""
    loss, first = run.losses[-1], run.first_loss
    if not math.isfinite(loss) or (
        first is not None and math.isfinite(first)
        and loss > DIVERGENCE_FACTOR * max(abs(first), 1.0)
    ):
        if first_bad is not None and not math.isfinite(loss):
            where = f"at step {prev + first_bad}"
        else:
            where = f"at step {step}" if step - prev <= 1 else f"in steps {prev + 1}-{step}"
        raise DivergedError(f"loss {loss:.4g} {where} (first window {first:.4g})")


def _finish(cell: Cell, task: Task, options: RunOptions, state: CellState,
            saver: Checkpointer | None) -> None:
    """After the last window: the artifacts, the trained model if asked for, and the
    checkpoint removed."""
    state.artifacts = dict(task.artifacts())
    if options.models_dir is not None and task.modules():
        checkpoints.save_model(options.models_dir / f"{cell.cell_id}.pt", task.modules(),
                               cell.key)
    if saver is not None:
        saver.discard()

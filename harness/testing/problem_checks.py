"""The conformance checks of a problem (see :mod:`harness.testing.conformance`): its
metadata, that it builds, steps, trains, is deterministic, round-trips its state and
evaluates what it declares."""

from __future__ import annotations

import io
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from harness.executor import RunOptions
from harness.outcome import CellResult
from harness.problem import Param, Problem, Target, check_name
from harness.testing.cells import build_optimizers, step_function
from harness.testing.conformance import (
    PROBLEM_CHECKS,
    CheckContext,
    ConformanceFailure,
    _adam,
    _cell,
    _check_identity,
    _describe,
    _fail,
    _modules,
    _problem_check,
    _same,
    _seed,
    _tensors,
    _train,
    build,
)
from harness.train.loop import SupervisedTask, eval_mode, run_cell


@_problem_check
def problem_metadata(problem: Problem, context: CheckContext) -> None:
    """Name, description, budgets, metrics, target, parameters and roles are well formed."""
    fail = _fail("metadata", problem)
    if not isinstance(problem, Problem):
        raise fail(f"register_models must add harness.Problem instances, got {type(problem)}")
    _check_identity(fail, "model", problem.name, problem.description)
    for attr in ("batch_size", "steps"):
        value = getattr(problem, attr)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail(f"{attr} must be a positive integer, got {value!r}")
    if problem.eval_every is not None and (
        isinstance(problem.eval_every, bool) or not isinstance(problem.eval_every, int)
        or problem.eval_every <= 0
    ):
        raise fail(f"eval_every must be None or a positive integer, got {problem.eval_every!r}")
    metrics = problem.metrics
    if not isinstance(metrics, tuple | list) or not all(
        isinstance(m, str) and m for m in metrics
    ):
        raise fail(f"metrics must be a tuple of metric names, got {metrics!r}")
    if len(set(metrics)) != len(metrics):
        raise fail(f"metrics lists a name twice: {metrics!r}")
    _check_target(problem.target, metrics, fail, "target")
    names: set[str] = set()
    for param in problem.params:
        if not isinstance(param, Param):
            raise fail(f"params must hold harness.Param instances, got {param!r}")
        try:
            check_name("parameter", param.name)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if param.name in names:
            raise fail(f"parameter {param.name!r} is declared twice")
        if param.name in ("steps", "batch_size"):
            raise fail(f"parameter {param.name!r} clashes with the grid's own setting")
        if param.name in metrics:
            raise fail(f"parameter {param.name!r} has a metric's name: the summary table "
                       "has one column for both")
        names.add(param.name)
        for value in (param.default, *(param.choices or ())):
            try:
                param.coerce(value, where=f"parameter {param.name!r}")
            except Exception as exc:
                raise fail(f"parameter {param.name!r}: its own value {value!r} is rejected: "
                           f"{exc}") from None
    roles = problem.roles
    if not isinstance(roles, tuple | list) or not roles or not all(
        isinstance(r, str) and r for r in roles
    ) or len(set(roles)) != len(roles):
        raise fail(f"roles must be a non-empty tuple of distinct names, got {roles!r}")
    if not isinstance(problem.sample_unit, str) or not problem.sample_unit:
        raise fail(f"sample_unit must be a non-empty string, got {problem.sample_unit!r}")
    skips = problem.conformance_skip
    if not isinstance(skips, Mapping):
        raise fail(f"conformance_skip must map check names to reasons, got {skips!r}")
    for check, reason in skips.items():
        if check not in PROBLEM_CHECKS or check == "metadata":
            known = ", ".join(c for c in PROBLEM_CHECKS if c != "metadata")
            raise fail(f"conformance_skip names an unknown check {check!r}; known: {known}")
        if not isinstance(reason, str) or not reason.strip():
            raise fail(f"conformance_skip[{check!r}] needs a reason, got {reason!r}")
    # target_for(params): at the defaults, and with each choice of each parameter.
    defaults = problem.defaults()
    variants: list[tuple[dict[str, Any], str]] = [({}, "the defaults")] + [
        ({param.name: choice}, f"{param.name}={choice!r}")
        for param in problem.params for choice in (param.choices or ())
        if choice != param.default
    ]
    for change, where in variants:
        try:
            target = problem.target_for(defaults | change)
        except Exception as exc:
            raise fail(f"target_for raised at {where}: {type(exc).__name__}: {exc}") from None
        _check_target(target, metrics, fail, f"target_for at {where}:")


def _check_target(target: object, metrics: Sequence[str],
                  fail: Callable[[str], ConformanceFailure], what: str) -> None:
    """A target is None or a Target on a declared metric (or the loss), min or max,
    with a finite threshold."""
    if target is None:
        return
    if not isinstance(target, Target):
        raise fail(f"{what} must be a harness.Target or None, got {target!r}")
    if target.metric not in (*metrics, "loss"):
        raise fail(f"{what} metric {target.metric!r} is neither a declared metric "
                   f"({', '.join(metrics) or 'none'}) nor 'loss'")
    if target.mode not in ("min", "max"):
        raise fail(f"{what} mode must be 'min' or 'max', got {target.mode!r}")
    if isinstance(target.threshold, bool) or not isinstance(target.threshold, int | float) \
            or not math.isfinite(target.threshold):
        raise fail(f"{what} threshold must be a finite number, got {target.threshold!r}")


@_problem_check
def problem_builds(problem: Problem, context: CheckContext) -> None:
    """Builds on the CPU for two seeds; its parameter groups are its declared roles."""
    fail = _fail("builds", problem)
    settings = context.settings
    for seed in settings.seeds:
        try:
            task = build(problem, settings, seed)
        except Exception as exc:
            raise fail(f"build() for seed {seed} raised {_describe(exc)}") from exc
        groups = {role: list(params) for role, params in task.parameter_groups().items()}
        if set(groups) != set(problem.roles):
            raise fail(f"parameter_groups() has roles {sorted(groups)}, but the problem "
                       f"declares roles = {tuple(problem.roles)!r}")
        device = torch.device(settings.device)
        for role, params in groups.items():
            if not params:
                raise fail(f"parameter group {role!r} is empty")
            for p in params:
                if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                    raise fail(f"parameter group {role!r} holds something that is not a "
                               "trainable leaf tensor")
                if p.device.type != device.type:
                    raise fail(f"parameter group {role!r} has a parameter on {p.device}, "
                               f"but the cell's device is {device} (use ctx.device)")
        if isinstance(task, SupervisedTask):
            for what in ("inputs", "targets"):
                tensor = getattr(task.built, what)
                if not isinstance(tensor, Tensor) or tensor.device.type != device.type:
                    raise fail(f"Supervised.{what} must be a tensor on the cell's device "
                               "(move data with .to(ctx.device) in build)")
        if not isinstance(task.data_source, str) or not task.data_source:
            raise fail(f"data_source must be a non-empty string, got {task.data_source!r}")
        if isinstance(task.samples_per_step, bool) or not isinstance(task.samples_per_step, int) \
                or task.samples_per_step <= 0:
            raise fail(f"samples_per_step must be a positive integer, got "
                       f"{task.samples_per_step!r}")


@_problem_check
def problem_step(problem: Problem, context: CheckContext) -> None:
    """One training step runs and returns finite scalar losses, including "loss"."""
    fail = _fail("step", problem)
    task = build(problem, context.settings, seed=0)
    optimizers = build_optimizers(task, _adam(), {"lr": context.settings.lr},
                                  context.settings.device)
    try:
        out = step_function(task, optimizers)()
    except Exception as exc:
        raise fail(f"the first training step raised {_describe(exc)}") from exc
    losses = {"loss": out} if isinstance(out, Tensor) else out
    if not isinstance(losses, Mapping) or "loss" not in losses:
        raise fail(f"train_step must return a mapping of scalar tensors with a 'loss' entry, "
                   f"got {type(out).__name__}")
    for key, value in losses.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise fail(f"loss {key!r} must be a scalar tensor (keep it on the device, do not "
                       f"call .item()), got {value!r}")
        if not math.isfinite(float(value.detach())):
            raise fail(f"loss {key!r} is {float(value.detach())} after one step")


@_problem_check
def problem_trains(problem: Problem, context: CheckContext) -> None:
    """Within a few dozen steps of Adam, every parameter group changes."""
    fail = _fail("trains", problem)
    settings = context.settings
    task = build(problem, settings, seed=0, steps=settings.descent_steps)
    before = {role: [p.detach().clone() for p in params]
              for role, params in task.parameter_groups().items()}
    optimizers = build_optimizers(task, _adam(), {"lr": settings.lr}, settings.device)
    step = step_function(task, optimizers)
    unchanged = set(before)
    for _ in range(settings.descent_steps):
        step()
        for role, params in task.parameter_groups().items():
            if role in unchanged and any(
                not torch.equal(a.detach(), b) for a, b in zip(params, before[role], strict=True)
            ):
                unchanged.discard(role)
        if not unchanged:
            return
    raise fail(f"{settings.descent_steps} steps of Adam left every parameter of group(s) "
               f"{sorted(unchanged)} unchanged: is the loss connected to them, and does "
               "train_step call each role's optimizer?")


@_problem_check
def problem_loss_decreases(problem: Problem, context: CheckContext) -> None:
    """A few dozen steps of Adam (lr 0.01) lower the training loss."""
    fail = _fail("loss_decreases", problem)
    settings = context.settings
    task = build(problem, settings, seed=0, steps=settings.descent_steps)
    losses = _train(task, settings, settings.descent_steps)
    k = max(1, min(5, len(losses) // 4))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    if not all(math.isfinite(x) for x in losses):
        raise fail(f"the loss became non-finite within {len(losses)} steps: {losses}")
    if not last < first:
        raise fail(f"the mean loss of the last {k} of {len(losses)} steps of Adam (lr "
                   f"{settings.lr}) is {last:.6g}, not below the first {k}'s {first:.6g}; "
                   "if that is expected for this problem, opt out with "
                   "conformance_skip = {'loss_decreases': 'why'}")


@_problem_check
def problem_deterministic(problem: Problem, context: CheckContext) -> None:
    """The same seed gives the same first losses (data and initialisation follow the seed)."""
    fail = _fail("deterministic", problem)
    settings = context.settings
    runs = [_train(build(problem, settings, seed=0, steps=settings.short_steps), settings,
                   settings.short_steps) for _ in range(2)]
    for i, (a, b) in enumerate(zip(*runs, strict=True)):
        if not _same(a, b, rel_tol=1e-6, abs_tol=1e-9):
            raise fail(f"two builds with seed 0 give different losses at step {i + 1}: "
                       f"{a!r} vs {b!r} (draw data from ctx.generator()/ctx.cpu_generator() "
                       "and weights after the harness seeds torch)")


@_problem_check
def problem_state_dict_round_trip(problem: Problem, context: CheckContext) -> None:
    """Loading a trained state_dict into a fresh build restores identical outputs."""
    fail = _fail("state_dict_round_trip", problem)
    settings = context.settings
    trained = build(problem, settings, seed=0, steps=settings.short_steps)
    _train(trained, settings, settings.short_steps)
    fresh = build(problem, settings, seed=0, steps=settings.short_steps)
    saved, restored = _modules(trained), _modules(fresh)
    if not saved:
        raise fail("Task.modules() returns no modules, so its state cannot be saved; return "
                   "its networks by name")
    if set(saved) != set(restored):
        raise fail(f"modules() names differ between builds: {sorted(saved)} vs "
                   f"{sorted(restored)}")
    nan = [f"{name}.{key}" for name, module in saved.items()
           for key, t in module.state_dict().items()
           if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]
    if nan:
        raise fail(f"the weights are NaN or infinite after {settings.short_steps} training "
                   f"steps ({', '.join(nan[:3])}{', ...' if len(nan) > 3 else ''}): training "
                   "diverged, so a round trip cannot be compared (NaN is never equal to NaN)")
    for name, module in saved.items():
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        buffer.seek(0)
        try:
            state = torch.load(buffer, weights_only=True)
            restored[name].load_state_dict(state)
        except Exception as exc:
            raise fail(f"module {name!r}: saving and loading its state_dict raised "
                       f"{_describe(exc)}") from exc
    if isinstance(trained, SupervisedTask):
        x = trained.built.inputs[: settings.max_batch_size]
        outputs = []
        for task in (trained, fresh):
            with eval_mode(*_modules(task).values()):
                _seed(0)
                forward = task.forward
                out = task.model(x) if forward is None else forward(task.model, x)
                outputs.append([t.detach().clone() for t in _tensors(out)])
        for i, (a, b) in enumerate(zip(*outputs, strict=True)):
            if a.shape != b.shape or not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
                diff = (f"max abs difference {(a - b).abs().max().item():.3g}"
                        if a.shape == b.shape else f"shapes {tuple(a.shape)} and {tuple(b.shape)}")
                raise fail(f"outputs differ after loading the trained model's state_dict into "
                           f"a fresh build (output {i}, {diff}): state "
                           "that changes outputs lives outside the state_dict (a plain "
                           "attribute or a non-persistent buffer?)")
    metrics = []
    for task in (trained, fresh):
        _seed(0)
        metrics.append({k: float(v) for k, v in task.evaluate().items()})
    for key in metrics[0]:
        a, b = metrics[0][key], metrics[1].get(key, math.nan)
        if not _same(a, b, rel_tol=1e-5, abs_tol=1e-7):
            raise fail(f"evaluate() gives {key} = {a!r} on the trained build but {b!r} on a "
                       "fresh build with its state_dict loaded: state that changes results "
                       "lives outside the state_dict")


@_problem_check
def problem_evaluate_metrics(problem: Problem, context: CheckContext) -> None:
    """evaluate() returns exactly the declared metrics, as Python numbers."""
    fail = _fail("evaluate_metrics", problem)
    result = _evaluate_fresh(problem, context, fail)
    declared = set(problem.metrics)
    if set(result) != declared:
        missing, extra = sorted(declared - set(result)), sorted(set(result) - declared)
        raise fail(f"evaluate() returned {sorted(result)}, declared metrics are "
                   f"{sorted(declared)} (missing {missing}, undeclared {extra})")
    for key, value in result.items():
        if isinstance(value, Tensor):
            raise fail(f"metric {key!r} is a tensor; return float(value)")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(f"metric {key!r} must be a float, got {value!r}")


@_problem_check
def problem_metrics_finite(problem: Problem, context: CheckContext) -> None:
    """Every metric is finite on a freshly built model (NaN there usually hides a bug)."""
    fail = _fail("metrics_finite", problem)
    for key, value in _evaluate_fresh(problem, context, fail).items():
        if not isinstance(value, Tensor | numbers.Real) or not math.isfinite(float(value)):
            raise fail(f"metric {key!r} is {value!r} on a freshly built model; if that is by "
                       "design (say, a moving average that needs many episodes), opt out with "
                       "conformance_skip = {'metrics_finite': 'why'}")


def _evaluate_fresh(problem: Problem, context: CheckContext,
                    fail: Callable[[str], ConformanceFailure]) -> dict[str, Any]:
    task = build(problem, context.settings, seed=0)
    try:
        return dict(task.evaluate())
    except Exception as exc:
        raise fail(f"evaluate() raised {_describe(exc)}") from exc


@_problem_check
def problem_run_cell(problem: Problem, context: CheckContext) -> None:
    """A short cell runs through the harness's loop: status ok, metrics and artifacts recorded."""
    fail = _fail("run_cell", problem)
    settings = context.settings
    steps = 4
    cell = _cell(problem, settings, seed=0, steps=steps)
    result: CellResult = run_cell(
        cell, problem, _adam(),
        RunOptions(data_dir=settings.data_dir, windows=2, eval_every=steps),
    )
    if result.status != "ok":
        tail = (result.traceback or "").strip().splitlines()[-3:]
        raise fail(f"a {steps}-step cell ended with status {result.status!r}: {result.error}"
                   + ("\n" + "\n".join(tail) if tail else ""))
    for metric in problem.metrics:
        if metric not in result.summary:
            raise fail(f"metric {metric!r} is missing from the cell's summary")
    try:
        json.dumps(result.artifacts, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise fail(f"artifacts are not JSON-serialisable: {_describe(exc)}") from None


@_problem_check
def problem_validation_metric(problem: Problem, context: CheckContext) -> None:
    """A declared ``validation_metric`` is one of the metrics (not a test metric) and is
    reported, finite, at every evaluation of a short cell and in its summary."""
    fail = _fail("validation_metric", problem)
    metric = problem.validation_metric
    if metric is None:  # no validation split: tuned on the training loss only
        return
    if not isinstance(metric, str) or metric not in problem.metrics:
        raise fail(f"validation_metric {metric!r} is not one of the declared metrics "
                   f"({', '.join(problem.metrics) or 'none'})")
    if metric.startswith("test_"):
        raise fail(f"validation_metric {metric!r} is measured on the test split: selecting "
                   "on it would choose on the data the result is reported on")
    settings = context.settings
    steps = 4
    result = run_cell(_cell(problem, settings, seed=0, steps=steps), problem, _adam(),
                      RunOptions(data_dir=settings.data_dir, windows=2, eval_every=2))
    if result.status != "ok":
        raise fail(f"a {steps}-step cell ended with status {result.status!r}: {result.error}")
    evaluations = [r for r in result.curve if any(m in r for m in problem.metrics)]
    for row in evaluations:
        value = row.get(metric)
        if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise fail(f"the evaluation at step {row.get('step')} reports {metric} = "
                       f"{value!r}, not a finite number")
    if not evaluations or metric not in result.summary:
        raise fail(f"validation_metric {metric!r} is missing from the cell's summary")

"""The conformance checks: what the harness relies on from every problem and optimizer.

Each check is a plain function of one problem (or one optimizer spec) and a
:class:`CheckContext`; it returns nothing when the contract holds and raises
:class:`ConformanceFailure` when it does not, with a message that names the check
and the problem or optimizer. The pytest suite (:mod:`harness.testing.suite`)
turns every check into a test; nothing here needs pytest.

The checks run on the CPU with few steps and small batches: a plugin author's CI
(and ours, over every built-in) should run the whole suite in about a minute.

A problem may opt out of checks that do not apply to it with
:attr:`harness.Problem.conformance_skip`; an optimizer with a
``conformance_skip`` mapping on its factory (class or function). The suite
reports each opt-out as a skip with its reason.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import numbers
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.cell import Cell
from harness.executor import RunOptions
from harness.optimizer import OptimizerSpec
from harness.outcome import CellResult
from harness.problem import Param, Problem, Target, check_name
from harness.testing.cells import build_optimizers, default_data_dir, step_function
from harness.train.loop import SupervisedTask, build_task, eval_mode, run_cell


class ConformanceFailure(AssertionError):
    """A check found a broken contract; the message says which check and for whom."""

    def __init__(self, check: str, kind: str, name: str, detail: str) -> None:
        self.check, self.kind, self.name, self.detail = check, kind, name, detail
        super().__init__(f"conformance check {check!r} failed for {kind} {name!r}: {detail}")


class ConformanceSkip(Exception):
    """The problem or optimizer opted out of a check, or the check does not apply."""


@dataclass(frozen=True)
class Settings:
    """How the checks run. The defaults keep a built-in problem under a few seconds."""

    device: str = "cpu"
    #: Seeds every problem must build for.
    seeds: tuple[int, ...] = (0, 1)
    #: Batch sizes above this are reduced, to keep the checks cheap.
    max_batch_size: int = 32
    #: Steps of Adam for ``loss_decreases``, and its learning rate.
    descent_steps: int = 40
    lr: float = 0.01
    #: Steps compared by ``deterministic`` and trained before ``state_dict_round_trip``.
    short_steps: int = 3
    data_dir: Path = field(default_factory=default_data_dir)


class CheckContext:
    """Settings plus what several checks share: the problems optimizers are tried on."""

    def __init__(self, settings: Settings | None = None,
                 reference_problems: tuple[Problem, ...] = ()) -> None:
        self.settings = settings or Settings()
        self.reference_problems = reference_problems
        self._groups: dict[str, dict[str, list[Tensor]] | None] = {}

    def parameter_groups(self, problem: Problem) -> dict[str, list[Tensor]] | None:
        """Fresh leaf copies of the problem's parameter groups (seed 0); None if it won't build.

        Built once per problem: optimizers are then tried on copies, so a problem
        that does not build fails its own checks, not every optimizer's.
        """
        if problem.name not in self._groups:
            try:
                task = build(problem, self.settings, seed=0)
                groups = {role: [p.detach().clone() for p in params]
                          for role, params in task.parameter_groups().items()}
            except Exception:
                groups = None
            self._groups[problem.name] = groups
        cached = self._groups[problem.name]
        if cached is None:
            return None
        return {role: [t.clone().requires_grad_(True) for t in ts] for role, ts in cached.items()}


ProblemCheck = Callable[[Problem, CheckContext], None]
OptimizerCheck = Callable[[OptimizerSpec, CheckContext], None]

#: Problem checks by name, in the order the suite runs them.
PROBLEM_CHECKS: dict[str, ProblemCheck] = {}
#: Optimizer checks by name, in the order the suite runs them.
OPTIMIZER_CHECKS: dict[str, OptimizerCheck] = {}


def _problem_check(fn: ProblemCheck) -> ProblemCheck:
    PROBLEM_CHECKS[fn.__name__.removeprefix("problem_")] = fn
    return fn


def _optimizer_check(fn: OptimizerCheck) -> OptimizerCheck:
    OPTIMIZER_CHECKS[fn.__name__.removeprefix("optimizer_")] = fn
    return fn


# -- running a check -----------------------------------------------------------------
def skip_reason(subject: Problem | OptimizerSpec, check: str) -> str | None:
    """The reason ``subject`` gave for opting out of ``check``, or None."""
    owner = subject if isinstance(subject, Problem) else subject.factory
    skips = getattr(owner, "conformance_skip", None) or {}
    reason = skips.get(check) if isinstance(skips, Mapping) else None
    return str(reason) if reason is not None else None


def check_problem(problem: Problem, check: str, context: CheckContext | None = None) -> None:
    """Run one problem check; raise ConformanceFailure, or ConformanceSkip on an opt-out."""
    reason = skip_reason(problem, check) if check != "metadata" else None
    if reason is not None:
        raise ConformanceSkip(f"problem {problem.name!r} opts out of {check!r}: {reason}")
    PROBLEM_CHECKS[check](problem, context or CheckContext())


def check_optimizer(spec: OptimizerSpec, check: str, context: CheckContext | None = None) -> None:
    """Run one optimizer check; raise ConformanceFailure, or ConformanceSkip on an opt-out."""
    reason = skip_reason(spec, check) if check != "metadata" else None
    if reason is not None:
        raise ConformanceSkip(f"optimizer {spec.name!r} opts out of {check!r}: {reason}")
    OPTIMIZER_CHECKS[check](spec, context or CheckContext())


# -- helpers -------------------------------------------------------------------------
def _cell(problem: Problem, settings: Settings, seed: int, steps: int) -> Cell:
    return Cell(problem=problem.name, optimizer="adam", device=settings.device, seed=seed,
                steps=max(1, steps), batch_size=min(problem.batch_size, settings.max_batch_size),
                params=tuple(sorted(problem.defaults().items())),
                hyper=(("lr", settings.lr),))


def build(problem: Problem, settings: Settings, seed: int, steps: int = 1) -> Any:
    """The problem built as the harness builds it for one cell (supervised: a SupervisedTask)."""
    return build_task(problem, _cell(problem, settings, seed, steps),
                      RunOptions(data_dir=settings.data_dir))


def _adam() -> OptimizerSpec:
    return OptimizerSpec("adam", torch.optim.Adam)


def _train(task: Any, settings: Settings, steps: int) -> list[float]:
    """``steps`` steps of Adam; the losses, read every step (nothing here is timed)."""
    optimizers = build_optimizers(task, _adam(), {"lr": settings.lr}, settings.device)
    step = step_function(task, optimizers)
    return [_loss_value(step()) for _ in range(steps)]


def _loss_value(out: Any) -> float:
    loss = out if isinstance(out, Tensor) else out["loss"]
    return float(loss.detach())


def _fail(check: str, problem: Problem) -> Callable[[str], ConformanceFailure]:
    return lambda detail: ConformanceFailure(check, "problem", problem.name, detail)


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _same(a: float, b: float, *, rel_tol: float, abs_tol: float) -> bool:
    """Equal within tolerance, NaN equal to NaN (a metric not available yet on both sides)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _tensors(value: Any) -> Iterator[Tensor]:
    """Every tensor in a model output (a tensor, or nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _tensors(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _modules(task: Any) -> dict[str, nn.Module]:
    return dict(task.modules())


def _check_identity(fail: Callable[[str], ConformanceFailure], kind: str, name: str,
                    description: object) -> None:
    """A valid registered name and a non-empty one-line description."""
    try:
        check_name(kind, name)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not isinstance(description, str) or not description.strip():
        subject = "problem" if kind == "model" else kind
        raise fail(f"description is empty: `harness list` shows it as the {subject}'s summary")


# -- problem checks -------------------------------------------------------------------
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


# -- optimizer checks -----------------------------------------------------------------
def _ofail(check: str, spec: OptimizerSpec,
           where: str = "") -> Callable[[str], ConformanceFailure]:
    prefix = f"{where}: " if where else ""
    return lambda detail: ConformanceFailure(check, "optimizer", spec.name, prefix + detail)


def _toy_parameters() -> list[Tensor]:
    g = torch.Generator().manual_seed(12345)
    return [torch.randn(5, 3, generator=g).requires_grad_(True),
            torch.randn(3, generator=g).requires_grad_(True)]


def _toy_grads(params: list[Tensor]) -> list[Tensor]:
    g = torch.Generator().manual_seed(54321)
    return [torch.randn(p.shape, generator=g) for p in params]


def _build(spec: OptimizerSpec, params: Any, overrides: Mapping[str, Any] | None = None,
           fail: Callable[[str], ConformanceFailure] | None = None) -> torch.optim.Optimizer:
    fail = fail or _ofail("builds", spec)
    try:
        hyper = spec.resolve(dict(overrides or {}))
    except Exception as exc:
        raise fail(f"its hyperparameters {dict(overrides or {})} are rejected: "
                   f"{_describe(exc)}") from exc
    try:
        opt = spec.build(params, hyper)
    except Exception as exc:
        raise fail(f"building it with {hyper} raised {_describe(exc)}") from exc
    if not isinstance(opt, torch.optim.Optimizer):
        raise fail(f"the factory returned {type(opt).__name__}, not a torch.optim.Optimizer")
    return opt


def _step(opt: torch.optim.Optimizer, params: list[Tensor], grads: list[Tensor],
          fail: Callable[[str], ConformanceFailure]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    try:
        opt.step()
    except Exception as exc:
        raise fail(f"step() raised {_describe(exc)} (the harness calls step() without a "
                   "closure)") from exc


def _moved(before: list[Tensor], after: list[Tensor]) -> float:
    return math.sqrt(sum(float((a.detach() - b).pow(2).sum()) for a, b in
                         zip(after, before, strict=True)))


def _takes_lr(spec: OptimizerSpec) -> bool:
    accepted = spec.accepted()
    return "lr" in spec.defaults or (accepted is not None and "lr" in accepted) or (
        accepted is None and _signature_has(spec, "lr"))


def _signature_has(spec: OptimizerSpec, name: str) -> bool:
    try:
        return name in inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):
        return False


@_optimizer_check
def optimizer_metadata(spec: OptimizerSpec, context: CheckContext) -> None:
    """Name and description are set; the defaults resolve and are all accepted by the factory."""
    fail = _ofail("metadata", spec)
    if not isinstance(spec, OptimizerSpec):
        raise fail(f"register_optimizers must add harness.OptimizerSpec, got {type(spec)}")
    _check_identity(fail, "optimizer", spec.name, spec.description)
    if not callable(spec.factory):
        raise fail(f"factory {spec.factory!r} is not callable")
    try:
        sig = inspect.signature(spec.factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        takes = set(list(sig.parameters)[1:])
        unknown = sorted(set(spec.defaults) - takes)
        if unknown:
            raise fail(f"defaults {unknown} are not arguments of {spec.factory!r}")
    try:
        spec.resolve({})
    except Exception as exc:
        raise fail(f"its defaults do not resolve: {_describe(exc)}") from None


@_optimizer_check
def optimizer_builds(spec: OptimizerSpec, context: CheckContext) -> None:
    """Builds on a list of parameters and on a list of parameter-group dicts."""
    fail = _ofail("builds", spec)
    _build(spec, _toy_parameters())
    first, second = _toy_parameters()
    groups: list[dict[str, Any]] = [{"params": [first]}, {"params": [second]}]
    if _takes_lr(spec):
        groups[1]["lr"] = 0.123
    opt = _build(spec, groups)
    if len(opt.param_groups) != 2:
        raise fail(f"built on two parameter groups it has {len(opt.param_groups)}")
    if _takes_lr(spec) and opt.param_groups[1].get("lr") != 0.123:
        raise fail("a parameter group's own lr was replaced by the default "
                   f"(group lr {opt.param_groups[1].get('lr')!r}, expected 0.123)")


@_optimizer_check
def optimizer_problem_parameter_groups(spec: OptimizerSpec, context: CheckContext) -> None:
    """Steps on the parameter groups the problems under test give it, one instance per role."""
    tried = 0
    for problem in context.reference_problems:
        groups = context.parameter_groups(problem)
        if groups is None:
            continue  # the problem's own checks report that it does not build
        for role, params in groups.items():
            fail = _ofail("problem_parameter_groups", spec,
                          f"problem {problem.name!r} group {role!r}")
            opt = _build(spec, params, fail=fail)
            before = [p.detach().clone() for p in params]
            g = torch.Generator().manual_seed(7)
            grads = [1e-2 * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
            _step(opt, params, grads, fail)
            if not all(torch.isfinite(p).all() for p in params):
                raise fail("a parameter is not finite after one step")
            if _moved(before, params) == 0.0:
                raise fail("one step with its defaults changed no parameter")
            tried += 1
    if not tried:
        raise ConformanceSkip(f"optimizer {spec.name!r}: no problem under test builds, so no "
                              "problem parameter groups to try")


@_optimizer_check
def optimizer_step_changes_parameters(spec: OptimizerSpec, context: CheckContext) -> None:
    """One step with its defaults changes the parameters and leaves them finite."""
    fail = _ofail("step_changes_parameters", spec)
    params = _toy_parameters()
    before = [p.detach().clone() for p in params]
    _step(_build(spec, params, fail=fail), params, _toy_grads(params), fail)
    if not all(torch.isfinite(p).all() for p in params):
        raise fail("a parameter is not finite after one step")
    if _moved(before, params) == 0.0:
        raise fail("one step with its defaults changed no parameter")


@_optimizer_check
def optimizer_descends(spec: OptimizerSpec, context: CheckContext) -> None:
    """Twenty steps with its defaults lower a well-conditioned quadratic."""
    fail = _ofail("descends", spec)
    g = torch.Generator().manual_seed(99)
    a = torch.randn(32, 5, generator=g)
    y = a @ torch.randn(5, 3, generator=g)
    w = torch.zeros(5, 3, requires_grad=True)
    opt = _build(spec, [w], fail=fail)

    def loss() -> Tensor:
        return (a @ w - y).pow(2).mean()

    start = float(loss().detach())
    for _ in range(20):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    end = float(loss().detach())
    if not end < start:
        raise fail(f"20 steps with its defaults took a quadratic loss from {start:.6g} to "
                   f"{end:.6g}")


@_optimizer_check
def optimizer_honours_lr(spec: OptimizerSpec, context: CheckContext) -> None:
    """lr = 0 leaves parameters unchanged, and a larger lr moves them further."""
    fail = _ofail("honours_lr", spec)
    if not _takes_lr(spec):
        raise ConformanceSkip(f"optimizer {spec.name!r} takes no lr")
    default = spec.resolve({}).get("lr")
    base = float(default) if isinstance(default, int | float) and default > 0 else 0.01
    moved: dict[float, float] = {}
    for lr in (0.0, base, 4 * base):
        params = _toy_parameters()
        before = [p.detach().clone() for p in params]
        _step(_build(spec, params, {"lr": lr}, fail), params, _toy_grads(params), fail)
        moved[lr] = _moved(before, params)
    if moved[0.0] != 0.0:
        raise fail(f"with lr=0 one step still moved the parameters by {moved[0.0]:.3g}: the "
                   "learning rate is ignored")
    if not moved[4 * base] > moved[base] * (1 + 1e-6):
        raise fail(f"one step moved the parameters {moved[base]:.6g} with lr={base:g} and "
                   f"{moved[4 * base]:.6g} with lr={4 * base:g}: the learning rate is ignored")

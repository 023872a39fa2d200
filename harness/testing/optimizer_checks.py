"""The conformance checks of an optimizer spec (see :mod:`harness.testing.conformance`):
it builds on parameter groups, steps, descends, honours its learning rate and its declared
capabilities. Every step is taken as the harness takes it: with a closure, the gradients'
graph or train mode where the spec declares them (:func:`harness.train.steps.take_step`)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from harness.optimizer import OptimizerSpec, check_spec
from harness.testing.conformance import (
    OPTIMIZER_CHECKS,
    CheckContext,
    ConformanceFailure,
    ConformanceSkip,
    _check_identity,
    _describe,
    _optimizer_check,
    _skips,
)
from harness.train.steps import capabilities_of, drain_loss_evals, take_step, track, train_modes


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
    track(opt, spec.capabilities)
    try:
        train_modes([opt])
    except Exception as exc:
        raise fail(f"it declares train/eval modes but train() raised {_describe(exc)}") from exc
    return opt


def _step(opt: torch.optim.Optimizer, params: list[Tensor], grads: list[Tensor],
          fail: Callable[[str], ConformanceFailure]) -> None:
    """One step whose gradient is ``grads``: set directly for a plain optimizer; for one
    that takes a closure or the gradients' graph, through ``take_step`` on the quadratic
    ``sum(g * p) + |p - p0|^2 / 2``, whose gradient at ``p0`` is ``g``."""
    caps = capabilities_of(opt)
    try:
        if caps.closure or caps.second_order:
            start = [p.detach().clone() for p in params]

            def loss() -> Tensor:
                return sum(((g * p).sum() + 0.5 * (p - p0).pow(2).sum()
                            for p, g, p0 in zip(params, grads, start, strict=True)),
                           torch.zeros(()))
            take_step(opt, loss)
            return
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
    except Exception as exc:
        hint = ("" if caps.closure else " (the harness calls step() without a closure unless "
                "the spec declares capabilities=harness.Capabilities(closure=True))")
        raise fail(f"step() raised {_describe(exc)}{hint}") from exc


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
    try:
        check_spec(spec)  # what registering it checks: a spec made by hand gets it too
    except TypeError as exc:
        raise fail(str(exc).removeprefix(f"optimizer {spec.name!r}: ")) from None
    try:
        spec.resolve({})
    except Exception as exc:
        raise fail(f"its defaults do not resolve: {_describe(exc)}") from None
    for skips in _skips(spec):
        for check in skips if isinstance(skips, Mapping) else ():
            if check not in OPTIMIZER_CHECKS or check == "metadata":
                known = ", ".join(c for c in OPTIMIZER_CHECKS if c != "metadata")
                raise fail(f"conformance_skip names an unknown check {check!r}; "
                           f"known: {known}")


@_optimizer_check
def optimizer_builds(spec: OptimizerSpec, context: CheckContext) -> None:
    """Builds on a list of parameters and on a list of parameter-group dicts."""
    fail = _ofail("builds", spec)
    _build(spec, _toy_parameters())
    first, second = _toy_parameters()
    groups: list[dict[str, Any]] = [{"params": [first]}, {"params": [second]}]
    if _takes_lr(spec):
        groups[1]["lr"] = 0.123
    try:
        opt = _build(spec, groups)
    except ConformanceFailure as exc:
        if "parameter groups" not in exc.detail and "per-parameter" not in exc.detail:
            raise
        # torch's LBFGS: the harness gives each role's optimizer a single group anyway
        raise ConformanceSkip(f"optimizer {spec.name!r} supports one parameter group only "
                              f"({exc.detail.rsplit(': ', 1)[-1]})") from None
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
        take_step(opt, loss)
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

    def moved(lr: float, steps: int) -> float:
        params = _toy_parameters()
        before = [p.detach().clone() for p in params]
        opt = _build(spec, params, {"lr": lr}, fail)
        for _ in range(steps):
            _step(opt, params, _toy_grads(params), fail)
        return _moved(before, params)

    # Some optimizers make no update on their first step by design (ADOPT, pytorch-
    # optimizer's RAdam): step them a few more times before judging the learning rate.
    steps = next((n for n in (1, 2, 3, 5, 8) if moved(base, n) > 0.0), 1)
    after = "one step" if steps == 1 else f"{steps} steps"
    distances = {lr: moved(lr, steps) for lr in (0.0, base, 4 * base)}
    if distances[0.0] != 0.0:
        raise fail(f"with lr=0 {after} still moved the parameters by {distances[0.0]:.3g}: "
                   "the learning rate is ignored")
    if spec.capabilities.closure and distances[base] > 0.0 \
            and math.isclose(distances[4 * base], distances[base], rel_tol=1e-3):
        raise ConformanceSkip(
            f"optimizer {spec.name!r}: lr=0 leaves the parameters still, and lr={base:g} and "
            f"lr={4 * base:g} move them equally far: a line search in its closure steps "
            "picks the step length, the learning rate only its first trial")
    if not distances[4 * base] > distances[base] * (1 + 1e-6):
        raise fail(f"{after} moved the parameters {distances[base]:.6g} with lr={base:g} and "
                   f"{distances[4 * base]:.6g} with lr={4 * base:g}: the learning rate is "
                   "ignored")


@_optimizer_check
def optimizer_capabilities(spec: OptimizerSpec, context: CheckContext) -> None:
    """What the spec declares holds: a closure optimizer is given a closure and converges
    on a quadratic; a second-order one steps on gradients that keep their graph; a mode
    optimizer has ``train()`` and ``eval()``, and ``eval()`` then ``train()`` gives back the
    training point."""
    fail = _ofail("capabilities", spec)
    caps = spec.capabilities
    if not caps:
        raise ConformanceSkip(f"optimizer {spec.name!r} declares no capability")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(16, 4, generator=g)
    y = a @ torch.randn(4, generator=g)
    w = torch.zeros(4, requires_grad=True)
    opt = _build(spec, [w], fail=fail)

    def loss() -> Tensor:
        return (a @ w - y).pow(2).mean()

    start = float(loss().detach())
    for _ in range(30):
        try:
            take_step(opt, loss)
        except Exception as exc:
            raise fail(f"a step as the harness takes it ({', '.join(caps.labels())}) raised "
                       f"{_describe(exc)}") from exc
    end = float(loss().detach())
    evals = drain_loss_evals([opt])
    if caps.closure and not evals:
        raise fail("it declares closure=True but never called the closure")
    if caps.closure and not end < 0.5 * start:
        raise fail(f"30 steps with a closure took a quadratic loss from {start:.6g} to "
                   f"{end:.6g}: it does not converge")
    if caps.modes:
        _check_modes(opt, w, fail)


def _check_modes(opt: torch.optim.Optimizer, w: Tensor,
                 fail: Callable[[str], ConformanceFailure]) -> None:
    if not (callable(getattr(opt, "eval", None)) and callable(getattr(opt, "train", None))):
        raise fail(f"it declares modes=True but {type(opt).__name__} has no train() and "
                   "eval() methods")
    training_point = w.detach().clone()
    opt.eval()  # type: ignore[attr-defined]
    if not torch.isfinite(w).all():
        raise fail("after eval() the parameters are not finite")
    opt.train()  # type: ignore[attr-defined]
    if not torch.allclose(w, training_point, rtol=1e-4, atol=1e-6):
        raise fail("eval() then train() does not give back the training point")

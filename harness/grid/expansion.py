"""Expansion: a :class:`GridSpec` checked against the registries and turned into cells.

Everything is validated before any cell runs; errors are :class:`UsageError` (and
:class:`DeviceUnavailableError` for a device this machine lacks).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.cell import Cell
from harness.errors import DeviceUnavailableError, UsageError
from harness.grid.devices import device_available, normalize_device
from harness.grid.spec import (
    PROBLEM_SETTINGS,
    GridSpec,
    check_spec,
    clip,
    did_you_mean,
    is_scalar,
    parse_bounded,
)
from harness.limits import MAX_CELLS

if TYPE_CHECKING:
    from harness.optimizer import OptimizerSpec
    from harness.params import ParamValue
    from harness.problem import Param, Problem
    from harness.registry import OptimizerRegistry, ProblemRegistry, ScheduleRegistry

Hyper = tuple[tuple[str, Any], ...]
Roles = tuple[tuple[str, str, Hyper], ...]
#: A schedule variant: its name (None: constant) and resolved parameters.
Variant = tuple[str | None, Hyper]


@dataclass(frozen=True)
class ExpandedGrid:
    cells: tuple[Cell, ...]
    devices: tuple[str, ...]
    unavailable: dict[str, str]


def expand(
    spec: GridSpec,
    problems: ProblemRegistry,
    optimizers: OptimizerRegistry,
    *,
    skip_unavailable: bool = False,
    schedules: ScheduleRegistry | None = None,
) -> ExpandedGrid:
    """Validate ``spec`` (:func:`check_spec`, then against the registries) and expand it
    into cells."""
    check_spec(spec)
    model_names = spec.models if spec.models is not None else problems.names()
    opt_names = spec.optimizers if spec.optimizers is not None else optimizers.names()
    if not model_names:
        raise UsageError("no models selected")
    if not opt_names:
        raise UsageError("no optimizers selected")
    selected_p: list[Problem] = [problems.get(n) for n in _dedupe(model_names, "models")]
    selected_o: list[OptimizerSpec] = [optimizers.get(n) for n in _dedupe(opt_names, "optimizers")]
    devices, unavailable = _devices(spec, skip_unavailable)
    _check_scoped(spec, model_names, opt_names, problems, optimizers)
    _check_bare(spec, selected_p, selected_o, problems, optimizers)

    _check_problem_settings(spec, model_names, problems, optimizers, schedules)
    opt_variants = {o.name: _optimizer_variants(o, spec) for o in selected_o}
    _check_schedule_settings(spec, selected_p, optimizers, schedules)
    cells: list[Cell] = []
    for problem in selected_p:
        sched = _schedule_variants(spec, schedules, problem, optimizers)
        for cell in _problem_cells(spec, problem, selected_o, opt_variants, devices,
                                   problems, optimizers, sched, schedules):
            cells.append(cell)
            if len(cells) > MAX_CELLS:
                raise UsageError(f"the grid has more than {MAX_CELLS} cells")
    return ExpandedGrid(tuple(cells), tuple(devices), unavailable)


def _devices(spec: GridSpec, skip_unavailable: bool) -> tuple[list[str], dict[str, str]]:
    """The grid's devices, and why those this machine lacks are unavailable."""
    devices = _dedupe((normalize_device(d) for d in spec.devices), "devices")
    if not devices:
        raise UsageError("no devices selected")
    unavailable = {d: r for d in devices if (r := device_available(d)) is not None}
    if unavailable and not skip_unavailable:
        d, reason = next(iter(unavailable.items()))
        raise DeviceUnavailableError(
            f"device {d!r} is not available: {reason} (pass --skip-unavailable to skip its cells)"
        )
    return devices, unavailable


def _check_scoped(spec: GridSpec, model_names: Sequence[str], opt_names: Sequence[str],
                  problems: ProblemRegistry, optimizers: OptimizerRegistry) -> None:
    """Scoped settings must name a selected model or optimizer, except a grid file's
    settings for a name the file selected and -m/-o then left out: those are dropped."""
    file_p, file_o = _file_selection(spec, problems, optimizers)
    for what, names, registry, narrowed in (("model", model_names, problems, file_p),
                                            ("optimizer", opt_names, optimizers, file_o)):
        scoped = spec.model if what == "model" else spec.optimizer
        for name in scoped:
            if name in names:
                continue
            if name not in registry:
                raise UsageError(f"settings for {what} {name!r}: {registry.unknown(name)}")
            if name not in narrowed or f"{what}.{name}" in spec.set_keys:
                raise UsageError(f"settings for {what} {name!r}: it is not selected")
    for name in spec.roles:
        if name not in model_names:
            if name not in problems:
                raise UsageError(f"role settings for model {name!r}: {problems.unknown(name)}")
            if name not in file_p:
                raise UsageError(f"role settings for model {name!r}: it is not selected")


def _check_bare(spec: GridSpec, selected_p: Sequence[Problem],
                selected_o: Sequence[OptimizerSpec], problems: ProblemRegistry,
                optimizers: OptimizerRegistry) -> None:
    """Bare settings must be taken by somebody (for a file's, somebody the file selected)."""
    file_p, file_o = _file_selection(spec, problems, optimizers)
    for key in spec.params:
        if key in PROBLEM_SETTINGS:
            raise UsageError(f"params: use the top-level {key!r} (or [model.NAME] {key})")
        if _takers(key, selected_p, selected_o):
            continue
        if f"params.{key}" not in spec.set_keys and _takers(
                key, [problems.get(n) for n in file_p], [optimizers.get(n) for n in file_o]):
            continue
        known = sorted({q.name for p in selected_p for q in p.params}
                       | {k for o in selected_o for k in (o.accepted() or set(o.defaults))})
        raise UsageError(f"no selected model or optimizer takes the parameter "
                         f"{key!r}{did_you_mean(key, known)}")


def _problem_cells(
    spec: GridSpec, problem: Problem, selected_o: Sequence[OptimizerSpec],
    opt_variants: Mapping[str, list[Hyper]], devices: Sequence[str],
    problems: ProblemRegistry, optimizers: OptimizerRegistry,
    sched: Sequence[Variant] = ((None, ()),), schedules: ScheduleRegistry | None = None,
) -> Iterator[Cell]:
    """One problem's cells: its parameter axes x optimizers x their variants x schedules x
    devices x seeds, in that order."""
    steps, batch = _problem_settings(spec, problem)
    own = spec.model.get(problem.name, {})
    axes = [_param_axis(problem, p, own.get(p.name, spec.params.get(p.name, [p.default])))
            for p in sorted(problem.params, key=lambda p: p.name)]
    role_cfg = spec.roles.get(problem.name, {})
    for role in role_cfg:
        if role not in problem.roles:
            raise UsageError(f"model {problem.name!r} has no role {role!r}; "
                             f"its roles: {', '.join(problem.roles)}")
    role_sched, role_sched_params = _role_schedules(problem, role_cfg, schedules)
    role_cfg = {r: {k: v for k, v in c.items() if k != "schedule" and k != c.get("schedule")}
                for r, c in role_cfg.items()}
    own_opts = spec.problems.get(problem.name, {})
    for combo in itertools.product(*axes):
        for opt in selected_o:
            variants = opt_variants[opt.name] if opt.name not in own_opts \
                else _optimizer_variants(opt, spec, problem.name)
            for hyper in variants:
                roles = _role_overrides(problem, opt, hyper, role_cfg, optimizers)
                versions = _versions(problem, opt, roles, problems, optimizers)
                for name, sparams in sched:
                    for device in devices:
                        for seed in spec.seeds:
                            yield Cell(problem=problem.name, optimizer=opt.name,
                                       device=device, seed=seed, steps=steps,
                                       batch_size=batch, params=tuple(combo), hyper=hyper,
                                       roles=roles, versions=versions, schedule=name,
                                       schedule_params=sparams, role_schedules=role_sched,
                                       role_schedule_params=role_sched_params)


def _schedule_variants(spec: GridSpec, schedules: ScheduleRegistry | None,
                       problem: Problem | None = None,
                       optimizers: OptimizerRegistry | None = None) -> list[Variant]:
    """The schedule axis: each selected schedule x its parameters' axes (constant: None);
    for ``problem``, its own axis and parameters over the grid's (:func:`_own_schedules`)."""
    names, own = _own_schedules(spec, problem, optimizers, schedules)
    names = names or spec.schedules or ["constant"]
    if names == ["constant"] and not spec.schedule and not own:
        return [(None, ())]  # the default needs no plugin: the learning rate as set
    if schedules is None:
        raise UsageError("learning-rate schedules need the schedule registry")
    out: list[Variant] = []
    for name in _dedupe(names, "schedules"):
        sched = schedules.get(name)
        settings = {**spec.schedule.get(name, {}), **own.get(name, {})}
        keys = sorted(settings)
        axes = [_dedupe(settings[k], f"schedule {name!r}: {k}") for k in keys]
        for combo in itertools.product(*axes):
            params = sched.resolve(dict(zip(keys, combo, strict=True)))
            out.append((None if name == "constant" else name, tuple(sorted(params.items()))))
    return out


def _check_schedule_settings(spec: GridSpec, selected_p: Sequence[Problem],
                             optimizers: OptimizerRegistry,
                             schedules: ScheduleRegistry | None) -> None:
    """``[schedule.NAME]`` must name a registered schedule that the grid, or a selected
    problem's own ``schedule``, selects."""
    if not spec.schedule:
        return
    if schedules is None:
        raise UsageError("learning-rate schedules need the schedule registry")
    selected = set(spec.schedules or ["constant"])
    for problem in selected_p:
        selected.update(_own_schedules(spec, problem, optimizers, schedules)[0] or ())
    for name in spec.schedule:
        if name not in schedules:
            raise UsageError(f"settings for schedule {name!r}: {schedules.unknown(name)}")
        if name not in selected:
            raise UsageError(f"settings for schedule {name!r}: it is not selected "
                             f"(--set schedule={name} or schedules = [{name!r}])")


def _own_schedules(spec: GridSpec, problem: Problem | None,
                   optimizers: OptimizerRegistry | None, schedules: ScheduleRegistry | None,
                   ) -> tuple[list[str] | None, dict[str, dict[str, list[Any]]]]:
    """A problem's own schedule axis, ``[problems.NAME] schedule = "warmup-cosine"`` (None:
    the grid's), and its own schedule parameters, ``[problems.NAME] warmup-cosine.warmup
    = 0.1`` (over ``[schedule.warmup-cosine]``), checked: the schedule registered and
    selected for the problem, its parameters the schedule's."""
    if problem is None:
        return None, {}
    where = f"[problems.{problem.name}]"
    table = spec.model.get(problem.name, {})
    names = None
    if "schedule" in table and problem.param("schedule") is None:
        names = table["schedule"]
        for name in names:
            if not isinstance(name, str):
                raise UsageError(f"{where} schedule: expected schedule names, got "
                                 f"{clip(repr(name))}")
            if schedules is None:
                raise UsageError("learning-rate schedules need the schedule registry")
            if name not in schedules:
                raise UsageError(f"{where} schedule: {schedules.unknown(name)}")
    if schedules is None:
        return names, {}
    own = {k: v for k, v in spec.problems.get(problem.name, {}).items()
           if k in schedules and (optimizers is None or k not in optimizers)}
    selected = names or spec.schedules or ["constant"]
    for name, settings in own.items():
        if name not in selected:
            raise UsageError(f"{where} {name}: schedule {name!r} is not selected for problem "
                             f"{problem.name!r} (schedule = \"{name}\" under {where}, or "
                             f"schedules = [\"{name}\"])")
        for key, values in settings.items():
            for value in values:
                schedules.get(name).resolve({key: value}, where=f"{where} {name}")
    return names, own


def _role_schedules(problem: Problem, role_cfg: Mapping[str, Mapping[str, Any]],
                    schedules: ScheduleRegistry | None,
                    ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, Hyper], ...]]:
    """``[model.gan.role.discriminator] schedule = "NAME"``: a role on its own schedule,
    and the parameters given to it there (``NAME.KEY = VALUE``, checked by the schedule);
    without them it has the schedule's defaults (the cell's, when it is the cell's)."""
    out, given = [], []
    for role in sorted(role_cfg):
        name = role_cfg[role].get("schedule")
        if name is None:
            continue
        where = f"model {problem.name!r} role {role!r}: schedule"
        if not isinstance(name, str):
            raise UsageError(f"{where}: expected a schedule name, got {name!r}")
        if schedules is None or name not in schedules:
            raise UsageError(f"{where}: " + (schedules.unknown(name) if schedules is not None
                                             else f"unknown schedule {name!r}"))
        out.append((role, name))
        settings = role_cfg[role].get(name)
        if isinstance(settings, Mapping) and settings:
            settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
            schedules.get(name).resolve(settings, where=f"{where} {name!r}")
            given.append((role, tuple(sorted(settings.items()))))
    return tuple(out), tuple(given)


def _problem_settings(spec: GridSpec, problem: Problem) -> tuple[int, int]:
    """The problem's steps and batch size ([model.NAME] over top-level over its own), after
    checking that its [model.NAME] table names only what it takes."""
    own = spec.model.get(problem.name, {})
    steps = problem.steps if spec.steps is None else spec.steps
    batch = problem.batch_size if spec.batch_size is None else spec.batch_size
    for key in PROBLEM_SETTINGS:
        if key in own:
            where = f"model.{problem.name}.{key}"
            value = parse_bounded(_single(own[key], where), where, key)
            steps, batch = (value, batch) if key == "steps" else (steps, value)
    for key in own:
        if key not in PROBLEM_SETTINGS and problem.param(key) is None and key != "schedule":
            names = [p.name for p in problem.params] + list(PROBLEM_SETTINGS)
            raise UsageError(
                f"model {problem.name!r} has no parameter {key!r}{did_you_mean(key, names)}; "
                f"it takes: {', '.join(names)}"
            )
    return steps, batch


def _role_overrides(problem: Problem, opt: OptimizerSpec, hyper: Hyper,
                    role_cfg: Mapping[str, Mapping[str, Any]],
                    optimizers: OptimizerRegistry) -> Roles:
    """Resolve per-role optimizer settings; roles left as the cell's are not listed."""
    out = []
    for role in sorted(role_cfg):
        settings = dict(role_cfg[role])
        name = settings.pop("optimizer", opt.name)
        where = f"model {problem.name!r} role {role!r}"
        spec = optimizers.get(name)
        if name == opt.name:
            base = dict(hyper)
            resolved = spec.resolve(settings, where=where)
            resolved = {**base, **{k: resolved[k] for k in settings}}
        else:
            resolved = spec.resolve(settings, where=where)
        if name == opt.name and resolved == dict(hyper):
            continue
        out.append((role, name, tuple(sorted(resolved.items()))))
    return tuple(out)


def _versions(problem: Problem, opt: OptimizerSpec, roles: Roles, problems: ProblemRegistry,
              optimizers: OptimizerRegistry) -> tuple[tuple[str, str], ...]:
    def origin(info: Any) -> str:
        wraps = "".join(f"; wraps {name} {version}" for name, version in info.wraps)
        digest = (info.sha256 or "").removeprefix("sha256:")[:16]
        if info.source:  # a plugin file: its source is its version
            return f"file {info.name} {digest}{wraps}"
        if not info.distribution:
            return "in-process" + wraps
        # installed editable or from a path: its source too
        source = f" source {digest}" if digest else ""
        return f"{info.distribution} {info.version}{source}{wraps}"

    out = {"harness": _harness_version(), "problem": origin(problems.owner(problem.name)),
           "optimizer": origin(optimizers.owner(opt.name))}
    for role, name, _ in roles:
        out[f"optimizer:{role}"] = origin(optimizers.owner(name))
    return tuple(sorted(out.items()))


def _harness_version() -> str:
    from harness import __version__

    return __version__


def _file_selection(spec: GridSpec, problems: ProblemRegistry,
                    optimizers: OptimizerRegistry) -> tuple[list[str], list[str]]:
    """The registered models and optimizers the grid file or preset selected (none if none)."""
    if spec.file_selection is None:
        return [], []
    models = spec.file_selection.get("models")
    opts = spec.file_selection.get("optimizers")
    return ([n for n in (problems.names() if models is None else models) if n in problems],
            [n for n in (optimizers.names() if opts is None else opts) if n in optimizers])


def _takers(key: str, models: Sequence[Problem], opts: Sequence[OptimizerSpec]) -> bool:
    return any(p.param(key) for p in models) or any(_accepts(o, key) for o in opts)


def _single(values: list[Any], where: str) -> Any:
    if len(values) != 1:
        raise UsageError(f"{where}: expected one value, got a list")
    return values[0]


def _accepts(opt: OptimizerSpec, key: str) -> bool:
    accepted = opt.accepted()
    return key in opt.defaults if accepted is None else key in accepted


def _axis(values: list[Any], default: Any) -> list[Any]:
    """Disambiguate a list: for a tuple-valued setting, a flat list is one value."""
    if isinstance(default, tuple) and values and all(is_scalar(v) for v in values):
        return [tuple(values)]
    return values


def _dedupe(values: Iterable[Any], where: str) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v in out:
            raise UsageError(f"{where}: the value {v!r} is listed twice")
        out.append(v)
    return out


def _param_axis(problem: Problem, param: Param, raw: list[Any]) -> list[tuple[str, ParamValue]]:
    where = f"model {problem.name!r}"
    values = [param.coerce(v, where=where) for v in _axis(raw, param.default)]
    return [(param.name, v) for v in _dedupe(values, f"{where}: {param.name}")]


def _check_problem_settings(spec: GridSpec, model_names: Sequence[str],
                            problems: ProblemRegistry, optimizers: OptimizerRegistry,
                            schedules: ScheduleRegistry | None = None) -> None:
    """``[problems.NAME] OPT.KEY``: NAME a problem (selected, or one the file selected
    and -m left out), OPT a registered optimizer or schedule."""
    file_p, _ = _file_selection(spec, problems, optimizers)
    for name, tables in spec.problems.items():
        if name not in problems:
            raise UsageError(f"settings for problem {name!r}: {problems.unknown(name)}")
        if name not in model_names and name not in file_p:
            raise UsageError(f"settings for problem {name!r}: it is not selected")
        for opt in tables:
            if opt in optimizers or (schedules is not None and opt in schedules):
                continue
            if schedules is not None and did_you_mean(opt, schedules.names()) \
                    and not did_you_mean(opt, optimizers.names()):
                raise UsageError(f"[problems.{name}] {opt}: {schedules.unknown(opt)}")
            raise UsageError(f"[problems.{name}] {opt}: {optimizers.unknown(opt)}" + (
                "" if schedules is None else
                f"; nor a schedule (known: {', '.join(sorted(schedules.names()))})"))


def _optimizer_variants(opt: OptimizerSpec, spec: GridSpec,
                        problem: str | None = None) -> list[Hyper]:
    """The optimizer's hyperparameter combinations: bare settings, then
    ``[optimizer.NAME]``, then (for one problem) ``[problems.PROBLEM] NAME.KEY``."""
    settings: dict[str, list[Any]] = {
        k: v for k, v in spec.params.items() if _accepts(opt, k)
    }
    settings.update(spec.optimizer.get(opt.name, {}))
    if problem is not None:
        settings.update(spec.problems.get(problem, {}).get(opt.name, {}))
    keys = sorted(settings)
    axes = [
        _dedupe(_axis(settings[k], opt.defaults.get(k)), f"optimizer {opt.name!r}: {k}")
        for k in keys
    ]
    variants = []
    for combo in itertools.product(*axes):
        hyper = opt.resolve(dict(zip(keys, combo, strict=True)))
        variants.append(tuple(sorted(hyper.items())))
    return variants

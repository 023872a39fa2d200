"""The optimizer contract: a named factory from parameters and hyperparameters."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.space import SearchSpace, check_spaces, element

if TYPE_CHECKING:  # torch is imported where an optimizer is built, not with the contract
    import torch

OptimizerFactory = Callable[..., "torch.optim.Optimizer"]


@dataclass(frozen=True)
class Capabilities:
    """What an optimizer's ``step`` needs beyond ``zero_grad(); loss.backward(); step()``,
    declared when it is registered and honoured by the harness's step (and by
    ``harness.take_step`` in a :class:`~harness.problem.Task`'s own step)."""

    #: ``step(closure)``: the closure recomputes the loss and gradients on the step's batch,
    #: as often as the optimizer asks (LBFGS's line search, SAM's second pass).
    closure: bool = False
    #: The gradients keep their graph (``backward(create_graph=True)``) for Hessian-vector
    #: products (SophiaH, AdaHessian); memory grows accordingly (``peak_mem_mb``).
    second_order: bool = False
    #: ``optimizer.eval()`` before every evaluation, checkpoint and saved model, and
    #: ``optimizer.train()`` after (schedule-free optimizers).
    modes: bool = False

    def labels(self) -> tuple[str, ...]:
        """The capabilities that are set, by name (``("closure",)``): for labels and manifests."""
        return tuple(n for n in ("closure", "second_order", "modes") if getattr(self, n))

    def __bool__(self) -> bool:
        return bool(self.labels())


#: An optimizer that needs nothing beyond the usual step.
PLAIN = Capabilities()


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: ``factory(params, **hyperparameters)``.

    ``defaults`` are the harness's defaults (they override the factory's own). The
    hyperparameters a grid file or ``--set`` may set are ``hyperparameters`` where it is
    given, else the factory's named keyword arguments (a class's: its ``__init__``'s, any
    ``**kwargs`` aside). A factory *function* that takes ``**kwargs`` must declare them,
    so that a misspelt name is an error rather than a setting that does nothing.

    ``conformance_skip`` maps conformance checks this optimizer opts out of to the reason
    (see :mod:`harness.testing.conformance`).
    """

    name: str
    factory: OptimizerFactory
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    hyperparameters: Collection[str] | None = None
    conformance_skip: Mapping[str, str] = field(default_factory=dict)
    #: What its step needs (a closure, the gradients' graph, train/eval modes).
    capabilities: Capabilities = PLAIN
    #: Where a tuning run samples each tunable hyperparameter (docs/tuning.md); a grid
    #: file's ``[tune.space]`` may replace one. Names must be hyperparameters it takes.
    space: Mapping[str, SearchSpace] = field(default_factory=dict)

    def accepted(self) -> set[str] | None:
        """The hyperparameter names it takes: the declared ones, else the factory's named
        keyword arguments; None when the factory's signature cannot be read."""
        if self.hyperparameters is not None:
            return set(self.hyperparameters) | set(self.defaults)
        named = keyword_arguments(self.factory)
        return None if named is None else set(named[0]) | set(self.defaults)

    def resolve(self, overrides: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
        """Defaults updated by ``overrides``, after checking every name and type."""
        accepted = self.accepted()
        where = where or f"optimizer {self.name}"
        for key, value in overrides.items():
            if accepted is not None and key not in accepted:
                close = difflib.get_close_matches(key, sorted(accepted), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(f"{where}: unknown hyperparameter {key!r}{hint}")
            check_hyperparameter(key, value, self.defaults.get(key), where=where)
        hyper = dict(self.defaults)
        hyper.update(overrides)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}

    def build(self, params: Iterable[Any], hyper: Mapping[str, Any], *,
              origin: str = "") -> torch.optim.Optimizer:
        """``factory(params, **hyper)``; TypeError, naming the factory and ``origin`` (the
        plugin that registered it, as ``dist version``), if that is no optimizer."""
        import torch

        optimizer = self.factory(params, **hyper)
        if not isinstance(optimizer, torch.optim.Optimizer):
            plugin = "" if not origin else " (registered by an in-process plugin)" \
                if origin == "in-process" else f" (registered by plugin {origin})"
            raise TypeError(f"optimizer {self.name!r}{plugin}: factory {_label(self.factory)} "
                            f"returned {type(optimizer).__name__}, not a "
                            "torch.optim.Optimizer")
        return optimizer


def keyword_arguments(factory: Callable[..., Any]) -> tuple[list[str], str | None] | None:
    """The keyword arguments ``factory`` takes after the parameters, and the name of its
    ``**kwargs`` (None if it has none); None when its signature cannot be read."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names, var = [], None
    for i, p in enumerate(sig.parameters.values()):
        if p.kind is p.VAR_KEYWORD:
            var = p.name
        elif i and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
    return names, var


def _label(factory: object) -> str:
    """The factory's name as its author wrote it (no ``<locals>`` path), else its repr."""
    name = getattr(factory, "__qualname__", None)
    return name.rsplit("<locals>.", 1)[-1] if isinstance(name, str) else repr(factory)


def check_spec(spec: OptimizerSpec) -> None:
    """Cheap checks made when a spec is registered, so a broken one never reaches a cell.

    The factory must be callable as ``factory(params, **defaults)``: callable, with a
    first argument for the parameters, every default one of its hyperparameters, and
    every argument it requires given a default. A factory function that takes
    ``**kwargs`` must declare its ``hyperparameters`` (a class's named ``__init__``
    arguments are read instead); declared ones must be arguments of a factory without
    ``**kwargs``. Raises TypeError saying which. A factory whose signature cannot be
    read passes.
    """
    where = f"optimizer {spec.name!r}"
    factory = spec.factory
    if not isinstance(spec.capabilities, Capabilities):
        raise TypeError(f"{where}: capabilities must be harness.Capabilities(...), "
                        f"got {spec.capabilities!r}")
    if not callable(factory):
        raise TypeError(f"{where}: factory {factory!r} is not callable; it must be "
                        "factory(params, **hyperparameters) returning a torch.optim.Optimizer")
    if not isinstance(spec.defaults, Mapping) or not all(
        isinstance(k, str) for k in spec.defaults
    ):
        raise TypeError(f"{where}: defaults must map hyperparameter names to values, "
                        f"got {spec.defaults!r}")
    declared = _declared(spec)
    _check_skips(spec)
    check_spaces(spec.space, where)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    first = params[0] if params else None
    if first is None or first.kind in (first.KEYWORD_ONLY, first.VAR_KEYWORD) \
            or first.name in spec.defaults:
        raise TypeError(f"{where}: factory {_label(factory)}({', '.join(sig.parameters)}) "
                        "takes no argument for the parameters; it is called as "
                        "factory(params, **hyperparameters)")
    takes, var = keyword_arguments(factory) or ([], None)
    if var is not None and declared is None and not isinstance(factory, type):
        named = ", ".join(repr(k) for k in dict.fromkeys([*takes, *spec.defaults])) or "'lr'"
        raise TypeError(f"{where}: factory {_label(factory)} takes **{var}, so a misspelt "
                        "hyperparameter would pass unnoticed; declare the names it takes: "
                        f"OptimizerSpec(..., hyperparameters=({named}, ...))")
    if declared is not None and var is None:
        for key in declared:
            if key not in takes:
                raise TypeError(f"{where}: declared hyperparameter {key!r} is not an argument "
                                f"of {_label(factory)}{_hint(key, takes)}")
    allowed = sorted(declared) if declared is not None else sorted(takes)
    for key in spec.space:
        base, index = element(key)
        if base not in allowed and base not in spec.defaults and var is None:
            raise TypeError(f"{where}: search space for {key!r}, which is not a "
                            f"hyperparameter of {_label(factory)}{_hint(base, allowed)}")
        default = spec.defaults.get(base)
        if index is not None and not (isinstance(default, tuple | list)
                                      and index < len(default)):
            raise TypeError(f"{where}: search space for {key!r}: {base} has no default "
                            f"with an element {index} (got {default!r})")
    for key in spec.defaults:
        if key not in allowed:
            what = "a declared hyperparameter" if declared is not None else "an argument"
            raise TypeError(f"{where}: default {key!r} is not {what} of "
                            f"{_label(factory)}{_hint(key, allowed)}")
    for p in params[1:]:
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty \
                and p.name not in spec.defaults:
            raise TypeError(f"{where}: {_label(factory)} requires {p.name!r}, and neither it "
                            "nor the defaults give a value")


def _hint(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return (f" (did you mean {close[0]!r}?)" if close else
            f"; it takes: {', '.join(names)}" if names else "; it takes none")


def _declared(spec: OptimizerSpec) -> list[str] | None:
    """The declared hyperparameter names, checked: a collection of names (not one string)."""
    names = spec.hyperparameters
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Collection) \
            or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise TypeError(f"optimizer {spec.name!r}: hyperparameters must be a collection of "
                        f"argument names, such as ('lr', 'betas'); got {names!r}")
    return list(names)


def _check_skips(spec: OptimizerSpec) -> None:
    """``conformance_skip`` maps check names to a reason each (which checks exist is the
    conformance kit's ``metadata`` check's to say)."""
    skips = spec.conformance_skip
    if not isinstance(skips, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in skips.items()):
        raise TypeError(f"optimizer {spec.name!r}: conformance_skip must map check names to "
                        f"reasons, such as {{'descends': 'why'}}; got {skips!r}")


def check_hyperparameter(key: str, value: Any, default: Any, *, where: str) -> None:
    """Type-check a hyperparameter against its default, and reject non-finite numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be finite, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        digits = str(value)
        shown = digits if len(digits) <= 24 else f"{digits[:10]}...{digits[-10:]}"
        raise UsageError(f"{where}: {key} is too large for a hyperparameter, got {shown} "
                         f"({len(digits)} digits)")
    if default is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, tuple | list):
        ok = isinstance(value, tuple | list) and len(value) == len(default)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UsageError(f"{where}: {key} must look like {default!r}, got {value!r}")
    if key == "lr" and isinstance(value, int | float) and value < 0:
        raise UsageError(f"{where}: lr must be >= 0, got {value!r}")

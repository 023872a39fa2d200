"""The optimizer contract: a named factory from parameters and hyperparameters."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.errors import UsageError

OptimizerFactory = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: ``factory(params, **hyperparameters)``.

    ``defaults`` are the harness's defaults (they override the factory's own);
    any keyword the factory accepts may be set from a grid file or ``--set``.
    """

    name: str
    factory: OptimizerFactory
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def accepted(self) -> set[str] | None:
        """Hyperparameter names the factory accepts, or None when it takes ``**kwargs``."""
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return None
        names = set()
        for i, p in enumerate(sig.parameters.values()):
            if p.kind is p.VAR_KEYWORD:
                return None
            if i == 0 or p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                continue  # the parameters argument
            names.add(p.name)
        return names | set(self.defaults)

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

    def build(self, params: Iterable[Any], hyper: Mapping[str, Any]) -> torch.optim.Optimizer:
        return self.factory(params, **hyper)


def check_hyperparameter(key: str, value: Any, default: Any, *, where: str) -> None:
    """Type-check a hyperparameter against its default, and reject non-finite numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be finite, got {value!r}")
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

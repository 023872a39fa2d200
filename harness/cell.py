"""The cell: one training run of the grid, and its content key."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from harness.params import ParamValue

Pairs = tuple[tuple[str, Any], ...]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Cell:
    """One (problem, parameters, optimizer, hyperparameters, device, seed) run."""

    problem: str
    optimizer: str
    device: str
    seed: int
    steps: int
    batch_size: int
    #: Problem parameters, every declared one, sorted by name.
    params: tuple[tuple[str, ParamValue], ...] = ()
    #: Resolved optimizer hyperparameters (defaults plus overrides), sorted by name.
    hyper: Pairs = ()
    #: Roles trained by another optimizer or other hyperparameters than the cell's:
    #: (role, optimizer name, resolved hyperparameters), sorted by role.
    roles: tuple[tuple[str, str, Pairs], ...] = ()
    #: What produced the code the cell runs: the harness version and the problem's and
    #: optimizer's distributions with their versions. Part of the content key, so a
    #: resumed run re-runs cells whose code changed.
    versions: tuple[tuple[str, str], ...] = ()
    #: The learning-rate schedule (None: constant, the learning rate as set) and its
    #: resolved parameters, sorted by name.
    schedule: str | None = None
    schedule_params: Pairs = ()
    #: Roles on another schedule than the cell's: (role, schedule name), sorted by role.
    role_schedules: tuple[tuple[str, str], ...] = ()
    #: The parameters a role's own schedule was given (``[model.gan.role.ROLE]`` with
    #: ``schedule = "NAME"`` and ``NAME.KEY = VALUE``): (role, given settings), sorted by
    #: role; a role on its own schedule without settings takes that schedule's defaults
    #: (or the cell's parameters when it is the cell's schedule).
    role_schedule_params: tuple[tuple[str, Pairs], ...] = ()
    #: A tuning run's cell (``harness tune``; docs/tuning.md): ``phase`` ("trial" or
    #: "final"), ``trial`` (the trial's number in its study; a final cell's is the
    #: selected trial's), ``metric`` (what the study selects on) and, on final cells,
    #: ``edge`` (the selected values on an edge of their space). Empty outside tuning,
    #: and then not in the content key.
    tune: Pairs = ()
    #: 0: the cell's own run, the one its record holds. 1 to K: one of the ``--repeats K``
    #: timing runs of the same cell, each in a fresh worker process, of which only the
    #: throughput is kept (on the cell's record). Never in the content key.
    timing_run: int = 0

    @property
    def scheduled(self) -> bool:
        """Whether any role's learning rate follows a schedule."""
        return self.schedule is not None or any(n != "constant" for _, n in self.role_schedules)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("schedule", "schedule_params", "role_schedules", "role_schedule_params",
                     "tune", "timing_run"):
            del d[name]
        if self.tune:  # only then: every other cell keeps the content key it had
            d["tune"] = dict(self.tune)
        if self.schedule is not None or self.role_schedules:
            # only then: a cell on the constant learning rate keeps the content key it had
            d["schedule"] = {"name": self.schedule or "constant",
                             "params": {k: _jsonable(v) for k, v in self.schedule_params},
                             "roles": dict(self.role_schedules)}
            if self.role_schedule_params:  # only then: other cells keep their content key
                d["schedule"]["role_params"] = {
                    role: {k: _jsonable(v) for k, v in given}
                    for role, given in self.role_schedule_params}
        d["params"] = {k: _jsonable(v) for k, v in self.params}
        d["hyper"] = {k: _jsonable(v) for k, v in self.hyper}
        d["roles"] = {role: {"optimizer": opt, "hyper": {k: _jsonable(v) for k, v in hyper}}
                      for role, opt, hyper in self.roles}
        d["versions"] = dict(self.versions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        def pairs(m: dict[str, Any]) -> Pairs:
            return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in m.items()))

        return cls(
            problem=d["problem"],
            optimizer=d["optimizer"],
            device=d["device"],
            seed=int(d["seed"]),
            steps=int(d["steps"]),
            batch_size=int(d["batch_size"]),
            params=pairs(d.get("params", {})),
            hyper=pairs(d.get("hyper", {})),
            roles=tuple(sorted((role, r["optimizer"], pairs(r.get("hyper", {})))
                               for role, r in d.get("roles", {}).items())),
            versions=tuple(sorted(d.get("versions", {}).items())),
            tune=tuple(sorted(d.get("tune", {}).items())),
            **_schedule_from(d.get("schedule")),
        )

    @property
    def key(self) -> str:
        """A canonical JSON string identifying the cell's content."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def cell_id(self) -> str:
        """A readable, file-name-safe id: problem, optimizer, device, seed and a hash."""
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:10]
        readable = f"{self.problem}-{self.optimizer}-{self.device}-s{self.seed}"
        return f"{safe_name(readable)}-{digest}"

    def describe(self, *, with_hyper: bool = False) -> str:
        parts = [self.problem]
        parts += [f"{k}={format_value(v)}" for k, v in self.params]
        parts += [self.optimizer]
        if with_hyper:
            parts += [f"{k}={format_value(v)}" for k, v in self.hyper]
        for role, opt, hyper in self.roles:
            parts.append(f"{role}:{opt}")
            if with_hyper:
                parts += [f"{role}.{k}={format_value(v)}" for k, v in hyper]
        if self.schedule is not None:
            parts.append(f"schedule={self.schedule}")
            if with_hyper:
                parts += [f"{self.schedule}.{k}={format_value(v)}" for k, v in self.schedule_params]
        given = dict(self.role_schedule_params)
        for role, name in self.role_schedules:
            parts.append(f"{role}:schedule={name}")
            if with_hyper:
                parts += [f"{role}:{name}.{k}={format_value(v)}" for k, v in given.get(role, ())]
        tune = dict(self.tune)
        if tune:
            parts.append(f"{tune.get('phase', 'trial')} {tune.get('trial', '?')}")
        parts += [self.device, f"seed {self.seed}"]
        return " ".join(parts)


def _schedule_from(d: dict[str, Any] | None) -> dict[str, Any]:
    if not d:
        return {}
    name = d.get("name", "constant")
    return {"schedule": None if name == "constant" else name,
            "schedule_params": tuple(sorted(d.get("params", {}).items())),
            "role_schedules": tuple(sorted(d.get("roles", {}).items())),
            "role_schedule_params": tuple(sorted(
                (role, tuple(sorted(given.items())))
                for role, given in d.get("role_params", {}).items()))}


def format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_pairs(pairs: Pairs) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in pairs)


def safe_name(text: str) -> str:
    """Only letters, digits, '.', '_' and '-': nothing that could leave a directory."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:120] or "cell"

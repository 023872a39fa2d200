"""Grid files and presets: TOML read, checked and merged into a :class:`GridSpec`.

A grid file::

    models = ["regression", "cnn"]
    optimizers = ["sgd", "adam"]
    devices = ["cpu"]
    seeds = "0-2"            # or [0, 1, 2], or 3
    steps = 300              # optional: overrides each problem's default
    batch_size = 64          # optional
    plugins = ["my_opt.py"]  # optional: local plugin files, relative to this file

    [params]                 # for any selected model or optimizer that takes them
    activation = ["relu", "tanh"]   # a list makes an axis

    [model.regression]       # one model's parameters (and steps, batch_size)
    steps = 500

    [optimizer.adam]         # one optimizer's hyperparameters
    lr = [0.001, 0.01]
    betas = [0.9, 0.999]     # a tuple-valued hyperparameter: a list of lists is an axis

    schedules = ["constant", "warmup-cosine"]   # learning-rate schedules, an axis (top level)
    [schedule.warmup-cosine]  # one schedule's parameters
    warmup = [0.05, 0.1]

    [problems.cnn]            # one problem's settings (a pasted tuned configuration)
    adam.lr = 0.001
    schedule = "warmup-cosine"
    warmup-cosine.warmup = 0.1

A preset is a grid file shipped in ``harness/presets/NAME.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.grid.spec import (
    GridSpec,
    clip,
    did_you_mean,
    is_scalar,
    nesting_too_deep,
    parse_bounded,
    parse_list,
    parse_seeds,
    too_long_integer,
    too_long_message,
)
from harness.grid.tune import parse_tune
from harness.limits import MAX_NESTING

TOP_LEVEL_KEYS = ("models", "optimizers", "devices", "seeds", "steps", "batch_size",
                  "params", "model", "optimizer", "plugins", "schedules", "schedule",
                  "problems", "tune")
PRESETS = ("default", "quick", "tune-quick")


def apply_toml(spec: GridSpec, data: Mapping[str, Any], source: str) -> None:
    """Merge a parsed grid file (or preset) into ``spec``."""
    _check_keys(data, TOP_LEVEL_KEYS, source)
    if "models" in data:
        spec.models = _str_list(data["models"], f"{source}: models")
    if "optimizers" in data:
        spec.optimizers = _str_list(data["optimizers"], f"{source}: optimizers")
    spec.file_selection = {"models": None if spec.models is None else list(spec.models),
                           "optimizers": None if spec.optimizers is None
                           else list(spec.optimizers)}
    if "devices" in data:
        spec.devices = _str_list(data["devices"], f"{source}: devices")
    if "seeds" in data:
        spec.seeds = parse_seeds(data["seeds"], f"{source}: seeds")
    if "steps" in data:
        spec.steps = parse_bounded(data["steps"], f"{source}: steps", "steps")
    if "batch_size" in data:
        spec.batch_size = parse_bounded(data["batch_size"], f"{source}: batch_size",
                                        "batch_size")
    if "params" in data:
        spec.params.update(_settings_table(data["params"], f"{source}: params"))
    if "schedules" in data:
        spec.schedules = _str_list(data["schedules"], f"{source}: schedules")
    if "tune" in data:
        spec.tune = {**(spec.tune or {}), **parse_tune(data["tune"], f"{source}: tune")}
    if "problems" in data:
        _problems_tables(spec, data["problems"], f"{source}: problems")
    for section, target in (("model", spec.model), ("optimizer", spec.optimizer),
                            ("schedule", spec.schedule)):
        if section not in data:
            continue
        tables = data[section]
        if not isinstance(tables, dict):
            raise UsageError(f"{source}: [{section}] must hold tables like [{section}.NAME]")
        for name, table in tables.items():
            if section == "model" and isinstance(table, dict) and "role" in table:
                table = dict(table)
                spec.roles.setdefault(name, {}).update(
                    _roles_table(table.pop("role"), f"{source}: model.{name}.role"))
            target.setdefault(name, {}).update(
                _settings_table(table, f"{source}: {section}.{name}")
            )


def plugin_paths(data: Mapping[str, Any], source: str) -> list[str]:
    """A grid file's ``plugins = ["my_opt.py", "pkg/"]``: local plugin files to load, as
    ``--plugin`` does (relative paths are the grid file's; the caller resolves them)."""
    value = data.get("plugins", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(f"{source}: plugins: expected a list of paths (.py files or package "
                         f"directories), got {clip(repr(value))}")
    return list(value)


def load_grid_file(path: Path) -> dict[str, Any]:
    """Read a TOML grid file; any failure is one line naming the file and the problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read grid file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"grid file {str(path)!r} is not UTF-8 text") from None
    deep = nesting_too_deep(text)
    if deep is not None:  # before tomllib, which would recurse until Python gives up
        raise UsageError(f"grid file {str(path)!r}: {_where(text, deep)}a value is nested "
                         f"more than {MAX_NESTING} levels deep")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None
    except ValueError:  # an integer with more digits than int() reads
        raise UsageError(f"grid file {str(path)!r}: {_too_long_in(text)}") from None
    except RecursionError:  # nesting the scan above did not see
        raise UsageError(f"grid file {str(path)!r}: a value is nested too deeply") from None
    table = _deep_table(data)
    if table is not None:
        raise UsageError(f"grid file {str(path)!r}: table [{clip(table, 60)}] is nested more "
                         f"than {MAX_NESTING} levels deep")
    if _holds_nothing(data):
        raise UsageError(f"grid file {str(path)!r} is empty: it selects no models, optimizers "
                         "or settings (without a grid file the default grid runs)")
    return data


def load_preset(name: str) -> dict[str, Any]:
    """A built-in grid, from the package data ``harness/presets/NAME.toml``."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; "
                         f"known: {', '.join(PRESETS)}")
    text = resources.files("harness").joinpath(f"presets/{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def _too_long_in(text: str) -> str:
    """Where in a TOML document its too-long integer is, and under which key."""
    number = too_long_integer(text)
    if number is None:
        return "an integer is too long"
    return f"{_where(text, text.index(number))}{too_long_message(number)}"


def _where(text: str, at: int) -> str:
    """``line N: TABLE.KEY: `` for the offset ``at`` of a TOML document."""
    line = text.count("\n", 0, at) + 1
    keys = list(re.finditer(r"^[ \t]*([^\s=#\[][^=\n]*?)[ \t]*=", text[:at], re.M))
    tables = list(re.finditer(r"^[ \t]*\[\[?[ \t]*([^\]\n]*?)[ \t]*\]", text[:at], re.M))
    key = keys[-1].group(1) if keys else ""
    if key and tables and tables[-1].start() < keys[-1].start():
        key = f"{tables[-1].group(1)}.{key}"
    return f"line {line}: {clip(key, 40) + ': ' if key else ''}"


def _holds_nothing(data: Mapping[str, Any]) -> bool:
    """Whether a grid file holds no value at all: nothing, comments, or empty tables."""
    return all(isinstance(v, dict) and _holds_nothing(v) for v in data.values())


def _deep_table(data: Mapping[str, Any], limit: int = MAX_NESTING,
                path: tuple[str, ...] = ()) -> str | None:
    """The dotted name of the first table nested deeper than ``limit``, or None."""
    if len(path) > limit:
        return ".".join(path)
    for key, value in data.items():
        if isinstance(value, dict):
            found = _deep_table(value, limit, (*path, str(key)))
            if found is not None:
                return found
    return None


def _as_values(value: Any) -> list[Any]:
    """A setting as a list of candidate values; a list is an axis (disambiguated later)."""
    return list(value) if isinstance(value, list) else [value]


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}")


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return parse_list(value, what)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what}: expected a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise UsageError(f"{what}: a name is listed twice")
    return list(value)


def _settings_table(value: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a table of settings")
    out: dict[str, list[Any]] = {}
    for key, v in value.items():
        if isinstance(v, dict):
            raise UsageError(f"{where}.{key}: expected a value or a list of values, not a table")
        values = _as_values(v)
        if not values:
            raise UsageError(f"{where}.{key}: the list is empty")
        out[key] = values
    return out


def _problems_tables(spec: GridSpec, value: Any, where: str) -> None:
    """``[problems.NAME]``: ``OPTIMIZER.KEY = value`` for that problem's cells of that
    optimizer, ``SCHEDULE.KEY = value`` for its cells on that schedule (told apart by
    :func:`harness.grid.expand`); a bare ``KEY = value`` is the problem's own setting, as
    in [model.NAME], ``schedule = "NAME"`` among them."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise UsageError(f"{where}: expected tables like [problems.NAME] with "
                         "OPTIMIZER.KEY = value")
    for name, table in value.items():
        own = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if own:
            spec.model.setdefault(name, {}).update(
                _settings_table(own, f"{where}.{name}"))
        for opt, settings in table.items():
            if isinstance(settings, dict):
                spec.problems.setdefault(name, {}).setdefault(opt, {}).update(
                    _settings_table(settings, f"{where}.{name}.{opt}"))


def _roles_table(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """``[model.NAME.role.ROLE]`` tables: ``optimizer``, ``schedule``, single-valued
    hyperparameters and, for the role's own schedule, its parameters as a table named
    after it (``schedule = "cosine"`` and ``cosine.final_lr_ratio = 0.1``)."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise UsageError(f"{where}: expected tables like [{where.split(': ')[-1]}.ROLE]")
    for role, table in value.items():
        for key, v in table.items():
            if isinstance(v, dict):
                _role_schedule_table(table, key, v, f"{where}.{role}")
            elif isinstance(v, list) and v and not all(is_scalar(x) for x in v):
                raise UsageError(f"{where}.{role}.{key}: expected a single value")
        if "optimizer" in table and not isinstance(table["optimizer"], str):
            raise UsageError(f"{where}.{role}.optimizer: expected an optimizer name")
    return {role: dict(table) for role, table in value.items()}


def _role_schedule_table(table: Mapping[str, Any], key: str, value: Mapping[str, Any],
                         where: str) -> None:
    """A table in a role's table: the parameters of the role's own schedule, single values."""
    schedule = table.get("schedule")
    if schedule != key:
        hint = (f"the role's schedule is {schedule!r}" if isinstance(schedule, str)
                else f"add schedule = {key!r} to the same table")
        raise UsageError(f"{where}.{key}: a table here sets the parameters of the role's own "
                         f"schedule ({hint})")
    for name, v in value.items():
        if isinstance(v, dict) or (isinstance(v, list) and v and not all(
                is_scalar(x) for x in v)):
            raise UsageError(f"{where}.{key}.{name}: expected a single value")

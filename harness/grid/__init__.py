"""Grid definition: read a TOML grid file and command-line flags, expand into cells.

A grid file::

    models = ["regression", "cnn"]
    optimizers = ["sgd", "adam"]
    devices = ["cpu"]
    seeds = "0-2"            # or [0, 1, 2], or 3
    steps = 300              # optional: overrides each problem's default
    batch_size = 64          # optional

    [params]                 # for any selected model or optimizer that takes them
    activation = ["relu", "tanh"]   # a list makes an axis

    [model.regression]       # one model's parameters (and steps, batch_size)
    steps = 500

    [optimizer.adam]         # one optimizer's hyperparameters
    lr = [0.001, 0.01]
    betas = [0.9, 0.999]     # a tuple-valued hyperparameter: a list of lists is an axis

Everything is validated before any cell runs; errors are :class:`UsageError`.
"""

from __future__ import annotations

import difflib
import itertools
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from harness.cell import Cell
from harness.errors import DeviceUnavailableError, UsageError
from harness.optimizer import OptimizerSpec
from harness.problem import Param, ParamValue, Problem
from harness.registry import OptimizerRegistry, ProblemRegistry

MAX_SEEDS = 10_000
MAX_CELLS = 100_000
MAX_STEPS = 1_000_000_000
MAX_BATCH = 10_000_000
TOP_LEVEL_KEYS = ("models", "optimizers", "devices", "seeds", "steps", "batch_size",
                  "params", "model", "optimizer")
PROBLEM_SETTINGS = ("steps", "batch_size")

Values = tuple[Any, ...]


@dataclass
class GridSpec:
    """The axes of a grid before expansion; built from presets, a file, then flags."""

    models: list[str] | None = None
    optimizers: list[str] | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int | None = None
    batch_size: int | None = None
    #: Bare settings: apply to every selected model or optimizer that takes them.
    params: dict[str, list[Any]] = field(default_factory=dict)
    #: Per-model settings (parameters, plus steps and batch_size).
    model: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: Per-optimizer hyperparameters.
    optimizer: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: Per-model, per-role optimizer settings: ``[model.gan.role.discriminator]``
    #: with an optional ``optimizer = "NAME"`` and single-valued hyperparameters.
    roles: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: What the grid file or preset selected, recorded by :func:`apply_toml` as
    #: ``{"models": [...], "optimizers": [...]}`` (None for a list the file leaves out:
    #: every registered name). It lets :func:`expand` ignore the file's settings for names
    #: that ``-m``/``-o`` narrowed away, while settings for names the file never selected
    #: stay errors. None when no file or preset was applied.
    file_selection: dict[str, list[str] | None] | None = None
    #: What ``--set`` gave (``"params.KEY"``, ``"model.NAME"``, ``"optimizer.NAME"``): the
    #: user asked for these on the command line, so they always need a selected taker.
    set_keys: list[str] = field(default_factory=list)


# -- small parsers ---------------------------------------------------------------
def clip(text: str, width: int = 24) -> str:
    """``text`` shortened to about ``width`` characters, keeping both ends, for a message."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return f"{text[:half]}…{text[-half:]}"


def _digits(number: str) -> int:
    return sum(ch.isdigit() for ch in number)


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise UsageError(f"{what}: expected a comma-separated list, got {text!r}")
    return items


MAX_SEED = 2**31 - 1


def parse_seeds(value: Any, what: str = "seeds") -> list[int]:
    """Seeds from ``3``, ``[0, 1]``, ``"0-4"`` or ``"0-2,7"``; ``what`` names them in errors."""
    expected = f"{what}: expected integers or a range like 0-4, got"
    if isinstance(value, bool):
        raise UsageError(f"{expected} {value!r}")
    if isinstance(value, int):
        parts: list[Any] = [value]
    elif isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise UsageError(f"{expected} {clip(repr(value))}")
    seeds: list[int] = []
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            seeds.append(part)
            continue
        if not isinstance(part, str):
            raise UsageError(f"{expected} {clip(repr(part))}")
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise UsageError(f"{what}: {clip(part)!r} is not a seed or a range like 0-4")
        for bound in m.groups():
            # Read no more digits than a seed can have: int() refuses over 4,300 of them.
            if bound is not None and len(bound.lstrip("0")) > len(str(MAX_SEED)):
                raise UsageError(f"{what}: {clip(bound)} ({len(bound)} digits) is out of "
                                 f"range (0 to {MAX_SEED})")
        lo = int(m.group(1).lstrip("0") or "0")
        hi = int(m.group(2).lstrip("0") or "0") if m.group(2) is not None else lo
        if hi < lo:
            raise UsageError(f"{what}: range {clip(part)!r} is empty (it counts down)")
        if hi - lo + 1 > MAX_SEEDS:
            raise UsageError(f"{what}: range {clip(part)!r} has more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise UsageError(f"{what}: the list is empty")
    for s in seeds:
        if s < 0 or s > MAX_SEED:
            raise UsageError(f"{what}: {clip(str(s))} is out of range (0 to {MAX_SEED})")
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"{what}: more than {MAX_SEEDS} seeds")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{what}: a seed is listed twice")
    return seeds


def parse_int(value: Any, what: str, maximum: int, minimum: int = 1,
              expected: str | None = None) -> int:
    """An integer in [minimum, maximum] from a TOML value or a command-line string.

    ``expected`` names it in the error (default: a positive integer, or a whole number
    when 0 is allowed).
    """
    expected = expected or ("a positive integer" if minimum >= 1 else "a whole number")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            if re.fullmatch(r"[+-]?\d(?:_?\d)*", text):  # an integer too long for int()
                raise UsageError(f"{what}: {clip(text)} ({_digits(text)} digits) is out of "
                                 f"range ({minimum} to {maximum})") from None
            raise UsageError(f"{what}: expected {expected}, got {clip(repr(value))}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{what}: expected {expected}, got {clip(repr(value))}")
    if not minimum <= value <= maximum:
        raise UsageError(f"{what}: {clip(str(value))} is out of range ({minimum} to {maximum})")
    return value


def _too_long_integer(text: str) -> str | None:
    """The first integer literal in ``text`` with more digits than ``int()`` will read."""
    limit = sys.get_int_max_str_digits()
    for m in re.finditer(r"(?<![\w.])[+-]?\d(?:_?\d)*", text):  # not in a float or a word
        if limit and _digits(m.group()) > limit:
            return m.group()
    return None


def _too_long_message(number: str) -> str:
    return (f"the integer {clip(number)} has {_digits(number)} digits; at most "
            f"{sys.get_int_max_str_digits()} can be read")


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (number, bool, list, quoted string) or a bare word."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except ValueError:  # an integer with more digits than int() reads
        number = _too_long_integer(text)
        raise UsageError(_too_long_message(number) if number else "an integer is too long") \
            from None


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_set(assignment: str) -> tuple[str | None, str, list[Any]]:
    """``[NAME.]KEY=VALUE[,VALUE...]`` -> (NAME or None, KEY, values)."""
    shown = clip(assignment, 40)
    if "=" not in assignment:
        raise UsageError(f"--set {shown!r}: expected KEY=VALUE, e.g. --set adam.lr=0.001")
    lhs, rhs = assignment.split("=", 1)
    lhs = lhs.strip()
    if not re.fullmatch(r"([a-z0-9][a-z0-9_-]*\.)?[A-Za-z_][A-Za-z0-9_]*", lhs):
        raise UsageError(f"--set {shown!r}: {clip(lhs)!r} is not KEY or NAME.KEY")
    scope, _, key = lhs.rpartition(".")
    if not rhs.strip():
        raise UsageError(f"--set {shown!r}: the value is empty")
    raw = split_top_level(rhs)
    if any(not r.strip() for r in raw):
        raise UsageError(f"--set {shown!r}: an empty value in the list")
    try:
        values = [parse_value(r) for r in raw]
    except UsageError as exc:
        raise UsageError(f"--set {lhs}: {exc}") from None
    return (scope or None), key, values


# -- grid files --------------------------------------------------------------------
def _as_values(value: Any) -> list[Any]:
    """A setting as a list of candidate values; a list is an axis (disambiguated later)."""
    return list(value) if isinstance(value, list) else [value]


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{where}: unknown key {key!r}{hint}")


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


def _roles_table(value: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise UsageError(f"{where}: expected tables like [{where.split(': ')[-1]}.ROLE]")
    for role, table in value.items():
        for key, v in table.items():
            if isinstance(v, dict) or (isinstance(v, list) and v and not all(
                    _is_scalar(x) for x in v)):
                raise UsageError(f"{where}.{role}.{key}: expected a single value")
        if "optimizer" in table and not isinstance(table["optimizer"], str):
            raise UsageError(f"{where}.{role}.optimizer: expected an optimizer name")
    return {role: dict(table) for role, table in value.items()}


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
        spec.steps = parse_int(data["steps"], f"{source}: steps", MAX_STEPS)
    if "batch_size" in data:
        spec.batch_size = parse_int(data["batch_size"], f"{source}: batch_size", MAX_BATCH)
    if "params" in data:
        spec.params.update(_settings_table(data["params"], f"{source}: params"))
    for section, target in (("model", spec.model), ("optimizer", spec.optimizer)):
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
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None
    except ValueError:  # an integer with more digits than int() reads
        raise UsageError(f"grid file {str(path)!r}: {_too_long_in(text)}") from None


def _too_long_in(text: str) -> str:
    """Where in a TOML document its too-long integer is, and under which key."""
    number = _too_long_integer(text)
    if number is None:
        return "an integer is too long"
    at = text.index(number)
    line = text.count("\n", 0, at) + 1
    keys = list(re.finditer(r"^[ \t]*([^\s=#\[][^=\n]*?)[ \t]*=", text[:at], re.M))
    tables = list(re.finditer(r"^[ \t]*\[\[?[ \t]*([^\]\n]*?)[ \t]*\]", text[:at], re.M))
    key = keys[-1].group(1) if keys else ""
    if key and tables and tables[-1].start() < keys[-1].start():
        key = f"{tables[-1].group(1)}.{key}"
    return f"line {line}: {clip(key, 40) + ': ' if key else ''}{_too_long_message(number)}"


PRESETS = ("default", "quick")


def load_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown preset {name!r}{hint}; known: {', '.join(PRESETS)}")
    text = resources.files("harness").joinpath(f"presets/{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


# -- devices -----------------------------------------------------------------------
def normalize_device(name: str) -> str:
    """``name`` without surrounding blanks and with its index as written by int()."""
    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d{1,9}))?", name.strip())
    if not m or (m.group(1) == "cpu" and m.group(2)):
        raise UsageError(f"unknown device {clip(name, 40)!r}; use cpu, cuda, cuda:N or mps")
    kind, index = m.groups()
    return kind if index is None else f"{kind}:{int(index)}"


def device_available(name: str) -> str | None:
    """None when the device can be used here, else the reason it cannot."""
    kind, _, index = name.partition(":")
    if kind == "cpu":
        return None
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        n = torch.cuda.device_count()
        if index and int(index) >= n:
            return f"this machine has {n} CUDA device(s)"
        return None
    if kind == "mps":
        return None if torch.backends.mps.is_available() else "MPS is not available here"
    return f"unknown device {name!r}"


# -- expansion ---------------------------------------------------------------------
def _is_scalar(v: Any) -> bool:
    return not isinstance(v, list | tuple | dict)


def _axis(values: list[Any], default: Any) -> list[Any]:
    """Disambiguate a list: for a tuple-valued setting, a flat list is one value."""
    if isinstance(default, tuple) and values and all(_is_scalar(v) for v in values):
        return [tuple(values)]
    return values


def _dedupe(values: Iterable[Any], where: str) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v in out:
            raise UsageError(f"{where}: the value {v!r} is listed twice")
        out.append(v)
    return out


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
) -> ExpandedGrid:
    """Validate ``spec`` against the registries and expand it into cells."""
    model_names = spec.models if spec.models is not None else problems.names()
    opt_names = spec.optimizers if spec.optimizers is not None else optimizers.names()
    if not model_names:
        raise UsageError("no models selected")
    if not opt_names:
        raise UsageError("no optimizers selected")
    selected_p: list[Problem] = [problems.get(n) for n in _dedupe(model_names, "models")]
    selected_o: list[OptimizerSpec] = [optimizers.get(n) for n in _dedupe(opt_names, "optimizers")]

    devices = _dedupe((normalize_device(d) for d in spec.devices), "devices")
    if not devices:
        raise UsageError("no devices selected")
    unavailable = {d: r for d in devices if (r := device_available(d)) is not None}
    if unavailable and not skip_unavailable:
        d, reason = next(iter(unavailable.items()))
        raise DeviceUnavailableError(
            f"device {d!r} is not available: {reason} (pass --skip-unavailable to skip its cells)"
        )

    # Scoped settings must name a selected model or optimizer, except a grid file's
    # settings for a name the file selected and -m/-o then left out: those are dropped.
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

    # Bare settings must be taken by somebody (for a file's, somebody the file selected).
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
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"no selected model or optimizer takes the parameter {key!r}{hint}")

    opt_variants = {o.name: _optimizer_variants(o, spec) for o in selected_o}

    cells: list[Cell] = []
    for problem in selected_p:
        own = spec.model.get(problem.name, {})
        steps = problem.steps if spec.steps is None else spec.steps
        batch = problem.batch_size if spec.batch_size is None else spec.batch_size
        if "steps" in own:
            steps = parse_int(_single(own["steps"], f"model.{problem.name}.steps"),
                                   f"model.{problem.name}.steps", MAX_STEPS)
        if "batch_size" in own:
            batch = parse_int(_single(own["batch_size"], f"model.{problem.name}.batch_size"),
                                   f"model.{problem.name}.batch_size", MAX_BATCH)
        for key in own:
            if key not in PROBLEM_SETTINGS and problem.param(key) is None:
                names = [p.name for p in problem.params] + list(PROBLEM_SETTINGS)
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(
                    f"model {problem.name!r} has no parameter {key!r}{hint}; "
                    f"it takes: {', '.join(names)}"
                )
        axes: list[list[tuple[str, ParamValue]]] = []
        for param in sorted(problem.params, key=lambda p: p.name):
            raw = own.get(param.name, spec.params.get(param.name, [param.default]))
            axes.append(_param_axis(problem, param, raw))
        role_cfg = spec.roles.get(problem.name, {})
        for role in role_cfg:
            if role not in problem.roles:
                raise UsageError(f"model {problem.name!r} has no role {role!r}; "
                                 f"its roles: {', '.join(problem.roles)}")
        for combo in itertools.product(*axes):
            for opt in selected_o:
                for hyper in opt_variants[opt.name]:
                    roles = _role_overrides(problem, opt, hyper, role_cfg, optimizers)
                    versions = _versions(problem, opt, roles, problems, optimizers)
                    for device in devices:
                        for seed in spec.seeds:
                            cells.append(Cell(
                                problem=problem.name, optimizer=opt.name, device=device,
                                seed=seed, steps=steps, batch_size=batch,
                                params=tuple(combo), hyper=hyper, roles=roles,
                                versions=versions,
                            ))
                            if len(cells) > MAX_CELLS:
                                raise UsageError(f"the grid has more than {MAX_CELLS} cells")
    return ExpandedGrid(tuple(cells), tuple(devices), unavailable)


def _role_overrides(
    problem: Problem, opt: OptimizerSpec, hyper: tuple[tuple[str, Any], ...],
    role_cfg: Mapping[str, Mapping[str, Any]], optimizers: OptimizerRegistry,
) -> tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]:
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


def _versions(
    problem: Problem, opt: OptimizerSpec,
    roles: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...],
    problems: ProblemRegistry, optimizers: OptimizerRegistry,
) -> tuple[tuple[str, str], ...]:
    def origin(info: Any) -> str:
        return f"{info.distribution} {info.version}" if info.distribution else "in-process"

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


def _param_axis(problem: Problem, param: Param, raw: list[Any]) -> list[tuple[str, ParamValue]]:
    where = f"model {problem.name!r}"
    values = [param.coerce(v, where=where) for v in _axis(raw, param.default)]
    return [(param.name, v) for v in _dedupe(values, f"{where}: {param.name}")]


def _optimizer_variants(opt: OptimizerSpec, spec: GridSpec) -> list[tuple[tuple[str, Any], ...]]:
    settings: dict[str, list[Any]] = {
        k: v for k, v in spec.params.items() if _accepts(opt, k)
    }
    settings.update(spec.optimizer.get(opt.name, {}))
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


def apply_sets(spec: GridSpec, assignments: Sequence[str], problems: ProblemRegistry,
               optimizers: OptimizerRegistry) -> None:
    """Apply ``--set`` flags (they override the grid file's settings)."""
    parsed = [parse_set(text) for text in assignments]
    # A bare flag (``lr=0.05``) overrides the grid file's scoped settings of that key
    # (``[optimizer.adam] lr``, ``[model.cnn] activation``) as well as its bare ones; a
    # scoped flag (``adam.lr=0.001``) still beats a bare flag, whatever their order.
    for scope, key, _ in parsed:
        if scope is None:
            for table in (*spec.model.values(), *spec.optimizer.values()):
                table.pop(key, None)
    for text, (scope, key, values) in zip(assignments, parsed, strict=True):
        if scope is None:
            spec.params[key] = values
            given = f"params.{key}"
        elif scope in problems:
            spec.model.setdefault(scope, {})[key] = values
            given = f"model.{scope}"
        elif scope in optimizers:
            spec.optimizer.setdefault(scope, {})[key] = values
            given = f"optimizer.{scope}"
        else:
            names = problems.names() + optimizers.names()
            close = difflib.get_close_matches(scope, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--set {clip(text, 40)!r}: no model or optimizer named "
                             f"{scope!r}{hint}")
        if given not in spec.set_keys:
            spec.set_keys.append(given)

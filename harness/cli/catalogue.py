"""``harness list``: every problem, optimizer, executor and plugin, with load errors."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from harness.cell import format_value
from harness.plugins import PluginHost, files, get_host, use_files
from harness.space import SearchSpace


def catalogue(host: PluginHost) -> dict[str, Any]:
    problems = []
    for p in host.problems:
        owner = host.problems.owner(p.name)
        problems.append({
            "name": p.name,
            "description": p.description,
            "plugin": owner.name,
            "distribution": owner.distribution,
            "version": owner.version,
            "params": {q.name: {"default": q.default,
                                "choices": list(q.choices) if q.choices else None,
                                "help": q.help} for q in p.params},
            "batch_size": p.batch_size,
            "steps": p.steps,
            "metrics": list(p.metrics),
            "validation_metric": p.validation_metric,
            "target": None if p.target is None else asdict(p.target),
        })
    optimizers = []
    for o in host.optimizers:
        owner = host.optimizers.owner(o.name)
        optimizers.append({
            "name": o.name,
            "description": o.description,
            "plugin": owner.name,
            "distribution": owner.distribution,
            "version": owner.version,
            "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in o.defaults.items()},
            "space": {k: v.to_dict() for k, v in o.space.items()},
        })
    executors = [{"name": e.name, "description": e.description,
                  "plugin": host.executors.owner(e.name).name, "settings": list(e.settings)}
                 for e in host.executors]
    schedules = [{"name": s.name, "description": s.description,
                  "plugin": host.schedules.owner(s.name).name, "defaults": dict(s.defaults),
                  "space": {k: v.to_dict() for k, v in s.space.items()}}
                 for s in host.schedules]
    return {
        "problems": problems,
        "optimizers": optimizers,
        "schedules": schedules,
        "executors": executors,
        "plugins": [asdict(p) for p in host.plugins],
    }


#: The widest a line of ``harness list`` is, its wrapped parts indented under the name.
WIDTH = 100


def _lines(text: str, indent: int) -> list[str]:
    """``text`` (which starts with its own indent) wrapped at :data:`WIDTH`, continued
    ``indent`` columns in; words are never split."""
    return textwrap.wrap(text, WIDTH, subsequent_indent=" " * indent, drop_whitespace=True,
                         break_long_words=False, break_on_hyphens=False) or [text]


def _column(names: Any, least: int = 22) -> int:
    return max([least, *(len(n) + 1 for n in names)])


def format_catalogue(data: dict[str, Any], verbose: bool = False) -> str:
    """What ``harness list`` prints: lines of at most :data:`WIDTH` columns (a long word
    aside), columns as wide as their longest entry. ``verbose``: each failed plugin's
    traceback too."""
    w = _column([*(p["name"] for p in data["problems"]), *(o["name"] for o in data["optimizers"]),
                 *(e["name"] for e in data.get("executors", []))])
    pad, lines = " " * (w + 3), ["Models:"]
    for p in data["problems"]:
        params = " ".join(f"{k}={format_value(v['default'])}" for k, v in p["params"].items())
        target = p["target"]
        tgt = f"{target['metric']} {'<=' if target['mode'] == 'min' else '>='} " \
              f"{target['threshold']:g}" if target else "-"
        lines += _lines(f"  {p['name']:<{w}} {p['description']}", w + 3)
        lines += _lines(f"{pad}batch {p['batch_size']}, {p['steps']} steps, target {tgt}"
                        + (f", params: {params}" if params else "") + f"  [{p['plugin']}]", w + 3)
    lines.append("Optimizers:")
    for o in data["optimizers"]:
        lines += _lines(f"  {o['name']:<{w}} {o.get('description') or '-'}  [{o['plugin']}]",
                        w + 3)
        defaults = ", ".join(f"{k}={format_value(v)}" for k, v in o["defaults"].items())
        if defaults:
            lines += _lines(f"{pad}defaults: {defaults}", w + 3)
        if verbose and o.get("space"):
            space = ", ".join(f"{k}={SearchSpace.from_dict(v, k).describe()}"
                              for k, v in o["space"].items())
            lines += _lines(f"{pad}search space: {space}", w + 3)
    lines.append("Executors:")
    for e in data.get("executors", []):
        lines += _lines(f"  {e['name']:<{w}} {e['description']}  [{e['plugin']}]", w + 3)
    lines += _plugin_lines(data["plugins"], verbose)
    return "\n".join(lines)


def _plugin_lines(plugins: list[dict[str, Any]], verbose: bool) -> list[str]:
    def origin(p: dict[str, Any]) -> str:
        return f"{p['distribution']} {p['version']}" if p["distribution"] \
            else "file" if p.get("source") else "in-process"

    w, d = _column(p["name"] for p in plugins), _column((origin(p) for p in plugins), 24)
    lines = ["Plugins:"]
    for p in plugins:
        lines.append(f"  {p['name']:<{w}} {origin(p):<{d}} {p['status']}")
        if p.get("source"):
            lines.append(f"  {'':<{w}} {p['source']}")
        if p["error"]:
            lines += _lines(f"  {'':<{w}} error: {p['error']}", w + 10)
            if verbose and p.get("traceback"):
                lines += [f"  {'':<{w}}   {t}" for t in p["traceback"].rstrip().splitlines()]
    if not verbose and any(p.get("traceback") for p in plugins):
        lines.append("(harness list --verbose shows each load error's traceback)")
    return lines


def print_catalogue(host: PluginHost, as_json: bool, verbose: bool = False) -> None:
    data = catalogue(host)
    print(json.dumps(data, indent=2, default=str) if as_json
          else format_catalogue(data, verbose))


def cmd_list(args: argparse.Namespace, argv: Sequence[str]) -> int:
    use_files(files.resolve(args.plugin_paths))
    print_catalogue(get_host(), args.json, args.verbose)
    return 0

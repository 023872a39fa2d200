"""``harness list``: every problem, optimizer, executor and plugin, with load errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from harness.cell import format_value
from harness.plugins import PluginHost, files, get_host, use_files


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
        })
    executors = [{"name": e.name, "description": e.description,
                  "plugin": host.executors.owner(e.name).name, "settings": list(e.settings)}
                 for e in host.executors]
    return {
        "problems": problems,
        "optimizers": optimizers,
        "executors": executors,
        "plugins": [asdict(p) for p in host.plugins],
    }


def format_catalogue(data: dict[str, Any]) -> str:
    lines = ["Models:"]
    for p in data["problems"]:
        params = " ".join(f"{k}={format_value(v['default'])}" for k, v in p["params"].items())
        target = p["target"]
        tgt = f"{target['metric']} {'<=' if target['mode'] == 'min' else '>='} " \
              f"{target['threshold']:g}" if target else "-"
        lines.append(f"  {p['name']:<22} {p['description']}")
        lines.append(f"  {'':<22} batch {p['batch_size']}, {p['steps']} steps, target {tgt}"
                     + (f", params: {params}" if params else "") + f"  [{p['plugin']}]")
    lines.append("Optimizers:")
    for o in data["optimizers"]:
        defaults = ", ".join(f"{k}={format_value(v)}" for k, v in o["defaults"].items())
        lines.append(f"  {o['name']:<22} {defaults}  [{o['plugin']}]")
    lines.append("Executors:")
    for e in data.get("executors", []):
        lines.append(f"  {e['name']:<22} {e['description']}  [{e['plugin']}]")
    lines.append("Plugins:")
    for p in data["plugins"]:
        dist = f"{p['distribution']} {p['version']}" if p["distribution"] \
            else "file" if p.get("source") else "in-process"
        lines.append(f"  {p['name']:<22} {dist:<24} {p['status']}")
        if p.get("source"):
            lines.append(f"  {'':<22} {p['source']}")
        if p["error"]:
            lines.append(f"  {'':<22} error: {p['error']}")
    return "\n".join(lines)


def print_catalogue(host: PluginHost, as_json: bool) -> None:
    data = catalogue(host)
    print(json.dumps(data, indent=2, default=str) if as_json else format_catalogue(data))


def cmd_list(args: argparse.Namespace, argv: Sequence[str]) -> int:
    use_files(files.resolve(args.plugin_paths))
    print_catalogue(get_host(), args.json)
    return 0

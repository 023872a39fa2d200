"""What each subcommand does, once the command line is parsed."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.display import format_summary, load_summary, print_catalogue
from harness.errors import UsageError
from harness.grid import (
    GridSpec,
    apply_sets,
    apply_toml,
    expand,
    load_grid_file,
    load_preset,
    parse_list,
    parse_positive,
    parse_seeds,
)
from harness.plugins import get_host
from harness.runner import default_output_dir, prepare_output_dir, run_grid
from harness.training import RunOptions


def data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness" / "data"


def build_spec(args: argparse.Namespace) -> GridSpec:
    """Preset or grid file first, then flags on top."""
    host = get_host()
    spec = GridSpec()
    if args.preset and args.grid:
        raise UsageError("give either a grid file or --preset, not both")
    if args.grid:
        apply_toml(spec, load_grid_file(Path(args.grid)), args.grid)
    else:
        preset = args.preset or "default"
        apply_toml(spec, load_preset(preset), f"preset {preset}")
    if args.models is not None:
        spec.models = parse_list(args.models, "--models")
    if args.optimizers is not None:
        spec.optimizers = parse_list(args.optimizers, "--optimizers")
    if args.devices is not None:
        spec.devices = parse_list(args.devices, "--devices")
    if args.seeds is not None:
        spec.seeds = parse_seeds(args.seeds)
    if args.steps is not None:
        spec.steps = parse_positive(args.steps, "--steps", 1_000_000_000)
    if args.batch_size is not None:
        spec.batch_size = parse_positive(args.batch_size, "--batch-size", 10_000_000)
    apply_sets(spec, args.sets, host.problems, host.optimizers)
    return spec


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    host = get_host()
    spec = build_spec(args)
    grid = expand(spec, host.problems, host.optimizers, skip_unavailable=args.skip_unavailable)
    windows = parse_positive(args.windows, "--windows", 100_000)
    out = prepare_output_dir(Path(args.out)) if args.out else default_output_dir()
    options = RunOptions(data_dir=data_dir(args.data_dir), download=args.download,
                         windows=windows)
    for info in host.errors():
        print(f"harness: warning: plugin {info.label()} failed to load: {info.error}",
              file=sys.stderr)
    outcome = run_grid(
        grid, host, out, options, argv=argv, progress=not args.quiet,
        manifest_options={"data_dir": str(options.data_dir), "download": options.download,
                          "windows": windows, "skip_unavailable": args.skip_unavailable},
    )
    print(format_summary(outcome.summary))
    counts = outcome.summary["status"].value_counts().to_dict() if len(outcome.summary) else {}
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"\n{len(outcome.summary)} of {len(grid.cells)} cells recorded ({tally}); "
          f"results in {outcome.directory}")
    if outcome.interrupted:
        print("harness: interrupted; finished cells are kept in "
              f"{outcome.directory}", file=sys.stderr)
        return 130
    return 0


def cmd_list(args: argparse.Namespace, argv: Sequence[str]) -> int:
    print_catalogue(get_host(), args.json)
    return 0


def cmd_show(args: argparse.Namespace, argv: Sequence[str]) -> int:
    summary, run_dir = load_summary(Path(args.dir))
    manifest = run_dir.manifest()
    if manifest:
        print(f"run of {manifest.get('created', '?')}: {' '.join(manifest.get('command', []))}")
    print(format_summary(summary))
    return 0

"""``harness run``: the grid from flags, a file or a preset, then the runner."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.cli.read import format_summary
from harness.errors import DataUnavailableError, UsageError
from harness.executor import CellLimits, ExecutorSpec, RunOptions
from harness.grid import (
    ExpandedGrid,
    GridSpec,
    apply_sets,
    apply_toml,
    expand,
    load_grid_file,
    load_preset,
    parse_int,
    parse_list,
    parse_seeds,
)
from harness.plugins import PluginHost, get_host
from harness.run import cuda_mps
from harness.run.manifest import resume_options
from harness.run.runner import (
    RunRequest,
    check_executor,
    default_output_dir,
    prepare_output_dir,
    run_grid,
)
from harness.run.workers import LocalSettings, local_settings

#: Flags that shape the grid; with --resume the grid comes from the run's manifest.
GRID_FLAGS = ("grid", "preset", "models", "optimizers", "devices", "seeds", "steps",
              "batch_size", "out", "data_dir")


def data_dir(arg: str | None) -> Path:
    if arg is not None:
        return Path(_path_arg(arg, "--data-dir")).expanduser()
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness" / "data"


def _path_arg(value: str, flag: str) -> str:
    """An empty path is a mistake (an unset shell variable), never "use the default"."""
    if not value.strip():
        raise UsageError(f"{flag}: the path is empty")
    return value


def build_spec(args: argparse.Namespace) -> GridSpec:
    """Preset or grid file first, then flags on top."""
    host = get_host()
    spec = GridSpec()
    if args.preset and args.grid is not None:
        raise UsageError("give either a grid file or --preset, not both")
    if args.grid is not None:
        apply_toml(spec, load_grid_file(Path(_path_arg(args.grid, "the grid file"))),
                   args.grid)
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
    # --steps and --batch-size override the grid file's or preset's per-model settings
    # too ([model.dqn] steps = 5000 in the quick preset), not only its top-level ones.
    if args.steps is not None:
        spec.steps = parse_int(args.steps, "--steps", 1_000_000_000)
        for table in spec.model.values():
            table.pop("steps", None)
    if args.batch_size is not None:
        spec.batch_size = parse_int(args.batch_size, "--batch-size", 10_000_000)
        for table in spec.model.values():
            table.pop("batch_size", None)
    apply_sets(spec, args.sets, host.problems, host.optimizers)
    return spec


def execution_options(args: argparse.Namespace) -> CellLimits:
    """The limits every executor honours; the executor's own flags are its settings
    (:func:`_executor_settings`)."""
    threads = parse_int(args.threads, "--threads", 4096)
    timeout = None
    if args.timeout is not None:
        try:
            timeout = float(args.timeout)
        except ValueError:
            raise UsageError(f"--timeout: expected seconds, got {args.timeout!r}") from None
        if not 0 < timeout < 10**7:
            raise UsageError(f"--timeout: {args.timeout} is out of range")
    memory = None
    if args.max_memory_mb is not None:
        memory = parse_int(args.max_memory_mb, "--max-memory-mb", 2**30)
    if args.cudnn_benchmark and args.deterministic:
        raise UsageError("--cudnn-benchmark picks kernels by timing them; it cannot be "
                         "combined with --deterministic")
    return CellLimits(threads=threads, timeout=timeout, max_memory_mb=memory,
                      deterministic=args.deterministic, cudnn_benchmark=args.cudnn_benchmark)


def speed_options(args: argparse.Namespace) -> dict[str, Any]:
    from harness.train.fastpaths import LOADERS, OPT_IMPLS

    if args.loader not in LOADERS:
        raise UsageError(f"--loader: expected one of {', '.join(LOADERS)}, got {args.loader!r}")
    if args.opt_impl not in OPT_IMPLS:
        raise UsageError(f"--opt-impl: expected one of {', '.join(OPT_IMPLS)}, "
                         f"got {args.opt_impl!r}")
    if args.cuda_graphs and args.compile:
        raise UsageError("--cuda-graphs and --compile cannot be combined; for compiled CUDA "
                         "graphs use --compile --compile-mode reduce-overhead")
    workers = parse_int(args.loader_workers, "--loader-workers", 4096, minimum=0)
    if (workers or args.pin_memory) and args.loader != "dataloader":
        raise UsageError("--loader-workers and --pin-memory go with --loader dataloader")
    return {"loader": args.loader, "loader_workers": workers, "pin_memory": args.pin_memory,
            "opt_impl": args.opt_impl, "cuda_graphs": args.cuda_graphs, "compile": args.compile,
            "compile_backend": args.compile_backend, "compile_mode": args.compile_mode}


#: Execution flags that change what a cell computes, not only how fast or where.
RESULT_EXECUTION = ("deterministic", "cudnn_benchmark")


def _resumed_settings(given: dict[str, Any], defaults: dict[str, Any],
                      saved: dict[str, Any]) -> dict[str, Any]:
    """A resumed run's settings are those its cells ran with: flags left at their defaults
    take the saved values, and a flag given with another value is refused."""
    kept = {k: saved.get(k, defaults[k]) for k in given}
    for key, value in given.items():
        if value != defaults[key] and value != kept[key]:
            raise UsageError(f"--{key.replace('_', '-')} {value} differs from the resumed "
                             f"run's {key} {kept[key]!r}: a resumed run keeps the settings "
                             "its cells ran with")
    return kept


def _mps_would_help(local: LocalSettings | None, devices: Sequence[str],
                    unavailable: Collection[str]) -> bool:
    """Whether this run packs cells onto a GPU here without MPS, on a machine that has it
    (``local``: the local executor's settings, None for another executor)."""
    return (local is not None and local.workers > 0 and local.workers_per_device > 1
            and any(d.startswith("cuda") and d not in unavailable for d in devices)
            and cuda_mps.find_control() is not None)


#: The command line's spellings of executor settings: flag -> its argparse destination.
EXECUTOR_FLAGS = {"--workers": "workers", "--workers-per-device": "workers_per_device",
                  "--pin-cpus": "pin_cpus", "--cuda-mps": "cuda_mps", "--scheduler": "scheduler"}


def _executor_settings(args: argparse.Namespace, spec: ExecutorSpec) -> dict[str, str]:
    """``--executor-option KEY=VALUE``s, and the flags the executor spells as a setting
    (``spec.flags``; another flag is read as the setting of its own name)."""
    settings: dict[str, str] = {}
    for text in args.executor_options:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--executor-option {text!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    for flag, dest in EXECUTOR_FLAGS.items():
        given = getattr(args, dest, None)
        if given is None or given is False:
            continue
        key, value = spec.flags.get(flag, dest), "true" if given is True else str(given)
        if key in settings and settings[key] != value:
            raise UsageError(f"{flag} {value} and --executor-option {key}={settings[key]} "
                             "disagree; give one of them")
        settings[key] = value
    return settings


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    host = get_host()
    for info in host.errors():
        print(f"harness: warning: plugin {info.label()} failed to load: {info.error}",
              file=sys.stderr)
    execution = execution_options(args)
    windows = parse_int(args.windows, "--windows", 100_000)
    if args.resume is not None:
        _path_arg(args.resume, "--resume")
        given = [f for f in GRID_FLAGS if getattr(args, f, None) not in (None, False)]
        if given or args.sets:
            flag = "--set" if args.sets and not given else f"--{given[0].replace('_', '-')}"
            if flag == "--grid":
                flag = "a grid file"
            raise UsageError(f"--resume takes the grid from the run's manifest; "
                             f"{flag} cannot be given with it")
        out = Path(args.resume)
        saved = resume_options(out)  # checked: a damaged manifest is a one-line error
        spec = GridSpec(**saved["grid_spec"])
        skip = bool(saved.get("skip_unavailable")) or args.skip_unavailable
        # the cells' windows are their curves' resolution: kept, like the speed settings
        kept_windows = _resumed_settings({"windows": windows}, {"windows": 50}, saved)
        options = RunOptions(data_dir=Path(saved.get("data_dir", data_dir(None))),
                             download=bool(saved.get("download")),
                             windows=int(kept_windows["windows"]))
    else:
        if args.rerun_failed:
            raise UsageError("--rerun-failed goes with --resume DIR")
        saved = {}
        spec = build_spec(args)
        skip = args.skip_unavailable
        options = RunOptions(data_dir=data_dir(args.data_dir), download=args.download,
                             windows=windows)
    grid = expand(spec, host.problems, host.optimizers, skip_unavailable=skip)
    executor_settings = _executor_settings(args, host.executors.get(args.executor))
    check_executor(host, args.executor, executor_settings, execution)
    local = local_settings(executor_settings, execution) if args.executor == "local" else None
    if local is not None and local.cuda_mps:
        gpus = [d for d in grid.devices if d.startswith("cuda")]
        if not gpus:
            raise UsageError("--cuda-mps shares a GPU between workers; this grid has no cuda "
                             "device (add -d cuda)")
        if any(d not in grid.unavailable for d in gpus):  # skipped cells need no daemon
            cuda_mps.require_control()
    elif _mps_would_help(local, grid.devices, grid.unavailable):
        print("harness: hint: without --cuda-mps the GPU runs one worker's kernels at a time; "
              "with it, 8 packed eager cnn cells ran 8.3x one cell instead of 5.2x "
              "(BENCHMARKS.md)", file=sys.stderr)
    speed = speed_options(args)  # checked before a dry run too
    if args.resume is not None:
        speed = _resumed_settings(speed, {k: getattr(RunOptions(), k) for k in speed},
                                  saved.get("speed") or {})
        kept = _resumed_settings({k: getattr(execution, k) for k in RESULT_EXECUTION},
                                 {k: getattr(CellLimits(), k) for k in RESULT_EXECUTION},
                                 saved.get("execution") or {})
        execution = replace(execution, **kept)
    if args.dry_run:
        for cell in grid.cells:
            note = f"  (skipped: {grid.unavailable[cell.device]})" \
                if cell.device in grid.unavailable else ""
            print(f"{cell.describe(with_hyper=True)}  steps={cell.steps} "
                  f"batch={cell.batch_size}{note}")
        print(f"{len(grid.cells)} cells")
        return 0
    _prepare_data(host, grid, options)
    if args.resume is None:
        out = (prepare_output_dir(Path(_path_arg(args.out, "--out"))) if args.out is not None
               else default_output_dir())
    options = replace(options, **speed)
    every = (parse_int(args.checkpoint_every, "--checkpoint-every", 1_000_000_000)
             if args.checkpoint_every is not None else
             saved.get("checkpoint_every") if args.resume else None)
    save_models = args.save_models or (bool(saved.get("save_models")) if args.resume else False)
    options = replace(options, checkpoint_every=every, checkpoint_dir=out / "checkpoints",
                      models_dir=out / "models" if save_models else None)
    manifest_options: dict[str, Any] = {
        "data_dir": str(options.data_dir), "download": options.download,
        "windows": options.windows, "skip_unavailable": skip,
        "checkpoint_every": every, "save_models": save_models,
        "speed": speed,
    }
    outcome = run_grid(RunRequest(
        grid, out, options, execution, executor=args.executor,
        executor_settings=executor_settings, spec=spec, argv=argv,
        manifest_options=manifest_options, resume=args.resume is not None,
        rerun_failed=args.rerun_failed, progress=not args.quiet,
    ), host)
    print(format_summary(outcome.summary))
    counts = outcome.summary["status"].value_counts().to_dict() if len(outcome.summary) else {}
    tally = " (" + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")" \
        if counts else ""
    resumed = f" ({outcome.skipped_done} already done)" if outcome.skipped_done else ""
    print(f"\n{len(outcome.summary)} of {len(grid.cells)} cells recorded{tally}{resumed}; "
          f"results in {outcome.directory}")
    if outcome.interrupted:
        print(f"harness: interrupted by {outcome.interrupted}; finished cells are kept. "
              f"Resume with: harness run --resume {outcome.directory}", file=sys.stderr)
        return 143 if outcome.interrupted == "SIGTERM" else 130
    return 0


def _prepare_data(host: PluginHost, grid: ExpandedGrid, options: RunOptions) -> None:
    """Each problem that will run fetches or checks its data once, before anything is
    written: a failed download or a damaged file is one line, not a failed cell each."""
    names = dict.fromkeys(c.problem for c in grid.cells if c.device not in grid.unavailable)
    for name in names:
        try:
            host.problems.get(name).prepare(options.data_dir, options.download)
        except DataUnavailableError as exc:
            raise UsageError(f"{name}: {exc}") from None

"""``harness run``: the grid from flags, a file or a preset, then the runner."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.cli.read import (
    format_failures,
    format_summary,
    grid_hyperparameters,
    tracebacks,
)
from harness.errors import DataUnavailableError, UsageError
from harness.executor import CellLimits, ExecutorSpec, RunOptions
from harness.grid import (
    ExpandedGrid,
    GridSpec,
    apply_sets,
    apply_toml,
    load_grid_file,
    load_preset,
    parse_bounded,
    parse_int,
    parse_list,
    parse_seeds,
    plugin_paths,
)
from harness.grid.tune import TuneSpec, parse_tune
from harness.limits import MAX_TIMEOUT_S
from harness.outcome import EXIT_CELLS_FAILED, Status, parse_statuses
from harness.plugins import PluginHost, files, get_host, use_files
from harness.results import RunDirectory
from harness.run import cuda_mps, resume
from harness.run.resume import Start, prepare_output_dir
from harness.run.runner import (
    RunOutcome,
    RunRequest,
    check_executor,
    default_output_dir,
    run_grid,
)
from harness.run.workers import LocalSettings, local_settings


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
        spec.steps = parse_bounded(args.steps, "--steps", "steps")
        for table in spec.model.values():
            table.pop("steps", None)
    if args.batch_size is not None:
        spec.batch_size = parse_bounded(args.batch_size, "--batch-size", "batch_size")
        for table in spec.model.values():
            table.pop("batch_size", None)
    apply_sets(spec, args.sets, host.problems, host.optimizers, host.schedules)
    _apply_tune_flags(spec, args)
    return spec


#: ``--FLAG`` (argparse destination) -> its ``[tune]`` key.
TUNE_FLAGS = {"trials": "trials", "sampler": "sampler", "tune_params": "hyperparameters",
              "tune_seeds": "seeds", "final_seeds": "final_seeds", "tune_metric": "metric",
              "tune_seed": "seed", "edge": "edge", "prune": "pruner"}


def _apply_tune_flags(spec: GridSpec, args: argparse.Namespace) -> None:
    """The tuning flags over the grid's ``[tune]`` (``--tune`` alone: its defaults)."""
    given = {key: getattr(args, dest) for dest, key in TUNE_FLAGS.items()
             if getattr(args, dest, None) is not None}
    if not given and not getattr(args, "tune", False) and args.command != "tune":
        return
    table: dict[str, Any] = {}
    for key, text in given.items():
        if key == "hyperparameters":
            table[key] = parse_list(text, "--tune-params")
        elif key in ("trials", "seed"):
            table[key] = parse_int(text, f"--{'trials' if key == 'trials' else 'tune-seed'}",
                                   10_000 if key == "trials" else 2**31 - 1,
                                   1 if key == "trials" else 0)
        elif key in ("seeds", "final_seeds"):
            flag = "--tune-seeds" if key == "seeds" else "--final-seeds"
            table[key] = parse_int(text, flag, 10_000) if text.strip().isdigit() \
                and "-" not in text else parse_seeds(text, flag)
        else:
            table[key] = text
    spec.tune = {**(spec.tune or {}), **parse_tune(table, "tuning flags")}


def execution_options(args: argparse.Namespace) -> CellLimits:
    """The limits every executor honours; the executor's own flags are its settings
    (:func:`_executor_settings`)."""
    threads = parse_bounded(args.threads, "--threads", "threads")
    timeout = None
    if args.timeout is not None:
        try:
            if not args.timeout.isascii():  # float() reads other scripts' digits too
                raise ValueError(args.timeout)
            timeout = float(args.timeout)
        except ValueError:
            raise UsageError(f"--timeout: expected seconds, got {args.timeout!r}") from None
        if not 0 < timeout < MAX_TIMEOUT_S:
            raise UsageError(f"--timeout: {args.timeout} is out of range")
    memory = None
    if args.max_memory_mb is not None:
        memory = parse_bounded(args.max_memory_mb, "--max-memory-mb", "max_memory_mb")
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
    workers = parse_bounded(args.loader_workers, "--loader-workers", "loader_workers")
    if (workers or args.pin_memory) and args.loader != "dataloader":
        raise UsageError("--loader-workers and --pin-memory go with --loader dataloader")
    return {"loader": args.loader, "loader_workers": workers, "pin_memory": args.pin_memory,
            "opt_impl": args.opt_impl, "cuda_graphs": args.cuda_graphs, "compile": args.compile,
            "compile_backend": args.compile_backend, "compile_mode": args.compile_mode}


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


def load_plugin_files(args: argparse.Namespace) -> None:
    """``--plugin PATH``s, the grid file's ``plugins`` (relative to the grid file) and,
    with ``--resume`` or ``--extend``, the files the run was started with."""
    resume.check_flags(args)  # before a flag's run directory is read
    paths = files.resolve(args.plugin_paths)
    if args.resume is not None or (args.extend and args.out is not None):
        run = Path(_path_arg(args.resume if args.resume is not None else args.out, "--out"))
        verb = "resume" if args.resume is not None else "extend"
        paths += files.resolve(resume.plugin_files(run, verb), "the run's plugin file")
    if args.resume is None and args.grid is not None and not args.preset:
        grid = Path(_path_arg(args.grid, "the grid file"))
        paths += files.resolve(plugin_paths(load_grid_file(grid), args.grid),
                               f"{args.grid}: plugins", base=grid.parent)
    use_files(list(dict.fromkeys(paths)))


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``harness run`` (:func:`harness.cli.main._main` has started the fork server its CPU
    workers start from, before this module imported torch: harness.run.start)."""
    load_plugin_files(args)
    host = get_host()
    for info in host.errors():
        print(f"harness: warning: plugin {info.label()} failed to load: {info.error} "
              "(`harness list --verbose` shows the traceback)", file=sys.stderr)
    execution = execution_options(args)
    fail_on = parse_statuses(args.fail_on, "--fail-on", none=True)
    start = _start(args, parse_bounded(args.windows, "--windows", "windows"), argv)
    grid = resume.expand_run(start, host.problems, host.optimizers, host.schedules)
    tune = None if start.spec.tune is None else TuneSpec(**start.spec.tune)
    if tune is not None and args.extend:
        raise UsageError("--extend does not grow a tuning run; start another, or resume it")
    if start.extension is not None and start.out is not None:
        resume.check_extension(grid, start.out)
    executor_settings = _executor_settings(args, host.executors.get(args.executor))
    check_executor(host, args.executor, executor_settings, execution)
    local = local_settings(executor_settings, execution) if args.executor == "local" else None
    _check_cuda_mps(local, grid)
    repeats = start.repeats(None if args.repeats is None
                            else parse_bounded(args.repeats, "--repeats", "repeats"))
    if repeats and local is not None and local.workers == 0:
        raise UsageError("--repeats times each cell again in fresh worker processes; it "
                         "cannot be used with --workers 0")
    speed = start.speed(speed_options(args))  # checked before a dry run too
    execution = start.execution(execution)
    every = start.checkpoint_every(
        None if args.checkpoint_every is None
        else parse_bounded(args.checkpoint_every, "--checkpoint-every", "checkpoint_every"))
    if args.dry_run:
        if tune is not None:  # Optuna is imported for a tuning run only
            from harness.tune import first_cells

            grid = replace(grid, cells=tuple(first_cells(grid, tune, host, start.spec.seeds)))
        _list_cells(grid)
        if tune is not None:
            print("then each study's selected configuration on its final seeds")
        return 0
    _prepare_data(host, grid, start.options)
    out = start.out if start.out is not None else _new_output_dir(args.out)
    save_models = start.save_models(args.save_models)
    options = replace(start.options, **speed, checkpoint_every=every,
                      checkpoint_dir=out / "checkpoints",
                      models_dir=out / "models" if save_models else None)
    manifest_options: dict[str, Any] = {
        "data_dir": str(options.data_dir), "download": options.download,
        "windows": options.windows, "skip_unavailable": start.skip_unavailable,
        "checkpoint_every": every, "save_models": save_models,
        "speed": speed, "plugin_files": list(host.plugin_files()), "repeats": repeats,
    }
    request = RunRequest(
        grid, out, options, execution, executor=args.executor,
        executor_settings=executor_settings, spec=start.spec, argv=argv,
        manifest_options=manifest_options, resume=start.resumed, extension=start.extension,
        rerun_failed=args.rerun_failed, progress=not args.quiet, repeats=repeats,
    )
    if tune is None:
        return _report(run_grid(request, host), len(grid.cells), fail_on, args.errors)
    from harness.tune import run_tuning

    outcome = run_tuning(request, host, tune, start.spec.seeds)
    return _report(outcome, len(outcome.summary), fail_on, args.errors)


def cmd_tune(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``harness tune``: ``harness run`` with tuning on (docs/tuning.md)."""
    return cmd_run(args, argv)


def _start(args: argparse.Namespace, windows: int, argv: Sequence[str]) -> Start:
    """The run's grid and first options: from the flags, or, with ``--resume`` or
    ``--extend``, by the rules of :mod:`harness.run.resume` from the run's manifest."""
    resume.check_flags(args)
    if args.resume is not None:
        return resume.resume(Path(_path_arg(args.resume, "--resume")), args.skip_unavailable,
                             windows, data_dir(None))
    if args.extend:
        return resume.extend(Path(_path_arg(args.out, "--out")), build_spec(args),
                             args.skip_unavailable, windows,
                             None if args.data_dir is None else data_dir(args.data_dir), argv)
    return Start(spec=build_spec(args), skip_unavailable=args.skip_unavailable,
                 options=RunOptions(data_dir=data_dir(args.data_dir), download=args.download,
                                    windows=windows))


def _check_cuda_mps(local: LocalSettings | None, grid: ExpandedGrid) -> None:
    """--cuda-mps needs a GPU in the grid and the daemon's control; without it, a hint
    where it would help (``local``: the local executor's settings, None for another)."""
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


def _list_cells(grid: ExpandedGrid) -> None:
    """--dry-run: the cells, one a line, and how many."""
    for cell in grid.cells:
        note = f"  (skipped: {grid.unavailable[cell.device]})" \
            if cell.device in grid.unavailable else ""
        print(f"{cell.describe(with_hyper=True)}  steps={cell.steps} "
              f"batch={cell.batch_size}{note}")
    print(f"{len(grid.cells)} cells")


def _new_output_dir(arg: str | None) -> Path:
    """A new run's directory: --out, which must hold no run, or results/<timestamp>."""
    if arg is None:
        return default_output_dir()
    return prepare_output_dir(Path(_path_arg(arg, "--out")))


def _report(outcome: RunOutcome, cells: int, fail_on: Sequence[Status] = (),
            errors: bool = False) -> int:
    """The summary, why each cell that is not ok is not, and the tally; the exit code:
    130 or 143 when a signal stopped it, else :data:`EXIT_CELLS_FAILED` when a cell
    ended with a status of ``fail_on``."""
    run_dir = RunDirectory(outcome.directory)
    print(format_summary(outcome.summary, grid_hyperparameters(run_dir.manifest())))
    failures = format_failures(outcome.summary, tracebacks(run_dir) if errors else None)
    if failures:
        print(f"\n{failures}")
    counts = outcome.summary["status"].value_counts().to_dict() if len(outcome.summary) else {}
    tally = " (" + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")" \
        if counts else ""
    resumed = f" ({outcome.skipped_done} already done)" if outcome.skipped_done else ""
    print(f"\n{len(outcome.summary)} of {cells} cells recorded{tally}{resumed}; "
          f"results in {outcome.directory}")
    if outcome.interrupted:
        print(f"harness: interrupted by {outcome.interrupted}; finished cells are kept. "
              f"Resume with: harness run --resume {outcome.directory}", file=sys.stderr)
        return 143 if outcome.interrupted == "SIGTERM" else 130
    failed = [str(s) for s in fail_on if str(s) in counts]
    if failed:
        which = ", ".join(f"{counts[s]} {s}" for s in failed)
        print(f"harness: {which}: exit code {EXIT_CELLS_FAILED} (--fail-on none to exit 0 "
              "whatever the cells did)", file=sys.stderr)
        return EXIT_CELLS_FAILED
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

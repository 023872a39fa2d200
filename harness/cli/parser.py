"""The command line's parser: every command and flag, in one declarative table.

``build_parser`` is the one function in harness longer than 80 lines, on purpose: it is
a table of ``add_argument`` calls, read top to bottom like ``harness run --help``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from harness import __version__
from harness.errors import UsageError
from harness.executor import CellLimits, RunOptions
from harness.outcome import FAIL_ON

DESCRIPTION = "The command line: it parses, then delegates. Errors are one line, exit code 2."


def _plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", dest="plugin_paths", action="append", default=[],
                        metavar="PATH", help="load a local plugin: a .py file or a package "
                                             "directory with @hookimpl functions (repeatable)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid of models x optimizers x devices x seeds")
    run.add_argument("grid", nargs="?", help="a TOML grid file")
    run.add_argument("--preset", help="a built-in grid: 'quick', 'default' or 'tune-quick' "
                                          "(a tuning run, docs/tuning.md)")
    run.add_argument("-m", "--models", help="comma-separated model names")
    run.add_argument("-o", "--optimizers", help="comma-separated optimizer names")
    run.add_argument("-d", "--devices", help="comma-separated devices: cpu, cuda, cuda:N, mps")
    run.add_argument("-s", "--seeds", help="seeds: 0-4, or 0,1,2")
    run.add_argument("--steps", help="training steps per cell (default: each model's)")
    run.add_argument("--batch-size", help="batch size (default: each model's)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="a model parameter or optimizer hyperparameter: activation=tanh, "
                          "adam.lr=0.001; a comma list makes an axis (repeatable)")
    run.add_argument("--out", help="output directory (default: results/<timestamp>)")
    run.add_argument("--data-dir", help="where datasets live (default: $HARNESS_DATA_DIR or "
                                        "~/.cache/harness/data)")
    run.add_argument("--download", action="store_true",
                     help="download datasets that are missing (needs the network)")
    run.add_argument("--skip-unavailable", action="store_true",
                     help="mark cells on devices this machine lacks as skipped")
    run.add_argument("--windows", default=str(RunOptions.windows),
                     help=f"logging windows per cell (default {RunOptions.windows})")
    run.add_argument("--executor", default="local",
                     help="what runs the cells: 'local' (worker processes here, the default), "
                          "'dask', or one a plugin registers")
    run.add_argument("--scheduler", help="the executor's scheduler address (dask: tcp://HOST:PORT)")
    run.add_argument("--executor-option", dest="executor_options", action="append", default=[],
                     metavar="KEY=VALUE", help="an executor-specific setting (repeatable)")
    run.add_argument("--workers", help="worker processes running cells at once (default: the "
                                       "CPUs this process may use / --threads); 0 runs cells "
                                       "in this process")
    run.add_argument("--workers-per-device",
                     help="cells running at once on each GPU, each worker pinned to its "
                          "device (default 1; a setting of the local executor)")
    run.add_argument("--pin-cpus", action="store_true",
                     help="pin each worker to its own physical cores (--threads of them); "
                          "the row's 'cpus' column says which")
    run.add_argument("--cuda-mps", action="store_true",
                     help="run the GPU workers under a private NVIDIA MPS daemon, so packed "
                          "cells (--workers-per-device N) run their kernels side by side")
    run.add_argument("--repeats", metavar="K",
                     help="measure each cell's throughput in K more runs, each in a fresh "
                          "worker process (pyperf's approach): the summary gets "
                          "throughput_repeats, throughput_repeat_rates and their dispersion, "
                          "and harness compare tests them (default 0)")
    run.add_argument("--threads", default=str(CellLimits.threads),
                     help=f"torch threads per worker (default {CellLimits.threads}, so CPU "
                          "results do not depend on the number of workers)")
    run.add_argument("--timeout", help="hard limit per cell in seconds: the cell's worker is "
                                       "killed and the cell recorded as 'timeout'")
    run.add_argument("--max-memory-mb", help="memory a cell may allocate beyond its worker's "
                                             "size after start-up (torch imported); a cell "
                                             "that exceeds it is recorded as 'oom'")
    run.add_argument("--deterministic", action="store_true",
                     help="torch deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG)")
    run.add_argument("--cudnn-benchmark", action="store_true",
                     help="let cuDNN time its convolution algorithms and keep the fastest "
                          "(faster on a GPU; the kernels chosen may differ between runs)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the run in DIR: only cells without a record run")
    run.add_argument("--extend", action="store_true",
                     help="grow the run in --out DIR with this grid: its finished cells are "
                          "kept, only the new cells run")
    run.add_argument("--rerun-failed", action="store_true",
                     help="with --resume or --extend, also rerun diverged/timeout/oom/error "
                          "cells")
    run.add_argument("--checkpoint-every", metavar="N",
                     help="save each cell's state every N steps, so an interrupted cell "
                          "resumes from its last checkpoint (with --resume)")
    run.add_argument("--save-models", action="store_true",
                     help="save each finished cell's networks (state dicts) in DIR/models")
    fast = run.add_argument_group("speed")
    fast.add_argument("--loader", default=RunOptions.loader,
                      help="'device' (tensors on the cell's device, seeded randperm batches; the "
                           "default) or 'dataloader' (torch DataLoader, the tutorial's way)")
    fast.add_argument("--loader-workers", default=str(RunOptions.loader_workers),
                      help=f"DataLoader num_workers (default {RunOptions.loader_workers})")
    fast.add_argument("--pin-memory", action="store_true", help="DataLoader pin_memory")
    fast.add_argument("--opt-impl", default=RunOptions.opt_impl,
                      help="optimizer kernels: auto (fused on CUDA where offered, else torch's "
                           "default), fused, foreach or loop")
    fast.add_argument("--cuda-graphs", action="store_true",
                      help="capture each supervised step (forward, loss, backward, optimizer) in "
                           "one CUDA graph; falls back to eager, with the reason recorded")
    fast.add_argument("--compile", action="store_true",
                      help="torch.compile the model (compile time reported as compile_s)")
    fast.add_argument("--compile-backend", default=RunOptions.compile_backend,
                      help="torch.compile backend")
    fast.add_argument("--compile-mode", help="torch.compile mode, e.g. reduce-overhead")
    run.add_argument("--dry-run", action="store_true",
                     help="validate the grid and list its cells; run and write nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _plugin_flag(run)
    run.add_argument("--errors", action="store_true",
                     help="print each failed cell's reason in full, with its traceback")
    run.add_argument("--fail-on", default=",".join(FAIL_ON), metavar="STATUSES",
                     help="exit with 1 when a cell ends with one of these statuses "
                          f"(default {','.join(FAIL_ON)}; 'none': exit 0 whatever the cells "
                          "did)")
    tune = run.add_argument_group("tuning (docs/tuning.md; they override the grid's [tune])")
    tune.add_argument("--tune", action="store_true",
                      help="make this a tuning run (as `harness tune`, or a grid's [tune])")
    tune.add_argument("--trials", help="trials per (problem, optimizer) study (default 8)")
    tune.add_argument("--sampler", help="sobol (the default), tpe, random or grid")
    tune.add_argument("--tune-params", metavar="NAMES",
                      help="the hyperparameters to tune, comma-separated (default lr)")
    tune.add_argument("--tune-seeds", metavar="SEEDS",
                      help="the trial seeds: a count, 0-2 or 0,1 (default: the grid's seeds)")
    tune.add_argument("--final-seeds", metavar="SEEDS",
                      help="fresh seeds the selected configurations run on: a count after "
                           "the trial seeds (default 6, the fewest with which the paired "
                           "test can reach p < 0.05) or a list")
    tune.add_argument("--tune-metric", help="validation (the default), training, or a "
                                            "metric's name")
    tune.add_argument("--tune-seed", help="the samplers' seed (default 0)")
    tune.add_argument("--edge", help="flag (the default) or extend: widen a space whose edge "
                                     "was selected and run more trials there")
    tune.add_argument("--prune", help="none (the default) or halving: Optuna's successive "
                                      "halving between rounds, trials of later rounds stop "
                                      "at a rung where it, told the earlier rounds' trials, "
                                      "would stop them")

    # The same flags as run (shared actions: no set_defaults here, it would change run's)
    sub.add_parser("tune", parents=[run], add_help=False,
                   help="tune each (problem, optimizer) on a validation split, then re-run "
                        "the selected configuration on fresh seeds")

    lst = sub.add_parser("list", help="list models, optimizers and plugins (with load errors)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--verbose", action="store_true",
                     help="the full traceback of each plugin that failed to load")
    _plugin_flag(lst)

    show = sub.add_parser("show", help="print a run's summary table")
    show.add_argument("dir", help="a results directory")
    show.add_argument("--status", metavar="STATUSES",
                      help="only the cells with these statuses: error, or error,timeout")
    show.add_argument("--errors", action="store_true",
                      help="print each failed cell's reason in full, with its traceback")

    report = sub.add_parser(
        "report", help="write DIR/report/index.html: figures, rankings, statistics over seeds")
    report.add_argument("dir", nargs="+",
                        help="a results directory, or several (a default run and a tuning "
                             "run, say) combined into one page")
    report.add_argument("--out", help="write the report here instead of DIR/report "
                                      "(several DIRs: the first's report-combined)")
    _plugin_flag(report)
    report.add_argument("--cost", choices=("steps", "samples", "flops", "time"),
                        default="steps",
                        help="the cost the performance profile and cost-to-target figure use "
                             "(default: steps; time is not reproducible on a shared machine)")
    report.add_argument("--workers", type=int, metavar="N",
                        help="processes drawing the figures (default: one per CPU; 1 draws "
                             "in this process)")

    compare = sub.add_parser(
        "compare", help="compare two runs cell by cell; exit 1 when something regressed",
        description="Match cells by their key (without seed and versions). Throughput "
                    "regressed only when the new median is slower by at least the floor, a "
                    "two-sided Mann-Whitney U test on the runs (seeds and --repeats) or, with "
                    "too few runs, on the steady windows gives p < ALPHA, and the machine (CPU "
                    "model, CPU time other processes left free) can not explain it; otherwise "
                    "it is unchanged, improved or inconclusive (with the reason), and "
                    "inconclusive never fails. Final metric: the median per-seed difference "
                    "(seeds pair up) worse, on the metric's better side, by more than "
                    "max(FLOOR x |base median|, K x spread), spread the standard deviation of "
                    "those differences. A cell that finished ok in BASE and not in NEW also "
                    "regresses, and so does a cell NEW lost (no record, or status error) "
                    "unless --allow-missing. Exit 1 on a regression, 0 otherwise.")
    compare.add_argument("base", help="the baseline results directory")
    compare.add_argument("new", help="the results directory to judge")
    compare.add_argument("--k", default="2", help="final metric: noise multiplier K (default 2)")
    compare.add_argument("--throughput-floor", default="0.10",
                         help="smallest relative throughput change that counts (default 0.10)")
    compare.add_argument("--metric-floor", default="0.05",
                         help="smallest relative final-metric change that counts (default 0.05)")
    compare.add_argument("--metric",
                         help="the summary column to judge as the final metric, on the side "
                              "its metric_directions entry says (default: each problem's "
                              "target metric)")
    compare.add_argument("--alpha", default="0.05",
                         help="significance level of the throughput test (default 0.05)")
    compare.add_argument("--load-tolerance", default="0.10",
                         help="how much less CPU time other processes may leave free in NEW "
                              "before the load differed (default 0.10)")
    compare.add_argument("--allow-missing", action="store_true",
                         help="do not fail on cells NEW lost: cells of BASE or of NEW's own "
                              "grid without a record in NEW, or that ended error there")

    export = sub.add_parser("export", help="write a run's results in another tool's format")
    export.add_argument("dir", help="a results directory")
    export.add_argument("--format", required=True, choices=["pytest-benchmark"],
                        help="pytest-benchmark: JSON that `pytest-benchmark compare` reads")
    export.add_argument("--out", help="output file (default: standard output)")
    return parser

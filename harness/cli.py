"""The command line: it parses, then delegates. Errors are one line, exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from harness import __version__
from harness.errors import HarnessError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid of models x optimizers x devices x seeds")
    run.add_argument("grid", nargs="?", help="a TOML grid file")
    run.add_argument("--preset", help="a built-in grid: 'quick' or 'default'")
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
    run.add_argument("--windows", default="50", help="logging windows per cell (default 50)")
    run.add_argument("--executor", default="local",
                     help="what runs the cells: 'local' (worker processes here, the default), "
                          "'dask', or one a plugin registers")
    run.add_argument("--scheduler", help="the executor's scheduler address (dask: tcp://HOST:PORT)")
    run.add_argument("--executor-option", dest="executor_options", action="append", default=[],
                     metavar="KEY=VALUE", help="an executor-specific setting (repeatable)")
    run.add_argument("--workers", help="worker processes running cells at once (default: the "
                                       "CPUs this process may use / --threads); 0 runs cells "
                                       "in this process")
    run.add_argument("--workers-per-device", default="1",
                     help="cells running at once on each GPU, each worker pinned to its "
                          "device (default 1)")
    run.add_argument("--pin-cpus", action="store_true",
                     help="pin each worker to its own physical cores (--threads of them); "
                          "the row's 'cpus' column says which")
    run.add_argument("--cuda-mps", action="store_true",
                     help="run the GPU workers under a private NVIDIA MPS daemon, so packed "
                          "cells (--workers-per-device N) run their kernels side by side")
    run.add_argument("--threads", default="1",
                     help="torch threads per worker (default 1, so CPU results do not depend "
                          "on the number of workers)")
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
    run.add_argument("--rerun-failed", action="store_true",
                     help="with --resume, also rerun diverged/timeout/oom/error cells")
    run.add_argument("--checkpoint-every", metavar="N",
                     help="save each cell's state every N steps, so an interrupted cell "
                          "resumes from its last checkpoint (with --resume)")
    run.add_argument("--save-models", action="store_true",
                     help="save each finished cell's networks (state dicts) in DIR/models")
    fast = run.add_argument_group("speed")
    fast.add_argument("--loader", default="device",
                      help="'device' (tensors on the cell's device, seeded randperm batches; the "
                           "default) or 'dataloader' (torch DataLoader, the tutorial's way)")
    fast.add_argument("--loader-workers", default="0", help="DataLoader num_workers (default 0)")
    fast.add_argument("--pin-memory", action="store_true", help="DataLoader pin_memory")
    fast.add_argument("--opt-impl", default="auto",
                      help="optimizer kernels: auto (fused on CUDA where offered, else torch's "
                           "default), fused, foreach or loop")
    fast.add_argument("--cuda-graphs", action="store_true",
                      help="capture each supervised step (forward, loss, backward, optimizer) in "
                           "one CUDA graph; falls back to eager, with the reason recorded")
    fast.add_argument("--compile", action="store_true",
                      help="torch.compile the model (compile time reported as compile_s)")
    fast.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    fast.add_argument("--compile-mode", help="torch.compile mode, e.g. reduce-overhead")
    run.add_argument("--dry-run", action="store_true",
                     help="validate the grid and list its cells; run and write nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    lst = sub.add_parser("list", help="list models, optimizers and plugins (with load errors)")
    lst.add_argument("--json", action="store_true", help="machine-readable output")

    show = sub.add_parser("show", help="print a run's summary table")
    show.add_argument("dir", help="a results directory")

    report = sub.add_parser(
        "report", help="write DIR/report/index.html: figures, rankings, statistics over seeds")
    report.add_argument("dir", help="a results directory")
    report.add_argument("--out", help="write the report here instead of DIR/report")

    compare = sub.add_parser(
        "compare", help="compare two runs cell by cell; exit 1 when something regressed",
        description="Match cells by their key (without seed and versions) and flag a "
                    "regression when a value got worse by more than "
                    "max(FLOOR x |base median|, K x spread). Throughput: new median minus base "
                    "median over seeds; spread is the pooled standard deviation over seeds, or "
                    "with one seed the standard error from the steady-state windows. Final "
                    "metric: the median per-seed difference (seeds pair up); spread is the "
                    "standard deviation of those differences. A cell that finished ok in BASE "
                    "and not in NEW also regresses. Exit 1 on a regression, 0 otherwise.")
    compare.add_argument("base", help="the baseline results directory")
    compare.add_argument("new", help="the results directory to judge")
    compare.add_argument("--k", default="2", help="noise multiplier K (default 2)")
    compare.add_argument("--throughput-floor", default="0.10",
                         help="smallest relative throughput drop that counts (default 0.10)")
    compare.add_argument("--metric-floor", default="0.05",
                         help="smallest relative final-metric change that counts (default 0.05)")

    export = sub.add_parser("export", help="write a run's results in another tool's format")
    export.add_argument("dir", help="a results directory")
    export.add_argument("--format", required=True, choices=["pytest-benchmark"],
                        help="pytest-benchmark: JSON that `pytest-benchmark compare` reads")
    export.add_argument("--out", help="output file (default: standard output)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code.

    Errors meant for the user are one line on standard error: bad input and an output
    that cannot be written (``cannot write PATH: REASON``) exit with 2. When standard
    output's reader goes away (``harness list | head -1``) the command stops quietly
    with exit code 141, which is what a shell reports for a program that SIGPIPE ended
    (``yes | head``), so ``set -o pipefail`` still tells a cut-off listing from a whole one.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)  # type: ignore[assignment]
    try:
        return _main(args_list)
    except _StdoutFailed as failed:
        _discard_stdout(stdout)
        if isinstance(failed.error, BrokenPipeError):
            return SIGPIPE_EXIT
        print(f"harness: error: cannot write <stdout>: {_reason(failed.error)}",
              file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


#: The exit code when standard output's reader went away: 128 + SIGPIPE, as a shell
#: reports for a program that SIGPIPE ended.
SIGPIPE_EXIT = 141


def _main(args_list: list[str]) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help()
            code = 0
        else:
            from harness import commands

            handler = getattr(commands, f"cmd_{args.command}")
            code = int(handler(args, args_list))
        sys.stdout.flush()  # a full disk or a closed pipe shows now, not at exit
        return code
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        path = _output_path(exc, args)
        if path is None:
            raise  # not one of this command's outputs: a bug to see in full
        print(f"harness: error: cannot write {path}: {_reason(exc)}", file=sys.stderr)
        return 2


def _outputs(args: argparse.Namespace) -> list[Path]:
    """Where this command writes, besides standard output."""
    if args.command == "run":
        # Without --out, the run goes to results/<timestamp> (harness.runner).
        return [Path(p) for p in (args.out, args.resume) if p] or [Path("results")]
    if args.command == "report":
        return [Path(args.out) if args.out else Path(args.dir) / "report"]
    if args.command == "export" and args.out:
        return [Path(args.out)]
    return []


def _output_path(exc: OSError, args: argparse.Namespace | None) -> str | None:
    """The path named by ``exc`` when it is, holds or lies in one of the command's outputs
    (creating ``a/b/c`` fails on ``a/b`` when ``a`` is a file)."""
    if args is None or not exc.filename or not isinstance(exc.filename, str | bytes | Path):
        return None
    name = os.fsdecode(exc.filename)
    failed = Path(os.path.abspath(name))
    for out in _outputs(args):
        out = Path(os.path.abspath(out))
        if failed == out or out in failed.parents or failed in out.parents:
            return name
    return None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class _StdoutFailed(Exception):
    """A write to standard output failed (not an OSError, so that no handler on the
    way mistakes it for a failure of whatever file that handler is about)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Stdout:
    """Standard output for the length of a command: a failed write or flush raises
    :class:`_StdoutFailed`, told apart from an OSError anywhere else."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _StdoutFailed(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise _StdoutFailed(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_stdout(stream: TextIO) -> None:
    """Point the file descriptor under ``stream`` at /dev/null, so that what is still
    buffered goes nowhere at exit instead of failing again ("Exception ignored ...")."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

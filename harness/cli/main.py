"""The command line: it parses, then delegates. Errors are one line, exit code 2."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from harness.cli.parser import build_parser
from harness.errors import HarnessError
from harness.imports import collector_paused

#: Each command's module, imported only when that command runs: ``show``, ``compare`` and
#: ``export`` never pay for torch or the plugins.
COMMANDS = {
    "run": "harness.cli.run",
    "tune": "harness.cli.run",
    "list": "harness.cli.catalogue",
    "show": "harness.cli.read",
    "compare": "harness.cli.read",
    "export": "harness.cli.read",
    "report": "harness.cli.report",
}



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


def entry() -> NoReturn:
    """The ``harness`` executable (and ``python -m harness``): :func:`main`, then exit
    without tearing the interpreter down. Every file is written and flushed by then, and
    the exit handlers run (multiprocessing's among them); what is skipped is freeing
    torch's modules one by one, about 0.6 s for a process that ends anyway. Under a profiler
    or a tracer (``python -m cProfile -m harness``, coverage) it exits normally."""
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage tool writes its data at the normal exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or its reader gone
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _main(args_list: list[str]) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(args_list)
        if args.command is None:
            build_parser().print_help()
            code = 0
        else:
            with _fork_server(args):  # before the command's module imports torch
                with collector_paused():  # the command's libraries (harness.imports)
                    module = importlib.import_module(COMMANDS[args.command])
                code = int(getattr(module, f"cmd_{args.command}")(args, args_list))
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
        if path is not None:
            print(f"harness: error: cannot write {path}: {_reason(exc)}", file=sys.stderr)
            return 2
        path = _named_path(exc, _inputs(args) if args is not None else [])
        if path is not None and isinstance(exc, PermissionError):  # an input we may not read
            print(f"harness: error: cannot read {path}: {_reason(exc)}", file=sys.stderr)
            return 2
        raise  # not one of this command's files: a bug to see in full


def _fork_server(args: argparse.Namespace) -> contextlib.AbstractContextManager[bool]:
    """For a run on the local executor's workers, the fork server they start from
    (:mod:`harness.run.start`), started now: it imports torch and the plugins on another
    core while this process does the same and reads the grid."""
    if args.command not in ("run", "tune") or args.executor != "local" or args.dry_run \
            or str(args.workers) == "0":
        return contextlib.nullcontext(False)
    from harness.run.start import fork_server  # multiprocessing only: no torch, no pool

    return fork_server()


def _outputs(args: argparse.Namespace) -> list[Path]:
    """Where this command writes, besides standard output."""
    if args.command in ("run", "tune"):
        # Without --out, the run goes to results/<timestamp> (harness.run.runner).
        return [Path(p) for p in (args.out, args.resume) if p] or [Path("results")]
    if args.command == "report":
        several = len(args.dir) > 1  # harness.report.build.COMBINED (not imported here)
        return [Path(args.out) if args.out else
                Path(args.dir[0]) / ("report-combined" if several else "report")]
    if args.command == "export" and args.out:
        return [Path(args.out)]
    return []


def _inputs(args: argparse.Namespace) -> list[Path]:
    """What this command reads that the user named: results directories, the grid file,
    the run to resume, plugin files."""
    named: list[str] = list(getattr(args, "plugin_paths", None) or [])
    for attr in ("dir", "grid", "resume", "base", "new"):
        value = getattr(args, attr, None)
        if isinstance(value, str):
            named.append(value)
        elif isinstance(value, list):
            named += [v for v in value if isinstance(v, str)]
    return [Path(p) for p in named]


def _output_path(exc: OSError, args: argparse.Namespace | None) -> str | None:
    """The path named by ``exc`` when it is, holds or lies in one of the command's outputs
    (creating ``a/b/c`` fails on ``a/b`` when ``a`` is a file)."""
    return None if args is None else _named_path(exc, _outputs(args))


def _named_path(exc: OSError, paths: list[Path]) -> str | None:
    """The path named by ``exc`` when it is, holds or lies in one of ``paths``."""
    if not exc.filename or not isinstance(exc.filename, str | bytes | Path):
        return None
    name = os.fsdecode(exc.filename)
    failed = Path(os.path.abspath(name))
    for out in paths:
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

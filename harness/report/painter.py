"""The report's drawing process: started when a report starts, so that matplotlib and the
figure code load in it while the report's own process reads the run.

A report reads the run and computes its tables (pandas) before it can draw, and drawing
needs matplotlib and the figure modules, which take as long again to import. Done in turn
in one process, the two left a CPU idle for about a second; :class:`Painter` forks a
process that imports :mod:`harness.report.parts` (and loads the plugins, when it is not
given a host) while this one reads, then receives the page (pickled, about 2 MB for the
quick preset) and draws its parts in workers it forks, which inherit all of that.
``harness report`` starts it before it imports pandas. The report's own process never
imports matplotlib.

With one CPU, one worker (``--workers 1``) or no ``fork``, nothing is started and the parts
are drawn in this process, in order. The page is the same either way.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.imports import collector_paused

if TYPE_CHECKING:
    import pandas as pd

    from harness.plugins import PluginHost
    from harness.report.model import ReportRun
    from harness.report.parts import Drawn
    from harness.report.sweep import Sweep


@dataclass(frozen=True)
class Page:
    """What every part of the page is drawn from: the report's process computes it and
    sends it (pickled) to the drawing process, whose workers inherit it when they fork."""

    run: ReportRun
    out: Path
    ranking: pd.DataFrame
    overview: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame,
                    pd.DataFrame, str]
    sweep: Sweep | None = None
    #: The whole run (``run`` is a sweep's view of it: one configuration per optimizer).
    source: ReportRun | None = None

    def parts(self) -> int:
        """The overview and one part per problem."""
        return len(self.run.models()) + 1


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class DrawingError(HarnessError):
    """The drawing process ended without the page's parts (killed, or out of memory)."""


class Painter:
    """Draws a page's parts (:meth:`draw`), in a drawing process started now where that
    helps (see the module's documentation). Use as a context manager, or :meth:`close`."""

    def __init__(self, host: PluginHost | None, workers: int | None = None) -> None:
        """``host`` draws the plugins' figures; ``None``: the process-wide one
        (:func:`harness.plugins.get_host`), which the drawing process builds itself."""
        self.host = host
        self.workers = workers
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._sent = False
        if (workers is None or workers > 1) and usable_cpus() > 1 \
                and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            self._conn, theirs = context.Pipe()
            # forked: it has the host as it is (plugins loaded, the caller's own included), or
            # the settings get_host() builds it from; not a daemon: it forks the workers
            self._process = context.Process(target=_serve, args=(theirs, host, workers),
                                            name="harness-report-drawing")
            self._process.start()
            theirs.close()

    @property
    def started(self) -> bool:
        """Whether a drawing process was started."""
        return self._process is not None

    def draw(self, page: Page) -> Drawn:
        """The page's sections in order and the figure errors; the figures are written to
        ``page.out``. An exception drawing them is raised here, as it was raised there."""
        if self._conn is None:
            from harness.plugins import get_host
            from harness.report.parts import draw_parts

            return draw_parts(page, self.host or get_host(), self.workers)
        try:
            self._sent = True
            self._conn.send(page)
            kind, value, where = self._conn.recv()
        except (EOFError, ConnectionError):  # a broken pipe, a reset connection
            assert self._process is not None
            self._process.join(5)
            raise DrawingError("the report's drawing process ended without drawing the page "
                               f"(exit code {self._process.exitcode})") from None
        if kind == "error":
            value.add_note(f"raised in the report's drawing process:\n{where}")
            raise value
        drawn: Drawn = value
        return drawn

    def close(self) -> None:
        """End the drawing process (at once if it never drew) and wait for it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if not self._sent:  # the report failed before its page: nothing to wait for
                self._process.kill()
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _serve(conn: Connection, host: PluginHost | None, workers: int | None) -> None:
    """The drawing process: import the drawing code (and load the plugins), then draw the
    page it is sent and send back the sections, or the exception and where it was raised."""
    failed: BaseException | None = None
    try:
        with collector_paused():  # see harness.imports
            from harness.plugins import get_host
            from harness.report import parts

            if host is None:
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    host = get_host()  # what loading prints, the report's process shows
            gc.freeze()  # before the collector is back on: nothing walks what they made
    except BaseException as exc:  # sent in place of the page's parts
        failed = exc
    try:
        page = conn.recv()
    except (EOFError, OSError):
        return  # the report ended before it drew (it could not read the run)
    gc.freeze()  # the page too: the workers that fork now draw without walking it
    try:
        if failed is not None:
            raise failed
        assert host is not None
        answer: tuple[str, object, str] = ("ok", parts.draw_parts(page, host, workers), "")
    except BaseException as exc:
        answer = ("error", _sendable(exc), "".join(traceback.format_exception(exc)))
    with contextlib.suppress(BrokenPipeError, OSError):  # the report is gone
        conn.send(answer)


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles and unpickles, else a RuntimeError with its type and text (its
    traceback is sent beside it)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"drawing the report failed: {type(exc).__name__}: {exc}")
    return exc

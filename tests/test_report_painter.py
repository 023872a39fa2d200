"""The report's drawing process (``harness.report.painter``): started before the report's
own process imports pandas, it imports matplotlib and draws the parts in workers it forks;
the page is the same as drawn in one process, what goes wrong there is raised here, and
nothing is left running."""

from __future__ import annotations

import dataclasses
import filecmp
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.plugins import get_host
from harness.report import build_report
from harness.report.painter import DrawingError, Page, Painter
from harness.report.parts import Drawn

ROOT = Path(__file__).resolve().parent.parent
SEVERAL_CPUS = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 or "fork" not in multiprocessing.get_all_start_methods(),
    reason="the drawing process starts only where there are several CPUs and fork")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two problems (one with the built-in figure plugin's picture) x two optimizers."""
    out = tmp_path_factory.mktemp("painter") / "run"
    assert main(["run", "-m", "regression,classification", "-o", "sgd,adam", "-s", "0-1",
                 "--steps", "20", "--workers", "0", "--quiet", "--out", str(out)]) == 0
    return out


class _Kept(Painter):
    """Keeps the page build_report sends, draws nothing."""

    def __init__(self) -> None:
        super().__init__(None, 1)
        self.page: Page | None = None

    def draw(self, page: Page) -> Drawn:
        self.page = page
        return [], []


def _page(run: Path, out: Path) -> Page:
    """The page build_report would send to the drawing process, to be drawn into ``out``."""
    from harness.report.build import build_report as build

    kept = _Kept()
    build(run, out_dir=out.parent / "first", painter=kept)
    assert kept.page is not None
    return dataclasses.replace(kept.page, out=out)


@SEVERAL_CPUS
def test_the_drawing_process_draws_the_page_one_process_draws(run: Path,
                                                                tmp_path: Path) -> None:
    one = build_report(run, out_dir=tmp_path / "one", workers=1)
    painted = build_report(run, out_dir=tmp_path / "painted", workers=2)
    figures = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert len(figures) >= 4
    assert figures == sorted(p.name for p in (tmp_path / "painted").glob("*.png"))
    _, different, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "painted",
                                               [*figures, "ranking.csv"], shallow=False)
    assert (different, errors) == ([], [])
    assert one.read_text("utf-8") == painted.read_text("utf-8")
    assert multiprocessing.active_children() == []


@SEVERAL_CPUS
def test_harness_report_never_imports_matplotlib_in_its_own_process(run: Path,
                                                                     tmp_path: Path) -> None:
    """The drawing process starts before pandas is imported and imports matplotlib; the
    command's process reads the run and writes the page without it."""
    out = tmp_path / "report"
    code = ("import json, sys\nfrom harness.cli import main\n"
            f"code = main(['report', {str(run)!r}, '--out', {str(out)!r}])\n"
            "print('LOADED=' + json.dumps([m for m in ('matplotlib', 'seaborn')"
            " if m in sys.modules]), file=sys.stderr)\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LOADED=[]" in done.stderr.splitlines()
    assert len(list(out.glob("*.png"))) >= 4


@SEVERAL_CPUS
def test_an_error_while_drawing_is_raised_in_the_report_with_where(run: Path,
                                                                   tmp_path: Path) -> None:
    page = _page(run, tmp_path / "out")
    page.out.write_text("a file where the figures go")
    with Painter(get_host(), 2) as painter, pytest.raises(OSError) as caught:
        painter.draw(page)
    assert any("report's drawing process" in note for note in caught.value.__notes__)
    assert multiprocessing.active_children() == []


@SEVERAL_CPUS
def test_a_drawing_process_that_dies_is_one_clear_error(run: Path, tmp_path: Path) -> None:
    page = _page(run, tmp_path / "out")
    page.out.mkdir()
    with Painter(None, 2) as painter:
        assert painter.started
        assert painter._process is not None and painter._process.pid is not None
        os.kill(painter._process.pid, signal.SIGKILL)
        with pytest.raises(DrawingError, match="ended without drawing the page"):
            painter.draw(page)
    assert multiprocessing.active_children() == []


def test_one_worker_draws_in_this_process_and_a_bad_run_leaves_nothing_running(
        tmp_path: Path) -> None:
    assert not Painter(get_host(), 1).started
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        build_report(tmp_path / "empty", workers=2)
    assert multiprocessing.active_children() == []

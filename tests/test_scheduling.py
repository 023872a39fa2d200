"""Longest-first scheduling from the cost book."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cell import Cell
from harness.run.scheduling import CostBook, longest_first


def make(problem: str, steps: int) -> Cell:
    return Cell(problem=problem, optimizer="adam", device="cpu", seed=0, steps=steps,
                batch_size=8)


def test_unknown_first_then_longest(tmp_path: Path) -> None:
    book = CostBook(tmp_path / "costs.json")
    short, long_, new = make("short", 100), make("long", 100), make("new", 10)
    book.learn(short, {"wall_s": 1.2, "steps_done": 100, "step_time_ms": 1.0})
    book.learn(long_, {"wall_s": 11.0, "steps_done": 100, "step_time_ms": 100.0})
    assert book.estimate(short) == pytest.approx(1.2)
    order = longest_first([short, long_, new], book)
    assert order == [new, long_, short]
    book.save()
    again = CostBook(tmp_path / "costs.json")
    assert again.estimate(make("long", 200)) == pytest.approx(21.0)  # scales with steps


def test_a_broken_book_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    path.write_text("{not json")
    book = CostBook(path)
    assert book.estimate(make("x", 1)) is None
    book.learn(make("x", 1), {"wall_s": float("nan"), "steps_done": 0})
    assert book.entries == {}


def test_a_running_cells_first_window_is_the_probe(tmp_path: Path) -> None:
    book = CostBook(tmp_path / "costs.json")
    cell = make("new", 1000)
    assert book.estimate(cell) is None and book.version == 0
    book.observe(cell, 10, 0.5)  # 50 ms a step so far
    assert book.estimate(cell) == pytest.approx(50.0) and book.version == 1
    book.observe(cell, 20, 0.5)  # a known kind keeps its estimate until a cell finishes
    assert book.estimate(cell) == pytest.approx(50.0) and book.version == 1
    book.observe(make("other", 10), 0, 0.0)  # nothing learnt from nothing
    assert book.version == 1
    # A finished cell re-orders the waiting ones only when it moves the estimate enough.
    book.learn(cell, {"wall_s": 56.0, "steps_done": 1000, "step_time_ms": 50.0})  # +12 %
    assert book.estimate(cell) == pytest.approx(56.0) and book.version == 1
    book.learn(cell, {"wall_s": 90.0, "steps_done": 1000, "step_time_ms": 80.0})  # +61 %
    assert book.estimate(cell) == pytest.approx(90.0) and book.version == 2


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "1"])
def test_the_grid_reorders_as_soon_as_a_kind_is_probed(
    workers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an empty cost book the grid starts in its own order; each kind's first cell
    is its probe, and once both kinds are priced the slow kind's cells go first."""
    from harness.executor import RunOptions
    from harness.grid import GridSpec, expand
    from harness.plugins import get_host
    from harness.run.progress import Progress
    from harness.run.runner import RunRequest, run_grid

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    started: list[tuple[str, int]] = []
    real_start = Progress.start

    def start(self: Progress, cell: Cell) -> None:
        started.append((cell.problem, cell.seed))
        real_start(self, cell)

    monkeypatch.setattr(Progress, "start", start)
    host = get_host()
    spec = GridSpec(models=["regression", "cnn"], optimizers=["adam"], seeds=[0, 1, 2],
                    steps=300)  # enough steps that the step time, not building, decides
    grid = expand(spec, host.problems, host.optimizers)
    first = (grid.cells[0].problem, grid.cells[0].seed)
    run_grid(RunRequest(grid, tmp_path / "run", RunOptions(windows=4, eval_every=300),
                        executor_settings={"workers": workers}, progress=False), host)
    probes = [first, next(c for c in started if c[0] != first[0])]
    assert started[:2] == probes, started
    rest = started[2:]
    # A cnn step costs ~20x a regression step on the CPU: the waiting cnn cells go first.
    assert [p for p, _ in rest] == ["cnn"] * 2 + ["regression"] * 2, started

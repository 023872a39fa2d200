"""Longest-first scheduling from the cost book."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cell import Cell
from harness.scheduling import CostBook, longest_first


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

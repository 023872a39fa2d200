"""The progress bar: cells done, the current cell, its step and loss."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from harness.cell import Cell

BAR_FORMAT = "{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}] {postfix}"


class Progress:
    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.bar: Any = tqdm(
            total=total, unit="cell", file=sys.stderr, disable=not enabled,
            dynamic_ncols=True, leave=True,
            bar_format=BAR_FORMAT,
        )
        self.current = ""

    def start(self, cell: Cell) -> None:
        self.current = cell.describe()
        self.bar.set_description_str(self.current, refresh=False)
        self.bar.set_postfix_str("building", refresh=True)

    def window(self, step: int, steps: int, loss: float) -> None:
        self.bar.set_postfix_str(f"step {step}/{steps} loss {loss:.4g}", refresh=True)

    def finish(self, status: str) -> None:
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.set_description_str("done", refresh=False)
        self.bar.set_postfix_str("", refresh=False)
        self.bar.close()

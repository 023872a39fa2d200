"""The progress bar: cells done, the current cell, its step and loss.

On a terminal the bar is redrawn at most five times a second. When stderr is not a
terminal (CI logs, pipes, a file) the bar switches itself off, as tqdm's and rich's users
expect: its carriage returns would land in the log. The closing table says what ran.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from harness.cell import Cell

BAR_FORMAT = "{l_bar}{bar:20}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}] {postfix}"
REFRESH_S = 0.2


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no such method, or a closed stream
        return False


class Progress:
    def __init__(self, total: int, *, enabled: bool = True, done: int = 0) -> None:
        self.live = enabled and _is_terminal(sys.stderr)
        self.bar: Any = tqdm(
            total=total, initial=done, unit="cell", file=sys.stderr, disable=not self.live,
            dynamic_ncols=True, leave=True, bar_format=BAR_FORMAT, mininterval=REFRESH_S,
        )
        self._last = 0.0

    def start(self, cell: Cell) -> None:
        self.bar.set_description_str(cell.describe(), refresh=False)
        self.bar.set_postfix_str("building", refresh=self.live)

    def window(self, row: Mapping[str, Any], steps: int) -> None:
        now = time.monotonic()
        if self.live and now - self._last >= REFRESH_S:
            self._last = now
            loss = float(row.get("loss", float("nan")))
            self.bar.set_postfix_str(f"step {row['step']}/{steps} loss {loss:.4g}",
                                     refresh=True)

    def finish(self, status: str) -> None:
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.set_description_str("done", refresh=False)
        self.bar.set_postfix_str("", refresh=False)
        self.bar.close()

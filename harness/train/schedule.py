"""Where a cell's windows end, and which window edges evaluate or checkpoint.

Computed arithmetically, in constant memory whatever the step budget: the edges are the
multiples of the window length (``ceil(steps / windows)``) up to ``steps``, the end of the
warm-up, ``steps`` itself, and the multiples of the evaluation interval when it is at least
a window long. A shorter interval does not add rows: each window edge then evaluates (it
crossed a multiple). So a curve has at most about twice ``--windows`` rows, whatever the
budget or the problem's ``eval_every`` (before, a row at every evaluation: ``steps /
eval_every`` rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from harness.cell import Cell
from harness.executor import RunOptions
from harness.problem import Problem


@dataclass(frozen=True)
class Schedule:
    steps: int
    #: Steps per window (a curve row at each multiple).
    log_every: int
    #: An evaluation at the first window edge at or after each multiple, and at ``steps``.
    eval_every: int
    #: Windows ending at or before this step are warm-up, excluded from throughput.
    warmup: int
    #: A checkpoint at the first window edge at or after each multiple (None: never).
    checkpoint_every: int | None = None

    @classmethod
    def for_cell(cls, cell: Cell, problem: Problem, options: RunOptions) -> Schedule:
        steps = cell.steps
        warmup = options.warmup_steps if options.warmup_steps is not None \
            else min(50, steps // 10)
        return cls(
            steps=steps,
            log_every=max(1, -(-steps // max(1, options.windows))),  # ceil: N windows
            eval_every=options.eval_every or problem.eval_every or max(1, steps // 10),
            warmup=max(1, min(warmup, steps)),
            checkpoint_every=options.checkpoint_every,
        )

    def edges_after(self, start: int) -> Iterator[int]:
        """The window edges after step ``start``, in order."""
        edge = self.next_edge(start)
        while edge is not None:
            yield edge
            edge = self.next_edge(edge)

    def next_edge(self, after: int) -> int | None:
        """The first window edge after step ``after``, or None when training is over."""
        multiples = [_next_multiple(self.log_every, after)]
        if self.eval_every >= self.log_every:  # evaluations at their own steps: <= N more
            multiples.append(_next_multiple(self.eval_every, after))
        candidates = [m for m in multiples if m <= self.steps]
        candidates += [e for e in (self.steps, self.warmup) if e > after]
        return min(candidates, default=None)

    def evaluates(self, previous: int, edge: int) -> bool:
        """Whether the window from ``previous`` to ``edge`` ends with an evaluation: it
        crossed a multiple of ``eval_every``, or it is the last one."""
        return edge == self.steps or edge // self.eval_every > previous // self.eval_every

    def checkpoints(self, previous: int, edge: int) -> bool:
        """Whether the window from ``previous`` to ``edge`` ends with a checkpoint: it
        crossed a multiple of ``checkpoint_every``, and it is not the last one."""
        every = self.checkpoint_every
        if not every:
            return False
        return edge // every > previous // every and edge < self.steps

def _next_multiple(every: int, after: int) -> int:
    """The smallest multiple of ``every`` greater than ``after`` (``after`` >= 0)."""
    return (after // every + 1) * every

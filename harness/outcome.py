"""What a cell ends as: its :class:`Status` and the :class:`CellResult` written once.

Torch-free: executors, the records on disk and every reader of a run share these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.cell import Cell
from harness.errors import UsageError


class Status(StrEnum):
    """How a cell ended. The value is what records and tables hold (``"ok"``...)."""

    #: Trained its whole step budget (the target may or may not have been reached).
    OK = "ok"
    #: Its loss became NaN or infinite, or exploded.
    DIVERGED = "diverged"
    #: Killed after ``--timeout`` seconds.
    TIMEOUT = "timeout"
    #: Ran out of memory (the device's, or ``--max-memory-mb``).
    OOM = "oom"
    #: Raised, or its worker died.
    ERROR = "error"
    #: Not run: its device is missing here (``--skip-unavailable``).
    SKIPPED = "skipped"
    #: A tuning trial stopped early by its study's pruner (successive halving): a result,
    #: not a failure; its curve up to the stop is kept (docs/tuning.md).
    PRUNED = "pruned"

    @property
    def failed(self) -> bool:
        """Ran and did not finish: what ``--rerun-failed`` runs again."""
        return self in FAILED


#: Every status, in the order tables and messages list them.
STATUSES: tuple[Status, ...] = tuple(Status)
#: The statuses of a cell that ran and did not finish.
FAILED: tuple[Status, ...] = (Status.DIVERGED, Status.TIMEOUT, Status.OOM, Status.ERROR)

#: ``harness run``'s exit code when a cell of the run ended with one of the ``--fail-on``
#: statuses (by default :data:`FAIL_ON`). 2 is bad input, 130 and 143 an interruption.
EXIT_CELLS_FAILED = 1
#: The statuses that make ``harness run`` exit with :data:`EXIT_CELLS_FAILED` unless
#: ``--fail-on`` says otherwise: the cell broke (a diverged cell is a result of the
#: optimizer, a skipped one was not run).
FAIL_ON: tuple[Status, ...] = (Status.ERROR, Status.TIMEOUT, Status.OOM)


def parse_statuses(text: str, flag: str, *, none: bool = False) -> tuple[Status, ...]:
    """``error,timeout`` as statuses; ``none`` (where ``none`` is allowed) as none.

    :raises UsageError: an unknown status, with the known ones, naming ``flag``.
    """
    words = [w.strip() for w in text.split(",") if w.strip()]
    if none and words == ["none"]:
        return ()
    if not words:
        raise UsageError(f"{flag}: expected statuses such as {','.join(FAIL_ON)}"
                         + (" or none" if none else ""))
    known = ", ".join(STATUSES) + (", none" if none else "")
    for word in words:
        if word not in STATUSES:
            raise UsageError(f"{flag}: unknown status {word!r}; known: {known}")
    return tuple(Status(w) for w in dict.fromkeys(words))


@dataclass(frozen=True)
class CellResult:
    """What one cell produced; written once, as one record."""

    cell: Cell
    status: Status
    summary: Mapping[str, Any]
    curve: tuple[Mapping[str, Any], ...] = ()
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))


def skipped(cell: Cell, reason: str) -> CellResult:
    """The result of a cell that was not run, with the reason."""
    return CellResult(cell=cell, status=Status.SKIPPED, summary={}, error=reason)


#: The values of the ``peak_mem_method`` summary column, and what each means (the report
#: prints them; :mod:`harness.train.memory` measures them).
PEAK_MEM_METHODS = {
    "cuda-allocator": "the CUDA caching allocator's peak (torch.cuda.max_memory_allocated), "
                      "reset at the cell's start",
    "vmhwm-above-worker-baseline": "the worker's peak resident set (VmHWM, reset before the "
                                   "cell through /proc/self/clear_refs) above its resident "
                                   "set after imports and warm-up",
    "vmhwm-above-cell-start": "the process's peak resident set (VmHWM, reset before the cell "
                              "through /proc/self/clear_refs) above its resident set at the "
                              "cell's start (cells run in the harness process)",
    "rss-sampled": "the process's resident set sampled at window edges (its whole life: "
                   "the high-water mark could not be reset here)",
}

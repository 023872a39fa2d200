"""What a cell ends as: its :class:`Status` and the :class:`CellResult` written once.

Torch-free: executors, the records on disk and every reader of a run share these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.cell import Cell


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

    @property
    def failed(self) -> bool:
        """Ran and did not finish: what ``--rerun-failed`` runs again."""
        return self in FAILED


#: Every status, in the order tables and messages list them.
STATUSES: tuple[Status, ...] = tuple(Status)
#: The statuses of a cell that ran and did not finish.
FAILED: tuple[Status, ...] = (Status.DIVERGED, Status.TIMEOUT, Status.OOM, Status.ERROR)


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

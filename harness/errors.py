"""The error tree. Every message here is what the user reads, on one line."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness shows to a user without a traceback."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad input from the command line or a grid file: nothing has run, nothing is written."""

    exit_code = 2


class RecordNotWritten(HarnessError):
    """A finished cell's record could not be written (a full disk, ``cells/`` replaced by a
    file, a read-only directory). The run stops: the records already written are kept, and
    ``harness run --resume`` continues it. Never taken for a worker's death."""

    exit_code = 2


class DuplicateNameError(HarnessError):
    """Two plugins registered the same problem or optimizer name."""


class DeviceUnavailableError(UsageError):
    """A device named in the grid does not exist on this machine."""


class DataUnavailableError(HarnessError):
    """A problem's data set can be found neither on disk nor in a shipped fallback."""


class PrunedError(HarnessError):
    """Raised inside a tuning trial's cell when its selection metric at a rung is worse
    than the rung's threshold (successive halving, docs/tuning.md): status ``pruned``."""


class DivergedError(HarnessError):
    """Raised inside a cell when its loss becomes NaN, inf or explodes."""

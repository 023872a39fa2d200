"""How a cell that raised ended: diverged, out of memory, or an error."""

from __future__ import annotations

import traceback

import torch

from harness.errors import DivergedError, PrunedError
from harness.outcome import Status


def classify(exc: Exception) -> tuple[Status, str, str | None]:
    """The cell's status, its one-line error, and the traceback (none for divergence)."""
    if isinstance(exc, DivergedError):
        return Status.DIVERGED, str(exc), None
    if isinstance(exc, PrunedError):
        return Status.PRUNED, str(exc), None
    tb = "".join(traceback.format_exception(exc))
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return Status.OOM, one_line(exc) or "MemoryError", tb
    return (Status.OOM if is_out_of_memory(exc) else Status.ERROR), one_line(exc), tb


def is_out_of_memory(exc: Exception) -> bool:
    """A failed allocation that is not reported as MemoryError.

    torch reports a failed CPU allocation as a RuntimeError, and libraries with their own C
    allocations say so in other types: pandas's CSV reader (the MNIST sample's loader) raises
    ``ParserError: Error tokenizing data. C error: out of memory`` under ``--max-memory-mb``.
    oneDNN (a CPU convolution's kernels) says only ``could not create a primitive`` when
    its allocation fails: counted as out of memory where the process runs under an
    address-space limit (``--max-memory-mb``), an error elsewhere.
    """
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | ValueError | OSError) and (
        "can't allocate memory" in text or "cannot allocate memory" in text
        or "out of memory" in text
        or (text.startswith("could not create a primitive") and _address_space_limited()))


def _address_space_limited() -> bool:
    try:
        import resource
    except ImportError:  # not on POSIX: --max-memory-mb is refused there
        return False
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())

"""Device names (``cpu``, ``cuda``, ``cuda:N``, ``mps``) and whether this machine has them.

torch is imported only when a device other than the CPU is probed: reading and checking
a grid does not load it.
"""

from __future__ import annotations

import re

from harness.errors import UsageError
from harness.grid.spec import clip


def normalize_device(name: str) -> str:
    """``name`` without surrounding blanks and with its index as written by int()."""
    m = re.fullmatch(r"(cpu|cuda|mps)(?::([0-9]{1,9}))?", name.strip())  # ASCII digits
    if not m or (m.group(1) == "cpu" and m.group(2)):
        raise UsageError(f"unknown device {clip(name, 40)!r}; use cpu, cuda, cuda:N or mps")
    kind, index = m.groups()
    return kind if index is None else f"{kind}:{int(index)}"


def device_available(name: str) -> str | None:
    """None when the device can be used here, else the reason it cannot."""
    kind, _, index = name.partition(":")
    if kind == "cpu":
        return None
    import torch  # here, not at the top: only a GPU device needs it

    if kind == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        n = torch.cuda.device_count()
        if index and int(index) >= n:
            return f"this machine has {n} CUDA device(s)"
        return None
    if kind == "mps":
        return None if torch.backends.mps.is_available() else "MPS is not available here"
    return f"unknown device {name!r}"

"""What counts as solved: one :class:`Target`, declared by a problem and read back by the
report and ``harness compare``. Torch-free, so the read side shares it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Target:
    """What counts as converged, for time-to-target: ``metric`` crossing ``threshold``;
    ``mode`` says which side is solved (``"min"``: at or below, ``"max"``: at or above)."""

    metric: str
    threshold: float
    mode: Literal["min", "max"] = "min"

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value <= self.threshold if self.mode == "min" else value >= self.threshold

"""The bounds of every number a run takes, defined once.

The grid (steps, batch sizes, seeds, cells), the command line's run options (windows,
workers, threads, timeouts, memory, checkpoints) and the manifest check that ``--resume``
passes read their ranges from here. The options' defaults are the fields of
:class:`harness.executor.RunOptions` and :class:`harness.executor.CellLimits`; the
parser shows those. A contract module that imports nothing, so that every layer, the
parser included, can read it.
"""

from __future__ import annotations

#: An option's range, both ends included: the option's name (its field in
#: ``RunOptions``, ``CellLimits`` or ``GridSpec``) -> (minimum, maximum).
BOUNDS: dict[str, tuple[int, int]] = {
    "steps": (1, 1_000_000_000),
    "batch_size": (1, 10_000_000),
    "checkpoint_every": (1, 1_000_000_000),
    "windows": (1, 100_000),
    "workers": (0, 4096),
    "threads": (1, 4096),
    "workers_per_device": (1, 1024),
    "max_memory_mb": (1, 2**30),
    "loader_workers": (0, 4096),
    "repeats": (0, 1000),
}

#: ``--timeout`` in seconds: more than 0 and less than this.
MAX_TIMEOUT_S = 10**7
#: The largest seed.
MAX_SEED = 2**31 - 1
#: Seeds in one grid.
MAX_SEEDS = 10_000
#: Cells in one grid.
MAX_CELLS = 100_000
#: How deep tables, arrays and inline tables may nest in a grid file or a ``--set`` value.
MAX_NESTING = 16

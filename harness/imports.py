"""Importing the heavy libraries (torch, pandas, matplotlib and seaborn) without the
garbage collector's help.

An import allocates hundreds of thousands of objects that live as long as the process, and
each allocation burst sets off collections that walk all of them again, in vain: importing
torch and ``torch._dynamo`` takes about a fifth less time with the collector paused, the
report's libraries about a tenth (2-core AMD EPYC). :func:`collector_paused` pauses it for a
block of imports and restores it after; the cycles the block made are collected at the
next collection.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; turn it back on after, if it was
    on (a caller that turned it off keeps it off)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()

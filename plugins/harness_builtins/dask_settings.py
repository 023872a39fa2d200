"""The ``dask`` executor's settings: ``--executor-option KEY=VALUE``, ``--scheduler`` and
``--workers`` (the local cluster's ``n_workers``), checked before anything connects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from harness import CellLimits, UsageError
from harness.limits import BOUNDS

SETTINGS = ("scheduler", "n_workers", "threads_per_worker", "shared_filesystem", "dashboard",
            "pin_cpus", "cuda_mps")
#: The command line's flags that spell a dask setting. ``--pin-cpus`` and ``--cuda-mps`` are
#: the local executor's; they are taken here only to say where to do that with Dask.
FLAGS = {"--scheduler": "scheduler", "--workers": "n_workers", "--pin-cpus": "pin_cpus",
         "--cuda-mps": "cuda_mps"}


@dataclass(frozen=True)
class DaskSettings:
    """``--scheduler`` and ``--executor-option`` values, checked."""

    #: An existing cluster's scheduler; None starts a LocalCluster on this machine.
    scheduler: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    #: The workers see the client's paths: checkpoints and saved models can be written.
    shared_filesystem: bool = False
    #: The local cluster's dashboard address (":8787"); None: none (a free port, silent).
    dashboard: str | None = None


def _whole_number(text: str, name: str, minimum: int = 0,
                  maximum: int = BOUNDS["workers"][1]) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"--executor-option {name}: expected a whole number, "
                         f"got {text!r}") from None
    if not minimum <= value <= maximum:
        raise UsageError(f"--executor-option {name}: {value} is out of range "
                         f"({minimum} to {maximum})")
    return value


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1


def parse_settings(settings: Mapping[str, str], limits: CellLimits) -> DaskSettings:
    """The settings, checked; without ``n_workers`` the local cluster has as many workers
    as the CPUs this process may use hold ``limits.threads``."""
    if settings.get("pin_cpus"):
        raise UsageError("--pin-cpus places the local executor's workers; Dask workers are "
                         "placed by whoever starts them (taskset, numactl or the cluster)")
    if settings.get("cuda_mps"):
        raise UsageError("--cuda-mps starts an MPS daemon for the local executor's workers; "
                         "for Dask workers, start nvidia-cuda-mps-control -d on their machines")
    scheduler = settings.get("scheduler") or None
    if scheduler is not None:
        check_address(scheduler)
    local_only = [k for k in ("n_workers", "threads_per_worker", "dashboard") if k in settings]
    if scheduler and local_only:
        raise UsageError(f"--executor-option {local_only[0]} is for the local cluster; the "
                         f"cluster at {scheduler} has its own workers")
    n_workers = max(1, _cpus() // limits.threads)
    if "n_workers" in settings:
        n_workers = _whole_number(settings["n_workers"], "n_workers")
        if n_workers == 0:
            raise UsageError("--workers 0 runs cells inline; with --executor dask give "
                             "--workers N or --executor-option n_workers=N")
    threads = _whole_number(settings.get("threads_per_worker", "1"), "threads_per_worker", 1)
    shared = settings.get("shared_filesystem", "false").strip().lower()
    if shared not in ("true", "false", "yes", "no", "1", "0"):
        raise UsageError(f"--executor-option shared_filesystem={shared!r}: expected true or "
                         "false")
    return DaskSettings(scheduler, n_workers, threads, shared in ("true", "yes", "1"),
                        settings.get("dashboard") or None)


def check_address(address: str) -> None:
    """Refuse what no scheduler can be reached at (``garbage``, ``tcp://host``), before
    anything connects: a usage error, not a wait for a connection that cannot happen."""
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port

    expected = "expected a Dask scheduler address like tcp://HOST:8786"
    scheme, location = parse_address(address)  # HOST:PORT is tcp, as for Dask's Client
    if scheme == "inproc":
        raise UsageError(f"scheduler {address!r}: an inproc address is only reachable from "
                         f"the process that made it; {expected}")
    if scheme not in registry.backends:
        known = ", ".join(f"{b}://" for b in sorted(registry.backends) if b != "inproc")
        raise UsageError(f"scheduler {address!r}: unknown scheme {scheme!r} (Dask knows "
                         f"{known}); {expected}")
    try:
        host, port = parse_host_port(location)
    except ValueError:
        host, port = "", 0
    if not host or not 0 < int(port) < 65536:
        raise UsageError(f"scheduler {address!r}: {expected}")

"""Repeatable fault injection (issue 21), as SQLite's crash and I/O-error tests do it: real
``harness run`` processes are killed at seeded random moments (the driver by SIGKILL and
SIGTERM, a worker by SIGKILL), the disk fills up (a write wrapper that raises ENOSPC, see
:mod:`tests.faults`) and records are truncated and corrupted. After each fault:

* no finished cell is lost: every record on disk is whole, and ``--resume`` leaves it as
  it was;
* no traceback is shown;
* the exit code is non-zero exactly when the run did not record every cell ``ok``;
* ``--resume`` (with ``--rerun-failed`` where a cell ended ``error``) completes the run,
  and its records are bit-identical to those of a run that never failed.

``FAULTS`` counts the faults injected, by kind (README, "Reliability").
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.results import RunDirectory
from tests.helpers import TESTS, run_cli, run_with_fault, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.long]

GRID = ["-m", "regression", "-o", "sgd,adam", "-s", "0-1", "--steps", "1500",
        "--workers", "2", "--quiet"]
CELLS = 4
SEED = 21
#: Faults injected by this module, by kind (filled in as the tests run).
FAULTS: Counter[str] = Counter()


def _records(out: Path) -> dict[str, dict[str, Any]]:
    good, corrupt = RunDirectory(out).scan()
    assert not corrupt, f"a record is damaged: {corrupt}"
    return {r["key"]: r for r in good}


def _bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / "cells").glob("*.json")}


def _results(rec: dict[str, Any]) -> tuple[Any, ...]:
    """What a cell computed: its status and its curve without the clock's readings."""
    curve = [{k: v for k, v in p.items() if not k.endswith("_s")} for p in rec["curve"]]
    return rec["status"], curve, rec["summary"].get("final_loss")


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The run that never failed, and how long it took."""
    out = tmp_path_factory.mktemp("faults") / "whole"
    t0 = time.monotonic()
    proc = run_cli("run", *GRID, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, time.monotonic() - t0


def _check_then_resume(out: Path, whole: Path, proc_err: str, code: int | None) -> None:
    """The checks after a fault, then --resume and the comparison with the whole run."""
    assert "Traceback" not in proc_err, proc_err
    before = _records(out) if (out / "cells").is_dir() else {}
    all_ok = len(before) == CELLS and all(r["status"] == "ok" for r in before.values())
    if code == 128 + signal.SIGTERM:  # stopped by the signal, maybe after its last cell
        assert "interrupted by SIGTERM; finished cells are kept" in proc_err, proc_err
    elif code is not None:
        assert (code == 0) == all_ok, (code, proc_err)
    kept = _bytes(out) if before else {}
    if not (out / "manifest.json").exists():  # stopped before the run began: start it again
        resumed = run_cli("run", *GRID, "--out", str(out))
    else:
        failed = any(r["status"] != "ok" for r in before.values())
        resumed = run_cli("run", "--resume", str(out), "--quiet",
                          *(["--rerun-failed"] if failed else []))
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    after = _bytes(out)
    for name, data in kept.items():  # a finished cell is never lost nor run again
        if json.loads(data)["status"] == "ok":
            assert after[name] == data, name
    done, reference = _records(out), _records(whole)
    assert done.keys() == reference.keys()
    for key, rec in reference.items():
        assert _results(done[key]) == _results(rec), key


def _start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", *GRID, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _workers(pid: int) -> list[int]:
    """The driver's worker processes: its children that lead a process group of their own
    (each worker does; the driver's resource tracker does not)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and int(fields[2]) == int(proc.name):
            found.append(int(proc.name))
    return found


def _moment(rng: random.Random, out: Path, proc: subprocess.Popen[str]) -> None:
    """Wait for a random moment of the run: after a random number of its cells finished
    (none: while it starts), a random fraction of a second more."""
    done = rng.randrange(0, CELLS)
    wait_for(lambda: len(list((out / "cells").glob("*.json"))) >= done or proc.poll() is not None,
             f"{done} records")
    time.sleep(rng.uniform(0, 0.5))


@pytest.mark.parametrize(("signum", "round_"), [(signal.SIGKILL, 0), (signal.SIGKILL, 1),
                                                (signal.SIGTERM, 0)])
def test_the_driver_killed_at_a_random_moment(whole: tuple[Path, float], tmp_path: Path,
                                              signum: int, round_: int) -> None:
    reference, _ = whole
    out = tmp_path / "run"
    proc = _start(out)
    _moment(random.Random(f"{SEED}-{signum}-{round_}"), out, proc)
    if proc.poll() is None:
        proc.send_signal(signum)
        FAULTS[f"driver {signal.Signals(signum).name}"] += 1
    _, err = proc.communicate(timeout=120)
    if signum == signal.SIGTERM:  # the default action before the handler is installed
        assert proc.returncode in (0, 143, -signal.SIGTERM), err
    _check_then_resume(out, reference, err, None if signum == signal.SIGKILL
                       else proc.returncode)


@pytest.mark.parametrize("round_", range(2))
def test_a_worker_killed_at_a_random_moment(whole: tuple[Path, float], tmp_path: Path,
                                            round_: int) -> None:
    reference, _ = whole
    rng = random.Random(f"{SEED}-worker-{round_}")
    out = tmp_path / "run"
    proc = _start(out)
    wait_for(lambda: _workers(proc.pid) or proc.poll() is not None, "the workers' start")
    _moment(rng, out, proc)
    workers = _workers(proc.pid)
    if workers:
        os.kill(rng.choice(workers), signal.SIGKILL)
        FAULTS["worker SIGKILL"] += 1
    _, err = proc.communicate(timeout=120)
    _check_then_resume(out, reference, err, proc.returncode)


@pytest.mark.parametrize("round_", range(2))
def test_the_disk_fills_up_at_a_random_write(whole: tuple[Path, float], tmp_path: Path,
                                             round_: int) -> None:
    reference, _ = whole
    rng = random.Random(f"{SEED}-enospc-{round_}")
    total = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    fault = f"enospc:{rng.randrange(0, total)}" if round_ else \
        f"enospc-cell:{rng.randrange(1, CELLS + 1)}"
    out = tmp_path / "run"
    proc = run_with_fault(fault, "run", *GRID, "--out", str(out))
    FAULTS["ENOSPC"] += 1
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and "No space left on device" in err[0], err
    _check_then_resume(out, reference, proc.stderr, None)


def test_truncated_and_corrupted_records(whole: tuple[Path, float], tmp_path: Path) -> None:
    """Records damaged on disk: every reader warns and reads the rest, the gate fails on
    the lost cells, and --resume runs exactly those again."""
    import shutil

    reference, _ = whole
    rng = random.Random(f"{SEED}-records")
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    names = sorted(p.name for p in (out / "cells").glob("*.json"))
    damaged = rng.sample(names, 2)
    truncated, corrupted = (out / "cells" / n for n in damaged)
    text = truncated.read_bytes()
    truncated.write_bytes(text[:rng.randrange(0, len(text))])
    data = bytearray(corrupted.read_bytes())
    for at in rng.sample(range(len(data)), 8):
        data[at] = rng.choice(b'{}[]",:0x\x00\xff')
    corrupted.write_bytes(bytes(data))
    FAULTS["truncated record"] += 1
    FAULTS["corrupted record"] += 1
    kept = {n: (out / "cells" / n).read_bytes() for n in names if n not in damaged}

    shown = run_cli("show", str(out))
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    gate = run_cli("compare", str(reference), str(out))
    assert gate.returncode == 1 and "missing from the new run" in gate.stdout, gate.stdout
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert all((out / "cells" / n).read_bytes() == b for n, b in kept.items())
    done, ref = _records(out), _records(reference)
    assert done.keys() == ref.keys()
    for key, rec in ref.items():
        assert _results(done[key]) == _results(rec), key


def test_zz_the_count_of_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """Last (by name): how many faults of each kind this module injected."""
    with capsys.disabled():
        print(f"\nfaults injected: {dict(sorted(FAULTS.items()))}", file=sys.stderr)
    assert TESTS.is_dir()

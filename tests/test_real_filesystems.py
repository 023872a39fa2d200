"""Issue 21 on real file systems, not a write wrapper: a run directory on a small tmpfs that
fills up, and run directories the user may not write to (the harness run as ``nobody``).

Both need root (to mount a tmpfs and to switch user); elsewhere they are skipped, naming
why. After each refusal the run's records are whole and unchanged, the error is one line
with exit code 2, and once the disk has room ``--resume`` finishes the run with the same
numbers as a run that never failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.results import RunDirectory
from tests.helpers import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.long]

GRID = ["-m", "regression", "-o", "sgd,adam", "-s", "0-1", "--steps", "200", "--workers",
        "1", "--quiet"]
CELLS = 4


def _root_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: mounting a tmpfs and running as another user")


def _results(out: Path) -> dict[str, tuple[Any, ...]]:
    """Each cell's status and curve without the clock's readings, by key."""
    good, corrupt = RunDirectory(out).scan()
    assert not corrupt, corrupt
    return {r["key"]: (r["status"], [{k: v for k, v in p.items() if not k.endswith("_s")}
                                     for p in r["curve"]]) for r in good}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = run_cli("run", *GRID, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for the manifest and a couple of records, not for the run."""
    _root_or_skip()
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_tmpfs_stops_the_run_in_one_line_and_resume_finishes_it(
        reference: Path, small_tmpfs: Path) -> None:
    out = small_tmpfs / "run"
    proc = run_cli("run", *GRID, "--out", str(out))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    assert "Traceback" not in proc.stderr
    written = {p.name: p.read_bytes() for p in (out / "cells").glob("*.json")}
    assert 0 < len(written) < CELLS, sorted(written)  # some cells were kept, not all fit
    for data in written.values():  # every record on disk is whole
        assert json.loads(data)["status"] == "ok"
    assert not (out / ".lock").exists() or (out / ".lock").read_text() == ""

    grown = subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)],
                           capture_output=True, text=True)
    assert grown.returncode == 0, grown.stderr
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    for name, data in written.items():  # a finished cell is neither lost nor run again
        assert (out / "cells" / name).read_bytes() == data, name
    assert _results(out) == _results(reference)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory of root's that anyone may enter (pytest's own are root's alone)."""
    import tempfile

    _root_or_skip()
    path = Path(tempfile.mkdtemp(prefix="harness-nobody-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody(tmp_path: Path) -> dict[str, str]:
    """What ``run_cli`` needs to run the harness as ``nobody``."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run as another user")
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    return {"HOME": str(home), "HARNESS_CACHE_DIR": str(home / "cache"),
            "MPLCONFIGDIR": str(home / "mpl"), "TMPDIR": str(home)}


def _run_as_nobody(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
         "-m", "harness", *args], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=600)


def test_a_run_directory_the_user_may_not_write_is_one_line(open_dir: Path) -> None:
    env = _as_nobody(open_dir)
    locked = open_dir / "locked"
    locked.mkdir(mode=0o755)  # root's: nobody may read it, not write it
    proc = _run_as_nobody(env, "run", *GRID, "--out", str(locked / "run"))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Permission denied" in lines[0], lines
    assert str(locked / "run") in lines[0], lines
    assert not (locked / "run").exists()


def test_growing_a_run_the_user_may_not_write_keeps_every_record(
        reference: Path, open_dir: Path) -> None:
    env = _as_nobody(open_dir)
    out = open_dir / "run"
    shutil.copytree(reference, out)  # root's, 755: readable by nobody, not writable
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    grown = [*GRID[:5], "0-2", *GRID[6:]]  # one more seed: two new cells
    proc = _run_as_nobody(env, "run", "--extend", *grown, "--out", str(out))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Permission denied" in lines[0], lines
    assert "Traceback" not in proc.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing recorded is lost or changed
    shown = _run_as_nobody(env, "show", str(out))  # and it still reads
    assert shown.returncode == 0, shown.stderr


def test_a_run_the_user_may_not_read_is_one_line(reference: Path, open_dir: Path) -> None:
    env = _as_nobody(open_dir)
    out = open_dir / "private"
    shutil.copytree(reference, out)
    out.chmod(0o700)  # root's alone
    report = str(open_dir / "home" / "report")
    for command in (["show", str(out)], ["compare", str(out), str(out)],
                    ["export", str(out), "--format", "pytest-benchmark"],
                    ["report", str(out), "--out", report]):
        proc = _run_as_nobody(env, *command)
        assert proc.returncode == 2, (command, proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Permission denied" in lines[0], (command, lines)

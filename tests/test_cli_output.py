"""What the command line prints, as a user reads it: hyperparameters the grid set are shown,
and the progress bar draws only on a terminal (issue 20, point 10)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from harness.cli import main

RUN = ["run", "-m", "regression", "-o", "adam,sgd", "-s", "0", "--steps", "12",
       "--workers", "0"]


def _row(text: str, optimizer: str) -> str:
    return next(t for t in text.splitlines() if f" {optimizer} " in t)


def test_a_hyperparameter_the_grid_set_is_shown(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--set", "adam.lr=0.001", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "hyperparameters" in printed.splitlines()[0]
    assert "lr=0.001" in _row(printed, "adam")  # it looked like adam at its default
    assert "lr=" not in _row(printed, "sgd")  # sgd's lr was not set
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "lr=0.001" in _row(shown, "adam") and "lr=" not in _row(shown, "sgd")


def test_a_bare_setting_is_shown_for_every_optimizer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "--set", "lr=0.02", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "lr=0.02" in _row(printed, "adam") and "lr=0.02" in _row(printed, "sgd")


def test_defaults_alone_show_no_hyperparameters(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "hyperparameters" not in capsys.readouterr().out


def _run_with_stderr(stderr: int, out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", *RUN, "--out", str(out)],
                          stdout=subprocess.DEVNULL, stderr=stderr, timeout=300)
    assert proc.returncode == 0


def test_the_progress_bar_is_off_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    with log.open("wb") as f:
        _run_with_stderr(f.fileno(), tmp_path / "run")
    text = log.read_bytes()
    assert b"\r" not in text and b"cells [" not in text, text


def test_the_progress_bar_draws_on_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        _run_with_stderr(terminal, tmp_path / "run")
        os.set_blocking(controller, False)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(terminal)
        os.close(controller)
    assert b"2/2 cells" in drawn and b"\r" in drawn, drawn

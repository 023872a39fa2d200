"""The command line: it parses (:mod:`~harness.cli.parser`), then delegates to one module
per command (:mod:`~harness.cli.run`, :mod:`~harness.cli.read`, :mod:`~harness.cli.report`,
:mod:`~harness.cli.catalogue`), imported only when that command runs."""

from __future__ import annotations

from harness.cli.main import COMMANDS, SIGPIPE_EXIT, entry, main

__all__ = ["COMMANDS", "SIGPIPE_EXIT", "entry", "main"]

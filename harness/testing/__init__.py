"""The conformance kit for plugin authors: a pytest plugin, its fixtures and its checks.

* :mod:`harness.testing.plugin` is registered as a ``pytest11`` entry point, so it is
  active in every pytest run where harness is installed. It adds
  ``--harness-conformance=DIST``, which collects :mod:`harness.testing.suite` (every
  check, for every problem and optimizer the named distributions register), and the
  fixtures ``harness_host``, ``harness_run_cell`` and ``harness_cell``.
* :mod:`harness.testing.conformance` holds the checks as plain functions, usable
  without pytest.
* :mod:`harness.testing.cells` builds single cells for tests and speed benchmarks.

This package imports nothing heavy: the plugin is loaded by pytest runs that may
never touch torch, so torch is imported only when a fixture or the suite runs.
"""

from __future__ import annotations

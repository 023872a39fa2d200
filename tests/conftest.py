"""Shared fixtures.

Tests see only the harness's own entry points (``HARNESS_PLUGINS=harness``), so
plugins installed on the machine never leak in; a test that wants a third-party
package installs it on purpose (see ``installed_packages``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HARNESS_PLUGINS"] = "harness"
os.environ.pop("HARNESS_BLOCK_PLUGINS", None)
# Nothing learnt on this machine (the scheduler's cost book) leaks into the tests.
os.environ["HARNESS_CACHE_DIR"] = tempfile.mkdtemp(prefix="harness-test-cache-")

from harness.plugins import PluginHost, get_host, reset_host
from tests.helpers import PACKAGES, pip_install

LONG = "--long"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(LONG, action="store_true",
                     help="also run the long tier (tests marked long: stress, fault "
                          "injection, cluster loss, real file systems, the gate's load "
                          "tests; `tox -e long`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``long`` are skipped, with the reason shown, unless ``--long`` is given:
    the README's test command stays under CI's time budget, and `tox -e long` runs them."""
    if config.getoption(LONG):
        return
    skip = pytest.mark.skip(reason="long tier: run with --long (tox -e long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_host() -> Iterator[None]:
    """Each test starts with a fresh process-wide host and leaves the ``HARNESS_*``
    environment as it found it: ``harness.cli.main`` called in-process sets
    ``HARNESS_PLUGIN_FILES`` for its workers (``--plugin``), which must not reach the
    next test's host."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("HARNESS_")}
    reset_host()
    yield
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)
    reset_host()


@pytest.fixture
def host() -> PluginHost:
    return get_host()


@pytest.fixture
def register_plugin(host: PluginHost) -> Iterator[Any]:
    """Register in-process plugins on the global host; they are removed afterwards."""
    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        info = host.register(plugin, name)
        assert info.status == "loaded", info.error
        names.append(name)

    yield register
    for name in names:
        host.unregister(name)


@pytest.fixture(scope="session")
def installed_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the test plugin packages into a private target directory."""
    target = tmp_path_factory.mktemp("site")
    for pkg in ("harness-sampleplugin", "harness-brokenplugin", "harness-faultplugin",
                "harness-optimizerzoo"):
        pip_install(PACKAGES / pkg, target, tmp_path_factory.mktemp(f"build-{pkg}"))
    return target

"""Options for the speed tests in this folder (``pytest benchmarks --benchmark-enable``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-device", default="cpu",
                     help="device the speed tests run on: cpu, cuda, cuda:N or mps")


@pytest.fixture
def bench_device(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("bench_device"))

"""Raises SystemExit inside its registration hook."""

from harness import hookimpl


@hookimpl
def register_models(registry):
    raise SystemExit(3)

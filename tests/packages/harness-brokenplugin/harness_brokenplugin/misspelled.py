"""Implements a hook that does not exist (a typo of register_models)."""

from harness import hookimpl


@hookimpl
def register_modles(registry):
    raise AssertionError("never called")

"""Registers a model of its own, then one under a name the built-ins already use."""

from harness import Problem, hookimpl


class Copycat(Problem):
    name = "regression"
    description = "a second problem called regression"

    def build(self, ctx):
        raise AssertionError("never built")


class Mine(Copycat):
    name = "mine"


@hookimpl
def register_models(registry):
    registry.add(Mine())
    registry.add(Copycat())


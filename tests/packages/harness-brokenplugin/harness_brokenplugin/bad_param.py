"""A problem whose parameter default is a Path: no grid file can spell it."""

from pathlib import Path

from harness import Param, hookimpl
from harness_brokenplugin.duplicate import Copycat


class Rooted(Copycat):
    name = "rooted"
    params = (Param("root", Path("/tmp"), help="a Path"),)


@hookimpl
def register_models(registry):
    registry.add(Rooted())

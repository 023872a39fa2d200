"""Grid definition: read a TOML grid file, presets and command-line flags, expand into cells.

* :mod:`harness.grid.spec`: :class:`GridSpec` (the axes before expansion) and the
  parsers of its values (seeds, integers, lists);
* :mod:`harness.grid.files`: TOML grid files and the presets in ``harness/presets``;
* :mod:`harness.grid.sets`: ``--set [NAME.]KEY=VALUE``;
* :mod:`harness.grid.devices`: device names, and whether this machine has them;
* :mod:`harness.grid.expansion`: the spec checked against the registries and expanded
  into cells.

The bounds (steps, batch sizes, seeds, cells) are :mod:`harness.limits`'. Reading and
expanding a grid imports no torch; probing a GPU device does.
"""

from harness.grid.devices import device_available, normalize_device
from harness.grid.expansion import ExpandedGrid, expand
from harness.grid.files import (
    PRESETS,
    TOP_LEVEL_KEYS,
    apply_toml,
    load_grid_file,
    load_preset,
    plugin_paths,
)
from harness.grid.sets import apply_sets, parse_set, parse_value, split_top_level
from harness.grid.spec import (
    PROBLEM_SETTINGS,
    GridSpec,
    check_spec,
    clip,
    parse_bounded,
    parse_int,
    parse_list,
    parse_seeds,
)
from harness.limits import MAX_CELLS, MAX_SEED, MAX_SEEDS

__all__ = [
    "MAX_CELLS", "MAX_SEED", "MAX_SEEDS", "PRESETS", "PROBLEM_SETTINGS", "TOP_LEVEL_KEYS",
    "ExpandedGrid", "GridSpec", "apply_sets", "apply_toml", "check_spec", "clip",
    "device_available", "expand", "load_grid_file", "load_preset", "normalize_device",
    "parse_bounded", "parse_int", "parse_list", "parse_seeds", "parse_set", "parse_value",
    "plugin_paths", "split_top_level",
]

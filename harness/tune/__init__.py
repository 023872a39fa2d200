"""Tuning runs (docs/tuning.md): studies, samplers (Optuna), the protocol replayed from
the records, and the driver that runs it as rounds of ordinary grid runs.

* :mod:`harness.tune.studies`: the grid's cells grouped into studies, their search spaces
  and selection metric;
* :mod:`harness.tune.samplers`: proposals through Optuna's samplers, rebuilt each time;
* :mod:`harness.tune.pruning`: successive halving's rungs and thresholds through Optuna's
  pruner, rebuilt each time;
* :mod:`harness.tune.protocol`: trials, selection, extensions and final cells, derived
  from the records alone;
* :mod:`harness.tune.driver`: the rounds, ``tuning.json`` and ``best_configs.csv``.
"""

from harness.tune.driver import first_cells, run_tuning

__all__ = ["first_cells", "run_tuning"]

"""Imported once by the fork server CPU workers start from (:mod:`harness.run.start`):
torch, ``torch._dynamo`` (a torch optimizer's first step imports it), the worker's own
code and the modules of the installed plugins. The plugin host itself is built in each
worker, from the environment the run gives it; a module that fails to import here is
left for the worker to report."""

import contextlib
import importlib

import torch
import torch._dynamo  # noqa: F401

import harness.run.pool
import harness.train.loop  # noqa: F401  (and pandas, for the cells' summaries)
from harness.plugins.host import installed_modules

for _name in installed_modules():
    with contextlib.suppress(Exception, SystemExit):
        importlib.import_module(_name)

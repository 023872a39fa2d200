"""Real third-party optimizers registered with the capabilities their step needs."""

from __future__ import annotations

import pytorch_optimizer
import schedulefree

import harness


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    # Schedule-free AdamW keeps two points: train() and eval() switch between them.
    registry.add_torch("schedulefree-adamw", schedulefree.AdamWScheduleFree,
                       capabilities=harness.Capabilities(modes=True), lr=0.01,
                       warmup_steps=5)
    # Hutchinson's Hessian estimate differentiates the gradients: they keep their graph.
    registry.add_torch("sophiah", pytorch_optimizer.SophiaH,
                       capabilities=harness.Capabilities(second_order=True), lr=0.01,
                       update_period=2)
    registry.add_torch("adahessian", pytorch_optimizer.AdaHessian,
                       capabilities=harness.Capabilities(second_order=True), lr=0.1)

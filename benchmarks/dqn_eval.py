"""What the DQN's greedy evaluation costs, against the training it sits between.

For each environment, one evaluation (``greedy_episodes`` = 10 episodes, played side by
side) of an untrained network, and of a network that balances CartPole to its 500-step
limit (trained here until its greedy episodes all last 500 steps, or a step budget ends);
and a training step's time for comparison. Evaluation runs outside the training time.

Usage: OMP_NUM_THREADS=1 python benchmarks/dqn_eval.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.plugins import get_host
from harness.problem import BuildContext


def _median_s(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20_000,
                        help="most environment steps spent training the CartPole agent")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    host = get_host()
    problem, spec = host.problems.get("dqn"), host.optimizers.get(args.optimizer)

    def build(env: str, seed: int = 0) -> Any:
        ctx = BuildContext(torch.device("cpu"), seed, problem.batch_size, 10,
                           problem.defaults() | {"env": env}, Path("."))
        return problem.build(ctx)

    print("| env | policy | mean greedy return | one evaluation (s) |")
    print("|---|---|---:|---:|")
    for env in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0"):
        task = build(env)
        ret = task.evaluate()["eval_return"]
        print(f"| {env} | untrained | {ret:g} | {_median_s(task.evaluate, args.rounds):.3f} |")

    # Train a CartPole agent until its greedy episodes (nearly) reach the limit, to time
    # the longest evaluation (10 × 500 steps) and compare it with training steps.
    task = build("CartPole-v1", seed=args.seed)
    optimizer = spec.factory(task.eval_net.parameters(), **dict(spec.defaults))
    t_train, steps = 0.0, 0
    while steps < args.train_steps:
        t0 = time.perf_counter()
        for _ in range(500):
            task.train_step({"q_network": optimizer})
        t_train += time.perf_counter() - t0
        steps += 500
        if task.evaluate()["eval_return"] >= 450:
            break
    step_ms = 1000 * t_train / steps
    ret = task.evaluate()["eval_return"]
    print(f"| CartPole-v1 | trained {steps:,} steps | {ret:g} | "
          f"{_median_s(task.evaluate, args.rounds):.3f} |")
    print(f"\ntraining: {step_ms:.3f} ms per environment step (learning from step 2,000); "
          f"an evaluation every 500 steps is {500 * step_ms / 1000:.2f} s of training")


if __name__ == "__main__":
    main()

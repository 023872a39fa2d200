"""The tutorial's DQN: a 10-unit Q-network learns a gymnasium control task from replay.

The agent is the tutorial's: an evaluation net and a target net copied from it
every 100 learning steps, a replay memory of 2,000 transitions overwritten
oldest-first, batches of 32, ε-greedy acting with probability 0.9 of the greedy
action, and γ = 0.9. One harness step is one environment step; once the memory
is full every environment step is followed by one learning step, as in the
tutorial. The environment runs on the CPU (gymnasium is Python); the networks
and the replay batches live on the cell's device. The agent is
:class:`harness_builtins.nets.dqn.DqnTask`, imported with torch and gymnasium when a cell
is built.

Two departures from the tutorial, both needed for a benchmark: the environment
keeps its time limit (the tutorial used ``env.unwrapped``), and a transition
that *terminates* the episode does not bootstrap from the next state (without
that, under the environment's constant +1 reward every state has the same value
and there is nothing to learn; the tutorial side-stepped this with its shaped
reward, which is available as ``shaped_reward=true`` on CartPole). Episode
returns are always the environment's own reward, whichever reward trains.

How well the agent plays is measured as RL benchmarks do (CleanRL, Stable-Baselines3's
``EvalCallback``), not from its training episodes: at each evaluation the greedy policy
(no exploration, no learning) plays ``greedy_episodes`` episodes on separate copies of the
environment, each from its own start state fixed for the cell, and ``eval_return`` is
their mean. The training episodes' 100-episode moving average (``return_ma100``) is
kept, but it cannot be the target: it mixes in the exploring policy and lags the agent
by thousands of steps (the last 100 CartPole episodes of a 20,000-step run go back to the
~200 short episodes played before learning starts, at step 2,000).

Everything random follows the cell's seed: the first ``reset(seed=...)`` (later
resets continue the environment's own seeded generator), the action space's
sampler, numpy generators for the ε draws and the replay indices, a torch CPU
generator for the weights, and the evaluation episodes' start states. Evaluating
draws nothing from the training generators, so training is the same however often
it is evaluated. The same seed on the CPU gives the same returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from harness import BuildContext, Param, Problem, ProblemRegistry, Target, hookimpl
from harness.target import Better

if TYPE_CHECKING:  # torch and gymnasium are imported where a cell is built
    from harness_builtins.nets.dqn import DqnTask

#: Environments the problem accepts, with the mean greedy return that counts as solved:
#: CartPole's classic 195 (the v0 threshold the tutorial era used; v1's own is 475), and
#: gymnasium's registered thresholds for Acrobot and MountainCar.
SOLVED_RETURN: dict[str, float] = {
    "CartPole-v1": 195.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
}
HIDDEN = 10
MEMORY_CAPACITY = 2_000
TARGET_REPLACE_ITER = 100
#: Probability of the greedy action (the tutorial's EPSILON).
EPSILON = 0.9
GAMMA = 0.9
#: Episodes in the training returns' moving average.
MA_EPISODES = 100
#: Greedy episodes per evaluation, by default.
GREEDY_EPISODES = 10


class Dqn(Problem):
    """The tutorial's DQN on a gymnasium environment (CartPole by default).

    ``steps`` are environment steps and ``batch_size`` is the replay batch.
    The target is "solved": the greedy policy's mean return over the evaluation
    episodes (``eval_return``) reaching the environment's threshold (CartPole 195,
    Acrobot −100, MountainCar −110).
    """

    name = "dqn"
    description = "The tutorial's DQN (Q-net N→10→A, replay 2,000, target net) on gymnasium"
    params = (
        Param("env", "CartPole-v1", choices=tuple(SOLVED_RETURN),
              help="gymnasium environment id"),
        Param("shaped_reward", False,
              help="train on the tutorial's shaped CartPole reward (returns stay the env's)"),
        Param("greedy_episodes", GREEDY_EPISODES,
              help="greedy episodes played at each evaluation; eval_return is their mean"),
    )
    batch_size = 32
    steps = 20_000
    #: Evaluation plays up to greedy_episodes × the env's time limit steps (CartPole:
    #: 10 × 500), a few tenths of a second, outside the training time.
    eval_every = 500
    metrics = ("eval_return", "return_ma100", "last_return", "episodes", "learn_steps",
               "learn_steps_per_s")
    target = Target("eval_return", SOLVED_RETURN["CartPole-v1"], "max")
    metric_better: ClassVar[Mapping[str, Better]] = {"return_ma100": "max",
                                                     "learn_steps_per_s": "max"}
    sample_unit = "env_steps"
    roles = ("q_network",)
    conformance_skip: ClassVar[Mapping[str, str]] = {
        "trains": "as in the tutorial, learning starts once the replay memory holds 2,000 "
                  "transitions",
        "loss_decreases": "no learning step happens in a few dozen environment steps",
        "metrics_finite": "return_ma100 needs 100 finished episodes; last_return one",
    }

    def target_for(self, params: Mapping[str, Any]) -> Target | None:
        """Solved is the environment's own threshold (see :data:`SOLVED_RETURN`)."""
        threshold = SOLVED_RETURN.get(str(params.get("env", "CartPole-v1")))
        return self.target if threshold is None else Target("eval_return", threshold, "max")

    def build(self, ctx: BuildContext) -> DqnTask:
        episodes = ctx.params.get("greedy_episodes", GREEDY_EPISODES)
        assert isinstance(episodes, int)  # the Param's type, checked by the grid
        from harness_builtins.nets.dqn import DqnTask

        return DqnTask(ctx, str(ctx.params["env"]), bool(ctx.params["shaped_reward"]), episodes)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(Dqn())

"""The torch and gymnasium side of :mod:`harness_builtins.dqn` (whose docstring describes
the agent): the tutorial's Q-network, its shaped CartPole reward, and :class:`DqnTask`, the
agent and environment one cell runs, with the environment's state for checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Task, take_step
from harness_builtins.dqn import (
    EPSILON,
    GAMMA,
    GREEDY_EPISODES,
    HIDDEN,
    MA_EPISODES,
    MEMORY_CAPACITY,
    SOLVED_RETURN,
    TARGET_REPLACE_ITER,
)


class QNet(nn.Module):
    """The tutorial's ``Net``: N_STATES → 10 (ReLU) → N_ACTIONS, weights from N(0, 0.1)."""

    def __init__(self, n_states: int, n_actions: int, generator: torch.Generator) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_states, HIDDEN)
        self.out = nn.Linear(HIDDEN, n_actions)
        with torch.no_grad():
            for layer in (self.fc1, self.out):
                layer.weight.normal_(0, 0.1, generator=generator)
                bound = 1 / math.sqrt(layer.in_features)  # nn.Linear's own bias init
                layer.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(F.relu(self.fc1(x)))  # type: ignore[no-any-return]


def shaped_cartpole_reward(env: gym.Env[Any, Any], state: np.ndarray) -> float:
    """The tutorial's reward: higher the nearer the cart is to the centre and the pole upright."""
    base: Any = env.unwrapped
    x_max, theta_max = float(base.x_threshold), float(base.theta_threshold_radians)
    x, _, theta, _ = (float(v) for v in state)
    r1 = (x_max - abs(x)) / x_max - 0.8
    r2 = (theta_max - abs(theta)) / theta_max - 0.5
    return r1 + r2


class DqnTask(Task):
    """One cell's agent and environment; one :meth:`train_step` is one environment step."""

    def __init__(self, ctx: BuildContext, env_id: str, shaped_reward: bool,
                 greedy_episodes: int = GREEDY_EPISODES) -> None:
        if shaped_reward and env_id != "CartPole-v1":
            raise ValueError(f"shaped_reward is the tutorial's CartPole reward; env is {env_id}")
        if greedy_episodes < 1:
            raise ValueError(f"greedy_episodes must be at least 1, got {greedy_episodes}")
        self.env_id = env_id
        self.shaped_reward = shaped_reward
        self.env: gym.Env[Any, Any] = gym.make(env_id)
        space = self.env.observation_space
        actions = self.env.action_space
        assert space.shape is not None and isinstance(actions, gym.spaces.Discrete)
        self.n_states = int(space.shape[0])
        self.n_actions = int(actions.n)
        self.device = ctx.device
        self.batch_size = ctx.batch_size
        self.samples_per_step = 1

        # Weights drawn on the CPU from the cell's seed: identical on every device.
        weights = ctx.cpu_generator(0)
        self.eval_net = QNet(self.n_states, self.n_actions, weights).to(ctx.device)
        self.target_net = QNet(self.n_states, self.n_actions, weights).to(ctx.device)
        self.target_net.load_state_dict(self.eval_net.state_dict())
        self.target_net.requires_grad_(False)

        self.act_rng = np.random.default_rng([ctx.seed, 1])
        self.replay_rng = np.random.default_rng([ctx.seed, 2])
        actions.seed(ctx.seed)
        self.state, _ = self.env.reset(seed=ctx.seed)

        # Host memory: rows are (s, a, r, s_, terminated); a batch is copied to the device.
        self.memory = np.zeros((MEMORY_CAPACITY, 2 * self.n_states + 3), dtype=np.float32)
        self.memory_counter = 0
        self.learn_steps = 0
        self.env_steps = 0

        self.episode_return = 0.0
        self.episode_returns: list[float] = []
        self.episode_end_steps: list[int] = []
        self.episode_end_s: list[float] = []

        # Greedy evaluation: its own environments, made at the first evaluation, each
        # episode starting from a state fixed by the cell's seed.
        self.eval_seeds = [int(s) for s in
                           np.random.SeedSequence([ctx.seed, 3]).generate_state(greedy_episodes)]
        self.eval_envs: list[gym.Env[Any, Any]] = []
        self.eval_steps: list[int] = []
        self.eval_returns: list[float] = []
        # Training time: wall time since the first step less the time spent evaluating.
        self._t_first: float | None = None
        self._paused = 0.0
        self._resumed_s = 0.0  # training time before a resume from a checkpoint
        self._t_learn_start: float | None = None
        self._last_eval_end: float | None = None
        self._learn_time = 0.0

    # -- the harness's interface ------------------------------------------------
    def parameter_groups(self) -> Mapping[str, Iterable[nn.Parameter]]:
        return {"q_network": self.eval_net.parameters()}

    def modules(self) -> Mapping[str, nn.Module]:
        return {"eval_net": self.eval_net, "target_net": self.target_net}

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        """One environment step, then one learning step once the memory is full.

        ``loss`` is the TD loss (MSE between Q(s, a) and r + γ·max Q_target(s', ·)) of
        a replay batch: the batch learned from, or, while the memory is still filling
        and nothing is learned, a batch of the transitions so far scored without an
        update. So every window's mean is a TD loss, the first one the untrained
        network's. Choosing the greedy action reads the Q-values on the host: acting
        needs it, whatever the device.
        """
        if self._t_first is None:
            self._t_first = self._last_eval_end = time.perf_counter()
        s = self.state
        a = self._choose_action(s)
        s_next, reward, terminated, truncated, _ = self.env.step(a)
        self.episode_return += float(reward)
        r = shaped_cartpole_reward(self.env, s_next) if self.shaped_reward else float(reward)
        self._store(s, a, r, s_next, bool(terminated))
        self.env_steps += 1
        if terminated or truncated:
            self.episode_returns.append(self.episode_return)
            self.episode_end_steps.append(self.env_steps)
            self.episode_end_s.append(self._training_time())
            self.episode_return = 0.0
            self.state, _ = self.env.reset()
        else:
            self.state = s_next

        if self.memory_counter >= MEMORY_CAPACITY:
            if self._t_learn_start is None:
                self._t_learn_start = time.perf_counter()
            return {"loss": self._learn(optimizers["q_network"])}
        with torch.no_grad():
            return {"loss": self._td_loss()}

    def evaluate(self) -> Mapping[str, float]:
        """The greedy policy's mean return, the training returns, and learning speed.

        ``eval_return`` is the mean return of the greedy policy over the evaluation
        episodes (see the module's docstring); the target is on it. ``return_ma100`` is
        the mean of the last 100 training episodes, NaN until 100 have finished (a
        partial average would let a few early episodes count). The time spent here is
        left out of the training time.
        """
        t0 = time.perf_counter()
        if self._last_eval_end is not None and self._t_learn_start is not None:
            self._learn_time += t0 - max(self._last_eval_end, self._t_learn_start)
        greedy = float(np.mean(self._greedy_returns()))
        self.eval_steps.append(self.env_steps)
        self.eval_returns.append(greedy)
        returns = self.episode_returns
        ma = float(np.mean(returns[-MA_EPISODES:])) if len(returns) >= MA_EPISODES else math.nan
        metrics = {
            "eval_return": greedy,
            "return_ma100": ma,
            "last_return": returns[-1] if returns else math.nan,
            "episodes": float(len(returns)),
            "learn_steps": float(self.learn_steps),
            "learn_steps_per_s": (
                self.learn_steps / self._learn_time if self._learn_time > 0 else math.nan
            ),
        }
        self._last_eval_end = time.perf_counter()
        if self._t_first is not None:
            self._paused += self._last_eval_end - t0
        return metrics

    def artifacts(self) -> Mapping[str, Any]:
        return {
            "env": self.env_id,
            "episode_returns": list(self.episode_returns),
            "episode_end_steps": list(self.episode_end_steps),
            "episode_end_s": list(self.episode_end_s),
            "eval_steps": list(self.eval_steps),
            "eval_returns": list(self.eval_returns),
            "solved_return": SOLVED_RETURN[self.env_id],
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything beyond the networks and the optimizer that the next steps depend on,
        so that ``--checkpoint-every`` resumes a cell exactly: the replay memory, the
        counters, the returns so far, the ε and replay generators, and the training
        environment mid-episode (its physical state, its generator, the time limit's
        step count, the action sampler). The evaluation environments restart from their
        fixed states at each evaluation and need nothing. Plain values and tensors only."""
        now = time.perf_counter()
        learn_s = self._learn_time
        if self._last_eval_end is not None and self._t_learn_start is not None:
            learn_s += now - max(self._last_eval_end, self._t_learn_start)
        return {
            "memory": torch.from_numpy(self.memory.copy()),
            "memory_counter": self.memory_counter,
            "learn_steps": self.learn_steps,
            "env_steps": self.env_steps,
            "episode_return": self.episode_return,
            "episode_returns": list(self.episode_returns),
            "episode_end_steps": list(self.episode_end_steps),
            "episode_end_s": list(self.episode_end_s),
            "eval_steps": list(self.eval_steps),
            "eval_returns": list(self.eval_returns),
            "observation": torch.from_numpy(np.array(self.state)),
            "act_rng": self.act_rng.bit_generator.state,
            "replay_rng": self.replay_rng.bit_generator.state,
            "env": _env_state(self.env),
            "training_s": self._training_time() if self._t_first is not None else 0.0,
            "learn_s": learn_s,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.memory = state["memory"].numpy().copy()
        self.memory_counter = int(state["memory_counter"])
        self.learn_steps = int(state["learn_steps"])
        self.env_steps = int(state["env_steps"])
        self.episode_return = float(state["episode_return"])
        self.episode_returns = [float(r) for r in state["episode_returns"]]
        self.episode_end_steps = [int(s) for s in state["episode_end_steps"]]
        self.episode_end_s = [float(s) for s in state["episode_end_s"]]
        self.eval_steps = [int(s) for s in state["eval_steps"]]
        self.eval_returns = [float(r) for r in state["eval_returns"]]
        self.state = state["observation"].numpy().copy()
        self.act_rng.bit_generator.state = state["act_rng"]
        self.replay_rng.bit_generator.state = state["replay_rng"]
        _load_env_state(self.env, state["env"])
        self._resumed_s = float(state["training_s"])
        self._learn_time = float(state["learn_s"])

    # -- the tutorial's agent ---------------------------------------------------
    def _training_time(self) -> float:
        assert self._t_first is not None
        return self._resumed_s + time.perf_counter() - self._t_first - self._paused

    def _choose_action(self, state: np.ndarray) -> int:
        if self.act_rng.uniform() < EPSILON:
            x = torch.as_tensor(state, dtype=torch.float32, device=self.device).unsqueeze(0)
            with torch.no_grad():
                return int(self.eval_net(x).argmax(dim=1)[0])
        return int(self.env.action_space.sample())

    def _greedy_returns(self) -> list[float]:
        """Play one greedy episode on each evaluation environment, all side by side (one
        forward pass per time step for the episodes still running); their returns."""
        if not self.eval_envs:
            self.eval_envs = [gym.make(self.env_id) for _ in self.eval_seeds]
        obs = np.stack([env.reset(seed=seed)[0]
                        for env, seed in zip(self.eval_envs, self.eval_seeds, strict=True)])
        returns = np.zeros(len(self.eval_envs))
        running = np.ones(len(self.eval_envs), dtype=bool)
        while running.any():
            index = np.flatnonzero(running)
            x = torch.as_tensor(obs[index], dtype=torch.float32, device=self.device)
            with torch.no_grad():
                actions = self.eval_net(x).argmax(dim=1).tolist()
            for i, a in zip(index, actions, strict=True):
                obs[i], reward, terminated, truncated, _ = self.eval_envs[i].step(int(a))
                returns[i] += float(reward)
                if terminated or truncated:
                    running[i] = False
        return [float(r) for r in returns]

    def _store(self, s: np.ndarray, a: int, r: float, s_next: np.ndarray, done: bool) -> None:
        row = self.memory[self.memory_counter % MEMORY_CAPACITY]
        n = self.n_states
        row[:n] = s
        row[n] = a
        row[n + 1] = r
        row[n + 2 : 2 * n + 2] = s_next
        row[2 * n + 2] = float(done)
        self.memory_counter += 1

    def _replay_batch(self) -> Tensor:
        """A replay batch drawn with replacement from what is stored."""
        stored = min(self.memory_counter, MEMORY_CAPACITY)
        index = self.replay_rng.integers(0, stored, size=self.batch_size)
        return torch.from_numpy(self.memory[index]).to(self.device)

    def _td_loss(self, batch: Tensor | None = None) -> Tensor:
        """The TD loss of ``batch`` (by default a new replay batch)."""
        if batch is None:
            batch = self._replay_batch()
        n = self.n_states
        b_s, b_s_next = batch[:, :n], batch[:, n + 2 : 2 * n + 2]
        b_a = batch[:, n : n + 1].long()
        b_r, b_done = batch[:, n + 1 : n + 2], batch[:, 2 * n + 2 :]
        q_eval = self.eval_net(b_s).gather(1, b_a)
        q_next = self.target_net(b_s_next).max(dim=1, keepdim=True).values
        q_target = b_r + GAMMA * (1 - b_done) * q_next
        return F.mse_loss(q_eval, q_target)

    def _learn(self, optimizer: torch.optim.Optimizer) -> Tensor:
        """One learning step on one replay batch, through :func:`harness.take_step`: a
        closure optimizer evaluates the TD loss of that batch as often as it asks."""
        if self.learn_steps % TARGET_REPLACE_ITER == 0:
            self.target_net.load_state_dict(self.eval_net.state_dict())
        self.learn_steps += 1
        batch = self._replay_batch()
        return take_step(optimizer, lambda: self._td_loss(batch)).detach()


def _time_limit(env: gym.Env[Any, Any]) -> gym.wrappers.TimeLimit[Any, Any] | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _env_state(env: gym.Env[Any, Any]) -> dict[str, Any]:
    """A classic-control environment mid-episode, as plain values and tensors."""
    base: Any = env.unwrapped
    physical = None if base.state is None else torch.from_numpy(np.array(base.state))
    limit = _time_limit(env)
    return {
        "state": physical,
        "steps_beyond_terminated": getattr(base, "steps_beyond_terminated", None),
        "np_random": base.np_random.bit_generator.state,
        "elapsed_steps": None if limit is None else limit._elapsed_steps,
        "action_space": env.action_space.np_random.bit_generator.state,
    }


def _load_env_state(env: gym.Env[Any, Any], state: Mapping[str, Any]) -> None:
    base: Any = env.unwrapped
    base.state = None if state["state"] is None else state["state"].numpy().copy()
    if hasattr(base, "steps_beyond_terminated"):
        base.steps_beyond_terminated = state["steps_beyond_terminated"]
    base.np_random.bit_generator.state = state["np_random"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state["elapsed_steps"]
    env.action_space.np_random.bit_generator.state = state["action_space"]

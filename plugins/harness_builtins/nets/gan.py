"""The torch side of :mod:`harness_builtins.gan`: the artist's paintings, the quality
metrics, the generator and discriminator, and :class:`GanTask`, the alternating training
one cell runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Task, take_step
from harness_builtins.gan import (
    ART_COMPONENTS,
    EVAL_PAINTINGS,
    HIDDEN,
    N_IDEAS,
    SNAPSHOT_FRACTIONS,
    SNAPSHOT_PAINTINGS,
)


def paint_points(device: torch.device | None = None) -> Tensor:
    """The 15 x positions every painting is sampled at."""
    return torch.linspace(-1, 1, ART_COMPONENTS, device=device)


def artist_works(a: Tensor, x: Tensor) -> Tensor:
    """Paintings ``a·x² + (a − 1)`` for each ``a`` (shape (n, 1)) at ``x``: (n, 15)."""
    return a * x.pow(2) + (a - 1)


def fitted_a(paintings: Tensor, x: Tensor) -> Tensor:
    """Least-squares ``a`` of each painting in the family ``a·u − 1``, ``u = x² + 1``: (n, 1).

    The family is linear in ``a``, so the fit is ``Σu(y+1) / Σu²`` in closed form.
    """
    u = x.pow(2) + 1
    return ((paintings + 1) * u).sum(dim=1, keepdim=True) / u.pow(2).sum()


def nearest_artist_distance(paintings: Tensor, x: Tensor) -> Tensor:
    """RMS distance of each painting to the nearest artist curve, one value per painting.

    The squared distance to ``a·u − 1`` is a convex quadratic in ``a``, so the
    unconstrained fit clipped to the artist's range [1, 2] is the nearest member.
    """
    nearest = fitted_a(paintings, x).clamp(1.0, 2.0) * (x.pow(2) + 1) - 1
    return (paintings - nearest).pow(2).mean(dim=1).sqrt()


def uniform_w1(a: Tensor) -> Tensor:
    """1-Wasserstein distance between the sample ``a`` and U[1, 2] (sorted vs quantiles)."""
    n = a.numel()
    quantiles = 1 + (torch.arange(n, device=a.device, dtype=a.dtype) + 0.5) / n
    return (a.flatten().sort().values - quantiles).abs().mean()


def generator_net() -> nn.Sequential:
    """The tutorial's G: ideas → 128 (ReLU) → a painting."""
    return nn.Sequential(nn.Linear(N_IDEAS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, ART_COMPONENTS))


def discriminator_net() -> nn.Sequential:
    """The tutorial's D: a painting → 128 (ReLU) → 1 → sigmoid (probability of the artist)."""
    return nn.Sequential(
        nn.Linear(ART_COMPONENTS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1), nn.Sigmoid()
    )


class GanTask(Task):
    """One cell's GAN: the tutorial's alternating generator and discriminator updates.

    Each step draws a batch of artist paintings and of ideas, then (as in the
    tutorial) first updates G to lower ``mean log(1 − D(G(z)))`` (or, with
    ``g_loss=non-saturating``, ``−mean log D(G(z))``, whose gradient does not
    vanish when D wins), then updates D to lower
    ``−mean[log D(real) + log(1 − D(G(z)))]`` on the same, detached, paintings.
    The logs are computed from D's logit with ``logsigmoid``: the same values as
    the tutorial's ``log(sigmoid(·))`` but finite when D saturates, so a
    confident discriminator is not mistaken for divergence.
    """

    data_source = "synthetic"

    def __init__(self, ctx: BuildContext) -> None:
        device = ctx.device
        self.non_saturating = ctx.params["g_loss"] == "non-saturating"
        # The harness seeded torch's global RNG: build on the CPU so the initial
        # weights are the same on every device, then move.
        self.generator = generator_net().to(device)
        self.discriminator = discriminator_net().to(device)
        self.d_logit = self.discriminator[:-1]  # D without its sigmoid
        self.batch_size = ctx.batch_size
        self.samples_per_step = ctx.batch_size
        self.device = device
        self.x = paint_points(device)
        self.rng = ctx.generator(0)  # training draws, on the device
        ideas = torch.randn(EVAL_PAINTINGS, N_IDEAS, generator=ctx.cpu_generator(1))
        self.eval_ideas = ideas.to(device)
        self.snapshot_ideas = self.eval_ideas[:SNAPSHOT_PAINTINGS]
        self.snapshot_steps = {round(f * ctx.steps) for f in SNAPSHOT_FRACTIONS}
        self.steps_done = 0
        # Device tensors, converted to lists only when the artifacts are asked for.
        self.snapshots: dict[int, Tensor] = {}
        self._snapshot()

    def parameter_groups(self) -> Mapping[str, Iterable[nn.Parameter]]:
        return {
            "generator": self.generator.parameters(),
            "discriminator": self.discriminator.parameters(),
        }

    def modules(self) -> Mapping[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _snapshot(self) -> None:
        with torch.no_grad():
            self.snapshots[self.steps_done] = self.generator(self.snapshot_ideas).detach()

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        """One G update then one D update; every returned value is a device scalar.

        ``loss`` is ``d_loss + g_loss``, the sum of what the two optimizers
        minimise. It says little about the paintings (at the equilibrium, D = ½
        everywhere, it is ``2·ln 2 − ln 2 = ln 2`` with the tutorial's generator
        loss and ``3·ln 2`` with the non-saturating one); ``curve_distance`` does.
        """
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        a = 1 + torch.rand(self.batch_size, 1, device=self.device, generator=self.rng)
        artist = artist_works(a, self.x)
        ideas = torch.randn(self.batch_size, N_IDEAS, device=self.device, generator=self.rng)
        # Through harness.take_step, so closure and second-order optimizers work on either
        # role: a closure evaluates its loss again on the same batch, as often as it asks.
        # D learns from the paintings of G before its update (the first evaluation's).
        fakes: list[Tensor] = []

        def generator_loss() -> Tensor:
            fake = self.generator(ideas)
            if not fakes:
                fakes.append(fake.detach())
            fake_for_g = self.d_logit(fake)
            if self.non_saturating:
                return -F.logsigmoid(fake_for_g).mean()  # −mean log D(G(z))
            return F.logsigmoid(-fake_for_g).mean()  # mean log(1 − D(G(z))), the tutorial's

        g_loss = take_step(opt_g, generator_loss)
        logits: list[tuple[Tensor, Tensor]] = []

        def discriminator_loss() -> Tensor:  # G's loss left grads in D: take_step drops them
            real_logit, fake_logit = self.d_logit(artist), self.d_logit(fakes[0])
            if not logits:
                logits.append((real_logit.detach(), fake_logit.detach()))
            return -(F.logsigmoid(real_logit).mean() + F.logsigmoid(-fake_logit).mean())

        d_loss = take_step(opt_d, discriminator_loss)
        real_logit, fake_logit = logits[0]

        self.steps_done += 1
        if self.steps_done in self.snapshot_steps:
            self._snapshot()
        g_loss, d_loss = g_loss.detach(), d_loss.detach()
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_acc_real": (real_logit > 0).float().mean(),
            "d_acc_fake": (fake_logit < 0).float().mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """The training draws' generator, the step count and the snapshots so far: with the
        networks and optimizers, enough to resume a cell exactly (``--checkpoint-every``)."""
        return {"rng": self.rng.get_state(), "steps_done": self.steps_done,
                "snapshots": {str(k): v for k, v in self.snapshots.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        self.steps_done = int(state["steps_done"])
        self.snapshots = {int(k): v.to(self.device) for k, v in state["snapshots"].items()}

    def evaluate(self) -> Mapping[str, float]:
        """Quality of the paintings from the fixed ideas; D plays no part in it."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                paintings = self.generator(self.eval_ideas)
        finally:
            self.generator.train(was_training)
        distance = nearest_artist_distance(paintings, self.x).mean()
        lower, upper = self.x.pow(2), 2 * self.x.pow(2) + 1
        inside = ((paintings >= lower) & (paintings <= upper)).all(dim=1).float().mean()
        coverage = uniform_w1(fitted_a(paintings, self.x))
        return {"curve_distance": float(distance), "inside_bounds": float(inside),
                "a_w1": float(coverage)}

    def artifacts(self) -> Mapping[str, Any]:
        self._snapshot()
        return {
            "x": self.x.tolist(),
            "artist_lower": self.x.pow(2).tolist(),
            "artist_upper": (2 * self.x.pow(2) + 1).tolist(),
            "paintings": {str(k): v.tolist() for k, v in sorted(self.snapshots.items())},
        }

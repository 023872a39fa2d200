"""An MLP classifying scikit-learn's handwritten digits (1,797 images of 8×8 pixels).

The data ships inside scikit-learn, so the problem needs no download. The split
is fixed (the same 360 held-out images for every seed): seeds vary the
initialisation and the batch order, not what is measured.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Param, Problem, Supervised, Target

#: Held-out images, and the seed of the fixed permutation that picks them.
TEST_SIZE = 360
SPLIT_SEED = 20230213

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[Tensor, Tensor]:
    """Images as N×64 floats in [0, 1] and labels as N int64, loaded once per process."""
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    return x, y


def split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y = load_digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    test, train = order[:TEST_SIZE], order[TEST_SIZE:]
    return x[train], y[train], x[test], y[test]


class DigitsMLP(Problem):
    """64 → hidden → 10 with one hidden layer; cross-entropy, accuracy on held-out images."""

    name = "digits"
    description = "MLP 64→hidden→10 classifies scikit-learn's 8×8 handwritten digits"
    params = (
        Param("hidden", 64, choices=(32, 64, 128), help="hidden units"),
        Param("activation", "relu", choices=tuple(ACTIVATIONS), help="hidden activation"),
    )
    batch_size = 64
    steps = 300
    eval_every = 25
    metrics = ("test_accuracy", "test_loss")
    target = Target("test_accuracy", 0.95, "max")

    def build(self, ctx: BuildContext) -> Supervised:
        x, y, test_x, test_y = (t.to(ctx.device) for t in split())
        hidden = ctx.params["hidden"]
        assert isinstance(hidden, int)  # the grid checked it against the Param's choices
        activation = ACTIVATIONS[str(ctx.params["activation"])]
        # torch is seeded from ctx.seed before build(): the weights follow the seed.
        model = nn.Sequential(nn.Linear(64, hidden), activation(), nn.Linear(hidden, 10))

        def evaluate(m: nn.Module) -> Mapping[str, float]:  # eval mode, no_grad
            logits = m(test_x)
            accuracy = (logits.argmax(dim=1) == test_y).to(torch.float32).mean()
            return {"test_accuracy": float(accuracy),
                    "test_loss": float(F.cross_entropy(logits, test_y))}

        return Supervised(
            model=model.to(ctx.device),
            loss_fn=nn.CrossEntropyLoss(),
            inputs=x,
            targets=y,
            evaluate=evaluate,
            data_source="sklearn-digits",
        )

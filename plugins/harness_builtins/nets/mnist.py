"""The torch side of :mod:`harness_builtins.mnist`: the tutorial's CNN, row LSTM and
autoencoder, the validation split, the metrics, and what a cell of each problem builds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Supervised
from harness.data import MnistData, load_mnist
from harness_builtins.mnist import CODE_IMAGES, EVAL_CHUNK, EVAL_LIMIT, VALIDATION_FRACTION


def split_validation(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, validation images, validation labels): the last
    :data:`VALIDATION_FRACTION` of the training set (at most :data:`EVAL_LIMIT` images)
    is the validation split, the rest is trained on. Deterministic: no seed involved."""
    n_val = min(EVAL_LIMIT, int(images.shape[0] * VALIDATION_FRACTION))
    cut = images.shape[0] - n_val
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def _mnist(ctx: BuildContext) -> MnistData:
    return load_mnist(ctx.data_dir, ctx.download)


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


def build_cnn(ctx: BuildContext) -> Supervised:
    """A ``cnn`` cell: images as N×1×28×28."""
    return _classifier(ctx, _mnist(ctx), CNN, lambda images: images.unsqueeze(1))


class RowLSTM(nn.Module):
    """The tutorial's RNN classifier: an LSTM reads the 28 rows; the last step is classified."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, num_layers=1, batch_first=True)
        self.out = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        r_out, _ = self.rnn(x, None)  # x: (batch, time_step=28 rows, input_size=28)
        return self.out(r_out[:, -1, :])  # type: ignore[no-any-return]


def build_lstm(ctx: BuildContext) -> Supervised:
    """An ``lstm`` cell: N×28×28 images as they are, 28 time steps of 28 pixels."""
    return _classifier(ctx, _mnist(ctx), RowLSTM, lambda images: images)


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


def build_autoencoder(ctx: BuildContext) -> Supervised:
    """An ``autoencoder`` cell: flattened images are inputs and targets; the artifacts keep
    the codes of a fixed held-out batch with their labels."""
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

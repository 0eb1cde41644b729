"""Data sets. The default, scikit-learn's handwritten digits, ships inside the package;
MNIST (IDX files, gzipped or not) and CIFAR-10 (the python batch files) are read from a
directory the user names."""
from __future__ import annotations

from firstspike.errors import FirstspikeError

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist", "cifar10")

MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
CIFAR_TRAIN = [f"data_batch_{k}" for k in range(1, 6)]
CIFAR_TEST = "test_batch"


class DataError(FirstspikeError, ValueError):
    """Data files are missing or malformed; the message names the file and the problem."""


@dataclass
class Dataset:
    """Inputs scaled to [0, 1], shape (n, features) (images flattened); integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    shape: tuple = ()  #: image shape (channels, height, width) before flattening

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def load_dataset(name: str = "digits", *, seed: int = 0, test_fraction: float = 0.25,
                 data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a data set by name. digits gets a fixed, seeded train/test split; MNIST and
    CIFAR-10 keep their official splits and need ``data_dir``."""
    if name == "digits":
        return _digits(seed, test_fraction)
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    if data_dir is None:
        raise DataError(f"{name} is not shipped with firstspike: pass --data-dir with its files")
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"{d}: no such data directory (if the data moved, pass --data-dir with its new place)")
    return _mnist(d) if name == "mnist" else _cifar10(d)


def _digits(seed: int, test_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixels are 0..16
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], classes=10, shape=(1, 8, 8))


# ---------------------------------------------------------------------------
# MNIST: IDX files
# ---------------------------------------------------------------------------
def _find(d: Path, stem: str) -> Path | None:
    for candidate in (d / stem, d / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0000080N, N dimensions, big-endian sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _mnist(d: Path) -> Dataset:
    paths = {k: _find(d, stem) for k, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"{d}: missing MNIST files {missing} (with or without .gz)")
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{d}: MNIST {split} images {x.shape} and labels {y.shape} do not match")
        if len(x) == 0:
            raise DataError(f"{paths[f'x_{split}']}: holds no images")
        if y.size and y.max() > 9:
            raise DataError(f"{paths[f'y_{split}']}: labels must be 0..9")
    flat = lambda a: (a.reshape(len(a), -1) / 255.0).astype(np.float32)  # noqa: E731
    h, w = arrays["x_train"].shape[1:]
    return Dataset("mnist", flat(arrays["x_train"]), arrays["y_train"].astype(np.int64),
                   flat(arrays["x_test"]), arrays["y_test"].astype(np.int64), classes=10, shape=(1, h, w))


# ---------------------------------------------------------------------------
# CIFAR-10: python batches
# ---------------------------------------------------------------------------
class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch (dicts, lists, bytes, numpy arrays) and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels'")
    x = np.asarray(batch[b"data"])
    y = np.asarray(batch[b"labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(f"{path}: data must be uint8 (n, 3072) with n labels, got {x.dtype} {x.shape}, "
                        f"{len(y)} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels must be 0..9")
    return x, y


def _cifar10(d: Path) -> Dataset:
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    missing = [n for n in CIFAR_TRAIN + [CIFAR_TEST] if not (d / n).is_file()]
    if missing:
        raise DataError(f"{d}: missing CIFAR-10 batch files {missing}")
    train = [read_cifar_batch(d / n) for n in CIFAR_TRAIN]
    xt, yt = read_cifar_batch(d / CIFAR_TEST)
    scale = lambda a: (a / 255.0).astype(np.float32)  # noqa: E731  (channel-major: R, G, B planes)
    return Dataset("cifar10", scale(np.concatenate([x for x, _ in train])), np.concatenate([y for _, y in train]),
                   scale(xt), yt, classes=10, shape=(3, 32, 32))

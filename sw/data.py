"""Data sets. The default, scikit-learn's handwritten digits, ships inside the package."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DATASETS = ("digits",)


@dataclass
class Dataset:
    """Inputs scaled to [0, 1], shape (n, features); integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def load_dataset(name: str = "digits", *, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """Load a data set by name with a fixed, seeded train/test split."""
    if name != "digits":
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixels are 0..16
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], classes=10)

"""Random integer SNNs for verification: every weight code, busy and silent neurons."""
from __future__ import annotations

import numpy as np

from .formats import SIGN_BIT, ZERO_CODE, Timing, threshold_table
from .model import SnnLayer, SnnModel


def random_model(rng: np.random.Generator, sizes: list[int], timing: Timing,
                 zero_fraction: float = 0.2) -> SnnModel:
    """A model with uniformly random weight codes and thresholds that make neurons fire
    across the whole window (some never fire, some fire at t = 0)."""
    layers = []
    one = 1 << timing.frac_bits
    for k in range(len(sizes) - 1):
        n_in, n_out = sizes[k], sizes[k + 1]
        mag = rng.integers(0, 15, size=(n_out, n_in))
        sign = rng.integers(0, 2, size=(n_out, n_in))
        codes = np.where(rng.random((n_out, n_in)) < zero_fraction, ZERO_CODE, mag | (sign * SIGN_BIT))
        typical = one * np.sqrt(n_in) / 4
        bias = rng.integers(-int(typical), int(typical) + 1, size=n_out).astype(np.int64)
        last = k == len(sizes) - 2
        th = None if last else threshold_table(float(typical * rng.uniform(0.3, 3.0)), timing)
        layers.append(SnnLayer(weights=codes.astype(np.uint8), bias=bias, thresholds=th))
    return SnnModel(timing=timing, input_theta=1.0, layers=layers, name="random")


def random_input_times(rng: np.random.Generator, n: int, batch: int, timing: Timing,
                       silent_fraction: float = 0.3) -> np.ndarray:
    """(batch, n) spike times with some silent inputs."""
    t = rng.integers(0, timing.T, size=(batch, n))
    return np.where(rng.random((batch, n)) < silent_fraction, -1, t).astype(np.int64)

"""Time-to-first-spike neurons (docs/spec.md, sections 2 to 5): one spike per neuron per layer.

A spike at step t stands for theta * 2**(-t/B); a hidden neuron integrates every input
spike of its window, starting from its bias, and fires at the first t with V >= TH[t].
Spikes are int64 times, (batch, n) with NO_SPIKE (-1) for a silent neuron.
"""
from __future__ import annotations

import numpy as np

from firstspike.errors import InputError
from firstspike.sw.formats import (NO_SPIKE, FormatError, Timing, decode_spike_times, encode_spike_times,
                                   fire_times, threshold_table)

NAME = "ttfs"
CODING = "ttfs"
#: conversion options (sw.convert.convert's ``options``): none
OPTIONS = ()


# -- the model file ----------------------------------------------------------------------------
def validate_layer(layer, timing: Timing, where: str, output: bool) -> None:
    """Hidden layers: an int64 table TH[0..T-1] >= 1; no initial potentials (the bias is one)."""
    if layer.initial is not None:
        raise FormatError(f"{where}: a ttfs layer starts from its bias and has no initial potentials")
    if output:
        return
    th = layer.thresholds
    if th is None or th.shape != (timing.T,) or th.dtype != np.int64:
        raise FormatError(f"{where}: hidden ttfs layers need an int64 threshold table of length T={timing.T}")
    if np.any(th < 1):
        raise FormatError(f"{where}: thresholds must be >= 1")


def potential_bound(layer, timing: Timing, synaptic: np.ndarray) -> np.ndarray:
    """Per channel: |bias| + the largest sum of contributions (each input spikes once)."""
    return np.abs(layer.bias) + synaptic


# -- conversion ----------------------------------------------------------------------------------
def fold_input_scale(w: np.ndarray, theta_in, in_shape) -> tuple[np.ndarray, float]:
    """An input spike at t = 0 stands for theta_in: a scalar that goes into the unit, not the weights."""
    theta_in = np.asarray(theta_in, dtype=np.float64)
    if theta_in.ndim:
        if not np.all(theta_in == theta_in.flat[0]):
            raise FormatError("a ttfs layer has one threshold table, so its input needs one threshold, "
                              "not one per channel")
        theta_in = theta_in.flat[0]
    return w, float(theta_in)


def firing_parameters(theta, unit: float, timing: Timing, channels: int, **options) -> dict:
    """TH[t] = ceil(theta / unit * 2**(-t/B)), at least 1."""
    if options:
        raise FormatError(f"ttfs layers take no options {sorted(options)}")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim:
        if not np.all(theta == theta.flat[0]):
            raise FormatError("a ttfs layer has one threshold table: per-channel thresholds need rate_if")
        theta = theta.flat[0]
    return dict(thresholds=threshold_table(float(theta) / unit, timing), theta=float(theta))


def output_parameters(timing: Timing, channels: int, **options) -> dict:
    return {}


# -- spikes --------------------------------------------------------------------------------------
def encode(x: np.ndarray, input_theta: float, timing: Timing) -> np.ndarray:
    """Input spike times: the first t with x >= theta_in * 2**(-t/B) (spec section 2)."""
    return encode_spike_times(x, input_theta, timing)


def check_spikes(spikes, n_in: int, timing: Timing, where: str) -> np.ndarray:
    """``spikes`` as int64 times (batch, n_in), or InputError."""
    times = np.asarray(spikes, dtype=np.int64)
    if times.ndim != 2 or times.shape[1] != n_in:
        raise InputError(f"{where} expects spike times of shape (batch, {n_in}), got {times.shape}")
    if times.size and not (NO_SPIKE <= times.min() and times.max() < timing.T):  # NO_SPIKE is -1
        raise InputError(f"spike times must be in 0..{timing.T - 1} or {NO_SPIKE}")
    return times


def spike_count(spikes: np.ndarray) -> np.ndarray:
    """Spikes per image."""
    return (spikes != NO_SPIKE).sum(axis=1)


def spikes_per_neuron(spikes: np.ndarray) -> np.ndarray:
    """(batch, n): spikes each neuron sent (0 or 1)."""
    return (spikes != NO_SPIKE).astype(np.int64)


def decode(spikes: np.ndarray, theta, timing: Timing) -> np.ndarray:
    """(batch, n) float values the spikes stand for: theta * 2**(-t/B), 0 for no spike."""
    return decode_spike_times(spikes, 1.0, timing) * theta


# -- the golden model's step ---------------------------------------------------------------------
def synapse_table(timing: Timing) -> np.ndarray:
    """C[m, t]: what a spike at t adds through magnitude code m (one event slot per time step)."""
    return timing.contribution_table()


def fire(golden, k: int, times: np.ndarray) -> np.ndarray:
    """Output spike times of hidden layer k (after pooling)."""
    layer = golden.model.layers[k]
    v = golden.synaptic_sums(k, times)
    # thresholds are exact in golden.dtype (they fit the accumulator width, SnnModel.acc_bits)
    return fire_and_pool(v.numpy(), layer.thresholds.astype(golden.dtype), layer.conv_shape, layer.pool,
                         golden.model.timing.T)


def output_potentials(golden, k: int, times: np.ndarray) -> np.ndarray:
    """The layer's integer potentials after its window (batch, C_out * H * W)."""
    return golden.synaptic_sums(k, times).numpy().astype(np.int64)


def fire_and_pool(potentials: np.ndarray, thresholds: np.ndarray, shape: tuple[int, int, int], pool: int,
                  T: int) -> np.ndarray:
    """Spike times of a hidden layer's output after max pooling (spec sections 4 and 5).

    With a non-increasing threshold table the spike time does not increase with the
    potential, so the earliest spike of a window is the spike time of its largest
    potential: pooling the potentials first fires pool**2 times fewer neurons. Any other
    table fires every neuron and pools the times.
    """
    th = np.asarray(thresholds)
    if pool == 1 or not np.all(th[1:] <= th[:-1]):
        return max_pool_times(fire_times(potentials, th), shape, pool, T)
    m = pool_windows(potentials.reshape(-1, *shape), pool, "max")
    return fire_times(m.reshape(potentials.shape[0], -1), th)


def pool_windows(x: np.ndarray, pool: int, combine) -> np.ndarray:
    """``combine`` ("max" or "min") over each pool x pool window of x (batch, C, H, W).

    A remainder row or column is dropped. One elementwise combine per window offset of
    strided views, in torch: several times faster than a strided reduction, max_pool2d
    or the same combines in numpy.
    """
    import torch  # here, not at import: the model file (and the simulator's bench) need no torch
    combine = {"max": torch.maximum, "min": torch.minimum}[combine]
    t = torch.from_numpy(np.ascontiguousarray(x))
    h, w = x.shape[2] // pool * pool, x.shape[3] // pool * pool
    m = t[:, :, :h:pool, :w:pool]
    for dy in range(pool):
        for dx in range(pool):
            if dy or dx:
                m = combine(m, t[:, :, dy:h:pool, dx:w:pool])
    return m.numpy()


def max_pool_times(times: np.ndarray, shape: tuple[int, int, int], pool: int, T: int) -> np.ndarray:
    """TTFS max pooling: the earliest spike of each pool x pool window (docs/spec.md, section 5).

    ``times`` (batch, C * H * W) in (c, y, x) order; windows do not overlap and a
    remainder row or column is dropped (nn.MaxPool2d(pool) semantics).
    """
    if pool == 1:
        return times
    m = pool_windows(np.where(times == NO_SPIKE, T, times).reshape(-1, *shape), pool, "min")
    return np.where(m == T, NO_SPIKE, m).reshape(times.shape[0], -1)

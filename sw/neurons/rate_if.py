"""Rate-coded integrate-and-fire neurons with reset by subtraction (docs/spec.md, section 12).

A layer runs T steps. At every step each neuron adds its bias and what its input spikes of
that step bring (a spike through log weight code m adds +-(2**F >> m), the TTFS table at
t = 0: still one shift and one add), fires if V >= TH (its channel's threshold) and then
subtracts TH: at most one spike per neuron per step. V starts at ``initial`` (TH / 2 by
default). The output layer only integrates; its potentials after T steps are the scores.

A feed-forward network runs layer by layer over all T steps: a layer's spikes at step t
depend only on its inputs at steps <= t, so finishing layer k's T steps before layer k+1
starts gives the same spikes as stepping all layers together (no feedback, no delays).

Spikes are uint8 trains (batch, T, n) of 0 and 1. Inputs are encoded by an integer IF
neuron per input value (section 12.1), so the first layer sees binary spikes too.
"""
from __future__ import annotations

import math

import numpy as np

from firstspike.errors import InputError
from firstspike.sw.formats import NO_SPIKE, FormatError, Timing

from .ttfs import pool_windows

NAME = "rate_if"
CODING = "rate"
#: input values are quantised to this many bits before the input neurons integrate them
INPUT_BITS = 8
#: the initial potential as a fraction of the threshold, unless a conversion says otherwise
DEFAULT_INITIAL = 0.5
#: conversion options (sw.convert.convert's ``options``)
OPTIONS = ("initial",)
#: trains are run in chunks of images holding at most this many (image, step, neuron) entries
CHUNK_ENTRIES = 1 << 24


# -- the model file ----------------------------------------------------------------------------
def validate_layer(layer, timing: Timing, where: str, output: bool) -> None:
    """Per-channel int64 ``initial`` potentials; hidden layers: per-channel int64 thresholds >= 1."""
    check_channel_arrays(layer, where, output, NAME)


def check_channel_arrays(layer, where: str, output: bool, name: str) -> None:
    """``initial`` (C_out,) int64 and, for hidden layers, ``thresholds`` (C_out,) int64 >= 1."""
    c = layer.channels
    init = layer.initial
    if init is None or np.shape(init) != (c,) or init.dtype != np.int64:
        raise FormatError(f"{where}: {name} layers need int64 initial potentials of shape ({c},)")
    if output:
        return
    th = layer.thresholds
    if th is None or th.shape != (c,) or th.dtype != np.int64:
        raise FormatError(f"{where}: hidden {name} layers need one int64 threshold per channel, shape ({c},)")
    if np.any(th < 1):
        raise FormatError(f"{where}: thresholds must be >= 1")


def potential_bound(layer, timing: Timing, synaptic: np.ndarray) -> np.ndarray:
    """Per channel: |initial| + T * (|bias| + the largest one-step input).

    A subtraction only happens at V >= TH > 0 and leaves V >= 0, so no potential leaves
    this bound in either direction.
    """
    return np.abs(layer.initial) + timing.T * (np.abs(layer.bias) + synaptic)


# -- conversion ----------------------------------------------------------------------------------
def fold_input_scale(w: np.ndarray, theta_in, in_shape) -> tuple[np.ndarray, float]:
    """An input spike stands for its source channel's threshold: fold it into the weights.

    ``theta_in``: one value or one per input channel (C of ``in_shape``); the unit factor is 1.
    """
    theta = np.asarray(theta_in, dtype=np.float64)
    c, h, wd = in_shape
    if theta.ndim and theta.shape != (c,):
        raise FormatError(f"input thresholds: expected one or {c}, got {theta.shape}")
    if theta.ndim == 0:
        return w * float(theta), 1.0
    if w.ndim == 4:
        return w * theta[None, :, None, None], 1.0
    return w * np.repeat(theta, h * wd)[None, :], 1.0  # linear inputs in (c, y, x) order


def firing_parameters(theta, unit: float, timing: Timing, channels: int, initial: float = DEFAULT_INITIAL) -> dict:
    """TH_c = max(1, round(theta_c / unit)); initial_c = floor(initial * TH_c + 1/2)."""
    theta = np.broadcast_to(np.asarray(theta, dtype=np.float64), (channels,))
    if not (np.all(np.isfinite(theta)) and np.all(theta > 0)):
        raise FormatError("thresholds must be positive and finite")
    if not (np.isfinite(initial) and 0 <= initial <= 1):
        raise FormatError(f"the initial potential is a fraction of the threshold in [0, 1], not {initial!r}")
    th = np.maximum(1, np.floor(theta / unit + 0.5)).astype(np.int64)
    init = np.floor(th * float(initial) + 0.5).astype(np.int64)
    return dict(thresholds=th, initial=init, theta=[float(v) for v in theta])


def output_parameters(timing: Timing, channels: int, **options) -> dict:
    return dict(initial=np.zeros(channels, dtype=np.int64))


def threshold_iteration(pre: np.ndarray, T: int, iterations: int = 100) -> np.ndarray:
    """Per-channel thresholds minimising E[(Q(x) - ReLU(x))^2] for Gaussian x (methods.md, section 2).

    Q is the rate quantiser of an IF neuron with T steps and initial potential theta/2:
    theta/T * clip(floor(x * T/theta + 1/2), 0, T), with steps at u_i = (2i - 1) theta / (2T).
    Setting the derivative to zero gives theta = k1 * theta, iterated from the channel's
    mu + 3 sigma. A channel whose iteration fails (never active, zero spread) gets the
    layer's largest pre-activation.
    """
    pre = np.asarray(pre, dtype=np.float64)
    mu, sigma = pre.mean(axis=0), pre.std(axis=0)
    fallback = max(float(pre.max(initial=0.0)), 1e-6)
    i = np.arange(1, T + 1, dtype=np.float64)[None, :]
    sig = np.maximum(sigma, 1e-12)[:, None]
    theta = np.where(mu + 3 * sigma > 0, mu + 3 * sigma, fallback)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            u = (2 * i - 1) * theta[:, None] / (2 * T)
            e = erf((u - mu[:, None]) / (math.sqrt(2) * sig))
            g = np.exp(-((u - mu[:, None]) ** 2) / (2 * sig ** 2))
            d = 1 - ((2 * i - 1) / T ** 2 * e).sum(axis=1)
            theta = mu * (1 - e.sum(axis=1) / T) / d + sig[:, 0] * math.sqrt(2 / math.pi) * g.sum(axis=1) / T / d
    bad = ~(np.isfinite(theta) & (theta > 0)) | (sigma <= 0)
    return np.where(bad, fallback, theta)


# -- spikes --------------------------------------------------------------------------------------
def quantise_inputs(x: np.ndarray, input_theta: float) -> np.ndarray:
    """q = min(2**P, floor(x / theta_in * 2**P + 1/2)) for x > 0, 0 otherwise (int64, spec 12.1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise FormatError(f"inputs must be (batch, features), not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FormatError("input contains NaN or infinity")
    if not input_theta > 0:
        raise FormatError(f"theta must be positive, not {input_theta!r}")
    full = 1 << INPUT_BITS
    return np.minimum(full, np.floor(np.maximum(x, 0.0) / input_theta * full + 0.5)).astype(np.int64)


def encode(x: np.ndarray, input_theta: float, timing: Timing) -> np.ndarray:
    """Input spike trains (batch, T, n): an integer IF neuron per value (spec section 12.1).

    The neuron starts at 2**(P-1), adds q (quantise_inputs) per step and fires
    (subtracting 2**P) when it reaches 2**P: after t steps it has fired
    floor((t * q + 2**(P-1)) / 2**P) times.
    """
    q = quantise_inputs(x, input_theta)
    steps = np.arange(timing.T + 1, dtype=np.int64)[None, :, None]
    fired = (steps * q[:, None, :] + (1 << INPUT_BITS) // 2) >> INPUT_BITS  # (batch, T + 1, n)
    return np.diff(fired, axis=1).astype(np.uint8)


def check_spikes(spikes, n_in: int, timing: Timing, where: str) -> np.ndarray:
    """``spikes`` as uint8 trains (batch, T, n_in) of 0 and 1, or InputError."""
    s = np.asarray(spikes)
    if s.ndim != 3 or s.shape[1:] != (timing.T, n_in):
        raise InputError(f"{where} expects spike trains of shape (batch, {timing.T}, {n_in}), got {s.shape}")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise InputError("spike trains hold 0 and 1 only")
    return s.astype(np.uint8, copy=False)


def spike_count(spikes: np.ndarray) -> np.ndarray:
    """Spikes per image."""
    return spikes.sum(axis=(1, 2), dtype=np.int64)


def spikes_per_neuron(spikes: np.ndarray) -> np.ndarray:
    """(batch, n): spikes each neuron sent over the T steps."""
    return (spikes != 0).sum(axis=1, dtype=np.int64)


def decode(spikes: np.ndarray, theta, timing: Timing) -> np.ndarray:
    """(batch, n) float values the trains stand for: the rate times the threshold."""
    return spikes.mean(axis=1) * theta


# -- the golden model's step ---------------------------------------------------------------------
def synapse_table(timing: Timing) -> np.ndarray:
    """C[m, 0] = 2**F >> m: a binary spike has one event slot."""
    return timing.contribution_table()[:, :1]


def step_inputs(golden, k: int, trains: np.ndarray, bias: bool = True):
    """Per-step inputs (bias, unless ``bias`` is False, + spikes through weights) of layer k,
    int64 (b, T, N), per chunk of images.

    A spike of +1 uses event slot 0 of the synapse table, one of -1 (diff_if) slot 1."""
    b, T, n_in = trains.shape
    n = golden.model.layers[k].n_neurons
    source = golden.shortcut_spikes(k)  # a residual layer's shortcut source (spec section 14): its trains
    step = max(1, CHUNK_ENTRIES // (T * max(n, n_in, 0 if source is None else source.shape[-1])))
    for start in range(0, b, step):
        part = trains[start:start + step]
        extra = None if source is None else spike_slots(source[start:start + step].reshape(len(part) * T, -1))
        sums = golden.synaptic_sums(k, spike_slots(part.reshape(-1, n_in)), bias, shortcut_slots=extra)
        yield sums.numpy().astype(np.int64).reshape(len(part), T, n)


def spike_slots(flat: np.ndarray) -> np.ndarray:
    """Event slots of binary or signed spikes (rows, n): 0 for +1, 1 for -1 (diff_if), NO_SPIKE for
    0; a diff_if spike of level k (+-(k + 1)) 2k, or 2k + 1 if negative."""
    flat = np.asarray(flat).astype(np.int64)
    return np.where(flat == 0, NO_SPIKE, 2 * (np.abs(flat) - 1) + (flat < 0))


def per_neuron(values: np.ndarray, layer) -> np.ndarray:
    """Per-channel values repeated over the layer's positions, in (c, y, x) order."""
    return np.repeat(values, layer.n_neurons // layer.channels)


def fire(golden, k: int, trains: np.ndarray) -> np.ndarray:
    """Output spike trains of hidden layer k (after pooling)."""
    layer = golden.model.layers[k]
    th, init = per_neuron(layer.thresholds, layer), per_neuron(layer.initial, layer)
    out = []
    for inputs in step_inputs(golden, k, trains):
        v = np.broadcast_to(init, inputs[:, 0].shape).copy()
        spikes = np.empty(inputs.shape, dtype=np.uint8)
        for t in range(inputs.shape[1]):
            v += inputs[:, t]
            fired = v >= th
            v -= np.where(fired, th, 0)
            spikes[:, t] = fired
        out.append(pool_trains(spikes, layer.conv_shape, layer.pool))
    return np.concatenate(out) if len(out) > 1 else out[0]


def output_potentials(golden, k: int, trains: np.ndarray) -> np.ndarray:
    """initial + the sum over T steps of each step's input: the scores (batch, C_out * H * W)."""
    layer = golden.model.layers[k]
    out = [inputs.sum(axis=1) + per_neuron(layer.initial, layer) for inputs in step_inputs(golden, k, trains)]
    return np.concatenate(out) if len(out) > 1 else out[0]


def pool_trains(trains: np.ndarray, shape: tuple[int, int, int], pool: int) -> np.ndarray:
    """Rate max pooling: the pooled neuron spikes when its window's largest spike count grows.

    With counts n_i(t) (spikes up to and including step t) the pooled train has count
    max_i n_i(t) at every step; each n_i grows by at most one per step, so the pooled
    train is binary and its rate is the window's largest rate (nn.MaxPool2d(pool) of the
    rates; windows do not overlap, a remainder row or column is dropped).
    """
    if pool == 1:
        return trains
    b, T, _ = trains.shape
    counts = np.cumsum(trains, axis=1, dtype=np.int32).reshape(b * T, *shape)
    m = pool_windows(counts, pool, "max").reshape(b, T, -1)
    return np.diff(m, axis=1, prepend=0).astype(np.uint8)

"""Differential-coding IF neurons (docs/spec.md, section 13), after Huang et al., ICML 2025.

A neuron sends signed spikes (+1, 0, -1 at each of T steps, each worth its channel's
threshold) that carry the *changes* of its running mean output: by default it keeps
outputting its own running mean, and a spike corrects it. The receiver rebuilds its input
current's running mean from those changes. Running means need divisions by the step
number t; here they are integers in accumulator units, each update a floor division by t
(section 13.2), so the golden model and the hardware agree exactly. The accumulator's F
fractional bits below the layer unit make the truncation tiny: on the digits MLP, 20 more
fractional bits for the means changed no prediction at T = 2 .. 8. The paper's
multi-threshold variant (``levels`` K > 1, section 13.7) sends spikes of K levels, TH / 2^k.

Spikes are int8 trains (batch, T, n) of -1, 0 and 1 (a spike of level k: +-(k + 1)). Max pooling is done by a pool unit
per window, itself a differential IF neuron whose input keeps its running mean on the
window's largest running mean (section 13.4).
"""
from __future__ import annotations

import numpy as np

from firstspike.errors import InputError
from firstspike.sw.formats import FormatError, Timing

from . import rate_if
from .rate_if import INPUT_BITS, fold_input_scale, per_neuron, step_inputs  # noqa: F401 (shared with rate_if)
from .ttfs import pool_windows

NAME = "diff_if"
CODING = "diff"
#: conversion options (sw.convert.convert's ``options``)
OPTIONS = ("initial", "levels")
#: most spike levels of the multi-threshold variant (section 13.7): a level fits an event's 3 bits
MAX_LEVELS = 8


# -- the model file ----------------------------------------------------------------------------
def validate_layer(layer, timing: Timing, where: str, output: bool) -> None:
    """Per-channel ``initial`` and thresholds as rate_if; ``levels`` 1..MAX_LEVELS, each level
    at least one unit (TH >> (K - 1) >= 1)."""
    rate_if.check_channel_arrays(layer, where, output, NAME)
    K = layer.levels
    if not isinstance(K, (int, np.integer)) or not 1 <= K <= MAX_LEVELS:
        raise FormatError(f"{where}: levels must be an integer in 1..{MAX_LEVELS}, not {K!r}")
    if K > 1 and output:
        raise FormatError(f"{where}: only hidden diff_if layers send spikes of several levels (levels {K})")
    if K > 1 and np.any(layer.thresholds >> (K - 1) < 1):
        raise FormatError(f"{where}: with {K} levels every threshold must be at least {1 << (K - 1)} units "
                          "(the smallest level, TH >> (K - 1), would be 0)")


def potential_bound(layer, timing: Timing, synaptic: np.ndarray) -> np.ndarray:
    """Per channel: the largest |mem|, |cum|, |ein| or |eout| of a neuron or pool unit (section 13.5).

    With h = sum_{t<=T} 1/t: |ein| <= |bias| + h S + T and |eout| <= h TH + T (each floor
    division adds at most 1 per step); each step moves a neuron's mem or cum by at most
    S + |ein| + |eout| + TH, a pool unit's by at most |I[t]| + |eout| + TH with
    |I[t]| <= (2t - 1) |eout|.
    """
    T = timing.T
    h = sum(1.0 / t for t in range(1, T + 1))
    th = layer.thresholds if layer.thresholds is not None else np.zeros(layer.channels, dtype=np.int64)
    ein = np.ceil(np.abs(layer.bias) + h * synaptic) + T
    eout = np.ceil(h * th) + T
    step = synaptic + ein + eout + th
    if layer.pool > 1:
        step = np.maximum(step, 2 * T * eout + th)
    return (np.abs(layer.initial) + th + T * step).astype(np.int64)


# -- conversion ----------------------------------------------------------------------------------
def firing_parameters(theta, unit: float, timing: Timing, channels: int, initial: float | None = None,
                      levels: int = 1) -> dict:
    """As rate_if's, plus ``levels`` (section 13.7); the initial potential defaults to half the
    threshold with one level and to 0 with several (the paper's multi-threshold neuron starts
    empty: its 3/4 firing level already rounds)."""
    if not isinstance(levels, (int, np.integer)) or not 1 <= levels <= MAX_LEVELS:
        raise FormatError(f"levels must be an integer in 1..{MAX_LEVELS}, not {levels!r}")
    if initial is None:
        initial = rate_if.DEFAULT_INITIAL if levels == 1 else 0.0
    p = rate_if.firing_parameters(theta, unit, timing, channels, initial=initial)
    if np.any(p["thresholds"] >> (levels - 1) < 1):
        raise FormatError(f"a threshold of {int(p['thresholds'].min())} units is below {1 << (levels - 1)}, too "
                          f"small for {levels} levels (raise frac_bits)")
    return dict(p, levels=int(levels))


def output_parameters(timing: Timing, channels: int, **options) -> dict:
    return rate_if.output_parameters(timing, channels)


# -- spikes --------------------------------------------------------------------------------------
def encode(x: np.ndarray, input_theta: float, timing: Timing) -> np.ndarray:
    """Input spike trains (batch, T, n): a differential IF neuron per value (spec section 13.1).

    Its constant input current is q (rate_if's 8-bit quantisation, section 12.1), its
    threshold 2**P and its initial potential 2**(P-1).
    """
    q = rate_if.quantise_inputs(x, input_theta)
    full = 1 << INPUT_BITS
    zero = np.zeros((q.shape[0], timing.T, q.shape[1]), dtype=np.int64)
    return differential_if(zero, q, np.full(q.shape[1], full, dtype=np.int64),
                           np.full(q.shape[1], full // 2, dtype=np.int64))[0]


def check_spikes(spikes, n_in: int, timing: Timing, where: str) -> np.ndarray:
    """``spikes`` as int8 trains (batch, T, n_in) of -1, 0 and 1, or InputError."""
    s = np.asarray(spikes)
    if s.ndim != 3 or s.shape[1:] != (timing.T, n_in):
        raise InputError(f"{where} expects spike trains of shape (batch, {timing.T}, {n_in}), got {s.shape}")
    if s.size and (s.min() < -1 or s.max() > 1):
        raise InputError("differential spike trains hold -1, 0 and 1 only")
    return s.astype(np.int8, copy=False)


def spike_count(spikes: np.ndarray) -> np.ndarray:
    """Spikes per image, positive and negative."""
    return (spikes != 0).sum(axis=(1, 2), dtype=np.int64)


def spikes_per_neuron(spikes: np.ndarray) -> np.ndarray:
    """(batch, n): spikes each neuron sent over the T steps, positive and negative."""
    return (spikes != 0).sum(axis=1, dtype=np.int64)


def decode(spikes: np.ndarray, theta, timing: Timing) -> np.ndarray:
    """(batch, n) float values the trains stand for: the running mean after T steps,
    sum_t v[t] / t, times the threshold, with v = sign(s) 2^(1 - |s|) (level |s| - 1)."""
    steps = np.arange(1, spikes.shape[1] + 1, dtype=np.float64)[None, :, None]
    s = spikes.astype(np.float64)
    value = np.sign(s) * np.exp2(1.0 - np.abs(s))
    return (np.where(s != 0, value, 0.0) / steps).sum(axis=1) * theta


# -- the golden model's step ---------------------------------------------------------------------
def synapse_table(timing: Timing) -> np.ndarray:
    """Slot 2k: a spike of level k adds 2**F >> (m + k) (C[m, 0] >> k); slot 2k + 1: a negative
    one subtracts it (``rate_if.spike_slots``)."""
    c = timing.contribution_table()[:, :1]
    return np.concatenate([v for k in range(MAX_LEVELS) for v in (c >> k, -(c >> k))], axis=1)


class DiffState:
    """The integers of section 13.2 for a batch of neurons (b, N): mem, ein, eout, cum; with
    ``levels`` K > 1 the multi-threshold firing of section 13.7."""

    def __init__(self, b: int, bias: np.ndarray, th: np.ndarray, initial: np.ndarray, levels: int = 1):
        self.th = th.astype(np.int64)
        self.levels = levels
        self.mem = np.broadcast_to(initial.astype(np.int64), (b, len(th))).copy()
        self.ein = np.broadcast_to(bias.astype(np.int64), (b, len(th))).copy()
        self.eout = np.zeros((b, len(th)), dtype=np.int64)
        self.cum = np.zeros((b, len(th)), dtype=np.int64)

    def fire(self, t: int, current: np.ndarray) -> np.ndarray:
        """Step t (1-based) with input current ``current`` (P[t] + ein for a neuron, I[t] for a
        pool unit): the signed spikes; mem, cum and eout updated."""
        th = self.th
        self.mem += current - self.eout
        self.cum += self.eout
        if self.levels == 1:
            s = np.where(self.mem >= th, 1, np.where((self.mem <= 0) & (self.cum >= th), -1, 0))
            value = s * th
        else:  # the largest level k with 4 mem >= 3 TH_k, TH_k = TH >> k; negative: symmetric, if cum >= TH_k
            up = np.full(self.mem.shape, -1)
            down = np.full(self.mem.shape, -1)
            for k in reversed(range(self.levels)):
                level = th >> k
                up = np.where(4 * self.mem >= 3 * level, k, up)
                down = np.where((4 * self.mem <= -3 * level) & (self.cum >= level), k, down)
            s = np.where(up >= 0, up + 1, np.where(down >= 0, -(down + 1), 0))
            value = np.sign(s) * (th >> np.maximum(np.abs(s) - 1, 0))
        self.mem -= value
        self.cum += value
        self.eout += value // t  # floor division: -TH // t rounds toward minus infinity
        return s.astype(np.int8)


def differential_if(inputs: np.ndarray, bias: np.ndarray, th: np.ndarray, initial: np.ndarray,
                    fire: bool = True, pool: tuple | None = None, levels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Section 13 on synaptic inputs P (b, T, N) int64: (spike trains int8, ein after T steps).

    ``bias``, ``th`` and ``initial`` are per neuron (N,). ``fire=False`` only integrates
    the running mean of the input (the output layer). ``pool`` = (shape (C, H, W), q,
    per-channel thresholds, per-channel initial potentials): the spikes are those of the
    layer's pool units (13.4). ``levels``: the multi-threshold variant (13.7), pool units too.
    """
    b, T, n = inputs.shape
    neurons = DiffState(b, bias, th, initial, levels)
    spikes = np.zeros((b, T, n), dtype=np.int8)
    if pool is not None:
        shape, q, th_c, init_c = pool
        c, h, w = shape
        per_unit = (h // q) * (w // q)
        units = DiffState(b, np.zeros(c * per_unit, dtype=np.int64), np.repeat(th_c, per_unit),
                          np.repeat(init_c, per_unit), levels)
        spikes = np.zeros((b, T, c * per_unit), dtype=np.int8)
        top = np.zeros((b, c * per_unit), dtype=np.int64)  # M[t - 1]
    for t in range(1, T + 1):
        p = inputs[:, t - 1]
        if fire:
            s = neurons.fire(t, p + neurons.ein)
            if pool is None:
                spikes[:, t - 1] = s
            else:  # the pool unit's input keeps its running mean on the window's largest running mean
                m = pool_windows(neurons.eout.reshape(b, *shape), q, "max").reshape(b, -1)
                spikes[:, t - 1] = units.fire(t, t * m - (t - 1) * top)
                top = m
        neurons.ein += p // t
    return spikes, neurons.ein


def fire(golden, k: int, trains: np.ndarray) -> np.ndarray:
    """Output spike trains of hidden layer k."""
    layer = golden.model.layers[k]
    args = (per_neuron(layer.bias, layer), per_neuron(layer.thresholds, layer), per_neuron(layer.initial, layer))
    pool = None if layer.pool == 1 else (layer.conv_shape, layer.pool, layer.thresholds, layer.initial)
    out = [differential_if(p, *args, pool=pool, levels=layer.levels)[0]
           for p in step_inputs(golden, k, trains, bias=False)]
    return np.concatenate(out) if len(out) > 1 else out[0]


def output_potentials(golden, k: int, trains: np.ndarray) -> np.ndarray:
    """The running mean of the input current after T steps (ein): the scores."""
    layer = golden.model.layers[k]
    n = layer.n_neurons
    args = (per_neuron(layer.bias, layer), np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    out = [differential_if(p, *args, fire=False)[1] for p in step_inputs(golden, k, trains, bias=False)]
    return np.concatenate(out) if len(out) > 1 else out[0]

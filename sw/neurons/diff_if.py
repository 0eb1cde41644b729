"""Differential-coding IF neurons (docs/spec.md, section 13), after Huang et al., ICML 2025.

A neuron sends signed spikes (+1, 0, -1 at each of T steps, each worth its channel's
threshold) that carry the *changes* of its running mean output: by default it keeps
outputting its own running mean, and a spike corrects it. The receiver rebuilds its input
current's running mean from those changes. Running means need divisions by the step
number t; here they are integers in accumulator units, each update a floor division by t
(section 13.2), so the golden model and the hardware agree exactly. The accumulator's F
fractional bits below the layer unit make the truncation tiny: on the digits MLP, 20 more
fractional bits for the means changed no prediction at T = 2 .. 8. The paper's
multi-threshold variant is not implemented.

Spikes are int8 trains (batch, T, n) of -1, 0 and 1. Max pooling is done by a pool unit
per window, itself a differential IF neuron whose input keeps its running mean on the
window's largest running mean (section 13.4).
"""
from __future__ import annotations

import numpy as np

from firstspike.errors import InputError
from firstspike.sw.formats import Timing

from . import rate_if
from .rate_if import INPUT_BITS, fold_input_scale, per_neuron, step_inputs  # noqa: F401 (shared with rate_if)
from .ttfs import pool_windows

NAME = "diff_if"
CODING = "diff"
#: conversion options (sw.convert.convert's ``options``)
OPTIONS = ("initial",)


# -- the model file ----------------------------------------------------------------------------
def validate_layer(layer, timing: Timing, where: str, output: bool) -> None:
    """Per-channel ``initial`` and thresholds as rate_if."""
    rate_if.check_channel_arrays(layer, where, output, NAME)


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
firing_parameters = rate_if.firing_parameters
output_parameters = rate_if.output_parameters


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
    sum_t s[t] / t, times the threshold."""
    steps = np.arange(1, spikes.shape[1] + 1, dtype=np.float64)[None, :, None]
    return (spikes / steps).sum(axis=1) * theta


# -- the golden model's step ---------------------------------------------------------------------
def synapse_table(timing: Timing) -> np.ndarray:
    """Slot 0: a +1 spike adds C[m, 0] = 2**F >> m; slot 1: a -1 spike subtracts it."""
    c = timing.contribution_table()[:, :1]
    return np.concatenate([c, -c], axis=1)


class DiffState:
    """The integers of section 13.2 for a batch of neurons (b, N): mem, ein, eout, cum."""

    def __init__(self, b: int, bias: np.ndarray, th: np.ndarray, initial: np.ndarray):
        self.th = th.astype(np.int64)
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
        s = np.where(self.mem >= th, 1, np.where((self.mem <= 0) & (self.cum >= th), -1, 0))
        self.mem -= s * th
        self.cum += s * th
        self.eout += (s * th) // t  # floor division: -TH // t rounds toward minus infinity
        return s.astype(np.int8)


def differential_if(inputs: np.ndarray, bias: np.ndarray, th: np.ndarray, initial: np.ndarray,
                    fire: bool = True, pool: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Section 13 on synaptic inputs P (b, T, N) int64: (spike trains int8, ein after T steps).

    ``bias``, ``th`` and ``initial`` are per neuron (N,). ``fire=False`` only integrates
    the running mean of the input (the output layer). ``pool`` = (shape (C, H, W), q,
    per-channel thresholds, per-channel initial potentials): the spikes are those of the
    layer's pool units (13.4).
    """
    b, T, n = inputs.shape
    neurons = DiffState(b, bias, th, initial)
    spikes = np.zeros((b, T, n), dtype=np.int8)
    if pool is not None:
        shape, q, th_c, init_c = pool
        c, h, w = shape
        per_unit = (h // q) * (w // q)
        units = DiffState(b, np.zeros(c * per_unit, dtype=np.int64), np.repeat(th_c, per_unit),
                          np.repeat(init_c, per_unit))
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
    out = [differential_if(p, *args, pool=pool)[0] for p in step_inputs(golden, k, trains, bias=False)]
    return np.concatenate(out) if len(out) > 1 else out[0]


def output_potentials(golden, k: int, trains: np.ndarray) -> np.ndarray:
    """The running mean of the input current after T steps (ein): the scores."""
    layer = golden.model.layers[k]
    n = layer.n_neurons
    args = (per_neuron(layer.bias, layer), np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    out = [differential_if(p, *args, fire=False)[1] for p in step_inputs(golden, k, trains, bias=False)]
    return np.concatenate(out) if len(out) > 1 else out[0]

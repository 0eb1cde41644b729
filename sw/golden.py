"""The golden model: the integer SNN of docs/spec.md, vectorised over a batch.

This is the single definition of correct behaviour. The RTL must reproduce every
layer's spike times and the output potentials bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .formats import NO_SPIKE, decode_weights, encode_spike_times, fire_times, split_codes
from .model import SnnLayer, SnnModel


@dataclass
class GoldenResult:
    """Spike times per layer and output potentials for a batch.

    ``spikes[0]`` are the input spike times; ``spikes[k + 1]`` the output spike times of
    hidden layer k (NO_SPIKE = -1 where a neuron stays silent). ``potentials`` are the
    output layer's integer potentials; ``predictions`` their argmax (lowest index on ties).
    """

    spikes: list[np.ndarray]
    potentials: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.potentials, axis=1)

    def spike_counts(self) -> np.ndarray:
        """(batch, layers-1+1) spikes per layer, input layer first."""
        return np.stack([(s != NO_SPIKE).sum(axis=1) for s in self.spikes], axis=1)


class GoldenModel:
    """Runs a converted model on integer spike times.

    Per layer it builds the signed contribution matrix of every (time, input) pair once,
    so a batch costs one matrix product per layer; a conv layer is one float convolution of
    the spikes' one-hot time code (no loop over pixels). Products run
    in floating point, which is exact here: every partial sum is an integer within the
    accumulator bound (docs/spec.md, section 7), so float32 is exact when that bound is
    below 2**24 and float64 always is (the bound is below 2**48, SnnModel.validate).
    """

    #: conv layers are evaluated in chunks of images whose one-hot input stays below this many entries
    ONEHOT_ENTRIES = 1 << 24

    def __init__(self, model: SnnModel):
        self.model = model
        self.dtype = np.float32 if model.acc_bits() <= 25 else np.float64  # 25 bits: |sums| < 2**24
        table = model.timing.contribution_table()  # (16, T)
        self._matrices = [self._contribution_matrix(layer, table).astype(self.dtype) for layer in model.layers]
        self._conv_kernels = {k: self._conv_kernel(layer, self._matrices[k], model.timing.T)
                              for k, layer in enumerate(model.layers) if layer.kind == "conv"}

    @staticmethod
    def _contribution_matrix(layer: SnnLayer, table: np.ndarray) -> np.ndarray:
        """(T * fan_in, C_out) float64: row t * fan_in + i holds what a spike at t on input i adds.

        fan_in is n_in for a linear layer and C_in * K * K, in (c, ky, kx) order, for a conv layer.
        """
        sign, mag = split_codes(layer.weights.reshape(layer.channels, -1))  # (C_out, fan_in)
        signed = np.where(sign == 1, -1, 1)[None] * table.T[:, mag]  # (T, C_out, fan_in)
        return signed.transpose(0, 2, 1).reshape(-1, layer.channels).astype(np.float64)

    @staticmethod
    def _conv_kernel(layer: SnnLayer, matrix: np.ndarray, T: int) -> torch.Tensor:
        """The contribution matrix as a (C_out, T * C_in, K, K) convolution kernel."""
        c_in, K = layer.in_shape[0], layer.kernel
        kernel = matrix.reshape(T, c_in, K, K, layer.channels).transpose(4, 0, 1, 2, 3)
        return torch.from_numpy(np.ascontiguousarray(kernel).reshape(layer.channels, T * c_in, K, K))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Input spike times of float inputs (batch, n_in)."""
        return encode_spike_times(x, self.model.input_theta, self.model.timing)

    def layer_potentials(self, k: int, times: np.ndarray) -> np.ndarray:
        """Integer potentials of layer k after all input spikes (batch, n_out), int64."""
        layer = self.model.layers[k]
        times = np.asarray(times)
        T, n_in = self.model.timing.T, layer.n_in
        if times.ndim != 2 or times.shape[1] != n_in:
            raise ValueError(f"layer {k} expects spike times of shape (batch, {n_in}), got {times.shape}")
        if np.any((times != NO_SPIKE) & ((times < 0) | (times >= T))):
            raise ValueError(f"spike times must be in 0..{T - 1} or {NO_SPIKE}")
        if layer.kind == "conv":
            return self._conv_potentials(k, times)
        onehot = np.zeros((times.shape[0], T * n_in), dtype=self.dtype)
        b, i = np.nonzero(times != NO_SPIKE)
        onehot[b, times[b, i] * n_in + i] = 1.0
        acc = onehot @ self._matrices[k]
        return layer.bias[None, :] + acc.astype(np.int64)

    def _conv_potentials(self, k: int, times: np.ndarray) -> np.ndarray:
        """Conv layer: (batch, C_out * H_out * W_out) potentials in (c, y, x) order.

        The one-hot input has T * C_in channels (channel t * C_in + c is 1 where input
        channel c spikes at t); one float convolution with the (C_out, T * C_in, K, K)
        contribution kernel gives the exact integer sums (see the class docstring).
        """
        layer = self.model.layers[k]
        T = self.model.timing.T
        c_in, h, w = layer.in_shape
        chunk = max(1, self.ONEHOT_ENTRIES // (T * c_in * h * w))
        kernel = self._conv_kernels[k]
        out = []
        for start in range(0, times.shape[0], chunk):
            tb = torch.from_numpy(times[start:start + chunk].reshape(-1, 1, c_in, h, w))
            onehot = torch.zeros((tb.shape[0], T + 1, c_in, h, w), dtype=kernel.dtype)
            onehot.scatter_(1, torch.where(tb == NO_SPIKE, T, tb), 1.0)  # silent inputs go to plane T
            onehot = onehot[:, :T].reshape(tb.shape[0], T * c_in, h, w)
            acc = torch.nn.functional.conv2d(onehot, kernel, stride=layer.stride, padding=layer.padding)
            out.append(acc.reshape(tb.shape[0], -1).numpy().astype(np.int64))
        potentials = np.concatenate(out).reshape(times.shape[0], layer.channels, -1)
        potentials += layer.bias[None, :, None]
        return potentials.reshape(times.shape[0], -1)

    def run_times(self, input_times: np.ndarray) -> GoldenResult:
        spikes = [np.asarray(input_times, dtype=np.int64)]
        for k, layer in enumerate(self.model.layers):
            v = self.layer_potentials(k, spikes[-1])
            if layer.is_output:
                return GoldenResult(spikes=spikes, potentials=v)
            spikes.append(fire_and_pool(v, layer.thresholds, layer.conv_shape, layer.pool, self.model.timing.T))
        raise AssertionError("unreachable: the last layer is the output layer")

    def run(self, x: np.ndarray) -> GoldenResult:
        """Encode float inputs and run the network."""
        return self.run_times(self.encode(x))


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
    c, h, w = shape
    ho, wo = h // pool, w // pool
    v = potentials.reshape(-1, c, h, w)
    m = v[:, :, :ho * pool:pool, :wo * pool:pool]
    for dy in range(pool):
        for dx in range(pool):
            if dy or dx:
                m = np.maximum(m, v[:, :, dy:ho * pool:pool, dx:wo * pool:pool])
    return fire_times(m.reshape(potentials.shape[0], -1), th)


def max_pool_times(times: np.ndarray, shape: tuple[int, int, int], pool: int, T: int) -> np.ndarray:
    """TTFS max pooling: the earliest spike of each pool x pool window (docs/spec.md, section 5).

    ``times`` (batch, C * H * W) in (c, y, x) order; windows do not overlap and a
    remainder row or column is dropped (nn.MaxPool2d(pool) semantics).
    """
    if pool == 1:
        return times
    c, h, w = shape
    ho, wo = h // pool, w // pool
    t = np.where(times == NO_SPIKE, T, times).reshape(-1, c, h, w)
    m = t[:, :, :ho * pool:pool, :wo * pool:pool]
    for dy in range(pool):  # one elementwise minimum per window offset: faster than a strided reduce
        for dx in range(pool):
            if dy or dx:
                m = np.minimum(m, t[:, :, dy:ho * pool:pool, dx:wo * pool:pool])
    return np.where(m == T, NO_SPIKE, m).reshape(times.shape[0], -1)


def reference_potentials(model: SnnModel, k: int, times: np.ndarray) -> np.ndarray:
    """Float pre-activations of layer k in accumulator units, from exact decoded values.

    No truncation, exact 2**(-t/B): the golden model must stay within the spec's
    quantisation bound of this (docs/spec.md, section 3).
    """
    layer = model.layers[k]
    t = model.timing
    w = decode_weights(layer.weights, 0)  # 2**(-m), signed
    x = np.where(times == NO_SPIKE, 0.0, np.exp2(-np.where(times == NO_SPIKE, 0, times) / t.B))
    if layer.kind == "conv":
        v = torch.nn.functional.conv2d(torch.from_numpy(x.reshape(-1, *layer.in_shape)), torch.from_numpy(w),
                                       stride=layer.stride, padding=layer.padding).numpy()
        return (layer.bias[None, :, None, None] + v * 2.0**t.frac_bits).reshape(x.shape[0], -1)
    return layer.bias[None, :] + (x @ w.T) * 2.0**t.frac_bits

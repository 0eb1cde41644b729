"""The golden model: the integer SNN of docs/spec.md, vectorised over a batch.

This is the single definition of correct behaviour. The RTL must reproduce every
layer's spike times and the output potentials bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    so a batch costs one matrix product per layer; a conv layer first gathers each output
    position's receptive field (im2col, strided views, no loop over pixels). Products run
    in floating point, which is exact here: every partial sum is an integer within the
    accumulator bound (docs/spec.md, section 7), so float32 is exact when that bound is
    below 2**24 and float64 always is (the bound is below 2**48, SnnModel.validate).
    """

    #: conv layers are evaluated in chunks of images whose im2col matrix stays below this many entries
    IM2COL_ENTRIES = 1 << 24

    def __init__(self, model: SnnModel):
        self.model = model
        self.dtype = np.float32 if model.acc_bits() <= 25 else np.float64  # 25 bits: |sums| < 2**24
        table = model.timing.contribution_table()  # (16, T)
        self._matrices = [self._contribution_matrix(layer, table).astype(self.dtype) for layer in model.layers]

    @staticmethod
    def _contribution_matrix(layer: SnnLayer, table: np.ndarray) -> np.ndarray:
        """(T * fan_in, C_out) float64: row t * fan_in + i holds what a spike at t on input i adds.

        fan_in is n_in for a linear layer and C_in * K * K, in (c, ky, kx) order, for a conv layer.
        """
        sign, mag = split_codes(layer.weights.reshape(layer.channels, -1))  # (C_out, fan_in)
        signed = np.where(sign == 1, -1, 1)[None] * table.T[:, mag]  # (T, C_out, fan_in)
        return signed.transpose(0, 2, 1).reshape(-1, layer.channels).astype(np.float64)

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
        """Conv layer: (batch, C_out * H_out * W_out) potentials in (c, y, x) order."""
        layer = self.model.layers[k]
        T = self.model.timing.T
        c_in, h, w = layer.in_shape
        c_out, ho, wo = layer.conv_shape
        K, s, p = layer.kernel, layer.stride, layer.padding
        fan_in = c_in * K * K
        chunk = max(1, self.IM2COL_ENTRIES // (ho * wo * T * fan_in))
        out = np.empty((times.shape[0], c_out, ho, wo), dtype=np.int64)
        for start in range(0, times.shape[0], chunk):
            tb = times[start:start + chunk].reshape(-1, c_in, h, w)
            onehot = np.zeros((tb.shape[0], T, c_in, h + 2 * p, w + 2 * p), dtype=self.dtype)
            b, c, y, x = np.nonzero(tb != NO_SPIKE)
            onehot[b, tb[b, c, y, x], c, y + p, x + p] = 1.0
            # (batch, T, C_in, H_out, W_out, K, K): the receptive field of every output position
            win = np.lib.stride_tricks.sliding_window_view(onehot, (K, K), axis=(3, 4))[:, :, :, ::s, ::s]
            win = win[:, :, :, :ho, :wo]
            cols = win.transpose(0, 3, 4, 1, 2, 5, 6).reshape(tb.shape[0] * ho * wo, T * fan_in)
            acc = (cols @ self._matrices[k]).astype(np.int64)  # (batch * positions, C_out)
            out[start:start + chunk] = acc.reshape(tb.shape[0], ho, wo, c_out).transpose(0, 3, 1, 2)
        out += layer.bias[None, :, None, None]
        return out.reshape(times.shape[0], -1)

    def run_times(self, input_times: np.ndarray) -> GoldenResult:
        spikes = [np.asarray(input_times, dtype=np.int64)]
        for k, layer in enumerate(self.model.layers):
            v = self.layer_potentials(k, spikes[-1])
            if layer.is_output:
                return GoldenResult(spikes=spikes, potentials=v)
            spikes.append(max_pool_times(fire_times(v, layer.thresholds), layer.conv_shape, layer.pool,
                                         self.model.timing.T))
        raise AssertionError("unreachable: the last layer is the output layer")

    def run(self, x: np.ndarray) -> GoldenResult:
        """Encode float inputs and run the network."""
        return self.run_times(self.encode(x))


def max_pool_times(times: np.ndarray, shape: tuple[int, int, int], pool: int, T: int) -> np.ndarray:
    """TTFS max pooling: the earliest spike of each pool x pool window (docs/spec.md, section 5).

    ``times`` (batch, C * H * W) in (c, y, x) order; windows do not overlap and a
    remainder row or column is dropped (nn.MaxPool2d(pool) semantics).
    """
    if pool == 1:
        return times
    c, h, w = shape
    ho, wo = h // pool, w // pool
    t = np.where(times == NO_SPIKE, T, times).reshape(-1, c, h, w)[:, :, :ho * pool, :wo * pool]
    m = t.reshape(-1, c, ho, pool, wo, pool).min(axis=(3, 5))
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
        import torch
        v = torch.nn.functional.conv2d(torch.from_numpy(x.reshape(-1, *layer.in_shape)), torch.from_numpy(w),
                                       stride=layer.stride, padding=layer.padding).numpy()
        return (layer.bias[None, :, None, None] + v * 2.0**t.frac_bits).reshape(x.shape[0], -1)
    return layer.bias[None, :] + (x @ w.T) * 2.0**t.frac_bits

"""The golden model: the integer SNN of docs/spec.md, vectorised over a batch.

This is the single definition of correct behaviour. The RTL must reproduce every
layer's spike times and the output potentials bit for bit.
"""
from __future__ import annotations

from firstspike.errors import InputError

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

    A spike at time t on input i adds a value that depends only on (t, the weight's
    code), so each layer keeps a table: row ``(t + 1) * fan_in + f`` holds, for every
    output channel, what a spike at t on fan-in position f adds (row block 0, "no spike",
    is zero). An output's potential is then the sum of ``fan_in`` table rows picked by
    its inputs' spike times: one gathered sum per output position
    (``torch.nn.functional.embedding_bag``), the same additions the hardware does and
    no T-times wider product. A conv layer's fan-in of every output position comes from
    a precomputed index map (padding reads a "no spike" input), so there is no loop over
    pixels. Sums run in floating point, which is exact here: every partial sum is an
    integer within the accumulator bound (docs/spec.md, section 7), so float32 is exact
    when that bound is below 2**24 and float64 always is (the bound is below 2**48,
    SnnModel.validate).
    """

    #: layers are evaluated in chunks of images whose gathered indices stay below this many entries
    CHUNK_ENTRIES = 1 << 24

    def __init__(self, model: SnnModel):
        self.model = model
        self.dtype = np.float32 if model.acc_bits() <= 25 else np.float64  # 25 bits: |sums| < 2**24
        table = model.timing.contribution_table()  # (16, T)
        self._tables = [torch.from_numpy(self._contribution_table(layer, table).astype(self.dtype))
                        for layer in model.layers]
        self._fan_maps = [self._fan_map(layer) for layer in model.layers]
        self._biases = [torch.from_numpy(np.repeat(layer.bias, len(source) // layer.weights[0].size)
                                         .astype(self.dtype)) for layer, (source, _) in zip(model.layers,
                                                                                           self._fan_maps)]

    @staticmethod
    def _contribution_table(layer: SnnLayer, table: np.ndarray) -> np.ndarray:
        """((T + 1) * fan_in, C_out): row (t + 1) * fan_in + f is what a spike at t on fan-in f adds.

        fan_in is n_in for a linear layer and C_in * K * K, in (c, ky, kx) order, for a
        conv layer. Rows 0 .. fan_in - 1 (no spike) are zero.
        """
        sign, mag = split_codes(layer.weights.reshape(layer.channels, -1))  # (C_out, fan_in)
        signed = np.where(sign == 1, -1, 1)[None] * table.T[:, mag]  # (T, C_out, fan_in)
        rows = signed.transpose(0, 2, 1).reshape(-1, layer.channels).astype(np.float64)
        return np.concatenate([np.zeros((layer.weights[0].size, layer.channels)), rows])

    @staticmethod
    def _fan_map(layer: SnnLayer) -> tuple[np.ndarray, np.ndarray]:
        """(source, offset), each (positions * fan_in,): the input each fan-in slot reads
        (n_in for padding: a column that never spikes) and f, its row offset in the table."""
        if layer.kind != "conv":
            return np.arange(layer.n_in), np.arange(layer.n_in, dtype=np.int32)
        c_in, h, w = layer.in_shape
        _, ho, wo = layer.conv_shape
        K, s, p = layer.kernel, layer.stride, layer.padding
        c, ky, kx = np.meshgrid(np.arange(c_in), np.arange(K), np.arange(K), indexing="ij")
        oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
        y = oy.reshape(-1, 1) * s - p + ky.reshape(1, -1)  # (positions, fan_in)
        x = ox.reshape(-1, 1) * s - p + kx.reshape(1, -1)
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        source = np.where(inside, (c.reshape(1, -1) * h + y) * w + x, c_in * h * w)
        offset = np.broadcast_to(np.arange(c_in * K * K), source.shape)
        return source.reshape(-1), np.ascontiguousarray(offset, dtype=np.int32).reshape(-1)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Input spike times of float inputs (batch, n_in)."""
        return encode_spike_times(x, self.model.input_theta, self.model.timing)

    def layer_potentials(self, k: int, times: np.ndarray) -> np.ndarray:
        """Integer potentials of layer k after all input spikes (batch, C_out * H_out * W_out), int64.

        Conv layers' potentials are in (c, y, x) order.
        """
        times = self._checked_times(k, times)
        return self._potentials(k, times).numpy().astype(np.int64)

    def _checked_times(self, k: int, times: np.ndarray) -> np.ndarray:
        """``times`` as int64, or a ValueError if they are not layer k's input spike times."""
        times = np.asarray(times, dtype=np.int64)
        T, n_in = self.model.timing.T, self.model.layers[k].n_in
        if times.ndim != 2 or times.shape[1] != n_in:
            raise InputError(f"layer {k} expects spike times of shape (batch, {n_in}), got {times.shape}")
        if times.size and not (NO_SPIKE <= times.min() and times.max() < T):  # NO_SPIKE is -1
            raise InputError(f"spike times must be in 0..{T - 1} or {NO_SPIKE}")
        return times

    def _potentials(self, k: int, times: np.ndarray) -> torch.Tensor:
        """Layer k's potentials (batch, C_out * H_out * W_out) as exact integers in self.dtype."""
        layer = self.model.layers[k]
        table = self._tables[k]
        source, offset = self._fan_maps[k]
        fan_in = layer.weights[0].size
        batch = times.shape[0]
        bias = self._biases[k]
        if layer.kind != "conv":  # the fan-in map is the identity: row (t + 1) * n_in + f, no gather
            rows = np.multiply(times, fan_in, dtype=np.int32, casting="unsafe")
            rows += offset + fan_in
            return torch.nn.functional.embedding_bag(torch.from_numpy(rows), table, mode="sum").add_(bias)
        # row block of each input: 0 for no spike, t + 1 otherwise; a last column of zeros for padding
        blocks = np.zeros((batch, times.shape[1] + 1), dtype=np.int32)
        np.multiply(times + 1, fan_in, out=blocks[:, :-1], casting="unsafe")
        positions = len(source) // fan_in
        chunk = max(1, self.CHUNK_ENTRIES // len(source))
        out = []
        for start in range(0, batch, chunk):
            rows = np.take(blocks[start:start + chunk], source, axis=1)  # (b, positions * fan_in); numpy's
            rows += offset  # take is several times faster than torch's index_select here
            sums = torch.nn.functional.embedding_bag(torch.from_numpy(rows).view(-1, fan_in), table, mode="sum")
            out.append(sums.view(-1, positions, layer.channels).transpose(1, 2).reshape(-1, layer.channels * positions))
        return (torch.cat(out) if len(out) > 1 else out[0]).add_(bias)

    def run_times(self, input_times: np.ndarray) -> GoldenResult:
        times = self._checked_times(0, input_times)
        spikes = [times]
        for k, layer in enumerate(self.model.layers):
            v = self._potentials(k, times)
            if layer.is_output:
                return GoldenResult(spikes=spikes, potentials=v.numpy().astype(np.int64))
            # thresholds are exact in self.dtype (they fit the accumulator width, SnnModel.acc_bits)
            times = fire_and_pool(v.numpy(), layer.thresholds.astype(self.dtype), layer.conv_shape, layer.pool,
                                  self.model.timing.T)
            spikes.append(times)
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
    m = _pool_windows(potentials.reshape(-1, *shape), pool, torch.maximum)
    return fire_times(m.reshape(potentials.shape[0], -1), th)


def _pool_windows(x: np.ndarray, pool: int, combine) -> np.ndarray:
    """``combine`` (torch.maximum or torch.minimum) over each pool x pool window of x (batch, C, H, W).

    A remainder row or column is dropped. One elementwise combine per window offset of
    strided views, in torch: several times faster than a strided reduction, max_pool2d
    or the same combines in numpy.
    """
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
    m = _pool_windows(np.where(times == NO_SPIKE, T, times).reshape(-1, *shape), pool, torch.minimum)
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

"""The golden model: the integer SNN of docs/spec.md, vectorised over a batch.

This is the single definition of correct behaviour. The RTL must reproduce every
layer's spike times and the output potentials bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from firstspike.errors import InputError

from .formats import NO_SPIKE, ZERO_MAG, decode_weights, split_codes
from .model import SnnLayer, SnnModel
from .neurons import DEFAULT_NEURON, neuron_model
from .neurons.ttfs import fire_and_pool, max_pool_times  # noqa: F401  (public: TTFS firing and pooling)


@dataclass
class GoldenResult:
    """Spikes per layer and output potentials for a batch.

    ``spikes[0]`` are the input spikes; ``spikes[k + 1]`` the output spikes of hidden
    layer k, in the network's coding: ttfs times (batch, n) with NO_SPIKE = -1 where a
    neuron stays silent; rate trains (batch, T, n) of 0 and 1. ``potentials`` are the
    output layer's integer potentials; ``predictions`` their argmax (lowest index on ties).
    """

    spikes: list[np.ndarray]
    potentials: np.ndarray
    neuron: str = DEFAULT_NEURON  #: the neuron model of the input layer (it fixes the coding)

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.potentials, axis=1)

    @property
    def coding(self) -> str:
        return neuron_model(self.neuron).CODING

    def spike_counts(self) -> np.ndarray:
        """(batch, layers-1+1) spikes per layer, input layer first.

        An unfolded model's input count is its gathered events (one per pixel spike and
        patch that holds it), the events its first layer reads, not the pixels' spikes."""
        count = neuron_model(self.neuron).spike_count
        return np.stack([count(s) for s in self.spikes], axis=1)


class GoldenModel:
    """Runs a converted model on integer spikes, one layer after another.

    Each layer's neuron model (sw/neurons) says how it fires; the synaptic arithmetic is
    shared. A spike in event slot t (its time step for ttfs, 0 for a rate spike) on input
    i adds a value that depends only on (t, the weight's code), so each layer keeps a
    table: row ``(t + 1) * fan_in + f`` holds, for every output channel, what a spike in
    slot t on fan-in position f adds (row block 0, "no spike", is zero). An output's
    input is then the sum of ``fan_in`` table rows picked by its inputs' slots: one
    gathered sum per output position (``torch.nn.functional.embedding_bag``), the same
    additions the hardware does and no T-times wider product. A conv layer's fan-in of
    every output position comes from a precomputed index map (padding reads a "no spike"
    input), so there is no loop over pixels. Sums run in floating point, which is exact
    here: every partial sum is an integer within the accumulator bound (docs/spec.md,
    section 7), so float32 is exact when that bound is below 2**24 and float64 always is
    (the bound is below 2**48, SnnModel.validate).
    """

    #: layers are evaluated in chunks of images whose gathered indices stay below this many entries
    CHUNK_ENTRIES = 1 << 24

    def __init__(self, model: SnnModel):
        self.model = model
        self.dtype = np.float32 if model.acc_bits() <= 25 else np.float64  # 25 bits: |sums| < 2**24
        self.neurons = [neuron_model(layer.neuron) for layer in model.layers]
        self._tables = [torch.from_numpy(self._contribution_table(layer, n.synapse_table(model.timing))
                                         .astype(self.dtype)) for layer, n in zip(model.layers, self.neurons)]
        self._fan_maps = [self.fan_map(layer) for layer in model.layers]
        self._biases = [torch.from_numpy(np.repeat(layer.bias, len(source) // layer.weights[0].size)
                                         .astype(self.dtype)) for layer, (source, _) in zip(model.layers,
                                                                                           self._fan_maps)]
        # shortcuts (spec section 14): their own table and fan-in map over their source's spikes
        self._shortcuts = {}
        for k, n in enumerate(self.neurons):
            synapses = model.shortcut_synapses(k)
            if synapses is not None:
                table = self._contribution_table(synapses, n.synapse_table(model.timing)).astype(self.dtype)
                self._shortcuts[k] = (synapses, torch.from_numpy(table), self.fan_map(synapses))
        self._sources = None  # the spikes of the run in progress (run_spikes), for shortcuts

    @staticmethod
    def _contribution_table(layer: SnnLayer, table: np.ndarray) -> np.ndarray:
        """((slots + 1) * fan_in, C_out): row (t + 1) * fan_in + f is what a spike in slot t on fan-in f adds.

        ``table`` (16, slots) holds the magnitudes per weight code. fan_in is n_in for a
        linear layer and C_in * K * K, in (c, ky, kx) order, for a conv layer. Rows
        0 .. fan_in - 1 (no spike) are zero.
        """
        sign, mag = split_codes(layer.weights.reshape(layer.channels, -1))  # (C_out, fan_in)
        signed = np.where(sign == 1, -1, 1)[None] * table.T[:, mag]  # (slots, C_out, fan_in)
        rows = signed.transpose(0, 2, 1).reshape(-1, layer.channels).astype(np.float64)
        return np.concatenate([np.zeros((layer.weights[0].size, layer.channels)), rows])

    @staticmethod
    def fan_map(layer: SnnLayer) -> tuple[np.ndarray, np.ndarray]:
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
        """Layer 0's input spikes of float inputs (batch, n_inputs), in the network's coding
        (SnnModel.code_inputs: with residual input spikes, K per value; gathered for an
        unfolded first layer: SnnModel.gather_inputs)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.model.n_inputs:
            raise InputError(f"inputs must be (batch, {self.model.n_inputs}), not {x.shape}")
        return self.model.gather_inputs(self.model.code_inputs(x))

    def layer_potentials(self, k: int, spikes: np.ndarray, shortcut_spikes: np.ndarray | None = None) -> np.ndarray:
        """Integer potentials of layer k without firing (batch, C_out * H_out * W_out), int64.

        ttfs: after all input spikes; rate: initial + the inputs of all T steps. Conv
        layers' potentials are in (c, y, x) order. A layer with a shortcut also needs its
        source's spikes, ``shortcut_spikes``.
        """
        spikes = self._checked_spikes(k, spikes)
        if self.model.layers[k].shortcut is None:
            return self.neurons[k].output_potentials(self, k, spikes)
        if shortcut_spikes is None:
            raise InputError(f"layer {k} has a shortcut from spike source {self.model.layers[k].shortcut.source}: "
                             "pass its spikes (shortcut_spikes)")
        sources = [None] * (k + 1)
        sources[self.model.layers[k].shortcut.source] = self._checked_source(k, shortcut_spikes)
        self._sources = sources
        try:
            return self.neurons[k].output_potentials(self, k, spikes)
        finally:
            self._sources = None

    def _checked_source(self, k: int, spikes: np.ndarray) -> np.ndarray:
        synapses = self._shortcuts[k][0]
        return self.neurons[k].check_spikes(spikes, synapses.n_in, self.model.timing, f"layer {k}'s shortcut")

    def _checked_spikes(self, k: int, spikes: np.ndarray) -> np.ndarray:
        """``spikes`` as layer k's input spikes, or InputError."""
        return self.neurons[k].check_spikes(spikes, self.model.layers[k].n_in, self.model.timing, f"layer {k}")

    def synaptic_sums(self, k: int, slots: np.ndarray, bias: bool = True,
                      shortcut_slots: np.ndarray | None = None) -> torch.Tensor:
        """bias (unless ``bias`` is False) + what the inputs' spikes add, (rows, C_out * H_out * W_out),
        exact integers in self.dtype.

        ``slots`` (rows, n_in) int: each input's event slot (-1: no spike). A layer with a
        shortcut adds its source's spikes: ``shortcut_slots`` (rows, n_src), the same rows'
        (rate codings pass one row per image and step), by default the source's ttfs times.
        """
        sums = self._spike_sums(self.model.layers[k], self._tables[k], self._fan_maps[k], slots)
        if k in self._shortcuts:  # a residual connection adds its source's spikes (spec section 14)
            if shortcut_slots is None:
                shortcut_slots = self.shortcut_spikes(k)
            sums.add_(self._spike_sums(*self._shortcuts[k], shortcut_slots))
        return sums.add_(self._biases[k]) if bias else sums

    def shortcut_spikes(self, k: int) -> np.ndarray | None:
        """The spikes of layer k's shortcut source in the run in progress; None without a shortcut."""
        if k not in self._shortcuts:
            return None
        if self._sources is None:
            raise InputError(f"layer {k} has a shortcut: run the network (run_spikes) or use layer_potentials "
                             "with shortcut_spikes")
        return self._sources[self.model.layers[k].shortcut.source]

    def _spike_sums(self, layer: SnnLayer, table: torch.Tensor, fan_map: tuple, slots: np.ndarray) -> torch.Tensor:
        """What the inputs' spikes add through ``layer``'s synapses, without the bias."""
        source, offset = fan_map
        fan_in = layer.weights[0].size
        batch = slots.shape[0]
        if layer.kind != "conv":  # the fan-in map is the identity: row (t + 1) * n_in + f, no gather
            rows = np.multiply(slots, fan_in, dtype=np.int32, casting="unsafe")
            rows += offset + fan_in
            return torch.nn.functional.embedding_bag(torch.from_numpy(rows), table, mode="sum")
        # row block of each input: 0 for no spike, t + 1 otherwise; a last column of zeros for padding
        blocks = np.zeros((batch, slots.shape[1] + 1), dtype=np.int32)
        np.multiply(slots + 1, fan_in, out=blocks[:, :-1], casting="unsafe")
        positions = len(source) // fan_in
        chunk = max(1, self.CHUNK_ENTRIES // len(source))
        out = []
        for start in range(0, batch, chunk):
            rows = np.take(blocks[start:start + chunk], source, axis=1)  # (b, positions * fan_in); numpy's
            rows += offset  # take is several times faster than torch's index_select here
            sums = torch.nn.functional.embedding_bag(torch.from_numpy(rows).view(-1, fan_in), table, mode="sum")
            out.append(sums.view(-1, positions, layer.channels).transpose(1, 2).reshape(-1, layer.channels * positions))
        return torch.cat(out) if len(out) > 1 else out[0]

    def run_spikes(self, input_spikes: np.ndarray) -> GoldenResult:
        """Run the network on input spikes in its coding (ttfs times or rate trains)."""
        x = self._checked_spikes(0, input_spikes)
        spikes = [x]
        self._sources = spikes  # shortcuts read earlier layers' spikes
        try:
            for k, (layer, neuron) in enumerate(zip(self.model.layers, self.neurons)):
                if layer.is_output:
                    return GoldenResult(spikes=spikes, potentials=neuron.output_potentials(self, k, x),
                                        neuron=self.model.layers[0].neuron)
                x = neuron.fire(self, k, x)
                spikes.append(x)
        finally:
            self._sources = None
        raise AssertionError("unreachable: the last layer is the output layer")

    #: ttfs input spikes are times; the name the RTL checks and tests use
    run_times = run_spikes

    def synaptic_ops(self, result: GoldenResult) -> np.ndarray:
        """(batch,) synaptic operations per image: every spike into a layer times its fan-out,
        the outputs it reaches through a nonzero weight (padding taps excluded): what the
        processor accumulates (``hw.perf`` ``acc_updates``) and the literature's SOP count."""
        total = np.zeros(len(result.potentials), dtype=np.int64)
        for k, layer in enumerate(self.model.layers):
            sets = [(layer, self._fan_maps[k], k)]
            if k in self._shortcuts:
                synapses, _, fan_map = self._shortcuts[k]
                sets.append((synapses, fan_map, layer.shortcut.source))
            for synapses, (source, offset), r in sets:
                _, mag = split_codes(synapses.weights.reshape(synapses.channels, -1))
                nonzero = (mag != ZERO_MAG).sum(axis=0)  # per fan-in slot, over output channels
                fanout = np.bincount(source, weights=nonzero[offset], minlength=synapses.n_in + 1)[:synapses.n_in]
                total += self.neurons[k].spikes_per_neuron(result.spikes[r]) @ fanout.astype(np.int64)
        return total

    def run(self, x: np.ndarray) -> GoldenResult:
        """Encode float inputs and run the network."""
        return self.run_spikes(self.encode(x))


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

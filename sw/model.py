"""The converted SNN: its layers, its file format and the bounds its arithmetic needs.

A model file is a NumPy ``.npz`` archive (zip, per-member CRC) holding:

- ``meta``: a JSON string: ``format`` ("firstspike-snn"), ``version`` (7), ``T``, ``B``,
  ``frac_bits``, ``input_theta``, ``input_spikes`` (spikes per input value: 1, or K for
  residual input spikes, sw/input_spikes.py), ``name``, ``info`` (free-form provenance), and per layer
  ``neuron`` (its neuron model: "ttfs", "rate_if" or "diff_if", sw/neurons), ``kind`` ("linear" or
  "conv"), ``in_shape`` ([C, H, W] of its input spikes), ``stride``, ``padding``, ``pool``
  (max-pooling size applied to its spikes, 1 = none), ``n_in``, ``n_out``,
  ``weight_scale``, ``theta`` (float threshold, or one per channel; null for the output
  layer), ``unit`` (the float value of one accumulator unit), ``levels`` (the spike levels
  of a diff_if layer: 1, or K for the multi-threshold variant, docs/spec.md section 13.7);
- ``layer{k}_weights``: uint8 5-bit weight codes, (n_out, n_in) for linear layers,
  (C_out, C_in, K, K) for conv layers;
- ``layer{k}_bias``: int64 (C_out,) bias in accumulator units, per channel (ttfs: the
  initial potential; rate_if: added at every step);
- ``layer{k}_thresholds``: int64 threshold table (hidden layers only): (T,) for ttfs,
  (C_out,) one per channel for rate_if and diff_if;
- ``layer{k}_initial``: int64 (C_out,) initial potentials (rate_if and diff_if);
- ``layer{k}_shortcut``: uint8 5-bit codes (C_out, C_src, K, K) of a layer's shortcut (a
  residual connection, docs/spec.md section 14), whose ``source``, ``stride`` and
  ``padding`` are in the layer's ``shortcut`` metadata entry (null without one);
- ``input_gather`` (with ``input_size`` in ``meta``), only for a model whose first layer is
  unfolded (sw/unfold.py): int64, per input neuron of layer 0 the input value it reads,
  -1 for none.

Spikes are numbered in (channel, y, x) order, PyTorch's flattening order, so a linear
layer after a conv layer reads them as they are. Version 1 files (linear layers only,
no geometry fields) and version 2 files (no ``neuron`` field) still load, as ttfs; files
before version 5 have no ``levels`` (1), before version 6 no ``input_gather``, before
version 7 no ``input_spikes`` (1).

It is written to a temporary file and renamed, so a failed save leaves no partial file.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firstspike.errors import FirstspikeError

from .files import atomic_write
from .formats import (NO_SPIKE, ZERO_MAG, FormatError, Timing, check_weight_codes, encode_residual_spikes, signed_bits,
                      split_codes)
from .neurons import DEFAULT_NEURON, coding_of, neuron_model

FILE_FORMAT = "firstspike-snn"
FILE_VERSION = 7
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7)
KINDS = ("linear", "conv")
MAX_ACC_BITS = 48  #: beyond this the golden model's float64 matmul would stop being exact


def _theta_json(theta):
    if theta is None:
        return None
    return float(theta) if np.ndim(theta) == 0 else [float(v) for v in np.ravel(theta)]


class ModelFileError(FirstspikeError, ValueError):
    """A model file is missing, corrupt, of another format or of an unsupported version."""


@dataclass
class Shortcut:
    """A residual connection into a layer (docs/spec.md, section 14): a second set of synapses,
    a convolution of its own, from an earlier spike source whose spikes add into the same
    potentials as the layer's main input. ``source`` numbers spike sources as
    ``GoldenResult.spikes`` does: 0 the input spikes, j + 1 hidden layer j's output.

    Its weights are codes in the layer's own scale and unit (conversion folds the ratio of
    the two sources' thresholds into them), so its contributions are those of section 3."""

    source: int
    weights: np.ndarray  #: uint8 codes (C_out, C_src, K, K)
    stride: int = 1
    padding: int = 0

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[2])

    def synapses(self, layer: "SnnLayer", src_shape: tuple) -> "SnnLayer":
        """The shortcut as a conv layer of its own (no bias, no thresholds) over ``src_shape``:
        what the golden model, the cycle model and the hardware's second pass run."""
        return SnnLayer(weights=self.weights, bias=np.zeros(layer.channels, dtype=np.int64), thresholds=None,
                        weight_scale=layer.weight_scale, unit=layer.unit, kind="conv", in_shape=src_shape,
                        stride=self.stride, padding=self.padding, pool=layer.pool, neuron=layer.neuron)

    def to_json(self) -> dict:
        return {"source": int(self.source), "stride": int(self.stride), "padding": int(self.padding)}


@dataclass
class SnnLayer:
    """One layer in integer form: fully connected or convolutional (docs/spec.md).

    ``neuron`` names its neuron model (sw/neurons), which says what its thresholds and
    initial potentials look like and how it fires.

    A conv layer has square kernels, one stride and one zero padding for both axes; its
    spikes may be max-pooled (window = stride = ``pool``, no padding, remainder dropped,
    as ``nn.MaxPool2d(pool)``). A linear layer reads its input flattened in (c, y, x) order.
    """

    weights: np.ndarray  #: uint8 codes: (n_out, n_in) linear, (C_out, C_in, K, K) conv
    bias: np.ndarray  #: int64 (C_out,) initial potential in accumulator units
    thresholds: np.ndarray | None  #: int64: ttfs (T,) TH[t], rate_if (C_out,); None for the output layer
    weight_scale: int = 0  #: s: weights are +-2**(s - m)
    theta: float | list | None = None  #: float threshold(s) the integer ones were made from
    unit: float = 1.0  #: float value of one accumulator unit (for decoding only)
    kind: str = "linear"
    in_shape: tuple | None = None  #: (C, H, W) of the input spikes; default (n_in, 1, 1)
    stride: int = 1
    padding: int = 0
    pool: int = 1  #: max pooling of the output spikes (1: none)
    neuron: str = DEFAULT_NEURON  #: neuron model (sw/neurons.NEURON_MODELS)
    initial: np.ndarray | None = None  #: int64 (C_out,) initial potentials (rate_if, diff_if)
    shortcut: Shortcut | None = None  #: a residual connection from an earlier layer (spec section 14)
    levels: int = 1  #: diff_if spike levels: K > 1 is the multi-threshold variant (spec section 13.7)

    def __post_init__(self):
        if self.in_shape is None:
            self.in_shape = (int(self.weights.shape[1]), 1, 1) if self.kind == "linear" else None
        if self.in_shape is not None:
            self.in_shape = tuple(int(v) for v in self.in_shape)

    @property
    def channels(self) -> int:
        """Output channels (neurons for a linear layer)."""
        return int(self.weights.shape[0])

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[2]) if self.kind == "conv" else 1

    @property
    def conv_shape(self) -> tuple[int, int, int]:
        """(C_out, H, W) of the potentials, before pooling."""
        if self.kind == "linear":
            return (self.channels, 1, 1)
        _, h, w = self.in_shape
        k, s, p = self.kernel, self.stride, self.padding
        return (self.channels, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(C_out, H, W) of the output spikes, after pooling."""
        c, h, w = self.conv_shape
        return (c, h // self.pool, w // self.pool)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_neurons(self) -> int:
        """Potentials the layer accumulates (before pooling)."""
        return int(np.prod(self.conv_shape))

    def connections(self) -> int:
        """Synapses used in one pass (MACs of the equivalent ANN): padding taps excluded."""
        if self.kind == "linear":
            return self.n_in * self.channels
        c_in, h, w = self.in_shape
        _, ho, wo = self.conv_shape
        k, s, p = self.kernel, self.stride, self.padding
        ky = np.arange(k)
        rows = sum(int(((oy * s - p + ky >= 0) & (oy * s - p + ky < h)).sum()) for oy in range(ho))
        cols = sum(int(((ox * s - p + ky >= 0) & (ox * s - p + ky < w)).sum()) for ox in range(wo))
        return self.channels * c_in * rows * cols

    def check_geometry(self, where: str) -> None:
        if self.kind not in KINDS:
            raise FormatError(f"{where}: kind must be one of {KINDS}, not {self.kind!r}")
        for name in ("stride", "pool"):
            if not isinstance(getattr(self, name), (int, np.integer)) or getattr(self, name) < 1:
                raise FormatError(f"{where}: {name} must be a positive integer, not {getattr(self, name)!r}")
        if not isinstance(self.padding, (int, np.integer)) or self.padding < 0:
            raise FormatError(f"{where}: padding must be a non-negative integer, not {self.padding!r}")
        w = np.asarray(self.weights)
        if self.in_shape is None or len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise FormatError(f"{where}: in_shape must be three positive sizes (C, H, W), not {self.in_shape!r}")
        if self.kind == "linear":
            if w.ndim != 2:
                raise FormatError(f"{where}: linear weights must be a matrix (n_out, n_in)")
            if (self.stride, self.padding, self.pool) != (1, 0, 1):
                raise FormatError(f"{where}: a linear layer has no stride, padding or pooling")
            if w.shape[1] != self.n_in:
                raise FormatError(f"{where}: weights have {w.shape[1]} inputs but in_shape {self.in_shape} "
                                  f"holds {self.n_in}")
        else:
            if w.ndim != 4 or w.shape[2] != w.shape[3]:
                raise FormatError(f"{where}: conv weights must be (C_out, C_in, K, K) with a square kernel")
            if w.shape[1] != self.in_shape[0]:
                raise FormatError(f"{where}: weights have {w.shape[1]} input channels, in_shape {self.in_shape}")
            _, ho, wo = self.conv_shape
            if min(ho, wo) < 1:
                raise FormatError(f"{where}: kernel {self.kernel} with padding {self.padding} does not fit "
                                  f"the {self.in_shape[1]}x{self.in_shape[2]} input")
            if min(ho, wo) < self.pool:
                raise FormatError(f"{where}: pooling {self.pool} is larger than the {ho}x{wo} output")

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    @property
    def coding(self) -> str:
        """What its spikes mean ("ttfs", "rate"): the coding of its neuron model."""
        return coding_of(self.neuron)


@dataclass
class SnnModel:
    """A converted network: timing parameters, input threshold and layers in order."""

    timing: Timing
    input_theta: float
    layers: list[SnnLayer]
    name: str = "snn"
    info: dict = field(default_factory=dict)
    #: an unfolded first layer (sw/unfold.py): per input neuron of layer 0, the input value it
    #: reads (-1: none, always silent); None: layer 0 reads the inputs as they are
    input_gather: np.ndarray | None = None
    input_size: int | None = None  #: the coded inputs before gathering (with input_gather)
    #: spikes per input value (sw/input_spikes.py): K > 1 codes value i as K spikes, the k-th
    #: on coded input k * n_inputs + i, and layer 0 reads K copies of each input channel
    input_spikes: int = 1

    def __post_init__(self):
        self.validate()

    # -- checks ------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise FormatError naming the first inconsistency."""
        if not self.layers:
            raise FormatError("a model needs at least one layer")
        if not (np.isfinite(self.input_theta) and self.input_theta > 0):
            raise FormatError(f"input_theta must be positive, not {self.input_theta!r}")
        for k, layer in enumerate(self.layers):
            where = f"layer {k}"
            w = np.asarray(layer.weights)
            if w.dtype != np.uint8 or w.ndim not in (2, 4):
                raise FormatError(f"{where}: weights must be uint8 codes (n_out, n_in) or (C_out, C_in, K, K)")
            if min(w.shape) < 1:
                raise FormatError(f"{where}: weights must have at least one row and column")
            layer.check_geometry(where)
            check_weight_codes(w, where)
            if layer.bias.shape != (layer.channels,) or layer.bias.dtype != np.int64:
                raise FormatError(f"{where}: bias must be int64 of shape ({layer.channels},)")
            if k > 0 and layer.kind == "conv" and layer.in_shape != self.layers[k - 1].out_shape:
                raise FormatError(f"{where}: expects input {layer.in_shape} but layer {k - 1} produces "
                                  f"{self.layers[k - 1].out_shape}")
            if k > 0 and layer.n_in != self.layers[k - 1].n_out:
                raise FormatError(f"{where}: has {layer.n_in} inputs but layer {k - 1} has "
                                  f"{self.layers[k - 1].n_out} outputs")
            last = k == len(self.layers) - 1
            if last and (layer.kind != "linear"):
                raise FormatError(f"{where}: the output layer must be linear (it emits class scores)")
            if last and layer.thresholds is not None:
                raise FormatError(f"{where}: the output layer emits potentials and has no thresholds")
            neuron = neuron_model(layer.neuron)
            if neuron.CODING != self.layers[0].coding:
                raise FormatError(f"{where}: its {layer.neuron} neurons use {neuron.CODING} coding but layer 0 uses "
                                  f"{self.layers[0].coding}; one network has one coding")
            neuron.validate_layer(layer, self.timing, where, output=last)
            if layer.levels != 1 and (layer.neuron != "diff_if" or last):
                raise FormatError(f"{where}: only hidden diff_if layers send spikes of several levels "
                                  f"(levels {layer.levels!r})")
            if layer.shortcut is not None:
                self._check_shortcut(k, where, last)
        if (self.input_gather is None) != (self.input_size is None):
            raise FormatError("input_gather and input_size come together")
        K = self.input_spikes
        if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
            raise FormatError(f"input_spikes must be an integer of at least 1, not {K!r}")
        if K > 1 and self.coding != "ttfs":
            raise FormatError(f"only ttfs inputs take several spikes per value (input_spikes {K}); this network "
                              f"is {self.coding}-coded")
        coded = self.coded_inputs
        if K > 1 and (coded % K or (self.input_gather is None and self.layers[0].in_shape is not None
                                    and self.layers[0].in_shape[0] % K)):
            raise FormatError(f"with input_spikes {K}, layer 0's input channels ({coded} coded inputs) must be "
                              f"{K} copies of the input's")
        if self.input_gather is not None:
            g = np.asarray(self.input_gather)
            if g.dtype != np.int64 or g.shape != (self.layers[0].n_in,):
                raise FormatError(f"input_gather must be int64 of shape ({self.layers[0].n_in},), one entry per input "
                                  "neuron of layer 0")
            if not (isinstance(self.input_size, (int, np.integer)) and self.input_size >= 1
                    and g.min() >= -1 and g.max() < self.input_size):
                raise FormatError(f"input_gather must index 0 .. input_size - 1 (or -1), with input_size >= 1; "
                                  f"it holds {g.min()} .. {g.max()} for input_size {self.input_size!r}")
        bits = self.acc_bits()
        if bits > MAX_ACC_BITS:
            raise FormatError(f"the accumulator would need {bits} bits; at most {MAX_ACC_BITS} are supported "
                              f"(lower frac_bits)")

    def _check_shortcut(self, k: int, where: str, last: bool) -> None:
        sc = self.layers[k].shortcut
        layer = self.layers[k]
        if last or layer.kind != "conv" or layer.neuron not in ("ttfs", "rate_if"):
            raise FormatError(f"{where}: only hidden ttfs and rate_if conv layers take a shortcut (the output layer "
                              "and linear and diff_if layers do not)")
        if not isinstance(sc.source, (int, np.integer)) or not 0 <= sc.source <= k:
            raise FormatError(f"{where}: shortcut source must be 0 (the input) .. {k} (the layer's own input), "
                              f"not {sc.source!r}")
        w = np.asarray(sc.weights)
        if w.dtype != np.uint8 or w.ndim != 4 or w.shape[2] != w.shape[3] or min(w.shape) < 1:
            raise FormatError(f"{where}: shortcut weights must be uint8 codes (C_out, C_src, K, K)")
        check_weight_codes(w, f"{where} shortcut")
        src_shape = self.shapes[sc.source]
        if w.shape[:2] != (layer.channels, src_shape[0]):
            raise FormatError(f"{where}: shortcut weights are {w.shape[0]}x{w.shape[1]} channels but the layer has "
                              f"{layer.channels} and source {sc.source} has {src_shape[0]}")
        synapses = sc.synapses(layer, src_shape)
        synapses.check_geometry(f"{where} shortcut")
        if synapses.conv_shape != layer.conv_shape:
            raise FormatError(f"{where}: the shortcut from source {sc.source} {src_shape} gives "
                              f"{synapses.conv_shape[1:]} positions, the layer {layer.conv_shape[1:]}")

    def shortcut_synapses(self, k: int) -> SnnLayer | None:
        """Layer k's shortcut as a conv layer over its source's spikes (Shortcut.synapses), or None."""
        layer = self.layers[k]
        if layer.shortcut is None:
            return None
        return layer.shortcut.synapses(layer, self.shapes[layer.shortcut.source])

    # -- sizes -------------------------------------------------------------------------
    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        """Spike shapes (C, H, W) between layers, input first, output layer last."""
        return [self.layers[0].in_shape] + [layer.out_shape for layer in self.layers]

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def coded_inputs(self) -> int:
        """Coded inputs per example (code_inputs' width): layer 0's inputs, or what they gather from."""
        return self.layers[0].n_in if self.input_gather is None else int(self.input_size)

    @property
    def n_inputs(self) -> int:
        """Input values per example (the data set's features): the coded inputs over the spikes per value."""
        return self.coded_inputs // self.input_spikes

    def code_inputs(self, x: np.ndarray) -> np.ndarray:
        """The coded inputs of float inputs (last axis: n_inputs values): the input neuron
        model's code, or, with ``input_spikes`` K > 1, K residual spike times per value
        (formats.encode_residual_spikes: K x n_inputs, in blocks)."""
        if self.input_spikes == 1:
            return self.input_neuron.encode(x, self.input_theta, self.timing)
        return encode_residual_spikes(x, self.input_theta, self.timing, self.input_spikes)

    def gather_inputs(self, spikes: np.ndarray) -> np.ndarray:
        """Layer 0's input spikes from the coded inputs (code_inputs; last axis: K x n_inputs):
        the coded inputs themselves, or, with an unfolded first layer, gathered by ``input_gather``."""
        if self.input_gather is None:
            return spikes
        silent = NO_SPIKE if self.coding == "ttfs" else 0
        padded = np.concatenate([spikes, np.full((*spikes.shape[:-1], 1), silent, dtype=spikes.dtype)], axis=-1)
        return padded[..., self.input_gather]  # -1 reads the silent column

    @property
    def coding(self) -> str:
        """What the network's spikes mean ("ttfs", "rate"): one coding for all layers."""
        return self.layers[0].coding

    @property
    def input_neuron(self):
        """The neuron model module whose coding encodes the inputs (layer 0's)."""
        return neuron_model(self.layers[0].neuron)

    def potential_bound(self, k: int) -> np.ndarray:
        """Per output channel of layer k: the largest |potential| its neuron model can reach.

        ttfs: |bias| + sum of the largest contribution of every input. Every partial sum
        of a layer's accumulation lies within this bound whatever the input spikes and
        their order (docs/spec.md, section 7).
        """
        layer = self.layers[k]
        one = 1 << self.timing.frac_bits  # M[0] == 2**F: the contribution at t = 0, m = 0
        synaptic = 0
        for weights in [layer.weights] + ([layer.shortcut.weights] if layer.shortcut is not None else []):
            _, mag = split_codes(weights)
            c_max = np.where(mag == ZERO_MAG, 0, np.int64(one) >> np.minimum(mag, 62).astype(np.int64))
            synaptic = synaptic + c_max.reshape(layer.channels, -1).sum(axis=1)
        return neuron_model(layer.neuron).potential_bound(layer, self.timing, synaptic)

    def acc_bits(self) -> int:
        """Two's-complement width that holds every potential, bias and threshold."""
        hi = 1
        for k, layer in enumerate(self.layers):
            hi = max(hi, int(self.potential_bound(k).max()))
            if layer.thresholds is not None:
                hi = max(hi, int(layer.thresholds.max()))
        return signed_bits(-hi, hi)

    def synapses(self) -> int:
        """Connections used by one inference (the equivalent ANN's MACs)."""
        return sum(layer.connections() + (self.shortcut_synapses(k).connections() if layer.shortcut else 0)
                   for k, layer in enumerate(self.layers))

    # -- file format ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model file atomically (temporary file, then rename)."""
        path = Path(path)
        meta = {
            "format": FILE_FORMAT, "version": FILE_VERSION, "name": self.name,
            "T": self.timing.T, "B": self.timing.B, "frac_bits": self.timing.frac_bits,
            "input_theta": float(self.input_theta), "info": self.info,
            "layers": [{"neuron": layer.neuron, "kind": layer.kind, "in_shape": list(layer.in_shape),
                        "stride": int(layer.stride), "padding": int(layer.padding), "pool": int(layer.pool),
                        "n_in": layer.n_in, "n_out": layer.n_out, "weight_scale": int(layer.weight_scale),
                        "theta": _theta_json(layer.theta), "unit": float(layer.unit),
                        "shortcut": layer.shortcut.to_json() if layer.shortcut is not None else None,
                        "levels": int(layer.levels)}
                       for layer in self.layers],
        }
        if self.input_gather is not None:
            meta["input_size"] = int(self.input_size)
        if self.input_spikes != 1:
            meta["input_spikes"] = int(self.input_spikes)
        arrays = {"meta": np.array(json.dumps(meta, sort_keys=True))}
        if self.input_gather is not None:
            arrays["input_gather"] = self.input_gather
        for k, layer in enumerate(self.layers):
            arrays[f"layer{k}_weights"] = layer.weights
            arrays[f"layer{k}_bias"] = layer.bias
            if layer.thresholds is not None:
                arrays[f"layer{k}_thresholds"] = layer.thresholds
            if layer.initial is not None:
                arrays[f"layer{k}_initial"] = layer.initial
            if layer.shortcut is not None:
                arrays[f"layer{k}_shortcut"] = layer.shortcut.weights
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays), "model file")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SnnModel":
        """Read a model file; any problem raises ModelFileError saying what and where."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError) as e:
            # numpy suggests allow_pickle=True for object arrays: a model file never needs that
            reason = "it holds Python objects, which model files never do" if "allow_pickle" in str(e) else e
            raise ModelFileError(f"{path}: not a readable firstspike model file ({reason})") from None
        if "meta" not in data:
            raise ModelFileError(f"{path}: not a firstspike model file (no 'meta' entry)")
        try:
            meta = json.loads(str(data["meta"]))
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{path}: corrupt metadata ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
            raise ModelFileError(f"{path}: not a firstspike model file (format is "
                                 f"{meta.get('format') if isinstance(meta, dict) else meta!r})")
        if meta.get("version") not in READABLE_VERSIONS:
            raise ModelFileError(f"{path}: model file version {meta.get('version')!r} is not supported; "
                                 f"this firstspike reads versions {', '.join(map(str, READABLE_VERSIONS))}")
        try:
            layers = []
            for k, lm in enumerate(meta["layers"]):
                th = data.get(f"layer{k}_thresholds")
                sc = lm.get("shortcut")
                if sc is not None:
                    sc = Shortcut(source=int(sc["source"]), weights=data[f"layer{k}_shortcut"],
                                  stride=int(sc["stride"]), padding=int(sc["padding"]))
                layers.append(SnnLayer(weights=data[f"layer{k}_weights"], bias=data[f"layer{k}_bias"],
                                       thresholds=th, weight_scale=int(lm["weight_scale"]),
                                       theta=lm["theta"], unit=float(lm["unit"]),
                                       kind=lm.get("kind", "linear"), in_shape=lm.get("in_shape"),
                                       stride=int(lm.get("stride", 1)), padding=int(lm.get("padding", 0)),
                                       pool=int(lm.get("pool", 1)), neuron=lm.get("neuron", DEFAULT_NEURON),
                                       initial=data.get(f"layer{k}_initial"), shortcut=sc,
                                       levels=int(lm.get("levels", 1))))
                if (layers[-1].n_in, layers[-1].n_out) != (lm["n_in"], lm["n_out"]):
                    raise FormatError(f"layer {k}: metadata says {lm['n_in']}x{lm['n_out']}, "
                                      f"arrays say {layers[-1].n_in}x{layers[-1].n_out}")
            return cls(timing=Timing(T=meta["T"], B=meta["B"], frac_bits=meta["frac_bits"]),
                       input_theta=float(meta["input_theta"]), layers=layers,
                       name=meta.get("name", "snn"), info=meta.get("info", {}),
                       input_gather=data.get("input_gather"), input_size=meta.get("input_size"),
                       input_spikes=meta.get("input_spikes", 1))
        except KeyError as e:
            raise ModelFileError(f"{path}: missing entry {e}") from None
        except FormatError as e:
            raise ModelFileError(f"{path}: invalid model: {e}") from None
        except (TypeError, ValueError) as e:  # a metadata entry of the wrong type
            raise ModelFileError(f"{path}: malformed metadata ({e})") from None

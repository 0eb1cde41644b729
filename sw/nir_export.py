"""Export a converted model to NIR, the Neuromorphic Intermediate Representation (PyPI ``nir``).

What maps: each layer becomes an ``Affine`` (linear) or ``Conv2d`` node with the model's
exact weights (the 5-bit log codes decoded: ``±2**(scale - m)``) and its bias in float
units (``bias * unit``), followed, for hidden layers, by an ``IF`` node whose threshold is
the layer's float threshold ``theta``; a ``Flatten`` node precedes a linear layer on
image-shaped spikes. A layer's residual shortcut becomes a second ``Conv2d`` node from its
source (the input or an earlier ``IF`` node) into the layer's ``IF`` node, whose inputs NIR
sums. The firstspike-specific meaning rides in each node's metadata:
``coding = "ttfs"``, ``T``, ``B``, ``frac_bits``, and the integer threshold table, so a
firstspike import restores the model exactly.

What does not map, and is refused or stated:
- NIR has no time-to-first-spike neuron: its ``IF`` is rate-coded (reset to zero after
  each spike). A NIR simulator that ignores the metadata runs a *different* network
  (rate-coded IF with these weights and thresholds), not firstspike's TTFS SNN.
- NIR has no max-pooling node (TTFS max pooling is the earliest spike of a window), so
  models with max pooling are refused with an error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from firstspike.errors import FirstspikeError

from .formats import decode_weights
from .model import SnnModel


class NirExportError(FirstspikeError, ValueError):
    """A model feature NIR cannot express."""


def _meta(model: SnnModel, **extra) -> dict:
    t = model.timing
    return {"coding": "ttfs", "T": t.T, "B": t.B, "frac_bits": t.frac_bits, **extra}


def to_nir(model: SnnModel):
    """The model as a ``nir.NIRGraph`` (input -> [flatten] -> affine/conv -> IF -> ... -> output).
    An unfolded first layer (sw/unfold.py) exports as the conv layer it was, and one with
    residual input spikes (sw/input_spikes.py) with one copy of its inputs: NIR has no
    input code, the graph reads the values."""
    import nir

    from .unfold import fold_input
    model = fold_input(model)
    if model.coding != "ttfs":
        raise NirExportError(f"only ttfs models export to NIR so far; this one uses {model.layers[0].neuron} "
                             "neurons (NIR's IF resets to v_reset, these subtract the threshold, and their "
                             "per-channel thresholds and initial potentials would need their own metadata)")
    pooled = [k for k, layer in enumerate(model.layers) if layer.pool > 1]
    if pooled:
        raise NirExportError(f"layer {pooled[0]} max-pools its spikes, and NIR has no max-pooling node; "
                             "models with max pooling cannot be exported to NIR")
    first = model.layers[0]
    in_shape = np.array(first.in_shape if first.kind == "conv" else [first.n_in])
    nodes = {"input": nir.Input(input_type={"input": in_shape},
                                metadata=_meta(model, input_theta=float(model.input_theta)))}
    order = ["input"]
    shortcuts = []  # edges of residual shortcuts (docs/spec.md, section 14)
    for k, layer in enumerate(model.layers):
        w = decode_weights(layer.weights, layer.weight_scale)
        b = layer.bias.astype(np.float64) * layer.unit
        if layer.kind == "conv":
            c, h, wd = layer.in_shape
            nodes[f"conv{k}"] = nir.Conv2d(input_shape=(h, wd), weight=w, stride=layer.stride, padding=layer.padding,
                                           dilation=1, groups=1, bias=b, metadata=_meta(model, layer=k))
            order.append(f"conv{k}")
        else:
            if tuple(layer.in_shape[1:]) != (1, 1):
                nodes[f"flatten{k}"] = nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0,
                                                   end_dim=-1)
                order.append(f"flatten{k}")
            nodes[f"affine{k}"] = nir.Affine(weight=w, bias=b, metadata=_meta(model, layer=k))
            order.append(f"affine{k}")
        if not layer.is_output:
            shape = layer.conv_shape if layer.kind == "conv" else (layer.n_out,)
            ones = np.ones(shape)
            nodes[f"if{k}"] = nir.IF(r=ones, v_threshold=ones * _theta(model, k), v_reset=np.zeros(shape),
                                     metadata=_meta(model, layer=k, threshold_table=layer.thresholds.tolist()))
            order.append(f"if{k}")
        if layer.shortcut is not None:  # a second Conv2d into the same IF node: NIR sums a node's inputs
            sc = layer.shortcut
            source = "input" if sc.source == 0 else f"if{sc.source - 1}"
            # the stored codes carry theta_src / theta_{k-1} (spec 14.3); the float weight is without it
            ratio = _theta(model, sc.source - 1) / _theta(model, k - 1)
            _, h, wd = model.shapes[sc.source]
            weight = decode_weights(sc.weights, layer.weight_scale) / ratio
            nodes[f"shortcut{k}"] = nir.Conv2d(input_shape=(h, wd), weight=weight, stride=sc.stride, padding=sc.padding,
                                               dilation=1, groups=1, bias=np.zeros(layer.channels),
                                               metadata=_meta(model, layer=k, shortcut_source=sc.source))
            shortcuts += [(source, f"shortcut{k}"), (f"shortcut{k}", f"if{k}")]
    nodes["output"] = nir.Output(output_type={"output": np.array([model.layers[-1].n_out])})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])) + shortcuts,
                        metadata={"producer": "firstspike"}, type_check=False)


def _theta(model: SnnModel, k: int) -> float:
    """The float threshold of hidden layer k (-1: the input's). Files made without conversion
    (random test models) carry only the integer table: its first entry in float units."""
    if k < 0:
        return float(model.input_theta)
    layer = model.layers[k]
    return float(layer.theta) if layer.theta is not None else float(layer.thresholds[0]) * layer.unit


def write_nir(model: SnnModel, path: str | os.PathLike) -> Path:
    """Write the model's NIR graph (HDF5) atomically."""
    import nir

    from .files import atomic_write_path
    graph = to_nir(model)
    return atomic_write_path(path, lambda tmp: nir.write(str(tmp), graph), "NIR file")

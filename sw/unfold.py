"""Input unfolding: the first conv layer as a 1x1 layer over its unfolded input (im2col).

A conv layer reads each input spike once per kernel tap it reaches, and the array writes
an accumulator back once per (event group, tap, slot) (docs/hardware.md, "Dataflow"). In
the first layer the groups are small (one to three input channels per position), so
nearly every synaptic event costs an accumulator write-back. Unfolded, the layer's input
at output position (oy, ox) is the patch the kernel sees there: channel ``(c * K + ky) *
K + kx`` holds input pixel ``(c, oy * s - p + ky, ox * s - p + kx)`` (silent where that
is padding), and the layer becomes a 1x1 conv of stride 1 whose weights are the kernel's,
reshaped. Every output sums the same contributions, so its potentials, its spikes and
every later layer are those of the folded model, bit for bit; a group now holds a whole
patch, and one write-back serves up to ``group_size`` synaptic events.

What it costs: the host writes each input spike once per patch that holds it (about K^2 /
s^2 times as many input events), and the event memory holds them.

The model keeps the map in ``SnnModel.input_gather``: the golden model's ``encode`` codes
the pixels as before and then gathers them, so data sets, reports and accuracy see the
original images.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from firstspike.errors import InputError

from .golden import GoldenModel
from .input_spikes import collapsed_first_layer
from .model import SnnLayer, SnnModel


def unfold_input(model: SnnModel) -> SnnModel:
    """``model`` with its first layer unfolded (module docstring); InputError if it cannot be.

    The first layer must be a conv layer with a kernel larger than 1 or a stride, no
    shortcut may read the input, and the model must not be unfolded already."""
    first = model.layers[0]
    if model.input_gather is not None:
        raise InputError("the model's input is unfolded already")
    if first.kind != "conv" or (first.kernel == 1 and first.stride == 1):
        raise InputError(f"only a first conv layer with a kernel above 1x1 or a stride unfolds; layer 0 is a "
                         f"{first.kernel}x{first.kernel} {first.kind} layer of stride {first.stride}")
    readers = [k for k, layer in enumerate(model.layers) if layer.shortcut is not None and layer.shortcut.source == 0]
    if readers:
        raise InputError(f"layer {readers[0]}'s shortcut reads the input, which unfolding would change")
    c_in, h, w = first.in_shape
    _, ho, wo = first.conv_shape
    K, s, p = first.kernel, first.stride, first.padding
    source, _ = GoldenModel.fan_map(first)  # (positions, fan_in), fan-in in (c, ky, kx) order; n_in: padding
    gather = source.reshape(ho * wo, -1).T.reshape(-1).astype(np.int64)
    gather[gather == first.n_in] = -1
    layer = replace(first, weights=np.ascontiguousarray(first.weights.reshape(first.channels, c_in * K * K, 1, 1)),
                    in_shape=(c_in * K * K, ho, wo), stride=1, padding=0)
    info = {**model.info, "unfolded_input": {"in_shape": list(first.in_shape), "kernel": K, "stride": s,
                                             "padding": p}}
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=[layer, *model.layers[1:]],
                    name=model.name, info=info, input_gather=gather, input_size=c_in * h * w,
                    input_spikes=model.input_spikes)


def fold_input(model: SnnModel) -> SnnModel:
    """The model before ``unfold_input`` and before residual input spikes
    (sw/input_spikes.py; the model itself if it has neither): what interchange formats and
    the equivalent ANN describe."""
    if model.input_gather is None and model.input_spikes == 1:
        return model
    info = {k: v for k, v in model.info.items() if k != "unfolded_input"}
    return SnnModel(timing=model.timing, input_theta=model.input_theta,
                    layers=[folded_first_layer(model), *model.layers[1:]], name=model.name, info=info)


def folded_first_layer(model: SnnModel) -> SnnLayer:
    """The first layer as it was before unfolding, with one copy of its input channels
    (sw/input_spikes.py; the layer itself if the model has neither): what the equivalent ANN
    computes, for the int8 baseline's MACs and re-reads."""
    first = model.layers[0]
    if model.input_gather is not None:
        u = model.info["unfolded_input"]
        c_in, K = u["in_shape"][0], u["kernel"]
        first = replace(first, weights=first.weights.reshape(first.channels, c_in, K, K),
                        in_shape=tuple(u["in_shape"]), stride=u["stride"], padding=u["padding"])
    return collapsed_first_layer(model, first)

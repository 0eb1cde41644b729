"""Residual input spikes: each input value coded by K TTFS spikes instead of one.

One spike per pixel codes it to the level at or below it, ``2**(-t/B)`` of ``input_theta``:
at B = 2 the levels are 1, 0.71, 0.5, ..., so a pixel loses up to 29 % of its value. On
CIFAR-10 that alone costs a float ResNet-20 five points (76.8 % on the exact pixels,
71.8 % on their one-spike codes), which conversion-aware training only partly recovers.
With K spikes, the k-th codes what the earlier ones leave (formats.encode_residual_spikes):
two spikes bring the same network to 76.5 %, three to 76.9 % (docs/results.md).

The model stays a plain TTFS network: its input layer has K neurons per value (value i's
k-th spike on coded input ``k * n + i``, so a (C, H, W) input becomes (K * C, H, W)), and
layer 0 reads each copy through the same weights, so its potentials add up the K levels.
Nothing changes in the hardware; the host writes up to K times as many input events, and
layer 0 makes up to K times as many synaptic events.

``SnnModel.input_spikes`` records K: the golden model's ``encode`` codes the values with it,
so data sets, reports and accuracy see the original images. The equivalent ANN (the int8
baseline, NIR export) is the collapsed model: one copy of layer 0's input channels.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from firstspike.errors import InputError

from .model import SnnLayer, SnnModel


def expand_input(model: SnnModel, spikes: int) -> SnnModel:
    """``model`` with ``spikes`` spikes per input value (module docstring); InputError if it
    cannot take them: a model that is rate-coded, already expanded or unfolded, or whose
    input a shortcut reads."""
    if not isinstance(spikes, (int, np.integer)) or isinstance(spikes, bool) or spikes < 1:
        raise InputError(f"spikes per input value must be an integer of at least 1, not {spikes!r}")
    if spikes == 1:
        return model
    if model.coding != "ttfs":
        raise InputError(f"only ttfs networks take several spikes per input value; this one is {model.coding}-coded")
    if model.input_spikes != 1:
        raise InputError(f"the model's input has {model.input_spikes} spikes per value already")
    if model.input_gather is not None:
        raise InputError("the model's input is unfolded: expand its input before unfolding it")
    readers = [k for k, layer in enumerate(model.layers) if layer.shortcut is not None and layer.shortcut.source == 0]
    if readers:
        raise InputError(f"layer {readers[0]}'s shortcut reads the input, whose spikes would change")
    first = model.layers[0]
    weights = np.ascontiguousarray(np.concatenate([first.weights] * spikes, axis=1))
    in_shape = None if first.in_shape is None else (spikes * first.in_shape[0], *first.in_shape[1:])
    layer = replace(first, weights=weights, in_shape=in_shape)
    return replace(model, layers=[layer, *model.layers[1:]], input_spikes=int(spikes))


def collapsed_first_layer(model: SnnModel, first: SnnLayer | None = None) -> SnnLayer:
    """Layer 0 (or ``first``, a form of it) with one copy of its input channels: what the
    equivalent ANN computes. The layer itself when the input has one spike per value."""
    first = model.layers[0] if first is None else first
    K = model.input_spikes
    if K == 1:
        return first
    channels = first.weights.shape[1] // K
    in_shape = None if first.in_shape is None else (first.in_shape[0] // K, *first.in_shape[1:])
    return replace(first, weights=np.ascontiguousarray(first.weights[:, :channels]), in_shape=in_shape)

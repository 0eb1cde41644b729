"""Import a NIR graph (Affine/Linear/Conv2d + IF layers from snnTorch, Norse, sinabs, SpikingJelly, ...)
as a rate-coded IF model (docs/spec.md, sections 10 and 12).

What maps: a chain Input -> [Flatten] -> Affine/Linear/Conv2d -> IF -> ... -> Affine/Linear
-> Output. Each IF node's ``v_threshold`` (one value per channel) becomes the layer's
threshold and its ``r`` (one per channel) scales the layer's weights and bias; the weights
are then quantised to 5-bit log codes as in any conversion (section 12.8). Average pools
(``AvgPool2d`` with kernel = stride, no padding) fold into the next layer. A final IF after
the last weighted layer is dropped with a warning: firstspike reads the scores from the
output layer's integrated potentials, not from spike counts.

Semantics a user must know: firstspike's rate_if neuron resets by subtraction, starts at
``initial`` x threshold (0 by default here, as most simulators start at rest), fires at
``V >= threshold`` at most once per step, and adds the bias at every step. NIR's IF node
does not say how its source library resets (snnTorch and sinabs subtract by default,
others reset to ``v_reset``): an imported network computes the same rates when spikes are
sparse, not the same spike trains step by step.

What does not map, refused with the node's name: leaky neurons (LIF, CubaLIF, LI: no
leak here), integrators without threshold (I), delays, any node type not named above,
graphs that branch, a nonzero ``v_reset``, thresholds or ``r`` that differ within a
channel, grouped or dilated convolutions.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from firstspike.errors import FirstspikeError

from .convert import convert
from .formats import Timing
from .model import SnnModel


class NirImportError(FirstspikeError, ValueError):
    """A NIR graph firstspike cannot run; the message names the node."""


def _chain(graph) -> list[str]:
    """Node names from the Input node to the Output node; NirImportError if the graph branches."""
    import nir
    nxt: dict[str, str] = {}
    for a, b in graph.edges:
        if a in nxt:
            raise NirImportError(f"node {a!r} feeds both {nxt[a]!r} and {b!r}: only chains of layers import")
        nxt[a] = b
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        raise NirImportError(f"the graph needs exactly one Input node, it has {len(starts)}")
    order, node = [], starts[0]
    while node in nxt:
        node = nxt[node]
        if node in order:
            raise NirImportError(f"the graph has a cycle through {node!r} (recurrent networks do not import)")
        order.append(node)
    if not order or not isinstance(graph.nodes[order[-1]], nir.Output):
        raise NirImportError("the chain from the Input node does not end at an Output node")
    if len(order) + 1 != len(graph.nodes):
        stray = sorted(set(graph.nodes) - set(order) - set(starts))
        raise NirImportError(f"nodes {stray} are not on the chain from Input to Output")
    return order[:-1]


def _per_channel(values, channels: int, what: str, name: str) -> np.ndarray:
    """(channels,) from a NIR parameter given per neuron (channel first) or as a scalar."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.full(channels, float(v.flat[0]))
    v = v.reshape(channels, -1) if v.size % channels == 0 else None
    if v is None or not np.all(v == v[:, :1]):
        raise NirImportError(f"node {name!r}: {what} differs within a channel; firstspike has one per channel")
    return v[:, 0].copy()


def _pair(v, what: str, name: str) -> int:
    v = np.atleast_1d(np.asarray(v)).astype(int)
    if not np.all(v == v[0]):
        raise NirImportError(f"node {name!r}: {what} {tuple(v)} differs between the axes")
    return int(v[0])


def network_from_nir(graph) -> tuple[nn.Sequential, list[np.ndarray], tuple[int, int, int] | None]:
    """(float network of Linear/Conv2d/ReLU/AvgPool2d/Flatten, per-channel thresholds per hidden
    layer, input shape (C, H, W) or None for flat inputs)."""
    import nir
    layers: list[nn.Module] = []
    thetas: list[np.ndarray] = []
    input_shape = None
    last_weighted = None
    names = _chain(graph)
    first = graph.nodes[next(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))]
    shape = np.asarray(list(first.input_type.values())[0]).astype(int).tolist()
    if len(shape) == 3:
        input_shape = tuple(shape)
    for idx, name in enumerate(names):
        n = graph.nodes[name]
        if isinstance(n, (nir.Affine, nir.Linear)):
            w = np.asarray(n.weight, dtype=np.float64)
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(np.asarray(getattr(n, "bias", np.zeros(w.shape[0])), dtype=np.float64)))
            layers.append(lin)
            last_weighted = lin
        elif isinstance(n, nir.Conv2d):
            w = np.asarray(n.weight, dtype=np.float64)
            if w.ndim != 4 or w.shape[2] != w.shape[3]:
                raise NirImportError(f"node {name!r}: only square 2-D kernels import, not {w.shape}")
            if int(n.groups) != 1 or _pair(n.dilation, "dilation", name) != 1:
                raise NirImportError(f"node {name!r}: grouped or dilated convolutions do not import")
            if isinstance(n.padding, str):
                raise NirImportError(f"node {name!r}: padding {n.padding!r}: give it as a number")
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=_pair(n.stride, "stride", name),
                             padding=_pair(n.padding, "padding", name))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(np.asarray(n.bias, dtype=np.float64).reshape(-1)))
            if not layers and input_shape is None:
                input_shape = (w.shape[1], *np.asarray(n.input_shape).astype(int).tolist())
            layers.append(conv)
            last_weighted = conv
        elif isinstance(n, nir.IF):
            if last_weighted is None or not isinstance(layers[-1], (nn.Linear, nn.Conv2d)):
                raise NirImportError(f"node {name!r}: an IF node must follow an Affine, Linear or Conv2d node")
            channels = last_weighted.weight.shape[0]
            if np.any(np.asarray(n.v_reset) != 0):
                raise NirImportError(f"node {name!r}: v_reset must be 0 (firstspike resets by subtraction)")
            r = _per_channel(n.r, channels, "r", name)
            theta = _per_channel(n.v_threshold, channels, "v_threshold", name)
            if not (np.all(r > 0) and np.all(theta > 0)):
                raise NirImportError(f"node {name!r}: r and v_threshold must be positive")
            with torch.no_grad():  # v += r * I: r scales what the layer adds
                shape = (-1,) + (1,) * (last_weighted.weight.dim() - 1)
                last_weighted.weight.mul_(torch.from_numpy(r).reshape(shape))
                last_weighted.bias.mul_(torch.from_numpy(r))
            if idx == len(names) - 1:
                warnings.warn(f"IF node {name!r} after the last layer dropped: the scores are that layer's "
                              "integrated potentials, not its spike counts", UserWarning, stacklevel=2)
                continue
            layers.append(nn.ReLU())
            thetas.append(theta)
        elif isinstance(n, nir.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(n, nir.AvgPool2d):
            k = _pair(n.kernel_size, "kernel", name)
            if _pair(n.stride, "stride", name) != k or _pair(n.padding, "padding", name) != 0:
                raise NirImportError(f"node {name!r}: only average pools with stride = kernel and no padding import")
            layers.append(nn.AvgPool2d(k))
        elif isinstance(n, (nir.LIF, nir.CubaLIF, nir.LI)):
            raise NirImportError(f"node {name!r} ({type(n).__name__}) leaks; firstspike's neurons do not leak "
                                 "(IF only)")
        else:
            raise NirImportError(f"node {name!r}: {type(n).__name__} nodes do not import (supported: Affine, "
                                 "Linear, Conv2d, IF, Flatten, AvgPool2d)")
    if not layers or not isinstance(layers[-1], nn.Linear):
        raise NirImportError("the chain must end with an Affine or Linear layer (the class scores)")
    if input_shape is not None:
        layers.insert(0, nn.Unflatten(1, input_shape))
    return nn.Sequential(*layers).eval(), thetas, input_shape


def from_nir(graph, timing: Timing, *, input_theta: float = 1.0, initial: float = 0.0,
             name: str = "nir") -> SnnModel:
    """A NIR graph (``nir.NIRGraph``) as a rate_if model; weights rounded to their nearest log levels."""
    net, thetas, input_shape = network_from_nir(graph)
    return convert(net, timing, input_theta, thetas, name=name, neuron="rate_if", initial=initial,
                   info={"source": "NIR", "initial": initial})


def read_nir(path: str | os.PathLike, timing: Timing, **kwargs) -> SnnModel:
    """Read a NIR file (HDF5) and import it (``from_nir``)."""
    import nir
    path = Path(path)
    if not path.is_file():
        raise NirImportError(f"{path}: no such NIR file")
    try:
        graph = nir.read(str(path))
    except Exception as e:  # h5py and nir raise many types for a file that is not a NIR graph
        raise NirImportError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None
    return from_nir(graph, timing, name=kwargs.pop("name", path.stem), **kwargs)

"""Layer-wise calibration of initial potentials (stage II of two-stage conversion, Wang et al., TNNLS 2023).

A rate-coded layer's spikes lag the ANN: with T steps, what is left in the membrane at
the end (the residual potential) never becomes a spike. Layer by layer, on calibration
images, each channel's mean spike rate times its threshold is compared with the float
network's mean activation (clipped at the threshold, after pooling), and the channel's
initial potential moves by
the difference times T, in potential units (theta_c corresponds to TH_c): one more unit
of initial potential per TH_c / T brings the channel's rate up by 1 / T of a spike per step.
Earlier layers are calibrated first, so each layer sees the spikes of its calibrated
predecessors. The paper's surrogate-gradient weight fine-tuning (its step b) is not done.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .convert import ConversionError, network_stages
from .golden import GoldenModel
from .model import SnnModel
from .neurons import neuron_model

#: calibration images the SNN runs (they run through every layer once per layer)
MAX_IMAGES = 512
#: neuron models whose initial potential this calibrates (spike rate x threshold = activation); a
#: diff_if neuron's output is a running mean that weighs a spike at step t by 1 / t, which this
#: rule does not model
RATE_NEURONS = ("rate_if",)


@torch.no_grad()
def calibrate_initial(model: SnnModel, net, x: np.ndarray, input_shape=None, rounds: int = 1) -> SnnModel:
    """``model`` (converted from ``net``) with each hidden channel's initial potential moved so its
    mean rate on the flat inputs ``x`` matches the float network's mean activation."""
    bad = [layer.neuron for layer in model.layers if layer.neuron not in RATE_NEURONS]
    if bad:
        raise ConversionError(f"initial-potential calibration is for rate-coded neurons ({', '.join(RATE_NEURONS)}), "
                              f"not {bad[0]}")
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)[:MAX_IMAGES]
    stages = network_stages(net, input_shape)
    h = torch.from_numpy(x)
    targets = []
    for st, layer in zip(stages[:-1], model.layers):
        theta = torch.as_tensor(np.broadcast_to(np.asarray(layer.theta, dtype=np.float32), (layer.channels,)).copy())
        z = torch.relu(st.forward(h))
        z = torch.minimum(z, theta.reshape(1, -1, *([1] * (z.dim() - 2))))  # what a rate can reach
        h = st.pool_flat(z)
        targets.append(h.numpy())
    layers = list(model.layers)
    T = model.timing.T
    for k, target in enumerate(targets):
        for _ in range(rounds):
            current = SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers, name=model.name,
                               info=model.info)
            spikes = GoldenModel(current).run(x).spikes[k + 1]  # (b, T, n)
            layer = layers[k]
            c = layer.channels
            theta = np.broadcast_to(np.asarray(layer.theta, dtype=np.float64), (c,))
            rate = neuron_model(layer.neuron).spikes_per_neuron(spikes) / T
            snn = (rate.reshape(len(x), c, -1) * theta[None, :, None]).mean(axis=(0, 2))
            ann = target.reshape(len(x), c, -1).mean(axis=(0, 2))
            shift = np.round(T * (ann - snn) / theta * layer.thresholds).astype(np.int64)
            layers[k] = replace(layer, initial=layer.initial + shift)
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers, name=model.name,
                    info={**model.info, "initial_calibration": True})

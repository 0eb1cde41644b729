"""Layer-wise calibration of rate-coded layers (stage II of two-stage conversion, Wang et al., TNNLS 2023).

A rate-coded layer's spikes lag the ANN: with T steps, what is left in the membrane at
the end (the residual potential) never becomes a spike. Layer by layer, on calibration
images, each channel's mean spike rate times its threshold is compared with the float
network's mean activation (clipped at the threshold, after pooling), and the channel's
initial potential moves by the difference times T, in potential units (theta_c
corresponds to TH_c): one more unit of initial potential per TH_c / T brings the
channel's rate up by 1 / T of a spike per step (the paper's step a). Earlier layers are
calibrated first, so each layer sees the spikes of its calibrated predecessors.

With ``finetune`` the paper's step b follows for each layer: its weights, bias and initial
potentials train through the T steps with a surrogate spike gradient, the layer's input
spike trains fixed, to bring each neuron's rate to the float network's clipped activation.
The simulation runs in the layer's integer units in float64 (weights through the 5-bit log
quantiser, bias and initial potentials rounded, straight-through gradients), so its forward
pass is the golden model's arithmetic and its loss is the integer layer's own. The best
iterate is kept (the start included), then the initial potentials are calibrated again
(step c) if that lowers the loss. The loss is the mean squared rate error per neuron: the
paper's KL divergence between softmaxes is an output-layer loss, and a hidden layer's
channels are no distribution.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .ann import log_round
from .convert import ConversionError, network_stages
from .formats import MAG_BITS, ZERO_MAG, split_codes
from .golden import GoldenModel
from .model import SnnLayer, SnnModel
from .neurons import neuron_model

#: calibration images the SNN runs (they run through every layer once per layer)
MAX_IMAGES = 512
#: neuron models whose initial potential this calibrates (spike rate x threshold = activation); a
#: diff_if neuron's output is a running mean that weighs a spike at step t by 1 / t, which this
#: rule does not model
RATE_NEURONS = ("rate_if",)


#: surrogate-gradient steps per layer (full batch over the calibration images) and the Adam
#: step size, relative to each parameter's typical magnitude
FINETUNE_STEPS = 80
FINETUNE_LR = 0.01


def calibrate_initial(model: SnnModel, net, x: np.ndarray, input_shape=None, rounds: int = 1,
                      finetune: bool = False, steps: int = FINETUNE_STEPS) -> SnnModel:
    """``model`` (converted from ``net``) with each hidden channel's initial potential moved so its
    mean rate on the flat inputs ``x`` matches the float network's mean activation; with
    ``finetune`` also each layer's weights, bias and initial potentials fine-tuned (the module's
    docstring), ``steps`` surrogate-gradient steps per layer."""
    bad = [layer.neuron for layer in model.layers if layer.neuron not in RATE_NEURONS]
    if bad:
        raise ConversionError(f"initial-potential calibration is for rate-coded neurons ({', '.join(RATE_NEURONS)}), "
                              f"not {bad[0]}")
    if finetune and any(layer.shortcut is not None for layer in model.layers):
        raise ConversionError("layer-wise fine-tuning does not handle residual shortcuts yet")
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)[:MAX_IMAGES]
    targets = _clipped_activations(model, net, x, input_shape)
    layers = list(model.layers)
    for k, target in enumerate(targets):
        for _ in range(rounds):
            layers[k] = _shifted_initial(layers[k], _layer_rates(model, layers, k, x), target, model.timing.T)
        if finetune:  # one golden run per candidate: its input trains, or its rates
            spikes = GoldenModel(_with(model, layers)).run(x).spikes
            rate_target = target / _theta(layers[k])[None, :].repeat(target.shape[1] // layers[k].channels, 1)
            tuned = finetune_layer(layers[k], spikes[k], rate_target, model.timing, steps)
            tuned_rates = _layer_rates(model, layers[:k] + [tuned], k, x)
            again = _shifted_initial(tuned, tuned_rates, target, model.timing.T)
            candidates = [layers[k], tuned, again]
            rates = [_rates(layers[k], spikes[k + 1], model.timing.T), tuned_rates,
                     _layer_rates(model, layers[:k] + [again], k, x)]
            layers[k] = candidates[int(np.argmin([_rate_error(r, rate_target) for r in rates]))]
    info = {**model.info, "initial_calibration": True}
    if finetune:
        info["layer_finetune"] = True
    return _with(model, layers, info)


def _with(model: SnnModel, layers: list[SnnLayer], info: dict | None = None) -> SnnModel:
    """``model`` with its first layers replaced by ``layers``."""
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers + model.layers[len(layers):],
                    name=model.name, info=model.info if info is None else info)


def _theta(layer: SnnLayer) -> np.ndarray:
    return np.broadcast_to(np.asarray(layer.theta, dtype=np.float64), (layer.channels,))


@torch.no_grad()
def _clipped_activations(model: SnnModel, net, x: np.ndarray, input_shape) -> list[np.ndarray]:
    """Per hidden layer, the float network's activations clipped at each channel's threshold,
    after pooling: what the layer's rate x theta should be (images, neurons)."""
    h = torch.from_numpy(x)
    targets = []
    for st, layer in zip(network_stages(net, input_shape)[:-1], model.layers):
        theta = torch.as_tensor(_theta(layer).astype(np.float32).copy())
        z = torch.relu(st.forward(h))
        z = torch.minimum(z, theta.reshape(1, -1, *([1] * (z.dim() - 2))))  # what a rate can reach
        h = st.pool_flat(z)
        targets.append(h.numpy().astype(np.float64))
    return targets


def _layer_rates(model: SnnModel, layers: list[SnnLayer], k: int, x: np.ndarray) -> np.ndarray:
    """Rates (images, neurons) of hidden layer k of ``model`` with its first layers ``layers``."""
    return _rates(layers[k], GoldenModel(_with(model, layers)).run(x).spikes[k + 1], model.timing.T)


def _rates(layer: SnnLayer, spikes: np.ndarray, T: int) -> np.ndarray:
    """Rates (images, neurons) of ``layer``'s output ``spikes``."""
    return neuron_model(layer.neuron).spikes_per_neuron(spikes) / T


def _rate_error(rates: np.ndarray, target_rates: np.ndarray) -> float:
    return float(np.mean((rates - target_rates) ** 2))


def _shifted_initial(layer: SnnLayer, rates: np.ndarray, target: np.ndarray, T: int) -> SnnLayer:
    """Step a (and c): each channel's initial potential moved by T x its mean activation gap."""
    c, theta = layer.channels, _theta(layer)
    snn = (rates.reshape(len(rates), c, -1) * theta[None, :, None]).mean(axis=(0, 2))
    ann = target.reshape(len(target), c, -1).mean(axis=(0, 2))
    shift = np.round(T * (ann - snn) / theta * layer.thresholds).astype(np.int64)
    return replace(layer, initial=layer.initial + shift)


class _Spike(torch.autograd.Function):
    """V >= TH; the gradient of a triangle of half-width TH around the threshold."""

    @staticmethod
    def forward(ctx, v, th):
        ctx.save_for_backward(v, th)
        return (v >= th).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        v, th = ctx.saved_tensors
        return grad * torch.clamp(1 - (v - th).abs() / th, min=0) / th, None


def _straight(value: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return value + (exact - value).detach()


def _weight_units(layer: SnnLayer, timing) -> np.ndarray:
    """What a spike adds through each weight, in accumulator units: +-(2**F >> m), 0 for the zero code."""
    sign, mag = split_codes(layer.weights)
    table = timing.contribution_table()[:, 0].astype(np.float64)  # slot 0: a binary spike
    return np.where(sign == 1, -1.0, 1.0) * table[mag]


def simulate_rates(layer: SnnLayer, trains: torch.Tensor, w: torch.Tensor, bias: torch.Tensor,
                   initial: torch.Tensor) -> torch.Tensor:
    """Rates (images, neurons after pooling) of rate_if ``layer`` on input ``trains`` (images, T,
    n_in), with weights ``w`` in accumulator units, per-channel ``bias`` and ``initial``: the
    golden model's integer arithmetic in float64 (exact: every value is an integer far below
    2**53), differentiable through a surrogate spike gradient."""
    n, T = trains.shape[:2]
    per = layer.n_neurons // layer.channels
    th = torch.from_numpy(np.repeat(layer.thresholds.astype(np.float64), per))
    v = initial.repeat_interleave(per).expand(n, -1)
    b = bias.repeat_interleave(per)
    counts = torch.zeros_like(v)
    for t in range(T):
        if layer.kind == "conv":
            i = torch.nn.functional.conv2d(trains[:, t].reshape(n, *layer.in_shape), w, stride=layer.stride,
                                           padding=layer.padding).reshape(n, -1)
        else:
            i = trains[:, t] @ w.T
        v = v + i + b
        spike = _Spike.apply(v, th)
        v = v - th * spike
        counts = counts + spike
    if layer.pool > 1:  # rate max pooling: the window's largest count (rate_if.pool_trains)
        counts = torch.nn.functional.max_pool2d(counts.reshape(n, *layer.conv_shape), layer.pool).reshape(n, -1)
    return counts / T


def finetune_layer(layer: SnnLayer, trains: np.ndarray, target_rates: np.ndarray, timing, steps: int,
                   lr: float | None = None) -> SnnLayer:
    """Step b: ``layer`` with weights, bias and initial potentials that bring its rates on the
    input spike trains ``trains`` (images, T, n_in) closer to ``target_rates`` (images, neurons);
    the best of ``steps`` Adam steps, the unchanged layer included."""
    lr = FINETUNE_LR if lr is None else lr
    F = timing.frac_bits
    w0 = _weight_units(layer, timing)
    params = [torch.tensor(w0, requires_grad=True), torch.tensor(layer.bias.astype(np.float64), requires_grad=True),
              torch.tensor(layer.initial.astype(np.float64), requires_grad=True)]
    nonzero = np.abs(w0[w0 != 0])
    opt = torch.optim.Adam([{"params": params[:1], "lr": lr * (float(nonzero.mean()) if nonzero.size else 1.0)},
                            {"params": params[1:], "lr": lr * float(np.mean(layer.thresholds))}])
    s = torch.from_numpy(np.asarray(trains, dtype=np.float64))
    target = torch.from_numpy(np.asarray(target_rates, dtype=np.float64))
    best, best_error = None, float("inf")
    for _ in range(steps + 1):
        w, b, v0 = params
        q = log_round(w, F)  # 2**(F - m); the synapse adds 2**F >> m, its floor
        loss = torch.mean((simulate_rates(layer, s, _straight(w, torch.sign(q) * torch.floor(q.abs())),
                                          _straight(b, torch.round(b)), _straight(v0, torch.round(v0))) - target) ** 2)
        if loss.item() < best_error:
            best, best_error = (q.detach().clone(), torch.round(b).detach(), torch.round(v0).detach()), loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    q, b, v0 = (v.numpy() for v in best)
    zero = q == 0
    m = np.where(zero, ZERO_MAG, F - np.round(np.log2(np.where(zero, 1.0, np.abs(q))))).astype(np.int64)
    codes = ((np.where(zero, 0, q < 0).astype(np.int64) << MAG_BITS) | m).astype(np.uint8)
    return replace(layer, weights=codes, bias=b.astype(np.int64), initial=v0.astype(np.int64))

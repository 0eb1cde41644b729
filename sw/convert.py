"""ANN-to-SNN conversion: threshold calibration and quantisation to the integer model.

Supported networks: alternating Linear, ReLU, ..., Linear, given as an ``nn.Sequential``
or as any ``nn.Module`` whose torch.fx graph is such a chain (sw/graph.py: functional
ReLU, Flatten/view, Dropout, BatchNorm1d folded into the Linear before it). Anything
else raises ConversionError naming the layer and where it sits.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .formats import (Timing, decode_spike_times, encode_spike_times, encode_weights, threshold_table,
                      weight_scale_for)
from .model import SnnLayer, SnnModel

CALIBRATIONS = ("max", "percentile", "iteration")
_PASSED_OVER = (nn.Dropout, nn.Identity, nn.Flatten)


class ConversionError(ValueError):
    """The network cannot be converted; the message says which layer and why."""


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a supported network, checked for the Linear/ReLU pattern.

    A Sequential of Linear/ReLU (and no-op layers) is read directly; any other module is
    traced with torch.fx (sw/graph.py), which also folds BatchNorm1d.
    """
    if not (isinstance(net, nn.Sequential) and all(isinstance(m, (nn.Linear, nn.ReLU) + _PASSED_OVER)
                                                   for m in net)):
        from .graph import canonical_mlp
        net = canonical_mlp(net)
    linears: list[nn.Linear] = []
    expect_linear = True
    for idx, (name, mod) in enumerate(net.named_children()):
        where = f"at position {idx} ('{name}')"
        if isinstance(mod, _PASSED_OVER):
            continue
        if isinstance(mod, nn.Linear):
            if not expect_linear:
                raise ConversionError(f"Linear {where} follows another Linear without a ReLU between them")
            linears.append(mod)
            expect_linear = False
        elif isinstance(mod, nn.ReLU):
            if expect_linear:
                raise ConversionError(f"ReLU {where} must follow a Linear layer")
            expect_linear = True
        else:
            raise ConversionError(f"unsupported layer {type(mod).__name__} {where}; "
                                  "supported: Linear, ReLU (Dropout, Identity, Flatten are passed over)")
    if not linears:
        raise ConversionError("the network has no Linear layer")
    if expect_linear:
        raise ConversionError("the network must end with a Linear layer (the class scores), not a ReLU")
    return linears


@torch.no_grad()
def hidden_preactivations(net: nn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Inputs of every hidden ReLU of the float network (batch, width), one array per layer."""
    linears = linear_layers(net)
    h = torch.as_tensor(x, dtype=torch.float32)
    outs = []
    for k, lin in enumerate(linears[:-1]):
        h = lin(h)
        outs.append(h.numpy().astype(np.float64))
        h = torch.relu(h)
    return outs


def hidden_activations(net: nn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """ReLU outputs of every hidden layer of the float network, one array per layer."""
    return [np.maximum(z, 0.0) for z in hidden_preactivations(net, x)]


def gaussian_ttfs_error(theta: float, mu: np.ndarray, sigma: np.ndarray, timing: Timing, points: int = 801) -> float:
    """Expected squared error E[(Q(x) - ReLU(x))^2], summed over channels, for x ~ N(mu, sigma^2).

    Q is the TTFS quantiser of the spec (round down to theta * 2**(-t/B), clip at theta,
    zero below the last level). Gauss-Hermite-free quadrature on a fixed grid of +-6 sigma.
    """
    z = np.linspace(-6.0, 6.0, points)
    w = np.exp(-z * z / 2)
    w /= w.sum()
    x = mu[:, None] + np.maximum(sigma, 1e-12)[:, None] * z[None, :]
    q = decode_spike_times(encode_spike_times(np.maximum(x, 0.0), theta, timing), theta, timing)
    return float((((q - np.maximum(x, 0.0)) ** 2) * w).sum())


def threshold_iteration(pre: np.ndarray, timing: Timing) -> float:
    """The threshold minimising quantisation + clipping error under a per-channel Gaussian fit.

    The differential-coding paper iterates a closed-form fixed point for a uniform grid;
    TTFS levels are logarithmic, so this searches the same objective directly: a log-spaced
    scan, then golden-section refinement around the best point. One threshold per layer
    (the hardware has one table per layer), so the channel errors are summed.
    """
    mu, sigma = pre.mean(axis=0), pre.std(axis=0)
    top = float(np.max(mu + 4 * sigma))
    if not top > 0:
        raise ConversionError("pre-activations are never positive: no threshold can be fitted")
    grid = np.geomspace(top * 1e-3, top * 2, 64)
    errors = [gaussian_ttfs_error(t, mu, sigma, timing) for t in grid]
    i = int(np.argmin(errors))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = gaussian_ttfs_error(np.exp(a), mu, sigma, timing), gaussian_ttfs_error(np.exp(b), mu, sigma, timing)
    for _ in range(30):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = gaussian_ttfs_error(np.exp(a), mu, sigma, timing)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = gaussian_ttfs_error(np.exp(b), mu, sigma, timing)
    best = float(np.exp((lo + hi) / 2))
    return best if gaussian_ttfs_error(best, mu, sigma, timing) <= errors[i] else float(grid[i])


def calibrate(net: nn.Sequential, x: np.ndarray, method: str = "percentile",
              percentile: float = 99.9, timing: Timing | None = None) -> list[float]:
    """Hidden-layer thresholds from float activation statistics on calibration inputs.

    ``max``: the largest activation; ``percentile``: that percentile of the positive
    activations (clipping the rare outliers buys resolution for the rest); ``iteration``:
    threshold iteration, the minimum expected quantisation + clipping error on the TTFS
    grid of ``timing`` under a Gaussian fit of each channel's pre-activations.
    """
    if method not in CALIBRATIONS:
        raise ConversionError(f"unknown calibration {method!r}; choose one of {', '.join(CALIBRATIONS)}")
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must be in (0, 100], not {percentile!r}")
    if method == "iteration":
        if timing is None:
            raise ConversionError("threshold iteration needs the timing (T, B) the SNN will use")
        return [threshold_iteration(pre, timing) for pre in hidden_preactivations(net, x)]
    thetas = []
    for k, act in enumerate(hidden_activations(net, x)):
        pos = act[act > 0]
        if pos.size == 0:
            raise ConversionError(f"hidden layer {k} is never active on the calibration data")
        thetas.append(float(pos.max() if method == "max" else np.percentile(pos, percentile)))
    return thetas


def convert(net: nn.Sequential, timing: Timing, input_theta: float, thetas: list[float],
            name: str = "snn", info: dict | None = None) -> SnnModel:
    """Quantise a float network with given thresholds into the integer SNN of docs/spec.md.

    Layer k's accumulator unit is theta_{k-1} * 2**(s_k - F) (theta_{-1} = input_theta);
    the bias is rounded half away from zero to that unit and the threshold table is
    TH[t] = ceil(theta_k / unit * 2**(-t/B)).
    """
    linears = linear_layers(net)
    if len(thetas) != len(linears) - 1:
        raise ConversionError(f"need one threshold per hidden layer ({len(linears) - 1}), got {len(thetas)}")
    for k, th in enumerate(thetas):
        if not (np.isfinite(th) and th > 0):
            raise ConversionError(f"threshold of hidden layer {k} must be positive, not {th!r}")
    layers = []
    theta_prev = float(input_theta)
    for k, lin in enumerate(linears):
        w = lin.weight.detach().cpu().double().numpy()
        b = (lin.bias.detach().cpu().double().numpy() if lin.bias is not None
             else np.zeros(w.shape[0]))
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ConversionError(f"Linear layer {k} has NaN or infinite parameters")
        s = weight_scale_for(w)
        unit = theta_prev * 2.0 ** (s - timing.frac_bits)
        bias = (np.sign(b) * np.floor(np.abs(b) / unit + 0.5)).astype(np.int64)
        hidden = k < len(linears) - 1
        layers.append(SnnLayer(weights=encode_weights(w, s), bias=bias,
                               thresholds=threshold_table(thetas[k] / unit, timing) if hidden else None,
                               weight_scale=s, theta=thetas[k] if hidden else None, unit=unit))
        if hidden:
            theta_prev = thetas[k]
    return SnnModel(timing=timing, input_theta=float(input_theta), layers=layers, name=name, info=info or {})

"""ANN-to-SNN conversion: threshold calibration and quantisation to the integer model.

Supported networks: any ``nn.Module`` whose torch.fx graph is a chain of Conv2d, Linear,
ReLU, MaxPool2d, AvgPool2d (AdaptiveAvgPool2d where it divides evenly), BatchNorm (folded),
Flatten/Unflatten and no-ops, with residual blocks (identity or Conv2d shortcuts: a stage's
``shortcut``, docs/spec.md section 14) (sw/graph.py).
The chain is cut into stages: a weighted layer (Conv2d or Linear), then for hidden stages
a ReLU and an optional max pool. Average pools are linear: they are folded into the next
weighted layer (kernel and stride multiplied by the pool size, weights divided by its
area), so the SNN never runs them. Anything else raises ConversionError naming the layer
and where it sits.
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .formats import (FormatError, Timing, decode_spike_times, decode_weights, encode_spike_times,
                      encode_weights, weight_scale_for)
from .model import MAX_ACC_BITS, Shortcut, SnnLayer, SnnModel
from .neurons import DEFAULT_NEURON, coding_of, neuron_model, rate_if
from .rounding import MAX_IMAGES, adaptive_codes

CALIBRATIONS = ("max", "percentile", "iteration")
#: accuracy lost by conversion (a fraction) above which the API and the CLI warn and suggest CAT
LOSS_WARNING = 0.01


class ConversionError(FirstspikeError, ValueError):
    """The network cannot be converted; the message says which layer and why."""


@dataclass
class StageShortcut:
    """A residual connection into a stage (docs/spec.md, section 14): spike source ``source``
    (0 the input, j + 1 hidden stage j's output) through ``layer``, a Conv2d (an identity
    shortcut is a 1x1 conv with unit weights on the diagonal and no bias)."""

    source: int
    layer: nn.Conv2d
    in_shape: tuple[int, int, int]  #: (C, H, W) of the source's spikes

    def forward(self, h: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = self.layer.weight if weight is None else weight
        return nn.functional.conv2d(h.reshape(-1, *self.in_shape), w, self.layer.bias,
                                    stride=self.layer.stride, padding=self.layer.padding)

    def fan_in_samples(self, h: torch.Tensor) -> np.ndarray:
        """What each output position multiplies with the shortcut's weights (rows, fan_in): the
        rows of the stage's own fan_in_samples, since both sets add into the same outputs."""
        return _conv_fan_in(h, self.layer, self.in_shape)


def _conv_fan_in(h: torch.Tensor, conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> np.ndarray:
    """Each output position's inputs to ``conv`` (rows: images x positions, fan_in in (c, ky, kx) order)."""
    cols = nn.functional.unfold(h.reshape(-1, *in_shape), conv.kernel_size, padding=conv.padding,
                                stride=conv.stride)  # (N, fan_in, P)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).double().numpy()


@dataclass
class Stage:
    """One SNN layer in float form: a weighted layer, its ReLU (hidden) and max pool, and a
    residual shortcut whose output adds to its pre-activation."""

    layer: nn.Linear | nn.Conv2d  #: average pools already folded in
    in_shape: tuple[int, int, int]  #: (C, H, W) of the spikes it reads
    hidden: bool
    pool: int = 1
    shortcut: StageShortcut | None = None

    @property
    def kind(self) -> str:
        return "conv" if isinstance(self.layer, nn.Conv2d) else "linear"

    def forward(self, h: torch.Tensor, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, sources: list | None = None,
                shortcut_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activations from flat inputs (batch, C*H*W); ``weight`` and ``bias`` replace the layer's.
        With a shortcut, ``sources`` holds every spike source's flat values so far (the input,
        then each hidden stage's pooled output), and ``shortcut_weight`` may replace its weights."""
        w = self.layer.weight if weight is None else weight
        b = self.layer.bias if bias is None else bias
        if self.kind == "conv":
            z = nn.functional.conv2d(h.reshape(-1, *self.in_shape), w, b,
                                     stride=self.layer.stride, padding=self.layer.padding)
        else:
            z = nn.functional.linear(h.reshape(h.shape[0], -1), w, b)
        if self.shortcut is not None:
            if sources is None:
                raise ConversionError("a stage with a residual shortcut needs its source's values (sources)")
            z = z + self.shortcut.forward(sources[self.shortcut.source], shortcut_weight)
        return z

    def fan_in_samples(self, h: torch.Tensor) -> np.ndarray:
        """What each output position multiplies with the weights: (rows, fan_in) in (c, ky, kx) order."""
        if self.kind != "conv":
            return h.reshape(h.shape[0], -1).double().numpy()
        return _conv_fan_in(h, self.layer, self.in_shape)

    def pool_flat(self, a: torch.Tensor) -> torch.Tensor:
        """Max pool of the activations (if any), flattened for the next stage."""
        if self.pool > 1:
            a = nn.functional.max_pool2d(a, self.pool)
        return a.reshape(a.shape[0], -1)


def _fold_avgpool(layer: nn.Module, k: int, shape: tuple[int, int, int], where: str) -> nn.Module:
    """``layer(avg_pool(x, k))`` as one layer on x (exact in float)."""
    c, h, w = shape
    if h % k or w % k:
        raise ConversionError(f"AvgPool2d({k}) before {where}: the {h}x{w} input is not a multiple of {k}, "
                              "so the pool cannot be folded into the next layer")
    with torch.no_grad():
        if isinstance(layer, nn.Conv2d):
            kk = layer.kernel_size[0] * k
            folded = nn.Conv2d(layer.in_channels, layer.out_channels, kk, stride=layer.stride[0] * k,
                               padding=layer.padding[0] * k, bias=layer.bias is not None)
            wt = layer.weight.repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k)
        else:
            folded = nn.Linear(c * h * w, layer.out_features, bias=layer.bias is not None)
            wt = layer.weight.reshape(-1, c, h // k, w // k)
            wt = (wt.repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k)).reshape(layer.out_features, -1)
        folded.weight.copy_(wt)
        if layer.bias is not None:
            folded.bias.copy_(layer.bias)
    return folded


def network_stages(net: nn.Module | list, input_shape: tuple[int, int, int] | None = None) -> list[Stage]:
    """The stages of a supported network (a list of stages is returned as it is).

    ``input_shape`` (C, H, W) is needed for conv nets whose first op is not an
    ``nn.Unflatten``/``view`` giving the flat input its image shape.
    """
    if isinstance(net, list):
        return net
    from .graph import ResidualAdd, canonical_network
    seq = canonical_network(net)
    stages: list[Stage] = []
    shape = tuple(input_shape) if input_shape is not None else None  # shape of the spikes flowing
    flat = input_shape is None
    avg = 1  # pending average pool, folded into the next weighted layer
    expect_weighted = True
    sources = {0: 0}  # chain position -> spike source whose values flow there (for residual adds)
    source_shapes = [shape]  # per spike source, its (C, H, W)
    for idx, mod in enumerate(seq):
        where = f"{type(mod).__name__} at position {idx} of the layer chain"
        if isinstance(mod, ResidualAdd):
            _attach_shortcut(stages, mod, sources, source_shapes, shape, expect_weighted, where)
            continue
        if isinstance(mod, nn.Unflatten):
            size = tuple(int(v) for v in mod.unflattened_size)
            if stages or avg > 1 or len(size) != 3:
                raise ConversionError(f"{where}: only the flat input may be given an image shape (C, H, W)")
            if shape is not None and int(np.prod(shape)) != int(np.prod(size)):
                raise ConversionError(f"{where}: input of {int(np.prod(shape))} values cannot be viewed as {size}")
            shape, flat = size, False
            source_shapes[0] = shape
            sources[idx + 1] = 0
        elif isinstance(mod, nn.Flatten):
            flat = True
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            if not expect_weighted:
                raise ConversionError(f"{where} follows another weighted layer without a ReLU between them")
            if isinstance(mod, nn.Conv2d):
                if shape is None or flat and shape[1:] == (1, 1) and stages:
                    raise ConversionError(f"{where}: a convolution needs image-shaped input; add nn.Unflatten "
                                          "before it or give input_shape")
                if mod.in_channels != shape[0]:
                    raise ConversionError(f"{where} expects {mod.in_channels} channels, gets {shape[0]}")
                if avg > 1:
                    mod = _fold_avgpool(mod, avg, shape, where)
                c, h, w = shape
                k, s, p = mod.kernel_size[0], mod.stride[0], mod.padding[0]
                out = (mod.out_channels, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
                if min(out[1:]) < 1:
                    raise ConversionError(f"{where}: kernel {k} does not fit the {h}x{w} input")
            else:
                if shape is None:
                    shape = (mod.in_features, 1, 1)
                if not flat and shape[1:] != (1, 1):
                    raise ConversionError(f"{where} needs flat input; add nn.Flatten before it")
                if avg > 1 and (shape[1] % avg or shape[2] % avg):
                    raise ConversionError(f"AvgPool2d({avg}) before {where}: the {shape[1]}x{shape[2]} input is "
                                          f"not a multiple of {avg}, so the pool cannot be folded into the next layer")
                pooled = int(np.prod(shape)) // (avg * avg)
                if mod.in_features != pooled:
                    raise ConversionError(f"{where} has {mod.in_features} inputs but receives {pooled}")
                if avg > 1:
                    mod = _fold_avgpool(mod, avg, shape, where)
                out = (mod.out_features, 1, 1)
            stages.append(Stage(layer=mod, in_shape=shape, hidden=False))
            shape, avg, expect_weighted = out, 1, False
            flat = isinstance(mod, nn.Linear)
        elif isinstance(mod, nn.ReLU):
            if expect_weighted or stages[-1].hidden:
                raise ConversionError(f"{where} must follow a Linear or Conv2d layer")
            stages[-1].hidden = True
            expect_weighted = True
            sources[idx + 1] = len(stages)  # hidden stage j's output is spike source j + 1
            source_shapes.append(shape)
        elif isinstance(mod, nn.MaxPool2d):
            k = mod.kernel_size
            if not stages or stages[-1].kind != "conv" or stages[-1].pool > 1 or avg > 1:
                raise ConversionError(f"{where} must follow a Conv2d (and its ReLU); one pool per layer")
            if shape[1] < k or shape[2] < k:
                raise ConversionError(f"{where}: pool {k} is larger than the {shape[1]}x{shape[2]} input")
            stages[-1].pool = k
            shape = (shape[0], shape[1] // k, shape[2] // k)
            sources = {p: j for p, j in sources.items() if j != len(stages)}  # the unpooled values are no source
            sources[idx + 1] = len(stages)
            source_shapes[-1] = shape
        elif isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            if shape is None or flat or not expect_weighted or avg > 1:
                raise ConversionError(f"{where} must follow a Conv2d's ReLU (or the image input)")
            if isinstance(mod, nn.AvgPool2d):
                avg = mod.kernel_size
            else:  # an adaptive pool is an average pool when its output size divides the input evenly
                o, (h, w) = mod.output_size, shape[1:]
                if h % o or w % o or h // o != w // o:
                    raise ConversionError(f"{where}: output size {o} does not divide the {h}x{w} input into equal "
                                          "square windows, so it is not an average pool")
                avg = h // o
        else:  # canonical_network returns nothing else
            raise ConversionError(f"unsupported layer {where}")
    if not stages:
        raise ConversionError("the network has no Linear or Conv2d layer")
    if expect_weighted or avg > 1:
        raise ConversionError("the network must end with a Linear layer (the class scores), not a ReLU or pool")
    if stages[-1].kind != "linear":
        raise ConversionError("the network must end with a Linear layer (the class scores)")
    if any(st.pool > 1 and not st.hidden for st in stages):
        raise ConversionError("a max pool must come with a ReLU")
    return stages


def _attach_shortcut(stages: list[Stage], add, sources: dict, source_shapes: list, shape: tuple,
                     expect_weighted: bool, where: str) -> None:
    """Give the stage just built the residual add's shortcut (docs/spec.md, section 14)."""
    if expect_weighted or not stages or stages[-1].kind != "conv" or stages[-1].shortcut is not None:
        raise ConversionError(f"{where}: a residual add must follow a Conv2d (and its BatchNorm), before its ReLU")
    if add.source not in sources:
        raise ConversionError(f"{where}: the shortcut starts from a value that is not a layer's output after its "
                              "ReLU and pooling (or the input), so the SNN has no spikes of it")
    source = sources[add.source]
    src_shape = source_shapes[source]
    conv = add.branch
    if conv is None:  # identity: a 1x1 conv with unit weights on the diagonal, which training leaves alone
        if src_shape != shape:
            raise ConversionError(f"{where}: an identity shortcut from a {src_shape} value cannot add to {shape}")
        conv = nn.Conv2d(shape[0], shape[0], 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(shape[0]).reshape(shape[0], shape[0], 1, 1))
        conv.weight.requires_grad_(False)
    else:
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        out = (conv.out_channels, (src_shape[1] + 2 * p - k) // s + 1, (src_shape[2] + 2 * p - k) // s + 1)
        if conv.in_channels != src_shape[0] or out != shape:
            raise ConversionError(f"{where}: the shortcut's Conv2d maps {src_shape} to "
                                  f"{(conv.out_channels, *out[1:])}, not the layer's {shape}")
    stages[-1].shortcut = StageShortcut(source=source, layer=conv, in_shape=src_shape)


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a supported MLP (ConversionError for conv nets)."""
    stages = network_stages(net)
    if any(st.kind == "conv" for st in stages):
        raise ConversionError("this network has convolutions; use network_stages")
    return [st.layer for st in stages]


@torch.no_grad()
def hidden_preactivations(net, x: np.ndarray, input_shape=None, batch: int = 512) -> list[np.ndarray]:
    """Inputs of every hidden ReLU of the float network, one (samples, channels) array per layer.

    For conv layers every position is a sample of its channel.
    """
    stages = network_stages(net, input_shape)
    outs: list[list[np.ndarray]] = [[] for st in stages if st.hidden]
    for start in range(0, len(x), batch):
        h = torch.as_tensor(x[start:start + batch], dtype=torch.float32)
        sources = [h]  # every spike source's values, for residual shortcuts
        for k, st in enumerate(stages[:-1]):
            z = st.forward(h, sources=sources)
            zz = z.transpose(1, -1).reshape(-1, z.shape[1]) if z.dim() == 4 else z
            outs[k].append(zz.numpy().astype(np.float64))
            h = st.pool_flat(torch.relu(z))
            sources.append(h)
    return [np.concatenate(o) for o in outs]


def hidden_activations(net, x: np.ndarray, input_shape=None) -> list[np.ndarray]:
    """ReLU outputs of every hidden layer of the float network, one array per layer."""
    return [np.maximum(z, 0.0) for z in hidden_preactivations(net, x, input_shape)]


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


def check_finite_parameters(stages: list[Stage]) -> None:
    """ConversionError naming the first layer with a NaN or infinite weight or bias."""
    for k, st in enumerate(stages):
        for name, t in (("weights", st.layer.weight), ("bias", st.layer.bias)):
            if t is not None and not bool(torch.isfinite(t).all()):
                raise ConversionError(f"{type(st.layer).__name__} layer {k} has NaN or infinite {name}")


#: the most hidden activation values ``calibrate`` reads (the first images of its inputs that
#: hold this many): 4 GB as float64 samples. Every MNIST benchmark network calibrates on its
#: whole 8,000-image training set; VGG-11 at width 0.25 on 14,000 CIFAR-10 images, where all
#: 50,000 would need 15 GB (and twice that while the ReLU is applied)
CALIBRATE_VALUES = 1 << 29


def calibrate(net, x: np.ndarray, method: str = "percentile",
              percentile: float = 99.9, timing: Timing | None = None, input_shape=None,
              neuron: str = DEFAULT_NEURON, values: int | None = None) -> list:
    """Hidden-layer thresholds from float activation statistics on calibration inputs.

    ``max``: the largest activation; ``percentile``: that percentile of the positive
    activations (clipping the rare outliers buys resolution for the rest); ``iteration``:
    threshold iteration, the minimum expected quantisation + clipping error under a
    Gaussian fit of each channel's pre-activations, on the grid of ``neuron``'s coding:
    one threshold per layer on the TTFS grid of ``timing`` (ttfs: one table per layer),
    one per channel on the rate grid of T steps (rate_if, diff_if). Other methods give one float
    per hidden layer. A large network reads the first images of ``x`` that hold ``values``
    activations (None: CALIBRATE_VALUES).
    """
    if method not in CALIBRATIONS:
        raise ConversionError(f"unknown calibration {method!r}; choose one of {', '.join(CALIBRATIONS)}")
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must be in (0, 100], not {percentile!r}")
    coding = coding_of(neuron)
    check_finite_parameters(network_stages(net, input_shape))
    from .ann import calibration_images
    x = x[:calibration_images(net, x, input_shape, CALIBRATE_VALUES if values is None else values)]
    if method == "iteration":
        if timing is None:
            raise ConversionError("threshold iteration needs the timing (T, B) the SNN will use")
        pres = hidden_preactivations(net, x, input_shape)
        if coding in ("rate", "diff"):  # one threshold per channel on the grid of T rate levels
            return [rate_if.threshold_iteration(pre, timing.T) for pre in pres]
        return [threshold_iteration(pre, timing) for pre in pres]
    thetas = []
    for k, act in enumerate(hidden_activations(net, x, input_shape)):
        pos = act[act > 0]
        if pos.size == 0:
            raise ConversionError(f"hidden layer {k} is never active on the calibration data")
        thetas.append(float(pos.max() if method == "max" else np.percentile(pos, percentile)))
    return thetas


def _spike_values(a: torch.Tensor, theta, timing: Timing, coding: str) -> torch.Tensor:
    """What a hidden layer's spikes stand for, as adaptive rounding's next layer sees them: the
    TTFS levels of ``a`` (rounded down to theta * 2**(-t/B), clipped, zero below the last
    level), so each layer's bias also absorbs what the levels round away, layer by layer
    (on a deep residual network the round-down compounds: digits ResNet-8 at T=16, B=2, 89.5
    % without this, 98.4 % with it). Other codings pass ``a`` on (their IF dynamics are no
    per-value quantiser)."""
    if coding != "ttfs":
        return a
    th = float(np.max(theta))
    return torch.from_numpy(decode_spike_times(encode_spike_times(a.double().numpy(), th, timing), th, timing)).float()


ROUNDINGS = ("nearest", "adaptive")


#: the weight rounding of a training-free (calibrated) conversion, residual networks included
#: (a layer's and its shortcut's weights are rounded together); CAT trained for "nearest"
CALIBRATED_ROUNDING = "adaptive"


def convert_calibrated(net, x: np.ndarray, method: str, timing: Timing, input_theta: float = 1.0, *,
                       percentile: float = 99.9, input_shape=None, neuron: str = DEFAULT_NEURON,
                       rounding: str = CALIBRATED_ROUNDING, **options) -> SnnModel:
    """A training-free conversion: thresholds calibrated by ``method`` on inputs ``x`` (flat
    rows), and the weights rounded by ``rounding`` on the same inputs. ``options`` go to
    ``convert`` (name, info, the neuron model's options)."""
    thetas = calibrate(net, x, method, percentile, timing=timing, input_shape=input_shape, neuron=neuron)
    return convert(net, timing, input_theta, thetas, input_shape=input_shape, neuron=neuron, rounding=rounding,
                   calibration_data=x, **options)


@torch.no_grad()
def convert(net, timing: Timing, input_theta: float, thetas: list, name: str = "snn", info: dict | None = None,
            input_shape=None, neuron: str = DEFAULT_NEURON, rounding: str = "nearest", calibration_data=None,
            **options) -> SnnModel:
    """Quantise a float network (or its stages) with given thresholds into the integer SNN.

    ``neuron`` names the neuron model of every layer (sw/neurons); ``thetas`` holds one
    threshold per hidden layer (a float, or one per channel where the model allows it);
    ``options`` go to the neuron model (rate_if: ``initial``, the initial potential as a
    fraction of the threshold). The neuron model folds what an input spike stands for
    into the weights or the unit: ttfs: layer k's accumulator unit is
    theta_{k-1} * 2**(s_k - F) (theta_{-1} = input_theta); rate_if: the weights are
    scaled by their source channel's threshold and the unit is 2**(s_k - F). The bias is
    rounded half away from zero to that unit; the neuron model turns the threshold into
    integers (docs/spec.md).

    ``rounding``: "nearest" rounds every weight to its nearest log level; "adaptive"
    (sw/rounding.py) picks, layer by layer, the neighbouring level that brings the layer's
    outputs, on ``calibration_data`` (flat inputs) run through the already rounded layers,
    closest to the float network's, and moves the mean error into the bias.
    """
    if rounding not in ROUNDINGS:
        raise ConversionError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    if rounding == "adaptive" and calibration_data is None:
        raise ConversionError("adaptive rounding needs calibration_data (the inputs it measures the error on)")
    try:
        model_of = neuron_model(neuron)
    except FormatError as e:
        raise ConversionError(str(e)) from None
    unknown = sorted(set(options) - set(model_of.OPTIONS))
    if unknown:
        raise ConversionError(f"{neuron} neurons take no option {', '.join(unknown)}"
                              + (f" (they take {', '.join(model_of.OPTIONS)})" if model_of.OPTIONS else ""))
    stages = network_stages(net, input_shape)
    n_hidden = sum(st.hidden for st in stages)
    if len(thetas) != n_hidden:
        raise ConversionError(f"need one threshold per hidden layer ({n_hidden}), got {len(thetas)}")
    for k, th in enumerate(thetas):
        th = np.asarray(th, dtype=np.float64)
        if th.size == 0 or not (np.all(np.isfinite(th)) and np.all(th > 0)):
            raise ConversionError(f"threshold of hidden layer {k} must be positive, not {thetas[k]!r}")
    if any(st.shortcut is not None for st in stages):
        if neuron not in ("ttfs", "rate_if"):
            raise ConversionError(f"residual shortcuts run with ttfs and rate_if neurons, not {neuron} "
                                  "(docs/spec.md, 14)")
    layers = []
    theta_prev = float(input_theta)
    h = None
    if rounding == "adaptive":
        x = np.asarray(calibration_data, dtype=np.float32).reshape(len(calibration_data), -1)
        if len(x) > MAX_IMAGES:
            x = x[np.random.default_rng(0).choice(len(x), MAX_IMAGES, replace=False)]
        h = torch.from_numpy(x)
        h_float = h  # the same images through the float network: the outputs to match
        sources, sources_float = [h], [h_float]  # every spike source's values, for shortcuts
    for k, st in enumerate(stages):
        lin = st.layer
        where = f"{type(lin).__name__} layer {k}"
        w = lin.weight.detach().cpu().double().numpy()
        b = (lin.bias.detach().cpu().double().numpy() if lin.bias is not None
             else np.zeros(w.shape[0]))
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ConversionError(f"{where} has NaN or infinite parameters")
        shortcut, b_sc = None, 0.0
        try:
            w_ann = w
            w, factor = model_of.fold_input_scale(w, theta_prev, st.in_shape)
            if st.shortcut is not None:  # spec 14.3: what a source spike stands for goes into the shortcut's
                src = st.shortcut.source  # weights, relative to the layer's unit (ttfs: theta_src / theta_prev)
                theta_src = input_theta if src == 0 else thetas[src - 1]
                w_sc_ann = st.shortcut.layer.weight.detach().cpu().double().numpy()
                w_sc, f_sc = model_of.fold_input_scale(w_sc_ann, theta_src, st.shortcut.in_shape)
                w_sc = w_sc * (f_sc / factor)
                if st.shortcut.layer.bias is not None:  # b holds it: the layer's and the shortcut's outputs add
                    b_sc = st.shortcut.layer.bias.detach().cpu().double().numpy()
                    b = b + b_sc
                s = weight_scale_for(np.concatenate([w.ravel(), w_sc.ravel()]))
                shortcut = Shortcut(source=src, weights=encode_weights(w_sc, s), stride=st.shortcut.layer.stride[0],
                                    padding=st.shortcut.layer.padding[0])
            else:
                s = weight_scale_for(w)
            unit = factor * 2.0 ** (s - timing.frac_bits)
            if h is None:
                codes = encode_weights(w, s)
            else:  # the folded weights multiply inputs divided by the same per-input factor
                fold = model_of.fold_input_scale(np.ones_like(w_ann), theta_prev, st.in_shape)[0]
                fold = fold.reshape(w.shape[0], -1)[0]
                inputs, reference = st.fan_in_samples(h) / fold, st.fan_in_samples(h_float) / fold
                flat = w.reshape(w.shape[0], -1)
                if shortcut is not None:  # one set of synapses: the layer's and its shortcut's, one scale
                    sc = st.shortcut
                    fold_sc = model_of.fold_input_scale(np.ones_like(w_sc_ann), theta_src, sc.in_shape)[0]
                    fold_sc = (fold_sc * (f_sc / factor)).reshape(w_sc.shape[0], -1)[0]
                    inputs = np.hstack([inputs, sc.fan_in_samples(sources[sc.source]) / fold_sc])
                    reference = np.hstack([reference, sc.fan_in_samples(sources_float[sc.source]) / fold_sc])
                    flat = np.hstack([flat, w_sc.reshape(w_sc.shape[0], -1)])
                both, shift = adaptive_codes(flat, s, inputs, reference=reference)
                codes = both[:, :w[0].size].reshape(w.shape)
                b = b + shift
                wq_sc = None
                if shortcut is not None:
                    shortcut = replace(shortcut, weights=both[:, w[0].size:].reshape(w_sc.shape))
                    wq_sc = torch.from_numpy(decode_weights(shortcut.weights, s) / fold_sc.reshape(w_sc.shape[1:]))
                if st.hidden:  # the shortcut's conv adds its own (folded) bias b_sc, which b holds too
                    wq = decode_weights(codes, s) / fold.reshape(w.shape[1:])
                    z = st.forward(h, torch.from_numpy(wq).float(), torch.from_numpy(b - b_sc).float(),
                                   sources=sources, shortcut_weight=None if wq_sc is None else wq_sc.float())
                    h = st.pool_flat(_spike_values(torch.relu(z), thetas[k], timing, model_of.CODING))
                    h_float = st.pool_flat(torch.relu(st.forward(h_float, sources=sources_float)))
                    sources.append(h)
                    sources_float.append(h_float)
            if st.hidden:
                firing = model_of.firing_parameters(thetas[k], unit, timing, w.shape[0], **options)
            else:
                firing = model_of.output_parameters(timing, w.shape[0], **options)
        except FormatError as e:
            raise ConversionError(f"{where}: {e}") from None
        units = np.floor(np.abs(b) / unit + 0.5)
        if units.max(initial=0) >= 2.0 ** (MAX_ACC_BITS - 1):
            raise ConversionError(f"{where}: a bias of {b[np.argmax(units)]:.4g} is "
                                  f"{units.max():.4g} accumulator units, beyond the {MAX_ACC_BITS}-bit accumulator; "
                                  "the network's biases are far out of scale with its weights and thresholds")
        bias = (np.sign(b) * units).astype(np.int64)
        geometry = dict(kind=st.kind, in_shape=st.in_shape, pool=st.pool)
        if st.kind == "conv":
            geometry.update(stride=lin.stride[0], padding=lin.padding[0])
        layers.append(SnnLayer(weights=codes, bias=bias, thresholds=firing.pop("thresholds", None),
                               weight_scale=s, unit=unit, neuron=neuron, shortcut=shortcut, **firing, **geometry))
        if st.hidden:
            theta_prev = thetas[k]
    return SnnModel(timing=timing, input_theta=float(input_theta), layers=layers, name=name, info=info or {})

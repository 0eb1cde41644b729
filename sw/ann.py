"""The ANN side: model recipes, the SNN's quantisers as PyTorch functions, and training.

Conversion-aware training (CAT) runs the ANN with the SNN's own number formats: inputs
and hidden activations go through the TTFS quantiser (ReLU, clip at a learnable threshold
theta, round down to the level grid theta * 2**(-t/B), zero below the last level), weights
through the 5-bit log quantiser; gradients pass straight through the rounding.
"""
from __future__ import annotations

from firstspike.errors import InputError

import copy
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .formats import MAX_MAG, Timing, weight_scale_for


def mlp(sizes: list[int], seed: int = 0) -> nn.Sequential:
    """Linear/ReLU stack; the last Linear gives the class scores. Seeded initialisation."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise InputError(f"an MLP needs at least two positive sizes, not {sizes!r}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------
# Quantisers with straight-through gradients
# ---------------------------------------------------------------------------
def ttfs_quantise(z: torch.Tensor, theta: torch.Tensor, timing: Timing) -> torch.Tensor:
    """TTFS activation: theta * 2**(-t/B) with t the first step where z >= theta * 2**(-t/B).

    Same rule as formats.encode_spike_times; zero below the last level. The gradient is
    that of theta * clamp(z / theta, 0, 1) (straight through the rounding), which also
    trains theta.
    """
    u = torch.clamp(z / theta, 0.0, 1.0)
    with torch.no_grad():
        safe = torch.clamp(u, min=1e-30)
        t = torch.ceil(-timing.B * torch.log2(safe)).clamp(min=0)
        # settle float log2 error with the same comparisons formats.encode_spike_times makes
        t = torch.where(safe < torch.exp2(-t / timing.B), t + 1, t)
        t = torch.where((t > 0) & (safe >= torch.exp2(-(t - 1) / timing.B)), t - 1, t)
        q = torch.where((u > 0) & (t <= timing.T - 1), torch.exp2(-t / timing.B), torch.zeros_like(u))
    return theta * (u + (q - u).detach())


def rate_quantise(z: torch.Tensor, theta: torch.Tensor, levels: int, keep: float = 1.0) -> torch.Tensor:
    """Rate activation of an IF neuron with ``levels`` steps and initial potential theta/2:
    theta * clip(floor(z / theta * levels + 1/2), 0, levels) / levels (docs/spec.md section 12);
    the gradient is that of theta * clamp(z / theta, 0, 1), as ttfs_quantise's. ``keep`` < 1
    quantises each value only with that probability (two-stage conversion's stage I noise)."""
    u = torch.clamp(z / theta, 0.0, 1.0)
    with torch.no_grad():
        q = torch.clamp(torch.floor(z / theta * levels + 0.5), 0, levels) / levels
        if keep < 1.0:
            q = torch.where(torch.rand_like(q) < keep, q, u)
    return theta * (u + (q - u).detach())


def log_round(w: torch.Tensor, scale: int) -> torch.Tensor:
    """``w`` rounded to its 5-bit log level at layer scale ``scale``, on w's device:
    decode_weights(encode_weights(w, scale), scale) without leaving the GPU (CAT quantises
    every weight at every step). The same rule: nearest level by linear distance, ties to
    the larger magnitude, clip at 2**scale, zero below 2**(scale - 15). Levels come from a
    table of exact powers of two, so no device's exp2 rounding can move a midpoint."""
    a = w.detach().double().abs()
    levels = torch.tensor([2.0 ** (scale - m) for m in range(MAX_MAG + 1)], dtype=torch.float64, device=w.device)
    m = scale - torch.floor(torch.log2(torch.where(a > 0, a, 1.0) / 0.75))
    m = m.clamp(0, MAX_MAG).long()  # a candidate; log2 may be off by one, the exact comparisons settle it
    m = torch.where((a < 0.75 * levels[m]) & (m < MAX_MAG), m + 1, m)
    m = torch.where((a >= 1.5 * levels[m]) & (m > 0), m - 1, m)
    value = torch.where(a < 2.0 ** (scale - MAX_MAG - 1), 0.0, levels[m])
    return torch.where(w < 0, -value, value).to(w.dtype)


def log_quantise_weights(w: torch.Tensor, *more: torch.Tensor):
    """5-bit log weights with the layer scale chosen from max|w|; straight-through gradient.
    With ``more`` tensors (a residual shortcut's weights, in the layer's unit), one scale from
    all of them, as the SNN layer holds them (docs/spec.md, 14), and a tuple back."""
    tensors = (w, *more)
    with torch.no_grad():
        peak = max(float(t.detach().abs().max()) if t.numel() else 0.0 for t in tensors)
        s = weight_scale_for(np.array([peak]))  # the scale depends on max|w| alone
        qs = [log_round(t, s) for t in tensors]
    out = tuple(t + (q - t).detach() for t, q in zip(tensors, qs))
    return out if more else out[0]


class CatNetwork(nn.Module):
    """A network run with the SNN's formats: the network CAT trains and conversion reads.

    Built from any convertible network (sw/convert.network_stages): BatchNorm is folded
    into the conv/linear layer before it first, so CAT quantises exactly the weights the
    SNN will hold. The stage layers are copies: CAT trains them, not ``net``.
    ``thetas`` are the hidden layers' thresholds, learned in CAT.
    """

    def __init__(self, net: nn.Module, timing: Timing, input_theta: float, thetas: list[float],
                 quantise: bool = True, input_shape=None, coding: str = "ttfs", input_spikes: int = 1):
        super().__init__()
        from .convert import network_stages
        self.stages = network_stages(net, input_shape)
        self.layers = nn.ModuleList(st.layer for st in self.stages)
        self.timing = timing
        self.input_theta = float(input_theta)
        n_hidden = sum(st.hidden for st in self.stages)
        if len(thetas) != n_hidden:
            raise InputError(f"need {n_hidden} thresholds, got {len(thetas)}")
        self.log_thetas = nn.Parameter(torch.log(torch.tensor(thetas, dtype=torch.float32)))
        #: which of the SNN's formats the network runs in (all, or some of them: what each costs,
        #: tools/quantisation_ablation.py): log weights, the input's TTFS code, the hidden layers'
        self.quantise_weights = self.quantise_input = self.quantise_activations = bool(quantise)
        if coding not in ("ttfs", "rate"):
            raise InputError(f"coding must be ttfs or rate, not {coding!r}")
        # a conv shortcut's weights train too; an identity's unit diagonal is fixed (no gradient)
        self.shortcut_layers = nn.ModuleList(st.shortcut.layer for st in self.stages if st.shortcut is not None)
        self.coding = coding
        if input_spikes < 1 or (input_spikes > 1 and coding != "ttfs"):
            raise InputError(f"input_spikes must be 1, or above 1 for ttfs coding, not {input_spikes!r} ({coding})")
        #: spikes per input value (sw/input_spikes.py): the input is the sum of their levels
        self.input_spikes = int(input_spikes)
        #: per hidden layer, the std of the Gaussian noise subtracted from its activations in training
        self.noise = [0.0] * n_hidden
        #: in training, the probability that a rate activation is quantised (two-stage's stage I: 0.9)
        self.keep = 1.0

    @property
    def thetas(self) -> list[float]:
        return [float(v) for v in torch.exp(self.log_thetas).detach()]

    def _activation(self, z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        if self.coding == "ttfs":
            return ttfs_quantise(z, theta, self.timing)
        return rate_quantise(z, theta, self.timing.T, self.keep if self.training else 1.0)

    def _input_code(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The input as the SNN's first layer sees it: its code, or with several spikes per
        value the sum of their levels, each coding what the earlier ones leave
        (formats.encode_residual_spikes; here in float32)."""
        if self.input_spikes == 1:
            return self._activation(x, theta)
        with torch.no_grad():
            rest, total = x, torch.zeros_like(x)
            for _ in range(self.input_spikes):
                level = ttfs_quantise(rest, theta, self.timing)
                total, rest = total + level, rest - level
        return total

    def _weights(self, st, theta_in: torch.Tensor) -> torch.Tensor:
        """The log-quantised weights the SNN will hold. Rate-coded layers fold the input's
        threshold into the weights before rounding (sw/neurons/rate_if.fold_input_scale)."""
        w = st.layer.weight
        if self.coding == "ttfs":
            return log_quantise_weights(w)
        return log_quantise_weights(w * theta_in) / theta_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(scores, every hidden layer's activations after pooling, before the training noise)."""
        x = x.reshape(x.shape[0], -1)
        theta_in = torch.tensor(self.input_theta, device=x.device)
        if self.quantise_input:
            x = self._input_code(x, theta_in)
        thetas = torch.exp(self.log_thetas)
        source_thetas = [theta_in] + list(thetas)  # what a spike of each source stands for
        hidden = []
        sources = [x]  # the values of every spike source so far, for residual shortcuts
        for k, st in enumerate(self.stages):
            w, w_sc = (self._weights(st, theta_in) if self.quantise_weights else None), None
            if st.shortcut is not None and self.quantise_weights:  # one scale for both sets, in the layer's unit
                theta_src = source_thetas[st.shortcut.source]
                if self.coding == "ttfs":  # spec 14.3: the thresholds' ratio goes into the shortcut's weights
                    ratio = theta_src / theta_in
                    w, w_sc = log_quantise_weights(st.layer.weight, st.shortcut.layer.weight * ratio)
                    w_sc = w_sc / ratio
                else:  # rate: each set's input threshold is folded into it before rounding (spec 14.3)
                    w, w_sc = log_quantise_weights(st.layer.weight * theta_in, st.shortcut.layer.weight * theta_src)
                    w, w_sc = w / theta_in, w_sc / theta_src
            z = st.forward(x, w, sources=sources, shortcut_weight=w_sc)
            if not st.hidden:
                return z, hidden
            a = self._activation(z, thetas[k]) if self.quantise_activations else torch.relu(z)
            x = st.pool_flat(a)
            hidden.append(x)
            sources.append(x)
            if self.training and self.noise[k] > 0:
                x = x - self.noise[k] * torch.randn_like(x)
            theta_in = thetas[k]
        raise AssertionError("unreachable: the last stage is the output layer")


#: the activation values (over all hidden layers) the initial thresholds of fine-tuning are read from
CALIBRATION_VALUES = 1 << 28


def calibration_images(net: nn.Module, x: np.ndarray, input_shape=None, values: int = CALIBRATION_VALUES) -> int:
    """How many of ``x`` the initial thresholds are calibrated on: all of a small network's
    training set, about ``values`` activations (at least 256 images) of a large one.
    VGG-16 on CIFAR-10 has 276 K hidden activations per image: 970 images, 2 GB of float64
    samples, where all 50,000 would be 110 GB."""
    from .convert import network_stages
    with torch.no_grad():
        h = torch.as_tensor(x[:1], dtype=torch.float32)
        per_image, sources = 0, [h]
        for st in network_stages(net, input_shape)[:-1]:
            z = st.forward(h, sources=sources)
            per_image += z.numel()
            h = st.pool_flat(torch.relu(z))
            sources.append(h)
    return int(min(len(x), max(256, values // max(1, per_image))))


def cat_finetune(net: nn.Module, x: np.ndarray, y: np.ndarray, timing: Timing, input_theta: float, *,
                 epochs: int, lr: float = 1e-3, seed: int = 0, input_shape=None, progress=None,
                 resume=None, input_spikes: int = 1, **train_options) -> "CatNetwork":
    """Conversion-aware training of a float network: thresholds start at the 99.9th percentile of
    its activations on ``x`` (flat rows; at most ``calibration_images(net, x)`` of them), then
    weights and thresholds train with the quantisers on. ``train_options`` go to TrainConfig
    (batch_size, optimizer, augment, distill: the float network is the teacher); ``resume``
    to ``train``; ``input_spikes`` to CatNetwork. ``net`` itself is not changed (the CAT
    network holds copies of its layers)."""
    from .convert import calibrate
    thetas = calibrate(net, x, "percentile", input_shape=input_shape, values=CALIBRATION_VALUES)
    cat = CatNetwork(net, timing, input_theta, thetas, input_shape=input_shape, input_spikes=input_spikes)
    cfg = TrainConfig(epochs=epochs, lr=lr, seed=seed, **train_options)
    teacher = None
    if cfg.distill > 0:  # a copy (train() moves it to the device), fed the flat rows CAT reads
        teacher = copy.deepcopy(net)
        teacher = nn.Sequential(nn.Unflatten(1, tuple(input_shape)), teacher) if input_shape else teacher
    train(cat, x, y, cfg, progress=progress, resume=resume, teacher=teacher)
    return cat


def noise_aware_finetune(net: nn.Module, x: np.ndarray, y: np.ndarray, timing: Timing, input_theta: float, *,
                         epochs: int, lr: float = 1e-3, seed: int = 0, input_shape=None, progress=None,
                         sigma_images: int = 512, coding: str = "rate", resume=None, **train_options) -> "CatNetwork":
    """Noise-aware training (Huang et al., TNNLS; ../shared/references/methods.md, section 3).

    The network trains with the quantiser of ``coding`` (rate: T levels; ttfs: CAT's) and
    learned per-layer thresholds (theta init: the 99.9th percentile), and each hidden
    layer's activations minus sigma_l * N(0, 1): a model of the SNN's residual error.
    After every epoch sigma_l is measured again: the network as converted so far runs as
    an SNN (the golden model; rate_if or ttfs neurons) on ``sigma_images`` training images,
    and sigma_l is the std of (noise-free quantised ANN activation - what the SNN's spikes
    stand for). ``net`` is not changed.
    """
    from .convert import calibrate
    thetas = calibrate(net, x, "percentile", input_shape=input_shape, values=CALIBRATION_VALUES)
    cat = CatNetwork(net, timing, input_theta, thetas, input_shape=input_shape, coding=coding)
    probe = np.asarray(x[:sigma_images], dtype=np.float32)

    def measure(model: "CatNetwork") -> None:
        model.noise = residual_sigmas(model, probe)

    train(cat, x, y, TrainConfig(epochs=epochs, lr=lr, seed=seed, **train_options), progress=progress,
          after_epoch=measure, resume=resume)
    return cat


def two_stage_finetune(net: nn.Module, x: np.ndarray, y: np.ndarray, timing: Timing, input_theta: float, *,
                       epochs: int, lr: float = 1e-3, seed: int = 0, input_shape=None, progress=None,
                       keep: float = 0.9, resume=None, **train_options) -> "CatNetwork":
    """Stage I of two-stage conversion (Wang et al., TNNLS 2023) for rate-coded IF neurons:
    fine-tuning with a noisy quantise-clamp activation, each value quantised to the T-level
    rate grid with probability ``keep`` and only clamped otherwise, with learned per-layer
    thresholds. Stage II, the layer-wise calibration of initial potentials, runs at
    conversion (sw/initial_calibration.py). ``net`` is not changed."""
    from .convert import calibrate
    thetas = calibrate(net, x, "percentile", input_shape=input_shape, values=CALIBRATION_VALUES)
    cat = CatNetwork(net, timing, input_theta, thetas, input_shape=input_shape, coding="rate")
    cat.keep = keep
    train(cat, x, y, TrainConfig(epochs=epochs, lr=lr, seed=seed, **train_options), progress=progress,
          resume=resume)
    return cat


@torch.no_grad()
def residual_sigmas(cat: "CatNetwork", x: np.ndarray) -> list[float]:
    """Per hidden layer: std of (quantised ANN activation - the SNN's decoded spikes) on inputs x;
    the SNN: rate_if neurons for a rate-coded network, ttfs for a ttfs one."""
    from .convert import convert
    from .golden import GoldenModel
    from .neurons import neuron_model
    neuron = "rate_if" if cat.coding == "rate" else "ttfs"
    snn = convert(cat.stages, cat.timing, cat.input_theta, cat.thetas, neuron=neuron)
    spikes = GoldenModel(snn).run(np.asarray(x, dtype=np.float32).reshape(len(x), -1)).spikes
    device = next(cat.parameters()).device
    _, hidden = cat.run(torch.as_tensor(x, dtype=torch.float32, device=device))
    decode = neuron_model(neuron).decode
    return [float(np.std(a.cpu().numpy() - decode(spikes[k + 1], theta, cat.timing)))
            for k, (a, theta) in enumerate(zip(hidden, cat.thetas))]


# ---------------------------------------------------------------------------
# Model recipes beyond the MLP
# ---------------------------------------------------------------------------
def digits_cnn(image_shape=(1, 8, 8), classes: int = 10, seed: int = 0, width: int = 16) -> nn.Sequential:
    """Small CNN for 8x8 digits: conv3-BN-ReLU-pool2, conv3-BN-ReLU-pool2, linear.

    Takes flat inputs (Unflatten first), as every data set here is stored flat.
    """
    torch.manual_seed(seed)
    c, h, w = image_shape
    return nn.Sequential(
        nn.Unflatten(1, tuple(image_shape)),
        nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), classes))


VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg(name: str = "vgg11", image_shape=(3, 32, 32), classes: int = 10, width: float = 1.0,
        seed: int = 0) -> nn.Sequential:
    """VGG-11/16 for 32x32 inputs (CIFAR-10 style): conv3-BN-ReLU blocks, 2x2 max pools,
    one linear classifier. ``width`` scales every channel count (reduced-width variants)."""
    if name not in VGG_CONFIGS:
        raise InputError(f"unknown VGG {name!r}; choose one of {', '.join(VGG_CONFIGS)}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Unflatten(1, tuple(image_shape))]
    c, size = image_shape[0], image_shape[1]
    for v in VGG_CONFIGS[name]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        else:
            out = max(1, int(round(v * width)))
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
    layers += [nn.Flatten(), nn.Linear(c * size * size, classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet's basic block: conv3-BN-ReLU-conv3-BN, plus the input (identity) or its 1x1
    strided conv-BN where the shape changes (option B), then ReLU. Converts with a shortcut
    (docs/spec.md, section 14)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """CIFAR-style ResNet: a 3x3 stem, stages of basic blocks (strides 1, 2, 2, ...), global
    average pooling and a linear classifier. ``depth`` 6n + 2 is He et al. 2016's (section
    4.2): three stages of n blocks at 16, 32 and 64 channels; ``stages`` gives (channels,
    blocks) pairs instead (ResNet-18: 64, 128, 256, 512 channels of 2 blocks each). ``width``
    scales every channel count. Takes flat inputs, as every data set here is stored flat."""

    def __init__(self, depth: int | None = 20, image_shape=(3, 32, 32), classes: int = 10, width: float = 1.0,
                 seed: int = 0, stages: list[tuple[int, int]] | None = None):
        super().__init__()
        if stages is None:
            if depth is None or depth < 8 or (depth - 2) % 6:
                raise InputError(f"a CIFAR ResNet has depth 6n + 2 (8, 14, 20, ...), not {depth!r}")
            stages = [(c, (depth - 2) // 6) for c in (16, 32, 64)]
        torch.manual_seed(seed)
        self.image_shape = tuple(image_shape)
        c = [max(1, int(round(v * width))) for v, _ in stages]
        self.stem = nn.Sequential(nn.Conv2d(image_shape[0], c[0], 3, padding=1, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU())
        blocks, cin = [], c[0]
        for stage, (cout, (_, n)) in enumerate(zip(c, stages)):
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage and b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.view(-1, *self.image_shape)))
        return self.fc(torch.flatten(self.pool(x), 1))


#: recipe name -> ResNet stages, (channels, basic blocks) each
RESNET_STAGES = {
    "resnet8": [(16, 1), (32, 1), (64, 1)],
    "resnet20": [(16, 3), (32, 3), (64, 3)],
    "resnet18": [(64, 2), (128, 2), (256, 2), (512, 2)],  # the CIFAR variant: 3x3 stem, no stem pooling
}


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: "adam", or "sgd" (Nesterov momentum 0.9: what reaches published CIFAR accuracies)
    optimizer: str = "adam"
    #: image shape (C, H, W) to augment with: a random crop of the image padded by 4 and a
    #: random horizontal flip, the standard CIFAR augmentation; None for no augmentation
    augment: tuple | None = None
    #: bfloat16 autocast on CUDA (float training; CAT's quantisers want float32)
    amp: bool = False
    #: weight of knowledge distillation from ``train``'s teacher (0: cross-entropy alone): the
    #: loss is (1 - distill) x cross-entropy + distill x T^2 x KL(teacher || model) at temperature T
    distill: float = 0.0
    distill_temperature: float = 4.0


OPTIMIZERS = ("adam", "sgd")


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def random_crop_flip(x: torch.Tensor, shape: tuple, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Each image of ``x`` (flat rows or (b, C, H, W)) shifted by up to ``pad`` pixels in each
    direction (zeros, no spike, come in) and flipped left-right with probability 1/2, in
    ``x``'s layout. The draws come from ``gen`` (a CPU generator), so a seed fixes them."""
    b = x.shape[0]
    c, h, w = shape
    img = torch.nn.functional.pad(x.reshape(b, c, h, w), (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device) for _ in range(2))
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = img[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).reshape(x.shape)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, progress=None,
          after_epoch=None, resume=None, teacher: nn.Module | None = None) -> None:
    """Cosine learning-rate decay over every step, Adam or SGD; deterministic for a given seed
    on the CPU. The data set moves to the device once (CUDA when present) and batches are
    drawn there. ``after_epoch(model)`` runs after each epoch (the model in eval mode).

    ``resume``: a file that holds the training state after every finished epoch (the model,
    optimiser, schedule and random generators). A run that finds it goes on from there, so
    an interrupted training ends as the uninterrupted one would (on the CPU); one that finds
    it complete trains no more. The caller removes it once the result is kept.

    ``teacher``: the network whose outputs the model learns too when ``cfg.distill`` > 0 (CAT:
    the float network; it takes the same inputs and is not changed)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {cfg.optimizer!r}")
    if not 0.0 <= cfg.distill <= 1.0 or cfg.distill_temperature <= 0:
        raise InputError(f"distill must be in [0, 1] and its temperature > 0, not {cfg.distill} / "
                         f"{cfg.distill_temperature}")
    if cfg.distill > 0 and teacher is None:
        raise InputError("distillation needs a teacher network")
    torch.manual_seed(cfg.seed)
    device = _device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                              weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(xt) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    augment_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    parts = {"model": model, "optimizer": opt, "schedule": sched}
    generators = {"order": gen, "augment": augment_gen}
    first = _resume_training(resume, cfg, parts, generators, progress, after_epoch) if resume is not None else 0
    for epoch in range(first, cfg.epochs):
        order = torch.randperm(len(xt), generator=gen).to(device)
        for start in range(0, len(xt), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xb = xt[idx] if cfg.augment is None else random_crop_flip(xt[idx], cfg.augment, augment_gen)
            with autocast:
                out = model(xb)
                loss = nn.functional.cross_entropy(out, yt[idx])
                if cfg.distill > 0:
                    loss = (1 - cfg.distill) * loss + cfg.distill * _distillation_loss(out, teacher, xb,
                                                                                       cfg.distill_temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if after_epoch is not None:
            model.eval()
            after_epoch(model)
            model.train()
        if resume is not None:
            _save_training(resume, cfg, epoch + 1, parts, generators)
        if progress is not None:
            progress.update(1)
    model.eval()


def _distillation_loss(out: torch.Tensor, teacher: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 x KL(softmax(teacher / T) || softmax(out / T)) over the batch (Hinton et al. 2015: the
    T^2 keeps its gradient's scale that of the cross-entropy's)."""
    with torch.no_grad():
        target = nn.functional.log_softmax(teacher(x) / temperature, dim=1)
    log_p = nn.functional.log_softmax(out / temperature, dim=1)
    return temperature ** 2 * nn.functional.kl_div(log_p, target, reduction="batchmean", log_target=True)


def _save_training(path, cfg: TrainConfig, epochs_done: int, parts: dict, generators: dict) -> None:
    from .files import atomic_write
    state = {"config": asdict(cfg), "epochs_done": epochs_done, "torch_rng": torch.get_rng_state(),
             **{k: v.state_dict() for k, v in parts.items()}, **{k: g.get_state() for k, g in generators.items()}}
    atomic_write(path, lambda f: torch.save(state, f), "training state")


def _resume_training(path, cfg: TrainConfig, parts: dict, generators: dict, progress, after_epoch) -> int:
    """Load the state ``_save_training`` left in ``path``, if any; the epochs it had finished."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a damaged or foreign file: say which
        raise InputError(f"{path}: not a readable training state ({type(e).__name__}); delete it to start again") \
            from None
    # a setting added since the state was saved had its default then
    saved = {f.name: f.default for f in fields(TrainConfig)} | dict(state.get("config") or {})
    if saved != asdict(cfg):
        raise InputError(f"{path}: the training state of other settings ({state.get('config')}, not {asdict(cfg)}); "
                         "delete it to start again")
    for k, v in parts.items():
        v.load_state_dict(state[k])
    for k, g in generators.items():
        g.set_state(state[k])
    if after_epoch is not None:  # what it computes from the model (noise-aware: the noise levels)
        parts["model"].eval()
        after_epoch(parts["model"])
        parts["model"].train()
    torch.set_rng_state(state["torch_rng"])
    if progress is not None:
        progress.update(state["epochs_done"])
    return state["epochs_done"]


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 2048) -> float:
    """Top-1 accuracy, ``batch`` images at a time (a large network on a whole test set at once
    would hold every activation)."""
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    for start in range(0, len(x), batch):
        out = model(torch.as_tensor(x[start:start + batch], dtype=torch.float32, device=device))
        hits += int((out.argmax(1).cpu().numpy() == y[start:start + batch]).sum())
    return hits / len(x)

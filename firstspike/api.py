"""The Python API: convert your own PyTorch network, check it, generate and simulate it.

    import firstspike
    snn = firstspike.convert(net, x_calibration, T=16, B=2, method="percentile")
    print(snn.accuracy(x_test, y_test))           # the integer golden model
    snn.save("net.npz")                           # the model file every command reads
    snn.verilog("build/verilog", pes=16)          # neuron_array.v + neuron_array.json
    report = snn.simulate(x_test[:50], y_test[:50])  # Verilator, bit-exact check, cycles, energy

``firstspike.finetune_cat`` fine-tunes a pre-trained network with conversion-aware
training first. Inputs are float arrays (or tensors) with one image per row, in the
shape the network takes; TTFS codes non-negative values, so inputs must be >= 0.
"""
from __future__ import annotations

import functools

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from firstspike.errors import InputError
from firstspike.sw import ann as ann_lib
from firstspike.sw.convert import CALIBRATED_ROUNDING, CALIBRATIONS, LOSS_WARNING, convert_calibrated
from firstspike.sw.convert import convert as convert_stages
from firstspike.sw.initial_calibration import calibrate_initial
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel, GoldenResult
from firstspike.sw.model import SnnModel



@dataclass
class Snn:
    """A converted spiking network: the integer model file plus what to do with it."""

    model: SnnModel

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Snn":
        return cls(SnnModel.load(path))

    def save(self, path: str | os.PathLike) -> Path:
        self.model.save(path)
        return Path(path)

    @property
    def timing(self) -> Timing:
        return self.model.timing

    def golden(self, x) -> GoldenResult:
        """Every layer's spike times and the output potentials of the integer golden model."""
        return GoldenModel(self.model).run(_flat_inputs(x, "x"))

    def predict(self, x) -> np.ndarray:
        return self.golden(x).predictions

    def accuracy(self, x, y) -> float:
        y = _labels(y, len(x))
        return float((self.predict(x) == y).mean())

    def to_nir(self, path: str | os.PathLike) -> Path:
        """Write the model as a NIR graph (firstspike.sw.nir_export says what maps and what does not)."""
        from firstspike.sw.nir_export import write_nir
        return write_nir(self.model, path)

    def verilog(self, out_dir: str | os.PathLike = "build/verilog", *, pes: int = 16) -> Path:
        """Write the processor's Verilog for this model; returns the .v file."""
        from firstspike.hw.config import ArrayConfig
        from firstspike.hw.verilog import write_design
        cfg = ArrayConfig.for_model(self.model, pes)
        return write_design(out_dir, cfg, self.model)

    def simulate(self, x, y=None, *, pes: int = 16, out_dir: str | os.PathLike = "build/sim",
                 verilog_dir: str | os.PathLike = "build/verilog", quiet: bool = True, **options) -> dict:
        """Run ``x`` through the RTL under Verilator and the golden model; the report as a dict.

        ``report["mismatches"]`` is the number of images whose RTL results differ from the
        golden model (it must be 0); options: ``clock_mhz``, ``tech``, ``energy_overrides``.
        """
        from firstspike.flow import simulate_model
        x = _flat_inputs(x, "x")
        return simulate_model(self.model, x, None if y is None else _labels(y, len(x)), pes=pes, out_dir=out_dir,
                              verilog_dir=verilog_dir, quiet=quiet, dataset=self.model.info.get("dataset", ""),
                              model_label=self.model.name, **options)


def load(path: str | os.PathLike) -> Snn:
    """A model file written by ``Snn.save`` or ``firstspike convert``."""
    return Snn.load(path)


def convert(model: nn.Module, calibration_data, *, T: int = 16, B: int = 2, frac_bits: int = 16,
            method: str = "percentile", percentile: float = 99.9, input_theta: float | None = None,
            name: str = "snn", info: dict | None = None, neuron: str = "ttfs", rounding: str | None = None,
            initial_calibration: bool = False, layer_finetune: bool = False, **options) -> Snn:
    """Convert a trained float network, training-free, with thresholds calibrated on ``calibration_data``.

    ``model``: any ``nn.Module`` whose torch.fx graph is a chain of supported layers
    (README, docs/spec.md); ``calibration_data``: inputs as the network takes them,
    e.g. (N, C, H, W) images or (N, features); ``method``: "max", "percentile" or
    "iteration" (threshold iteration on the grid of the coding). ``input_theta`` is the
    input value sent at t = 0, or at every step (default: the largest calibration input).
    ``neuron``: "ttfs" (time-to-first-spike) or "rate_if"
    (rate-coded integrate-and-fire; ``initial=`` sets its initial potential as a fraction
    of the threshold, default 0.5) or "diff_if" (differential coding; ``levels=K`` its
    multi-threshold variant, spikes of K levels). All three run on the processor (diff_if with
    one level). ``rounding``:
    "adaptive" chooses each weight's log level to keep every layer's outputs on
    ``calibration_data`` close to the float network's, "nearest" rounds each weight alone;
    None (default): adaptive (a residual layer's weights and its shortcut's are rounded
    together).
    ``initial_calibration`` (rate_if): move each channel's initial potential so its mean
    rate on ``calibration_data`` meets the float network's mean activation (two-stage
    conversion's stage II a and c); ``layer_finetune`` also trains each layer's weights, bias
    and initial potentials through its T steps with a surrogate gradient (stage II b; it
    implies ``initial_calibration``).
    """
    if method not in CALIBRATIONS:
        raise InputError(f"method must be one of {', '.join(CALIBRATIONS)}, not {method!r} "
                         "(for CAT use firstspike.finetune_cat)")
    timing = Timing(T=T, B=B, frac_bits=frac_bits)
    x, input_shape = _inputs_and_shape(calibration_data)
    theta_in = _input_theta(x, input_theta)
    net = model.eval()
    rounding = rounding or CALIBRATED_ROUNDING
    snn = convert_calibrated(net, x, method, timing, theta_in, percentile=percentile, input_shape=input_shape,
                             neuron=neuron, rounding=rounding, name=name,
                             info={"calibration": method, "neuron": neuron, "rounding": rounding, **options,
                                   **(info or {})}, **options)
    if initial_calibration or layer_finetune:
        snn = calibrate_initial(snn, net, x, input_shape=input_shape, finetune=layer_finetune)
    return Snn(snn)


def finetune_cat(model: nn.Module, x, y, *, T: int = 16, B: int = 2, frac_bits: int = 16, epochs: int = 20,
                 lr: float = 1e-3, seed: int = 0, input_theta: float | None = None, name: str = "snn",
                 progress: bool = False, distill: float = 0.0) -> Snn:
    """Conversion-aware training of a pre-trained network, then conversion with the thresholds it learned.

    The network (BatchNorm folded) is trained for ``epochs`` with the SNN's own
    quantisers (TTFS activations, 5-bit log weights); ``model`` itself is not changed.
    ``distill`` (0 to 1): the weight of distillation from ``model``'s own outputs in the loss.
    """
    from tqdm import tqdm
    timing = Timing(T=T, B=B, frac_bits=frac_bits)
    xf, input_shape = _inputs_and_shape(x)
    y = _labels(y, len(xf))
    theta_in = _input_theta(xf, input_theta)
    with tqdm(total=epochs, desc="CAT", unit="epoch", disable=not progress) as bar:
        cat = ann_lib.cat_finetune(model.eval(), xf, y, timing, theta_in, epochs=epochs, lr=lr, seed=seed,
                                   input_shape=input_shape, progress=bar, distill=distill)
    cat = cat.cpu().eval()
    snn = convert_stages(cat.stages, timing, theta_in, cat.thetas, name=name, info={"calibration": "cat"})
    return Snn(snn)


def finetune_noise_aware(model: nn.Module, x, y, *, T: int = 4, frac_bits: int = 16, epochs: int = 20,
                         lr: float = 1e-3, seed: int = 0, input_theta: float | None = None, name: str = "snn",
                         neuron: str = "rate_if", progress: bool = False, two_stage: bool = False) -> Snn:
    """Noise-aware training of a pre-trained network for rate-coded IF neurons, then conversion.

    The network trains with the rate quantiser of T levels, learned per-layer thresholds and
    Gaussian noise of the residual error the SNN shows, re-measured after every epoch
    (``sw.ann.noise_aware_finetune``); ``neuron`` may also be "diff_if", or "ttfs": CAT
    with the same noise (its measured residual is tiny: CAT already runs the SNN's own
    quantiser, docs/results.md). ``two_stage``
    instead runs two-stage conversion: stage I's noisy quantise-clamp fine-tuning
    (``sw.ann.two_stage_finetune``), then stage II's initial-potential calibration on ``x``
    (rate_if). ``model`` itself is not changed.
    """
    from tqdm import tqdm
    if two_stage and neuron != "rate_if":
        raise InputError(f"two-stage conversion calibrates rate_if initial potentials, not {neuron}")
    timing = Timing(T=T, frac_bits=frac_bits)
    xf, input_shape = _inputs_and_shape(x)
    y = _labels(y, len(xf))
    theta_in = _input_theta(xf, input_theta)
    tune = ann_lib.two_stage_finetune if two_stage else functools.partial(
        ann_lib.noise_aware_finetune, coding="ttfs" if neuron == "ttfs" else "rate")
    with tqdm(total=epochs, desc="two-stage" if two_stage else "noise-aware", unit="epoch",
              disable=not progress) as bar:
        net = tune(model.eval(), xf, y, timing, theta_in, epochs=epochs, lr=lr, seed=seed, input_shape=input_shape,
                   progress=bar)
    net = net.cpu().eval()
    snn = convert_stages(net.stages, timing, theta_in, net.thetas, name=name, neuron=neuron,
                         info={"calibration": "two-stage" if two_stage else "noise-aware", "neuron": neuron,
                               "noise": list(net.noise)})
    if two_stage:
        snn = calibrate_initial(snn, net.stages, xf)
    return Snn(snn)


def conversion_check(float_net: nn.Module, snn: Snn, x, y) -> dict:
    """Float and golden accuracy on (x, y), with a warning when conversion lost more than 1 point."""
    a = _as_array(x, "the test inputs")
    y = _labels(y, len(a))
    with torch.no_grad():
        out = float_net.eval()(torch.as_tensor(a, dtype=torch.float32))
    float_acc = float((out.argmax(1).numpy() == y).mean())
    golden_acc = snn.accuracy(a, y)
    result = {"float_accuracy": float_acc, "golden_accuracy": golden_acc, "loss": float_acc - golden_acc}
    if float_acc - golden_acc > LOSS_WARNING:
        warnings.warn(f"conversion lost {100 * (float_acc - golden_acc):.2f} points of accuracy "
                      f"({100 * float_acc:.2f} % float -> {100 * golden_acc:.2f} % SNN); conversion-aware "
                      "training usually recovers it (firstspike.finetune_cat, or 'firstspike train --from')",
                      stacklevel=2)
    return result


# ---------------------------------------------------------------------------
def _as_array(data, what: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    try:
        a = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} must be an array of numbers ({e})") from None
    if a.ndim < 2 or len(a) == 0:
        raise InputError(f"{what} must hold at least one input, one per row (shape (N, ...)), not shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} contains NaN or infinity")
    return a


def _inputs_and_shape(data) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Flat float inputs and the (C, H, W) image shape, if the data are images."""
    a = _as_array(data, "the input data")
    shape = None
    if a.ndim == 4:
        shape = tuple(int(v) for v in a.shape[1:])
    elif a.ndim not in (2, 4):
        raise InputError(f"inputs must be (N, features) or (N, C, H, W), not shape {a.shape}")
    return a.reshape(len(a), -1), shape


def _flat_inputs(data, what: str) -> np.ndarray:
    return _as_array(data, what).reshape(len(data), -1)


def _labels(y, n: int) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be {n} integers (one per input), not an array of shape {y.shape} "
                         f"and type {y.dtype}")
    return y.astype(np.int64)


def _input_theta(x: np.ndarray, given: float | None) -> float:
    if x.min() < 0:
        raise InputError(f"inputs go down to {x.min():.4g}, but time-to-first-spike codes only values >= 0; "
                         "scale the inputs to [0, 1] (no mean subtraction) and train on that")
    theta = float(x.max()) if given is None else float(given)
    if not (np.isfinite(theta) and theta > 0):
        raise InputError(f"input_theta must be positive and finite, not {theta!r} (are all inputs zero?)")
    return theta

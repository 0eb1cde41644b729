"""ANN checkpoints and network recipes: training (float, then CAT) and reading back.

A checkpoint (``firstspike train``) holds the float network's weights, how to rebuild it
(a recipe name and sizes, or a user's ``module.py:function``), the network CAT trained
(BatchNorm folded, learned thresholds) and the accuracies measured on the data set.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from firstspike.errors import InputError
from firstspike.sw import ann as ann_lib
from firstspike.sw.data import load_dataset
from firstspike.sw.formats import Timing
from firstspike.sw.files import atomic_write, check_output_file
from firstspike.sw.model import ModelFileError

ANN_FORMAT = "firstspike-ann"
ANN_VERSION = 2
REQUIRED_KEYS = ("dataset", "recipe", "seed", "method", "float_state_dict", "float_accuracy", "input_theta", "timing",
                 "cat_state_dict", "thetas")


# ---------------------------------------------------------------------------
# recipes and users' own networks
# ---------------------------------------------------------------------------
ARCHS = ("mlp", "cnn", "vgg11", "vgg16", "resnet8", "resnet20", "resnet18")
#: the recipe name of a network built by a user's ``module.py:function``
USER_ARCH = "module"


def build_network(arch: str, *, features: int, classes: int, shape: tuple = (), hidden=(64, 32),
                  width: float = 1.0, seed: int = 0, module: str | None = None,
                  input_shape: list | None = None) -> torch.nn.Module:
    """The float network of a recipe for a data set's sizes (flat inputs for every recipe),
    or, for arch "module", what the user's ``module`` (``FILE.py:FUNCTION``) builds."""
    if arch == USER_ARCH:
        return load_user_network(module)
    if arch == "mlp":
        return ann_lib.mlp([features, *hidden, classes], seed=seed)
    if not shape:
        raise InputError(f"the {arch} recipe needs image-shaped data")
    if arch == "cnn":
        return ann_lib.digits_cnn(tuple(shape), classes, seed=seed, width=max(1, int(round(16 * width))))
    if arch in ann_lib.VGG_CONFIGS:
        return ann_lib.vgg(arch, tuple(shape), classes, width=width, seed=seed)
    if arch in ann_lib.RESNET_STAGES:
        return ann_lib.ResNet(None, tuple(shape), classes, width=width, seed=seed, stages=ann_lib.RESNET_STAGES[arch])
    raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def load_user_network(spec: str) -> torch.nn.Module:
    """Import ``FILE.py`` and call its ``FUNCTION()`` (no arguments): the user's float network.

    Errors in finding the file or the function are explained; an exception raised by the
    user's own code propagates with its traceback, since that is where the fix is.
    """
    path, sep, func = str(spec).rpartition(":")
    if not sep or not path or not func.isidentifier():
        raise InputError(f"--module wants FILE.py:FUNCTION (a function returning the nn.Module), not {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: no such Python file (from --module {spec})")
    name = "firstspike_user_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(name, file)
    if loader_spec is None or loader_spec.loader is None:
        raise InputError(f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    loader_spec.loader.exec_module(module)
    build = getattr(module, func, None)
    if not callable(build):
        raise InputError(f"{file} has no function {func!r}")
    net = build()
    if not isinstance(net, torch.nn.Module):
        raise InputError(f"{spec} returned a {type(net).__name__}, not a torch.nn.Module")
    return net


def load_user_weights(net: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a state dict (``torch.save(net.state_dict(), path)``) into ``net``; only tensors are read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such weights file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or pickled-object file
        raise InputError(f"{path}: not a state dict that can be read safely ({type(e).__name__}); save the "
                         "weights with torch.save(net.state_dict(), path)") from None
    for key in ("state_dict", "model_state_dict", "model"):  # common training-script wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f"{path}: not a state dict (a dict of tensors)")
    missing, unexpected = [], []
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise InputError(f"{path} does not fit the network: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if sd[k].shape != own[k].shape]
    if wrong:
        raise InputError(f"{path} does not fit the network: shapes differ: {'; '.join(wrong[:5])}")
    net.load_state_dict(sd)
    return net


def input_layout(net: torch.nn.Module, ds) -> list[int] | None:
    """How ``net`` takes the data set's images: None for flat rows, [C, H, W] for image tensors."""
    x = torch.as_tensor(ds.x_train[:2], dtype=torch.float32)
    errors = []
    for shape in [None] + ([list(ds.shape)] if ds.shape else []):
        try:
            with torch.no_grad():
                out = net.eval()(x if shape is None else x.reshape(len(x), *shape))
        except Exception as e:  # the wrong layout fails inside the user's layers
            errors.append(f"{'flat' if shape is None else 'image'} input: {e}")
            continue
        if out.shape != (len(x), ds.classes):
            raise InputError(f"the network gives outputs of shape {tuple(out.shape[1:])} for the "
                             f"{ds.name} data set, which has {ds.classes} classes")
        return shape
    raise InputError("the network takes neither flat nor image-shaped inputs of the data set: " + "; ".join(errors))


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------
#: float only; CAT (TTFS quantisers); noise-aware training (rate quantisers + residual-error noise);
#: two-stage conversion's stage I (noisy rate quantise-clamp)
TRAIN_METHODS = ("float", "cat", "noise", "twostage")

def train_ann(out: str | os.PathLike, *, dataset: str = "digits", arch: str = "mlp", hidden: list[int] = (64, 32),
              width: float = 1.0, method: str = "cat", timing: Timing = Timing(), epochs: int = 60,
              cat_epochs: int = 40, seed: int = 0, quiet: bool = False,
              data_dir: str | os.PathLike | None = None, module: str | None = None,
              weights: str | os.PathLike | None = None, batch_size: int = 64, lr: float = 3e-3,
              cat_lr: float = 1e-3, optimizer: str = "adam", weight_decay: float = 1e-4, augment: bool = False,
              amp: bool = False, distill: float = 0.0, input_spikes: int = 1) -> dict:
    """Train a float network, then fine-tune it with the SNN's quantisers: method "cat"
    (conversion-aware training, TTFS activations), "noise" (noise-aware training for
    rate-coded IF neurons, ann.noise_aware_finetune) or "twostage" (stage I of two-stage
    conversion, ann.two_stage_finetune); ``cat_epochs`` counts any of them.

    ``module`` (``FILE.py:FUNCTION``) trains the user's network instead of a recipe;
    with ``weights`` (its pre-trained state dict) the float training is skipped unless
    ``epochs`` asks for more. Saves a checkpoint with the float weights, the CAT network
    (BatchNorm folded, the weights and thresholds CAT learned), the accuracies and the
    training settings. ``batch_size`` and ``augment`` (random crop and flip of image data
    sets) apply to both phases; ``lr``, ``optimizer`` ("adam" or "sgd"), ``weight_decay`` and
    ``amp`` (bfloat16 on CUDA) to the float training; fine-tuning is Adam at ``cat_lr``, and
    CAT distils from the float network with weight ``distill`` (0: cross-entropy alone) and
    trains on the input coded with ``input_spikes`` spikes per value (sw/input_spikes.py;
    conversion then expands the model's input to match). Every argument and the output path
    are checked before any training. Each phase keeps its state beside ``out`` after every
    epoch (``resume_file``), so the same call after an interruption goes on where it stopped.
    """
    if method not in TRAIN_METHODS:
        raise InputError(f"method must be one of {', '.join(TRAIN_METHODS)}, not {method!r}")
    if module is None and arch not in ARCHS:
        raise InputError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if weights is not None and module is None:
        raise InputError("weights need the network they belong to: give module=FILE.py:FUNCTION as well")
    for name, v in (("epochs", epochs), ("cat_epochs", cat_epochs)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InputError(f"{name} must be a non-negative integer, not {v!r}")
    if method != "float" and cat_epochs == 0:
        raise InputError(f"{method} fine-tuning needs at least one epoch (cat_epochs >= 1)")
    if not isinstance(input_spikes, int) or isinstance(input_spikes, bool) or input_spikes < 1:
        raise InputError(f"input_spikes must be a positive integer, not {input_spikes!r}")
    if input_spikes > 1 and method not in ("cat", "float"):
        raise InputError(f"several spikes per input value are a TTFS input code; {method} training is rate-coded")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, not {batch_size!r}")
    for name, v in (("lr", lr), ("cat_lr", cat_lr)):
        if not (isinstance(v, (int, float)) and 0 < v < float("inf")):
            raise InputError(f"{name} must be a positive number, not {v!r}")
    if not (isinstance(weight_decay, (int, float)) and 0 <= weight_decay < float("inf")):
        raise InputError(f"weight_decay must be a non-negative number, not {weight_decay!r}")
    if not (isinstance(distill, (int, float)) and 0 <= distill <= 1):
        raise InputError(f"distill must be a number from 0 to 1, not {distill!r}")
    if distill and method != "cat":
        raise InputError(f"distillation is part of CAT (method cat), not of {method}")
    if optimizer not in ann_lib.OPTIMIZERS:
        raise InputError(f"optimizer must be one of {', '.join(ann_lib.OPTIMIZERS)}, not {optimizer!r}")
    out = check_output_file(out, "ANN checkpoint")
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None
    ds = load_dataset(dataset, seed=seed, data_dir=data_dir)
    if module is not None:
        net = load_user_network(module)
        if weights is not None:
            load_user_weights(net, weights)
        recipe = {"arch": USER_ARCH, "module": absolute_module(module), "features": ds.features,
                  "classes": ds.classes, "shape": list(ds.shape), "input_shape": input_layout(net, ds)}
    else:
        recipe = {"arch": arch, "features": ds.features, "classes": ds.classes, "shape": list(ds.shape),
                  "hidden": list(hidden), "width": width, "seed": seed}
        net = build_network(**recipe)
    input_shape = recipe.get("input_shape")
    if augment and not ds.shape:
        raise InputError(f"augmentation crops and flips images; the {dataset} data set is not image-shaped")
    x_train, x_test = _shaped(ds.x_train, input_shape), _shaped(ds.x_test, input_shape)
    training = {"batch_size": batch_size, "augment": list(ds.shape) if augment else None}
    settings = {"lr": lr, "cat_lr": cat_lr, "optimizer": optimizer, "weight_decay": weight_decay, "amp": amp,
                "distill": distill, **training}
    total = epochs + (cat_epochs if method != "float" else 0)
    with tqdm(total=total, desc="train", unit="epoch", disable=quiet) as bar:
        if epochs:
            ann_lib.train(net, x_train, ds.y_train, ann_lib.TrainConfig(
                epochs=epochs, seed=seed, lr=lr, optimizer=optimizer, weight_decay=weight_decay, amp=amp, **training),
                progress=bar, resume=resume_file(out, "float"))
        float_acc = ann_lib.accuracy(net, x_test, ds.y_test)
        ckpt = {"format": ANN_FORMAT, "version": ANN_VERSION, "dataset": dataset, "data_dir": data_dir,
                "recipe": recipe, "seed": seed,
                "method": method, "training": {**settings, "epochs": epochs, "cat_epochs": cat_epochs},
                "float_state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                "float_accuracy": float_acc, "input_theta": 1.0, "input_spikes": input_spikes,
                "timing": {"T": timing.T, "B": timing.B, "frac_bits": timing.frac_bits}}
        if method != "float":
            tune = {"cat": ann_lib.cat_finetune, "noise": ann_lib.noise_aware_finetune,
                    "twostage": ann_lib.two_stage_finetune}[method]
            spikes = {"input_spikes": input_spikes} if method == "cat" else {}
            cat = tune(net.cpu().eval(), ds.x_train, ds.y_train, timing, 1.0, epochs=cat_epochs, lr=cat_lr,
                       seed=seed, input_shape=input_shape, progress=bar, resume=resume_file(out, method), **training,
                       distill=distill, **spikes)
            ckpt.update(cat_state_dict={k: v.detach().cpu() for k, v in cat.state_dict().items()},
                        thetas=cat.thetas, cat_accuracy=ann_lib.accuracy(cat, ds.x_test, ds.y_test),
                        coding=cat.coding, noise=list(cat.noise))
        else:
            ckpt.update(cat_state_dict=None, thetas=None)
    atomic_write(out, lambda f: torch.save(ckpt, f), "ANN checkpoint")
    for phase in ("float", method):
        resume_file(out, phase).unlink(missing_ok=True)
    return ckpt


def resume_file(out: Path, phase: str) -> Path:
    """Where ``train_ann`` keeps a phase's training state while it trains ``out`` (ann.train's
    ``resume``): run the same command again after an interruption and it goes on from the last
    finished epoch."""
    return out.with_name(f"{out.name}.{phase}-state")


def absolute_module(spec: str) -> str:
    """``FILE.py:FUNCTION`` with FILE made absolute, so a recorded spec does not depend on the directory."""
    path, _, func = spec.rpartition(":")
    return f"{Path(path).resolve()}:{func}"


def _shaped(x, input_shape):
    return x if input_shape is None else x.reshape(len(x), *input_shape)


def load_ann(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ANN checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file; its advice to load unsafely is not ours
        raise ModelFileError(f"{path}: not a readable firstspike ANN checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != ANN_FORMAT:
        raise ModelFileError(f"{path}: not a firstspike ANN checkpoint")
    if ckpt.get("version") != ANN_VERSION:
        raise ModelFileError(f"{path}: ANN checkpoint version {ckpt.get('version')!r} is not supported "
                             f"(this firstspike reads version {ANN_VERSION}; retrain with 'firstspike train')")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ModelFileError(f"{path}: damaged ANN checkpoint: missing {', '.join(missing)}")
    return ckpt


def ann_network(ckpt: dict) -> torch.nn.Module:
    """The float network of a checkpoint, in eval mode."""
    net = build_network(**ckpt["recipe"])
    net.load_state_dict(ckpt["float_state_dict"])
    return net.eval()


def input_shape_of(ckpt: dict) -> list[int] | None:
    """The image shape a user's network takes its inputs in (None: flat rows, as every recipe)."""
    return ckpt["recipe"].get("input_shape")


def cat_network(ckpt: dict) -> ann_lib.CatNetwork:
    """The network CAT or noise-aware training trained (quantisers on), with its learned thresholds."""
    if ckpt.get("cat_state_dict") is None:
        raise InputError("this checkpoint was trained without CAT; use --calibration max, percentile or iteration")
    cat = ann_lib.CatNetwork(ann_network(ckpt), Timing(**ckpt["timing"]), ckpt["input_theta"], ckpt["thetas"],
                             input_shape=input_shape_of(ckpt), coding=ckpt.get("coding", "ttfs"),
                             input_spikes=ckpt.get("input_spikes", 1))
    cat.load_state_dict(ckpt["cat_state_dict"])
    return cat.eval()

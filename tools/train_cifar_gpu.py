#!/usr/bin/env python3
"""Train a CIFAR-10 recipe on a GPU within a wall-clock budget (float, then CAT) and convert it.

Made for a GPU machine that has PyTorch but not the project's environment: it needs torch,
numpy and tqdm only (the sw package), and imports firstspike from this checkout when it is
not installed. It measures a float and a CAT training step first, chooses the epochs of
both phases so that training fits ``--budget`` seconds (``--cat-share`` of them for CAT),
trains with ``firstspike.sw.checkpoint.train_ann`` (SGD with Nesterov momentum and
bfloat16 for the float phase, random crops and flips for both), converts the CAT network
at the timing it trained for (T=16, B=2 unless given) and writes

- ``OUT/ARCH.npz``: the SNN model file (run it with ``firstspike golden`` / ``sim`` and
  ``--data-dir``), and
- ``OUT/ARCH.json``: accuracies (float, CAT), epochs, seconds per epoch, the device, the call.

    python3 tools/train_cifar_gpu.py --arch vgg16 --data-dir DIR --out OUT --budget 420

The VGG-16 and ResNet-18 rows of docs/results.md ("CIFAR-10 on a GPU") were made this way.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def import_firstspike() -> None:
    """Use the installed package, else this checkout's folders (firstspike/, sw/, hw/, sim/)."""
    try:
        import firstspike.sw  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))
        import firstspike
        firstspike.__path__.append(str(ROOT))  # firstspike.sw is the folder sw/, as pyproject.toml maps it


def seconds_per_epoch(net, x, y, cfg, batches: int) -> float:
    """Wall-clock seconds of one epoch over all of ``x``, from ``batches`` timed steps (after
    as many untimed ones: cuDNN picks its kernels on the first)."""
    import torch

    from firstspike.sw import ann
    n = min(len(x), batches * cfg.batch_size)
    probe = dict(epochs=1)
    ann.train(net, x[:n], y[:n], dataclasses.replace(cfg, **probe))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    ann.train(net, x[:n], y[:n], dataclasses.replace(cfg, **probe))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * len(x) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, choices=["vgg11", "vgg16", "resnet20", "resnet18"])
    p.add_argument("--data-dir", required=True, help="folder with cifar-10-batches-py/")
    p.add_argument("--out", required=True, help="folder for ARCH.npz and ARCH.json")
    p.add_argument("--budget", type=float, required=True, help="seconds of training, both phases")
    p.add_argument("--cat-share", type=float, default=0.3, help="part of the budget for CAT")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--cat-lr", type=float, default=1e-4)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--B", type=int, default=2)
    p.add_argument("--probe-batches", type=int, default=20, help="timed steps per phase before training")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    import_firstspike()
    import numpy as np
    import torch

    from firstspike.sw import ann
    from firstspike.sw.checkpoint import build_network, cat_network, train_ann
    from firstspike.sw.convert import convert, network_stages
    from firstspike.sw.data import load_dataset
    from firstspike.sw.formats import Timing

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timing = Timing(T=args.T, B=args.B)
    ds = load_dataset("cifar10", data_dir=args.data_dir)
    recipe = dict(arch=args.arch, features=ds.features, classes=ds.classes, shape=list(ds.shape), width=args.width)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"{args.arch}: {len(ds.x_train)} training images on {device}", flush=True)

    # time both phases on a slice of the data, then fit the epochs into the budget
    shape = tuple(ds.shape)
    cfg = ann.TrainConfig(batch_size=args.batch_size, lr=args.lr, optimizer="sgd", weight_decay=args.weight_decay,
                          augment=shape, amp=True)
    net = build_network(**recipe)
    float_epoch = seconds_per_epoch(net, ds.x_train, ds.y_train, cfg, args.probe_batches)
    hidden = sum(st.hidden for st in network_stages(net.cpu().eval()))
    cat = ann.CatNetwork(net, timing, 1.0, [1.0] * hidden)
    cat_cfg = dataclasses.replace(cfg, lr=args.cat_lr, optimizer="adam", weight_decay=1e-4, amp=False)
    cat_epoch = seconds_per_epoch(cat, ds.x_train, ds.y_train, cat_cfg, args.probe_batches)
    epochs = max(1, min(args.max_epochs, math.floor(args.budget * (1 - args.cat_share) / float_epoch)))
    cat_epochs = max(1, min(args.max_epochs, math.floor(args.budget * args.cat_share / cat_epoch)))
    print(f"{float_epoch:.1f} s per float epoch, {cat_epoch:.1f} s per CAT epoch: "
          f"{epochs} + {cat_epochs} epochs", flush=True)
    del net, cat

    start = time.perf_counter()
    ckpt = train_ann(Path("/tmp") / f"firstspike-{args.arch}.pt", dataset="cifar10", arch=args.arch,
                     width=args.width, method="cat", timing=timing, epochs=epochs, cat_epochs=cat_epochs,
                     data_dir=args.data_dir, batch_size=args.batch_size, lr=args.lr, cat_lr=args.cat_lr,
                     optimizer="sgd", weight_decay=args.weight_decay, augment=True, amp=True)
    trained_s = time.perf_counter() - start
    cat = cat_network(ckpt)
    model = convert(cat.stages, timing, ckpt["input_theta"], cat.thetas, name=f"cifar10-{args.arch}",
                    info={"dataset": "cifar10", "data_dir": None, "seed": ckpt["seed"], "calibration": "cat",
                          "arch": args.arch, "neuron": "ttfs", "rounding": "nearest",
                          "float_accuracy": ckpt["float_accuracy"]})
    model.save(out / f"{args.arch}.npz")
    summary = {"arch": args.arch, "width": args.width, "data": "CIFAR-10 (JPEG copy)", "device": device,
               "torch": torch.__version__, "T": timing.T, "B": timing.B, "training": ckpt["training"],
               "float_epoch_s": float_epoch, "cat_epoch_s": cat_epoch, "train_s": trained_s,
               "float_accuracy": ckpt["float_accuracy"], "cat_accuracy": ckpt["cat_accuracy"],
               "thetas": ckpt["thetas"], "weights": int(sum(np.asarray(layer.weights).size for layer in model.layers)),
               "command": " ".join(["python3", "tools/train_cifar_gpu.py", *argv])}
    (out / f"{args.arch}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "thetas"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

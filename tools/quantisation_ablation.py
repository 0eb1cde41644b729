#!/usr/bin/env python3
"""Where a training-free conversion loses accuracy: the SNN's weight format alone, its
input and hidden activation codes alone, and all of them, on a float checkpoint.

The network runs as sw.ann.CatNetwork does for CAT (float arithmetic, BatchNorm folded)
with thresholds calibrated on the training set, in six settings: float; 5-bit log weights
only (nearest rounding, the layer scale from max|w|); the input's TTFS code only (each
pixel on the levels 2^(-t/B)); the hidden layers' TTFS activations only; input and hidden
activations; and all three. It also prints, per weight layer, the relative L2 error
of the log weights, ||q(W) - W|| / ||W||. docs/results.md quotes it for CIFAR-10 VGG-11:

    .venv/bin/python tools/quantisation_ablation.py build/accuracy/cifar10-vgg11/float.pt \\
        --data-dir build/data/cifar10 [--T 16] [--B 2] [--method percentile] [--input-spikes 1]

Adaptive rounding and CAT, what the converter offers against these losses, are not in it:
`make bench-accuracy` measures those.
"""
from __future__ import annotations

import argparse

import numpy as np

#: (name, weights, input, hidden activations quantised)
SETTINGS = (("float", False, False, False), ("log weights", True, False, False), ("TTFS input", False, True, False),
            ("TTFS hidden", False, False, True), ("TTFS input + hidden", False, True, True), ("all", True, True, True))


def ablation(net, x_cal: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, timing, method: str = "percentile",
             input_shape=None, input_spikes: int = 1) -> dict:
    """{"accuracy": {setting: test accuracy}, "weight_l2_error": [per weight layer]} of float
    network ``net`` with thresholds calibrated by ``method`` on ``x_cal``; the input coded with
    ``input_spikes`` residual spikes per value (sw/input_spikes.py)."""
    import torch

    from firstspike.sw.ann import CatNetwork, accuracy, log_quantise_weights
    from firstspike.sw.convert import calibrate
    thetas = calibrate(net, x_cal, method, timing=timing, input_shape=input_shape)
    cat = CatNetwork(net, timing, 1.0, thetas, input_shape=input_shape, input_spikes=input_spikes).eval()
    scores = {}
    for name, weights, inputs, hidden in SETTINGS:
        cat.quantise_weights, cat.quantise_input, cat.quantise_activations = weights, inputs, hidden
        scores[name] = accuracy(cat, x_test, y_test)
    with torch.no_grad():
        errors = [float(torch.linalg.vector_norm(log_quantise_weights(w) - w) / torch.linalg.vector_norm(w))
                  for w in (st.layer.weight for st in cat.stages)]
    return {"accuracy": scores, "weight_l2_error": errors}


def main(argv=None) -> None:
    from firstspike.sw.checkpoint import ann_network, input_shape_of, load_ann
    from firstspike.sw.data import load_dataset
    from firstspike.sw.formats import Timing

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="float ANN checkpoint (firstspike train, make bench-accuracy's float.pt)")
    p.add_argument("--data-dir", help="the checkpoint's data set folder (default: where it was trained from)")
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--B", type=int, default=2)
    p.add_argument("--method", default="percentile", choices=("max", "percentile", "iteration"))
    p.add_argument("--input-spikes", type=int, default=1, help="residual spikes per input value (docs/spec.md 2)")
    a = p.parse_args(argv)
    ckpt = load_ann(a.checkpoint)
    ds = load_dataset(ckpt["dataset"], seed=ckpt["seed"], data_dir=a.data_dir or ckpt.get("data_dir"))
    out = ablation(ann_network(ckpt), ds.x_train, ds.x_test, ds.y_test, Timing(T=a.T, B=a.B), a.method,
                   input_shape_of(ckpt), a.input_spikes)
    print(f"{a.checkpoint}, T={a.T}, B={a.B}, {a.method} thresholds, nearest weight rounding, "
          f"{a.input_spikes} input spike(s) per value, {len(ds.x_test)} test images:")
    for name, acc in out["accuracy"].items():
        print(f"  {name:20s} {100 * acc:6.2f} %")
    print("  log weights, relative L2 error per layer: " + ", ".join(f"{e:.3f}" for e in out["weight_l2_error"]))


if __name__ == "__main__":
    main()

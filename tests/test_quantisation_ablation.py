"""tools/quantisation_ablation.py: each setting is the float network with some, all
or none of the SNN's formats, checked against the same network computed by hand."""
import re

import numpy as np
import pytest
import torch

from firstspike.sw.ann import CatNetwork, accuracy, ttfs_quantise
from firstspike.sw.checkpoint import ann_network, load_ann
from firstspike.sw.convert import calibrate
from firstspike.sw.data import load_dataset
from firstspike.sw.formats import Timing, decode_weights, encode_weights, weight_scale_for
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("quantisation_ablation")


def _by_hand(layers, x, thetas, timing, weights: bool, inputs: bool, activations: bool) -> np.ndarray:
    """Predictions of the MLP ``layers`` (nn.Linear), its weights rounded with the numpy
    encoder (sw/formats.py), its input and its hidden activations on the TTFS grid, as asked."""
    h = torch.from_numpy(x)
    if inputs:
        h = ttfs_quantise(h, torch.tensor(1.0), timing)
    for k, layer in enumerate(layers):
        w = layer.weight.detach().double().numpy()
        if weights:
            scale = weight_scale_for(w)
            w = decode_weights(encode_weights(w, scale), scale)
        h = h @ torch.from_numpy(w).float().T + layer.bias.detach()
        if k < len(layers) - 1:
            h = ttfs_quantise(h, torch.tensor(thetas[k]), timing) if activations else torch.relu(h)
    return h.argmax(1).numpy()


def test_each_setting_is_the_network_with_those_formats(tool, digits_model):
    ann_path, _, _ = digits_model
    ckpt = load_ann(ann_path)
    net = ann_network(ckpt)
    ds = load_dataset("digits", seed=ckpt["seed"])
    timing = Timing(T=8, B=1)
    out = tool.ablation(net, ds.x_train, ds.x_test, ds.y_test, timing)
    thetas = calibrate(net, ds.x_train, "percentile", timing=timing)
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    for name, *formats in tool.SETTINGS:
        expected = float((_by_hand(layers, ds.x_test, thetas, timing, *formats) == ds.y_test).mean())
        assert out["accuracy"][name] == pytest.approx(expected, abs=1e-12), name
    assert out["accuracy"]["float"] == accuracy(net, ds.x_test, ds.y_test)
    assert out["accuracy"]["all"] == accuracy(CatNetwork(net, timing, 1.0, thetas).eval(), ds.x_test, ds.y_test)
    assert out["accuracy"]["all"] < out["accuracy"]["float"]  # T=8, B=1 is coarse enough to cost accuracy
    for layer, error in zip(layers, out["weight_l2_error"]):
        w = layer.weight.detach().double().numpy()
        q = decode_weights(encode_weights(w, weight_scale_for(w)), weight_scale_for(w))
        assert error == pytest.approx(np.linalg.norm(q - w) / np.linalg.norm(w), rel=1e-5)
        assert 0.05 < error < 0.35  # powers of two are at most a third off


def test_command_line_prints_every_setting(tool, digits_model, capsys):
    ann_path, _, _ = digits_model
    tool.main([str(ann_path), "--T", "8", "--B", "1"])
    out = capsys.readouterr().out
    assert "T=8, B=1, percentile thresholds" in out
    assert [name for name, *_ in tool.SETTINGS] == re.findall(r"^  (.+?) +[\d.]+ %$", out, re.M)
    assert len(re.search(r"per layer: (.*)", out).group(1).split(", ")) == 3

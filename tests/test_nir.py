"""NIR export: the graph read back holds the model's exact weights and thresholds and computes it."""
import nir
import numpy as np
import pytest

from firstspike.cli import main
from firstspike.sw.data import load_dataset
from firstspike.sw.formats import Timing, decode_weights, encode_spike_times
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.nir_export import NirExportError, to_nir
from firstspike.sw.random_models import random_cnn


def _ttfs(z, theta, timing):
    """The TTFS quantiser in float: largest level theta * 2**(-t/B) <= z, clipped at theta, 0 below the last."""
    t = encode_spike_times(np.maximum(z, 0), theta, timing)
    return np.where(t < 0, 0.0, theta * np.exp2(-np.maximum(t, 0) / timing.B))


def _run_nir(graph, x):
    """A plain reader of a firstspike NIR export: a chain of affine and IF nodes in TTFS semantics."""
    meta = graph.nodes["input"].metadata
    timing = Timing(T=int(meta["T"]), B=int(meta["B"]), frac_bits=int(meta["frac_bits"]))
    h = _ttfs(x, float(meta["input_theta"]), timing)
    node, nxt = "input", dict(graph.edges)
    while node != "output":
        node = nxt[node]
        n = graph.nodes[node]
        if isinstance(n, nir.Affine):
            h = h @ n.weight.T + n.bias
        elif isinstance(n, nir.IF):
            h = _ttfs(h, float(n.v_threshold.flat[0]), timing)
    return h


def test_digits_mlp_round_trip_computes_the_golden_model(digits_model, tmp_path):
    _, snn, model = digits_model
    assert main(["export", str(snn), "--nir", str(tmp_path / "m.nir")]) == 0
    graph = nir.read(str(tmp_path / "m.nir"))
    assert sorted(graph.nodes) == ["affine0", "affine1", "affine2", "if0", "if1", "input", "output"]
    np.testing.assert_array_equal(graph.nodes["affine1"].weight,
                                  decode_weights(model.layers[1].weights, model.layers[1].weight_scale))
    np.testing.assert_array_equal(graph.nodes["if0"].metadata["threshold_table"], model.layers[0].thresholds)
    x = load_dataset("digits").x_test
    agree = (_run_nir(graph, x).argmax(1) == GoldenModel(model).run(x).predictions).mean()
    assert agree > 0.98  # the float reading differs from the integer model only by its roundings


def test_conv_model_exports_conv_and_flatten_nodes(tmp_path):
    model = random_cnn(np.random.default_rng(3), (2, 6, 6), [{"channels": 4, "kernel": 3, "padding": 1}], [5], 3,
                       Timing())
    graph = to_nir(model)
    assert [type(graph.nodes[a]).__name__ for a, _ in graph.edges] == [
        "Input", "Conv2d", "IF", "Flatten", "Affine", "IF", "Affine"]
    conv = graph.nodes["conv0"]
    assert tuple(conv.padding) == (1, 1) and conv.weight.shape == (4, 2, 3, 3)
    assert list(conv.output_type["output"]) == [4, 6, 6]


def test_max_pooling_is_refused(tmp_path, capsys):
    model = random_cnn(np.random.default_rng(4), (1, 4, 4), [{"channels": 2, "kernel": 3, "padding": 1, "pool": 2}],
                       [], 3, Timing())
    with pytest.raises(NirExportError, match="NIR has no max-pooling node"):
        to_nir(model)
    model.save(tmp_path / "p.npz")
    assert main(["export", str(tmp_path / "p.npz"), "--nir", str(tmp_path / "p.nir")]) == 2
    assert "NIR has no max-pooling node" in capsys.readouterr().err
    assert not (tmp_path / "p.nir").exists()
    assert SnnModel.load(tmp_path / "p.npz").layers[0].pool == 2


def test_residual_model_exports_its_shortcuts_as_second_conv_inputs(tmp_path):
    """A shortcut becomes a Conv2d from its source into the layer's IF node, with the float
    weights (the threshold ratio folded into the codes taken out again); the importer, which
    takes chains only, refuses the branching graph by name."""
    from firstspike.sw.nir_import import NirImportError, from_nir
    from firstspike.sw.random_models import random_resnet
    from firstspike.sw.formats import decode_weights
    model = random_resnet(np.random.default_rng(5), (2, 6, 6), [dict(channels=2), dict(channels=3, stride=2)], 4,
                          Timing(), stem=False)
    graph = to_nir(model)
    assert set(graph.edges) >= {("input", "shortcut1"), ("shortcut1", "if1"), ("if1", "shortcut3"),
                                ("shortcut3", "if3")}
    for k in (1, 3):
        layer = model.layers[k]
        ratio = (float(model.layers[layer.shortcut.source - 1].thresholds[0]) * model.layers[layer.shortcut.source - 1]
                 .unit if layer.shortcut.source else model.input_theta) / (float(model.layers[k - 1].thresholds[0])
                                                                           * model.layers[k - 1].unit)
        np.testing.assert_allclose(graph.nodes[f"shortcut{k}"].weight * ratio,
                                   decode_weights(layer.shortcut.weights, layer.weight_scale))
        assert tuple(graph.nodes[f"shortcut{k}"].stride) == (layer.shortcut.stride,) * 2
    with pytest.raises(NirImportError, match="only chains of layers import"):
        from_nir(graph, Timing())

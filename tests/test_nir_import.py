"""NIR import onto rate-coded IF neurons: parameters map as documented, the imported network
classifies, and what does not map is refused with the node's name."""
import nir
import numpy as np
import pytest
import torch

from firstspike.cli import main
from firstspike.sw.formats import Timing, decode_weights
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.nir_import import NirImportError, from_nir


def _graph(linears, thetas, r=None, final_if=False, extra=None):
    """A NIR chain Input -> Affine -> IF -> ... -> Affine [-> IF] -> Output."""
    nodes = {"input": nir.Input(input_type={"input": np.array([linears[0].in_features])})}
    order = ["input"]
    for k, lin in enumerate(linears):
        w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
        nodes[f"fc{k}"] = nir.Affine(weight=w, bias=b)
        order.append(f"fc{k}")
        if k < len(thetas) or final_if:
            n = w.shape[0]
            rk = np.ones(n) if r is None else np.full(n, r)
            nodes[f"if{k}"] = nir.IF(r=rk, v_threshold=np.full(n, thetas[k] if k < len(thetas) else 1.0),
                                     v_reset=np.zeros(n))
            order.append(f"if{k}")
    nodes.update(extra or {})
    nodes["output"] = nir.Output(output_type={"output": np.array([linears[-1].out_features])})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])), type_check=False)


def test_digits_mlp_imports_and_classifies(digits_model, tmp_path, capsys):
    from firstspike.sw.checkpoint import ann_network, load_ann
    from firstspike.sw.convert import calibrate, linear_layers
    from firstspike.sw.data import load_dataset
    ann, _, _ = digits_model
    ckpt = load_ann(ann)
    net = ann_network(ckpt)
    ds = load_dataset("digits", seed=ckpt["seed"])
    thetas = calibrate(net, ds.x_train, "percentile")
    graph = _graph(linear_layers(net), thetas)
    nir.write(str(tmp_path / "m.nir"), graph)
    assert main(["import", str(tmp_path / "m.nir"), "--T", "16", "--out", str(tmp_path / "m.npz")]) == 0
    assert "rate_if neurons" in capsys.readouterr().out
    model = SnnModel.load(tmp_path / "m.npz")
    assert [layer.neuron for layer in model.layers] == ["rate_if"] * 3 and model.info["source"] == "NIR"
    assert np.all(model.layers[0].initial == 0)  # at rest, unless --initial says otherwise
    # layer 1's weights are the NIR weights times the source layer's threshold, on the log grid
    w1 = linear_layers(net)[1].weight.detach().double().numpy() * thetas[0]
    q1 = decode_weights(model.layers[1].weights, model.layers[1].weight_scale)
    assert np.all(np.abs(q1 - w1) <= np.abs(w1) / 3 + 2.0 ** (model.layers[1].weight_scale - 15))
    acc = (GoldenModel(model).run(ds.x_test).predictions == ds.y_test).mean()
    assert acc >= ckpt["float_accuracy"] - 0.05, acc


def test_r_scales_the_layer_and_a_final_if_is_dropped():
    torch.manual_seed(0)
    lins = [torch.nn.Linear(6, 5), torch.nn.Linear(5, 3)]
    with torch.no_grad():
        for lin in lins:
            lin.bias.fill_(0.05)
    base = from_nir(_graph(lins, [0.8]), Timing(T=8))
    with torch.no_grad():
        lins[0].weight.mul_(2)
        lins[0].bias.mul_(2)
    doubled = from_nir(_graph(lins, [0.8]), Timing(T=8))
    with torch.no_grad():
        lins[0].weight.div_(2)
        lins[0].bias.div_(2)
    scaled = from_nir(_graph(lins, [0.8], r=2.0), Timing(T=8))
    for a, b in zip(doubled.layers, scaled.layers):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias)
        assert (a.thresholds is None) or np.array_equal(a.thresholds, b.thresholds)
    # r = 2 doubles what the layer adds: the same codes at twice the unit, so half the integer threshold
    assert scaled.layers[0].unit == 2 * base.layers[0].unit
    assert np.all(np.abs(scaled.layers[0].thresholds - base.layers[0].thresholds / 2) <= 1)
    with pytest.warns(UserWarning, match="IF node 'if1' after the last layer dropped"):
        dropped = from_nir(_graph(lins, [0.8], final_if=True), Timing(T=8))
    assert dropped.sizes == base.sizes


@pytest.mark.parametrize("change,message", [
    ("lif", "node 'if0' \\(LIF\\) leaks"),
    ("reset", "v_reset must be 0"),
    ("conv-channel", "v_threshold differs within a channel"),
    ("branch", "feeds both"),
    ("delay", "Delay nodes do not import"),
])
def test_what_does_not_map_is_refused_by_name(change, message):
    torch.manual_seed(0)
    lins = [torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)]
    graph = _graph(lins, [1.0])
    if change == "lif":
        graph.nodes["if0"] = nir.LIF(tau=np.full(3, 10.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
                                     v_reset=np.zeros(3))
    elif change == "reset":
        graph.nodes["if0"] = nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.full(3, -0.5))
    elif change == "conv-channel":  # one threshold per position of a conv channel: not one per channel
        graph = nir.NIRGraph(nodes={
            "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
            "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                               groups=1, bias=np.zeros(2)),
            "if0": nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.arange(32.0).reshape(2, 4, 4) + 1,
                          v_reset=np.zeros((2, 4, 4))),
            "output": nir.Output(output_type={"output": np.array([2])})},
            edges=[("input", "conv"), ("conv", "if0"), ("if0", "output")], type_check=False)
    elif change == "branch":
        graph.edges.append(("fc0", "fc1"))
    elif change == "delay":
        graph.nodes["if0"] = nir.Delay(delay=np.ones(3))
    with pytest.raises(NirImportError, match=message):
        from_nir(graph, Timing(T=4))


def test_missing_or_bad_file(tmp_path, capsys):
    assert main(["import", str(tmp_path / "nope.nir"), "--out", str(tmp_path / "m.npz")]) == 2
    assert "no such NIR file" in capsys.readouterr().err
    (tmp_path / "bad.nir").write_text("not hdf5")
    assert main(["import", str(tmp_path / "bad.nir"), "--out", str(tmp_path / "m.npz")]) == 2
    assert "not a readable NIR file" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_conv_graph_imports_with_its_geometry():
    """A conv graph (firstspike's own export of a random CNN: Conv2d, IF, Flatten, Affine, IF, Affine)
    imports with the same layer geometry and per-channel thresholds from its IF nodes."""
    from firstspike.sw.nir_export import to_nir
    from firstspike.sw.random_models import random_cnn
    model = random_cnn(np.random.default_rng(3), (2, 6, 6), [{"channels": 4, "kernel": 3, "padding": 1,
                                                               "stride": 2}], [5], 3, Timing())
    graph = to_nir(model)
    imported = from_nir(graph, Timing(T=8))
    assert [(a.kind, a.in_shape, a.stride, a.padding) for a in imported.layers] == \
        [(a.kind, a.in_shape, a.stride, a.padding) for a in model.layers]
    assert imported.layers[0].thresholds.shape == (4,) and imported.coding == "rate"
    r = GoldenModel(imported).run(np.random.default_rng(0).random((4, 72)))
    assert r.potentials.shape == (4, 3)

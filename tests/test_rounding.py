"""Adaptive rounding of log weights (sw/rounding.py): valid codes, a lower layer error than
nearest rounding, zero mean error, and the training-free accuracy it buys."""
import numpy as np
import pytest

from firstspike.sw.formats import check_weight_codes, decode_weights, encode_weights, weight_scale_for
from firstspike.sw.rounding import adaptive_codes


def _error(q, w, h, f):
    e = h @ q.T - f @ w.T
    return e, ((e - e.mean(axis=0)) ** 2).mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_codes_lower_the_output_variance_and_zero_the_mean(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(6, 40)) * rng.uniform(0.1, 2.0, size=(6, 1))
    w[:, :3] = 0.0  # exact zeros and tiny weights (below the smallest level) stay valid
    w[:, 3] = 1e-9
    # inputs driven by 8 hidden factors, as a layer's activations are: weight errors can cancel
    f = np.maximum(rng.normal(size=(3000, 8)) @ rng.normal(size=(8, 40)) + 0.5, 0)
    h = f + 0.02 * rng.normal(size=f.shape)  # the rounded network's inputs drift from the float ones
    s = weight_scale_for(w)
    codes, shift = adaptive_codes(w, s, h, reference=f)
    check_weight_codes(codes)
    near = encode_weights(w, s)
    q, qn = decode_weights(codes, s), decode_weights(near, s)
    # every weight is its nearest level or the one on its other side (a factor of 2 away, or zero)
    ratio = np.abs(q[qn != 0] / qn[qn != 0])
    assert np.all(np.isin(ratio, [0.0, 0.5, 1.0, 2.0]))
    assert np.all(q[w == 0] == 0)
    e, var = _error(q, w, h, f)
    _, var_nearest = _error(qn, w, h, f)
    assert np.all(var <= var_nearest + 1e-12) and var.sum() < 0.7 * var_nearest.sum(), (var, var_nearest)
    assert np.allclose(e.mean(axis=0) + shift, 0.0, atol=1e-9)  # the shifted bias removes the mean error
    assert not np.array_equal(codes, near)


def test_training_free_ttfs_conversion_is_within_half_a_point_of_float(digits_cnn):
    """The issue's target: float digits CNN, T=16, B=2, no CAT (measured: 99.33 % against float 99.55 %
    with threshold iteration; nearest rounding gives 96.88 %)."""
    import firstspike
    from firstspike.sw.checkpoint import ann_network, load_ann
    from firstspike.sw.data import load_dataset
    ann, _, _ = digits_cnn
    ckpt = load_ann(ann)
    ds = load_dataset("digits", seed=ckpt["seed"])
    net = ann_network(ckpt)
    adaptive = firstspike.convert(net, ds.x_train, T=16, B=2, method="iteration", input_theta=1.0)
    nearest = firstspike.convert(net, ds.x_train, T=16, B=2, method="iteration", input_theta=1.0,
                                 rounding="nearest")
    acc = adaptive.accuracy(ds.x_test, ds.y_test)
    assert acc >= ckpt["float_accuracy"] - 0.005, f"{acc:.4f} vs float {ckpt['float_accuracy']:.4f}"
    assert acc > nearest.accuracy(ds.x_test, ds.y_test) + 0.01
    assert adaptive.model.info["rounding"] == "adaptive"


def test_cat_conversions_refuse_adaptive_rounding(digits_model, tmp_path, capsys):
    from firstspike.cli import main
    ann, _, _ = digits_model
    assert main(["convert", str(ann), "--rounding", "adaptive", "--out", str(tmp_path / "m.npz")]) == 2
    assert "CAT trained its weights for nearest rounding" in capsys.readouterr().err
    assert main(["convert", str(ann), "--calibration", "percentile", "--rounding", "nearest", "--out",
                 str(tmp_path / "n.npz")]) == 0

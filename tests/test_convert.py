"""Conversion: supported networks, clear errors for the rest, calibration."""
import numpy as np
import pytest
import torch
from torch import nn

from firstspike.sw.ann import mlp
from firstspike.sw.convert import ConversionError, calibrate, convert, linear_layers
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel


@pytest.mark.parametrize("net,match", [
    (nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2)), r"unsupported layer Sigmoid '1' at graph node"),
    (nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), "Linear at position 1 of the layer chain follows another"),
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "must end with a Linear"),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), "must follow a Linear"),
    (nn.Sequential(nn.Conv2d(1, 2, 3)), "a convolution needs image-shaped input"),
    (nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3, groups=1, dilation=2)), "dilation"),
    (nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, 1)),
     "only non-overlapping pools"),
    (nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten()),
     "must end with a Linear"),
    (nn.Sequential(nn.Unflatten(1, (1, 5, 5)), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)),
     "not a multiple of 2"),
    (nn.Sequential(nn.Unflatten(1, (2, 4, 4)), nn.Conv2d(1, 2, 3)), "expects 1 channels, gets 2"),
    (nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(8, 2)),
     "needs flat input; add nn.Flatten"),
])
def test_unsupported_networks_name_the_layer(net, match):
    with pytest.raises(ConversionError, match=match):
        linear_layers(net)


def test_dropout_is_passed_over():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
    assert len(linear_layers(net)) == 2


def test_calibration_methods():
    net = mlp([8, 16, 4])
    x = np.random.default_rng(0).random((500, 8)).astype(np.float32)
    mx = calibrate(net, x, "max")
    pc = calibrate(net, x, "percentile", 99.0)
    with torch.no_grad():
        act = torch.relu(net[0](torch.as_tensor(x))).numpy()
    assert mx[0] == pytest.approx(act.max())
    assert pc[0] == pytest.approx(np.percentile(act[act > 0], 99.0))
    with pytest.raises(ConversionError, match="unknown calibration"):
        calibrate(net, x, "median")


def test_calibration_reads_the_first_images_that_hold_its_budget(monkeypatch):
    """A large network's calibration reads the first images holding CALIBRATE_VALUES hidden
    activations (here 300 images of 16), not all of them: the largest input, image 400, is
    left out."""
    import firstspike.sw.convert as convert_module
    net = mlp([8, 16, 4])
    x = np.random.default_rng(0).random((500, 8)).astype(np.float32)
    x[400] *= 50
    monkeypatch.setattr(convert_module, "CALIBRATE_VALUES", 16 * 300)
    assert calibrate(net, x, "max") == calibrate(net, x[:300], "max")
    monkeypatch.setattr(convert_module, "CALIBRATE_VALUES", 16 * 500)
    assert calibrate(net, x, "max")[0] > calibrate(net, x[:300], "max")[0]


def test_converted_golden_tracks_float_network():
    """With fine levels (B=8) and max calibration the SNN output follows the ANN's."""
    net = mlp([8, 16, 4], seed=1)
    x = np.random.default_rng(0).random((200, 8)).astype(np.float32)
    t = Timing(T=64, B=8, frac_bits=20)
    model = convert(net, t, 1.0, calibrate(net, x, "max"))
    g = GoldenModel(model).run(x)
    with torch.no_grad():
        ref = net(torch.as_tensor(x)).numpy()
    scores = g.potentials * model.layers[-1].unit
    assert np.corrcoef(scores.ravel(), ref.ravel())[0, 1] > 0.95
    assert (g.predictions == ref.argmax(1)).mean() > 0.8


def test_bad_thresholds():
    net = mlp([4, 4, 2])
    with pytest.raises(ConversionError, match="need one threshold per hidden layer"):
        convert(net, Timing(), 1.0, [])
    with pytest.raises(ConversionError, match="must be positive"):
        convert(net, Timing(), 1.0, [0.0])
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(ConversionError, match="NaN"):
        convert(net, Timing(), 1.0, [1.0])


@pytest.mark.parametrize("mu,sigma,T,B", [(0.5, 1.0, 8, 2), (2.0, 0.5, 16, 1), (-0.5, 2.0, 4, 4)])
def test_threshold_iteration_minimises_expected_error(mu, sigma, T, B):
    """The fitted threshold is as good as a brute-force Monte-Carlo search of the same objective."""
    from firstspike.sw.convert import threshold_iteration
    from firstspike.sw.formats import decode_spike_times, encode_spike_times
    t = Timing(T=T, B=B)
    rng = np.random.default_rng(0)
    theta = threshold_iteration(rng.normal(mu, sigma, size=(50000, 1)), t)
    x = np.maximum(rng.normal(mu, sigma, 200000), 0)

    def mse(th):
        return ((decode_spike_times(encode_spike_times(x, th, t), th, t) - x) ** 2).mean()
    best = min(mse(th) for th in np.geomspace(0.05, 10 * (abs(mu) + 3 * sigma), 300))
    assert mse(theta) <= 1.02 * best


def test_iteration_calibration_needs_timing():
    net = mlp([8, 16, 4])
    x = np.random.default_rng(0).random((300, 8)).astype(np.float32)
    with pytest.raises(ConversionError, match="needs the timing"):
        calibrate(net, x, "iteration")
    (theta,) = calibrate(net, x, "iteration", timing=Timing(T=8, B=2))
    assert 0 < theta < 10

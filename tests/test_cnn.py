"""Conv nets in software: graph reading, folding, conversion, golden model, CAT."""
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from firstspike.sw.convert import calibrate, convert, network_stages
from firstspike.sw.formats import NO_SPIKE, Timing, fire_times, split_codes
from firstspike.sw.golden import GoldenModel, fire_and_pool, max_pool_times
from firstspike.sw.model import SnnModel
from firstspike.sw.random_models import random_cnn, random_input_times


class FunctionalCnn(nn.Module):
    """Conv, BatchNorm2d, functional ReLU and pools, a view to flatten: what users write."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 5, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5 * 2 * 2, 4)

    def forward(self, x):
        x = x.view(-1, 2, 8, 8)
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.c1(x))), 2)  # 6 x 4 x 4
        x = nn.functional.avg_pool2d(nn.functional.relu(self.bn2(self.c2(x))), 1)  # 5 x 2 x 2
        return self.fc(x.view(x.size(0), -1))


def trained_like(net, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(0.0, 0.3)
    return net.eval()


def stages_forward(stages, x):
    h = torch.as_tensor(x)
    for st in stages:
        z = st.forward(h)
        if not st.hidden:
            return z
        h = st.pool_flat(torch.relu(z))


def test_stages_fold_batchnorm_and_compute_the_same():
    net = trained_like(FunctionalCnn())
    stages = network_stages(net)
    assert [(st.kind, st.in_shape, st.pool, st.hidden) for st in stages] == [
        ("conv", (2, 8, 8), 2, True), ("conv", (6, 4, 4), 1, True), ("linear", (5, 2, 2), 1, False)]
    x = torch.rand(20, 128)
    with torch.no_grad():
        assert torch.allclose(stages_forward(stages, x), net(x), atol=1e-5)


@pytest.mark.parametrize("tail", ["conv", "linear"])
def test_average_pool_folds_into_the_next_layer(tail):
    torch.manual_seed(1)
    if tail == "conv":
        net = nn.Sequential(nn.Unflatten(1, (3, 8, 8)), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                            nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(80, 3))
    else:
        net = nn.Sequential(nn.Unflatten(1, (3, 8, 8)), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4),
                            nn.Flatten(), nn.Linear(16, 3))
    stages = network_stages(net)
    assert stages[1].in_shape == (4, 8, 8)  # the pool is gone: the next layer reads the full map
    if tail == "conv":
        assert (stages[1].layer.kernel_size, stages[1].layer.stride, stages[1].layer.padding) == ((6, 6), (2, 2),
                                                                                                   (2, 2))
    x = torch.rand(10, 192)
    with torch.no_grad():
        assert torch.allclose(stages_forward(stages, x), net(x), atol=1e-5)


def test_cnn_converts_and_golden_follows_float():
    net = trained_like(FunctionalCnn(), 2)
    x = np.random.default_rng(0).random((400, 128)).astype(np.float32)
    t = Timing(T=48, B=8, frac_bits=20)
    model = convert(net, t, 1.0, calibrate(net, x, "max"))
    assert [layer.kind for layer in model.layers] == ["conv", "conv", "linear"]
    assert model.shapes == [(2, 8, 8), (6, 4, 4), (5, 2, 2), (4, 1, 1)]
    with torch.no_grad():
        ref = net(torch.as_tensor(x)).numpy()
    assert (GoldenModel(model).run(x).predictions == ref.argmax(1)).mean() > 0.85


def test_calibration_of_cnns_uses_every_position():
    net = trained_like(FunctionalCnn(), 3)
    x = np.random.default_rng(1).random((100, 128)).astype(np.float32)
    mx, pc = calibrate(net, x, "max"), calibrate(net, x, "percentile", 99.0)
    it = calibrate(net, x, "iteration", timing=Timing(T=8, B=2))
    assert len(mx) == len(pc) == len(it) == 2
    assert all(p < m for p, m in zip(pc, mx)) and all(0 < v for v in it)


def _naive_conv(layer, times, table):
    """Loops over every spike and tap: slow, obviously right."""
    c_in, h, w = layer.in_shape
    co, ho, wo = layer.conv_shape
    K, s, p = layer.kernel, layer.stride, layer.padding
    sign, mag = split_codes(layer.weights)
    out = np.zeros((times.shape[0], co, ho, wo), dtype=np.int64) + layer.bias[None, :, None, None]
    t = times.reshape(-1, c_in, h, w)
    for b, c, y, x in itertools.product(range(t.shape[0]), range(c_in), range(h), range(w)):
        tt = t[b, c, y, x]
        if tt < 0:
            continue
        for o, ky, kx in itertools.product(range(co), range(K), range(K)):
            oy, ox = y + p - ky, x + p - kx
            if oy % s or ox % s or not (0 <= oy // s < ho and 0 <= ox // s < wo):
                continue
            v = int(table[mag[o, c, ky, kx], tt])
            out[b, o, oy // s, ox // s] += -v if sign[o, c, ky, kx] else v
    return out.reshape(times.shape[0], -1)


@pytest.mark.parametrize("seed", range(4))
def test_golden_conv_equals_naive_loops(seed):
    """Reproduce: random_cnn(np.random.default_rng(seed), ...) as below."""
    rng = np.random.default_rng(seed)
    t = Timing(T=8, B=2, frac_bits=8)
    model = random_cnn(rng, (2, 7, 6), [dict(channels=3, kernel=int(rng.choice([1, 3, 5])), stride=2, padding=2),
                                        dict(channels=4, kernel=3, padding=1, pool=2)], [5], 3, t)
    g = GoldenModel(model)
    g.CHUNK_ENTRIES = 600  # force several chunks
    r = g.run_times(random_input_times(rng, model.layers[0].n_in, 5, t))
    for k in range(2):
        assert np.array_equal(g.layer_potentials(k, r.spikes[k]), _naive_conv(model.layers[k], r.spikes[k],
                                                                              t.contribution_table()))


def test_max_pool_is_the_earliest_spike_and_drops_the_remainder():
    times = np.array([[3, -1, 5, 2, 7,
                       -1, -1, 1, 9, 0]])  # one channel, 2 x 5
    assert max_pool_times(times, (1, 2, 5), 2, 16).tolist() == [[3, 1]]
    assert max_pool_times(np.full((1, 4), -1), (1, 2, 2), 2, 16).tolist() == [[-1]]


@pytest.mark.parametrize("pool", [2, 4])
def test_pooling_potentials_first_equals_pooling_spike_times(pool):
    """The fast path (max of potentials, then fire) against fire-then-earliest-spike.

    Reproduce: rng = np.random.default_rng(pool) as below."""
    rng = np.random.default_rng(pool)
    th = np.sort(rng.integers(0, 400, 16))[::-1]  # non-increasing, with repeats
    v = rng.integers(-3000, 500, (20, 3 * 9 * 7))
    fast = fire_and_pool(v, th, (3, 9, 7), pool, 16)
    assert np.array_equal(fast, max_pool_times(fire_times(v, th), (3, 9, 7), pool, 16))
    assert (fast != NO_SPIKE).any() and (fast == NO_SPIKE).any()
    rising = th[::-1].copy()  # not monotone the right way: the general path, same answer
    assert np.array_equal(fire_and_pool(v, rising, (3, 9, 7), pool, 16),
                          max_pool_times(fire_times(v, rising), (3, 9, 7), pool, 16))


@pytest.mark.parametrize("seed", range(3))
def test_golden_run_equals_layer_by_layer_numpy_reference(seed):
    """run_times (potentials and thresholds in the model's float type) against int64
    layer_potentials + fire_and_pool with integer thresholds,
    on odd sizes (pool remainders) and pools of 2 and 4. Reproduce: default_rng(seed) as below."""
    rng = np.random.default_rng(seed)
    t = Timing(T=8, B=2, frac_bits=10)
    model = random_cnn(rng, (2, 11, 9), [dict(channels=5, kernel=3, padding=1, pool=2),
                                         dict(channels=4, kernel=1, pool=4 if seed else 1)], [6], 3, t)
    if seed == 2:  # a table that is not non-increasing: the general path
        th = model.layers[0].thresholds
        th[2], th[5] = th[5], th[2]
    g = GoldenModel(model)
    r = g.run_times(random_input_times(rng, model.layers[0].n_in, 7, t))
    times = r.spikes[0]
    for k, layer in enumerate(model.layers[:-1]):
        times = fire_and_pool(g.layer_potentials(k, times), layer.thresholds, layer.conv_shape, layer.pool, t.T)
        assert np.array_equal(r.spikes[k + 1], times), k
        assert (times != NO_SPIKE).any()
        assert np.all(np.diff(layer.thresholds) <= 0) == (seed != 2 or k > 0)
    assert np.array_equal(r.potentials, g.layer_potentials(len(model.layers) - 1, times))


def test_cnn_model_file_round_trip(tmp_path):
    model = random_cnn(np.random.default_rng(3), (1, 6, 6), [dict(channels=2, kernel=3, stride=2, padding=1,
                                                                  pool=1)], [], 2, Timing(T=8, B=2, frac_bits=10))
    model.save(tmp_path / "m.npz")
    back = SnnModel.load(tmp_path / "m.npz")
    assert back.shapes == model.shapes and back.layers[0].stride == 2 and back.layers[0].padding == 1
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(model.layers, back.layers))


def test_digits_cnn_cat_within_half_a_point_of_float(digits_cnn):
    from firstspike.sw.checkpoint import cat_network, load_ann
    from firstspike.sw.data import load_dataset
    ann_path, _, model = digits_cnn
    ckpt = load_ann(ann_path)
    ds = load_dataset("digits")
    golden = GoldenModel(model).run(ds.x_test).predictions
    with torch.no_grad():
        cat = cat_network(ckpt)(torch.as_tensor(ds.x_test)).argmax(1).numpy()
    assert (cat == golden).mean() >= 0.99  # CAT's network is the SNN
    assert (golden == ds.y_test).mean() >= ckpt["float_accuracy"] - 0.005

"""The golden model against a float reference, within the spec's bound."""
import numpy as np
import pytest

from firstspike.sw.formats import NO_SPIKE, Timing, fire_times
from firstspike.sw.golden import GoldenModel, reference_potentials
from firstspike.sw.random_models import random_input_times, random_model


@pytest.mark.parametrize("seed,T,B,F", [(0, 8, 1, 12), (1, 16, 2, 16), (2, 32, 4, 20), (3, 10, 8, 8)])
def test_layer_potentials_within_truncation_bound(seed, T, B, F):
    """Spec section 3: each contribution is below the exact value by less than 1.5 units
    (mantissa rounding <= 0.5, truncation < 1), so |V - exact| < 1.5 * contributions."""
    rng = np.random.default_rng(seed)
    t = Timing(T=T, B=B, frac_bits=F)
    model = random_model(rng, [30, 20, 10], t)
    g = GoldenModel(model)
    times = random_input_times(rng, 30, 64, t)
    for k in range(len(model.layers)):
        v = g.layer_potentials(k, times)
        exact = reference_potentials(model, k, times)
        active = (times != NO_SPIKE).sum(1)[:, None]
        assert np.all(np.abs(v - exact) < 1.5 * active + 1e-6)
        times = fire_times(v, model.layers[k].thresholds) if model.layers[k].thresholds is not None else None


def test_golden_matches_scalar_loop():
    """The vectorised model equals a direct per-event integer loop (the spec's pseudo-code)."""
    rng = np.random.default_rng(7)
    t = Timing(T=12, B=4, frac_bits=14)
    model = random_model(rng, [9, 6, 4], t)
    times = random_input_times(rng, 9, 20, t)
    g = GoldenModel(model).run_times(times)
    mant = t.mantissas()
    for b in range(len(times)):
        spikes = times[b]
        for k, layer in enumerate(model.layers):
            v = layer.bias.copy()
            for i, ti in enumerate(spikes):
                if ti == NO_SPIKE:
                    continue
                for j in range(layer.n_out):
                    code = int(layer.weights[j, i])
                    sign, m = code >> 4, code & 15
                    if m == 15:
                        continue
                    c = mant[ti % t.B] >> (m + ti // t.B)
                    v[j] += -c if sign else c
            if layer.is_output:
                assert np.array_equal(v, g.potentials[b])
            else:
                spikes = fire_times(v, layer.thresholds)
                assert np.array_equal(spikes, g.spikes[k + 1][b])


def test_event_order_does_not_matter():
    rng = np.random.default_rng(3)
    t = Timing(T=8, B=2, frac_bits=12)
    model = random_model(rng, [16, 8, 4], t)
    g = GoldenModel(model)
    times = random_input_times(rng, 16, 5, t)
    perm = rng.permutation(16)
    a = g.layer_potentials(0, times)
    # permuting inputs together with the weight columns permutes the events only
    model.layers[0].weights = model.layers[0].weights[:, perm]
    b = GoldenModel(model).layer_potentials(0, times[:, perm])
    assert np.array_equal(a, b)


def test_cat_network_predicts_like_golden(digits_model):
    """CAT's ANN runs the SNN's quantisers, so its predictions equal the golden model's."""
    import torch

    from firstspike.sw.checkpoint import cat_network, load_ann
    from firstspike.sw.data import load_dataset
    ann_path, _, model = digits_model
    ckpt = load_ann(ann_path)
    cat = cat_network(ckpt)
    ds = load_dataset("digits")
    with torch.no_grad():
        ann_pred = cat(torch.as_tensor(ds.x_test)).argmax(1).numpy()
    golden_pred = GoldenModel(model).run(ds.x_test).predictions
    assert (ann_pred == golden_pred).mean() >= 0.99
    assert abs(ckpt["float_accuracy"] - (golden_pred == ds.y_test).mean()) <= 0.01


def test_synaptic_ops_equal_the_processors_accumulations():
    """GoldenModel.synaptic_ops counts what the cycle model counts as accumulations of a nonzero weight."""
    from firstspike.hw import perf
    from firstspike.sw.random_models import random_cnn
    rng = np.random.default_rng(11)
    t = Timing(T=8, B=2, frac_bits=12)
    model = random_cnn(rng, (2, 7, 7), [dict(channels=3, kernel=3, padding=1, pool=2)], [6], 4, t)
    g = GoldenModel(model)
    r = g.run_times(random_input_times(rng, model.layers[0].n_in, 5, t))
    counts = perf.layer_counts(model, 4, r)
    expected = sum(c.acc_updates for c in counts)
    assert np.array_equal(g.synaptic_ops(r), expected) and expected.min() > 0

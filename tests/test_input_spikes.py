"""Residual input spikes (sw/input_spikes.py): K spikes per input value, the k-th coding what the
earlier ones leave; the golden model, the array, the file, CAT and the int8 baseline agree."""
import numpy as np
import pytest
import torch

from firstspike.errors import InputError
from firstspike.flow import ann_layers
from firstspike.hw.config import ArrayConfig, network_image
from firstspike.hw.perf import layer_counts
from firstspike.sim.amaranth_backend import run_amaranth
from firstspike.sim.check import result_problems
from firstspike.sw.ann import CatNetwork, digits_cnn
from firstspike.sw.formats import NO_SPIKE, FormatError, Timing, decode_spike_times, encode_residual_spikes
from firstspike.sw.golden import GoldenModel
from firstspike.sw.input_spikes import expand_input
from firstspike.sw.model import SnnModel
from firstspike.sw.random_models import as_rate_if, random_cnn, random_model, random_resnet
from firstspike.sw.unfold import fold_input, unfold_input

TIMING = Timing(T=6, B=2, frac_bits=10)


def _cnn(seed: int):
    rng = np.random.default_rng(seed)
    return random_cnn(rng, (2, 6, 5), [dict(channels=3, kernel=3, stride=2, padding=1),
                                       dict(channels=4, kernel=2, padding=1, pool=2)], [4], 3, TIMING)


def test_residual_code_adds_up_to_the_value():
    """Each spike codes what the earlier ones leave: the levels add up to at most the value,
    closer with every spike; the first block is the one-spike code; a level leaves nothing."""
    timing = Timing(T=16, B=2)
    x = np.random.default_rng(0).uniform(0, 1.4, size=(5, 40))
    x[0, :6] = timing.levels(1.0)[:6]  # exactly on a level: one spike says it all
    errors = []
    for K in (1, 2, 3):
        t = encode_residual_spikes(x, 1.0, timing, K)
        assert t.shape == (5, 40 * K)
        blocks = t.reshape(5, K, 40)
        np.testing.assert_array_equal(blocks[:, 0], encode_residual_spikes(x, 1.0, timing, 1))
        total = decode_spike_times(blocks, 1.0, timing).sum(axis=1)
        assert (total <= x).all()
        errors.append((x - total).mean())
        assert (blocks[0, 1:, :6] == NO_SPIKE).all()
    assert errors[0] > 3 * errors[1] > 9 * errors[2] > 0
    # above theta the first spike clips at theta and the next one codes the rest
    t = encode_residual_spikes(np.array([[1.5]]), 1.0, timing, 2)
    assert t.tolist() == [[0, 2]]  # 1 + 2**(-2/2) = 1.5
    with pytest.raises(FormatError, match="at least 1"):
        encode_residual_spikes(x, 1.0, TIMING, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expanded_first_layer_sums_the_spikes_of_each_block(seed):
    """Layer 0's potentials are the sum over blocks of the one-spike model's contributions
    (bias once); later layers fire from them; reproduce with the seed."""
    model = _cnn(seed)
    x = np.random.default_rng(50 + seed).uniform(0, 1, size=(4, model.n_inputs))
    for K in (2, 3):
        wide = expand_input(model, K)
        assert wide.n_inputs == model.n_inputs and wide.layers[0].in_shape == (2 * K, 6, 5)
        g, g1 = GoldenModel(wide), GoldenModel(model)
        coded = g.encode(x)
        blocks = coded.reshape(4, K, -1)
        expected = sum(g1.layer_potentials(0, blocks[:, k]) for k in range(K)) - (K - 1) * model.layers[0].bias.repeat(
            g1.layer_potentials(0, blocks[:, 0]).shape[1] // model.layers[0].channels)
        np.testing.assert_array_equal(g.layer_potentials(0, coded), expected, err_msg=f"seed {seed}, K {K}")
    one_level = np.tile(TIMING.levels(1.0)[[0, 2, 5]], model.n_inputs)[:model.n_inputs][None]
    np.testing.assert_array_equal(GoldenModel(expand_input(model, 2)).run(one_level).potentials,
                                  GoldenModel(model).run(one_level).potentials)


def test_expanded_and_unfolded_model_is_bit_and_cycle_exact_on_the_array():
    model = unfold_input(expand_input(_cnn(3), 2))
    assert model.input_spikes == 2 and model.input_size == 2 * 2 * 6 * 5
    cfg = ArrayConfig.for_model(model, 2)
    x = np.random.default_rng(3).uniform(0, 1, size=(2, model.n_inputs))
    times = GoldenModel(model).encode(x)
    golden = GoldenModel(model).run_times(times)
    results = run_amaranth(cfg, network_image(model, cfg), model.shapes, times)
    assert result_problems(cfg, model, golden, layer_counts(model, cfg, golden), results) == []
    # the same potentials as the model expanded but not unfolded
    np.testing.assert_array_equal(golden.potentials, GoldenModel(expand_input(_cnn(3), 2)).run(x).potentials)


def test_model_file_keeps_the_spikes_per_value_and_the_ann_sees_one_copy(tmp_path):
    model = expand_input(_cnn(4), 2)
    model.save(tmp_path / "m.npz")
    loaded = SnnModel.load(tmp_path / "m.npz")
    assert loaded.input_spikes == 2
    x = np.random.default_rng(4).uniform(0, 1, size=(3, model.n_inputs))
    np.testing.assert_array_equal(GoldenModel(loaded).encode(x), GoldenModel(model).encode(x))
    folded = fold_input(unfold_input(loaded))
    assert folded.input_spikes == 1 and folded.input_gather is None
    np.testing.assert_array_equal(folded.layers[0].weights, _cnn(4).layers[0].weights)
    cfg = ArrayConfig.for_model(model, 4)
    assert ann_layers(model, cfg)[0] == ann_layers(_cnn(4), ArrayConfig.for_model(_cnn(4), 4))[0]
    linear = random_model(np.random.default_rng(5), [6, 4, 3], TIMING)
    wide = expand_input(linear, 3)
    assert wide.layers[0].n_in == 18 and wide.n_inputs == 6
    np.testing.assert_array_equal(fold_input(wide).layers[0].weights, linear.layers[0].weights)


def test_what_cannot_take_several_spikes_is_refused():
    rng = np.random.default_rng(6)
    with pytest.raises(InputError, match="only ttfs networks"):
        expand_input(as_rate_if(rng, _cnn(6)), 2)
    with pytest.raises(InputError, match="shortcut reads the input"):
        expand_input(random_resnet(rng, (2, 5, 5), [dict(channels=3)], 3, TIMING, stem=False), 2)
    with pytest.raises(InputError, match="unfolded"):
        expand_input(unfold_input(_cnn(6)), 2)
    with pytest.raises(InputError, match="already"):
        expand_input(expand_input(_cnn(6), 2), 2)
    with pytest.raises(InputError, match="at least 1"):
        expand_input(_cnn(6), 0)
    assert expand_input(_cnn(6), 1).input_spikes == 1
    m = random_cnn(rng, (3, 4, 4), [dict(channels=2, kernel=3)], [], 3, TIMING)
    with pytest.raises(FormatError, match="must be 2 copies"):
        SnnModel(timing=TIMING, input_theta=1.0, layers=m.layers, input_spikes=2)  # 3 channels: not 2 copies
    with pytest.raises(FormatError, match="only ttfs inputs"):
        SnnModel(timing=TIMING, input_theta=1.0, layers=as_rate_if(rng, m).layers, input_spikes=2)


def test_cat_network_sees_the_sum_of_the_residual_levels():
    """CAT trains on what the SNN's first layer sees: the sum of the K spikes' levels."""
    timing = Timing(T=16, B=2)
    net = digits_cnn(seed=0, width=4)
    x = np.random.default_rng(8).uniform(0, 1, size=(16, 64)).astype(np.float32)
    for K in (1, 2):
        cat = CatNetwork(net, timing, 1.0, [1.0, 1.0], input_spikes=K)
        seen = cat._input_code(torch.from_numpy(x), torch.tensor(1.0)).numpy()
        coded = encode_residual_spikes(x, 1.0, timing, K).reshape(16, K, 64)
        np.testing.assert_allclose(seen, decode_spike_times(coded, 1.0, timing).sum(axis=1), rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="input_spikes"):
        CatNetwork(net, timing, 1.0, [1.0, 1.0], coding="rate", input_spikes=2)

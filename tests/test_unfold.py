"""Input unfolding (sw/unfold.py): the same spikes bit for bit, on the golden model and the array,
with fewer accumulator write-backs; the file, the int8 baseline and NIR see what they should."""
import numpy as np
import pytest

from firstspike.errors import InputError
from firstspike.flow import ann_layers
from firstspike.hw.config import ArrayConfig, network_image
from firstspike.hw.perf import layer_counts
from firstspike.sim.amaranth_backend import run_amaranth
from firstspike.sim.check import result_problems
from firstspike.sw.formats import FormatError, Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.random_models import as_rate_if, random_cnn, random_model, random_resnet
from firstspike.sw.unfold import fold_input, unfold_input

TIMING = Timing(T=6, B=2, frac_bits=10)


def _cnn(seed: int, pool: int = 2):
    """Stride 2 and padding in the first layer (patches cut by the border), pooling after the second."""
    rng = np.random.default_rng(seed)
    return random_cnn(rng, (2, 7, 6), [dict(channels=3, kernel=3, stride=2, padding=1),
                                       dict(channels=5, kernel=2, padding=1, pool=pool)], [4], 3, TIMING)


@pytest.mark.parametrize("neuron", ["ttfs", "rate_if"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unfolded_model_has_the_folded_models_spikes(neuron, seed):
    """Every layer's spikes and the scores, from the same float inputs; reproduce with the seed."""
    model = _cnn(seed)
    model = as_rate_if(np.random.default_rng(seed), model) if neuron == "rate_if" else model
    unfolded = unfold_input(model)
    assert unfolded.layers[0].in_shape == (2 * 3 * 3, 4, 3) and unfolded.layers[0].kernel == 1
    assert unfolded.n_inputs == model.n_inputs == 2 * 7 * 6
    x = np.random.default_rng(100 + seed).uniform(0, 1, size=(6, model.n_inputs))
    a, b = GoldenModel(model).run(x), GoldenModel(unfolded).run(x)
    for k in range(1, len(model.layers)):
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=f"seed {seed}: spikes into layer {k}")
    np.testing.assert_array_equal(a.potentials, b.potentials)
    np.testing.assert_array_equal(GoldenModel(model).synaptic_ops(a), GoldenModel(unfolded).synaptic_ops(b))
    # a patch entry that is padding never spikes; one inside the image spikes when its pixel does
    gathered = GoldenModel(unfolded).encode(x)
    assert (gathered[..., unfolded.input_gather == -1] == (-1 if neuron == "ttfs" else 0)).all()


def test_unfolded_model_is_bit_and_cycle_exact_on_the_array_with_fewer_writebacks():
    model = unfold_input(_cnn(3))
    cfg = ArrayConfig.for_model(model, 2)
    x = np.random.default_rng(3).uniform(0, 1, size=(2, model.n_inputs))
    times = GoldenModel(model).encode(x)
    golden = GoldenModel(model).run_times(times)
    results = run_amaranth(cfg, network_image(model, cfg), model.shapes, times)
    counts = layer_counts(model, cfg, golden)
    assert result_problems(cfg, model, golden, counts, results) == []
    folded = fold_input(model)
    folded_counts = layer_counts(folded, 2, GoldenModel(folded).run(x))
    # one write-back per patch and slot instead of one per input spike and tap: 18 events at most per patch
    assert counts[0].acc_writebacks.sum() < folded_counts[0].acc_writebacks.sum()
    assert (counts[0].acc_updates == folded_counts[0].acc_updates).all()
    assert counts[0].host_writes.sum() > folded_counts[0].host_writes.sum()


def test_model_file_keeps_the_unfolding(tmp_path):
    model = unfold_input(_cnn(4))
    model.save(tmp_path / "m.npz")
    loaded = SnnModel.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.input_gather, model.input_gather)
    assert loaded.input_size == model.input_size and loaded.info["unfolded_input"]["stride"] == 2
    x = np.random.default_rng(4).uniform(0, 1, size=(3, model.n_inputs))
    np.testing.assert_array_equal(GoldenModel(loaded).encode(x), GoldenModel(model).encode(x))
    refolded = fold_input(loaded)
    assert refolded.input_gather is None and "unfolded_input" not in refolded.info
    np.testing.assert_array_equal(refolded.layers[0].weights, _cnn(4).layers[0].weights)


def test_int8_baseline_and_nir_export_see_the_folded_layer():
    model = _cnn(5, pool=1)
    unfolded = unfold_input(model)
    folded_ann = ann_layers(model, ArrayConfig.for_model(model, 4))
    assert ann_layers(unfolded, ArrayConfig.for_model(unfolded, 4))[0] == folded_ann[0]
    nir = pytest.importorskip("nir")
    from firstspike.sw.nir_export import to_nir
    a, b = to_nir(model), to_nir(unfolded)
    assert isinstance(b, nir.NIRGraph) and sorted(a.nodes) == sorted(b.nodes)
    np.testing.assert_array_equal(a.nodes["conv0"].weight, b.nodes["conv0"].weight)
    assert tuple(b.nodes["input"].input_type["input"]) == (2, 7, 6)


def test_what_cannot_unfold_is_refused():
    rng = np.random.default_rng(6)
    with pytest.raises(InputError, match="layer 0 is a 1x1 linear layer"):
        unfold_input(random_model(rng, [6, 4, 3], TIMING))
    with pytest.raises(InputError, match="1x1 conv layer of stride 1"):
        unfold_input(random_cnn(rng, (2, 4, 4), [dict(channels=3, kernel=1)], [], 3, TIMING))
    with pytest.raises(InputError, match="layer 1's shortcut reads the input"):
        unfold_input(random_resnet(rng, (2, 5, 5), [dict(channels=3)], 3, TIMING, stem=False))
    with pytest.raises(InputError, match="unfolded already"):
        unfold_input(unfold_input(_cnn(6)))


def test_a_bad_gather_or_input_width_is_refused():
    model = unfold_input(_cnn(7))
    layers, g = model.layers, model.input_gather
    with pytest.raises(FormatError, match="one entry per input neuron"):
        SnnModel(timing=TIMING, input_theta=1.0, layers=layers, input_gather=g[:-1], input_size=84)
    with pytest.raises(FormatError, match="must index 0 .. input_size - 1"):
        SnnModel(timing=TIMING, input_theta=1.0, layers=layers, input_gather=g, input_size=10)
    with pytest.raises(FormatError, match="come together"):
        SnnModel(timing=TIMING, input_theta=1.0, layers=layers, input_gather=g)
    with pytest.raises(InputError, match=r"inputs must be \(batch, 84\)"):
        GoldenModel(model).encode(np.zeros((2, model.layers[0].n_in)))

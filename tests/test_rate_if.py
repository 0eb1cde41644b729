"""Rate-coded IF neurons (docs/spec.md, section 12): golden model against a plain step-by-step
reference, input encoding, model files, threshold iteration and conversion.

Random cases use fixed seeds; a failure names its seed, rerun it with
``pytest tests/test_rate_if.py -k <seed>``.
"""
import math

import numpy as np
import pytest

from firstspike.errors import FirstspikeError
from firstspike.sw.formats import FormatError, Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import ModelFileError, SnnModel
from firstspike.sw.neurons import NEURON_MODELS, neuron_model, rate_if
from firstspike.sw.random_models import as_rate_if, random_cnn, random_input_trains, random_model, random_resnet
from step_reference import CASE_IDS, CASES, golden_equals_reference, random_shape_model, step_input


def _reference(model: SnnModel, trains: np.ndarray):
    """Spike trains per layer and output potentials, every layer advanced one step at a time; a
    layer with a shortcut also adds its source's spikes of the same step (spec section 14)."""
    t = model.timing
    layers = model.layers
    pos = [layer.n_neurons // layer.channels for layer in layers]
    v = [np.repeat(layer.initial, p).astype(np.int64) for layer, p in zip(layers, pos)]
    counts = [np.zeros(layer.n_neurons, dtype=np.int64) for layer in layers]
    pooled_before = [np.zeros(layer.n_out, dtype=np.int64) for layer in layers]
    out = [np.zeros((t.T, layer.n_out), dtype=np.uint8) for layer in layers[:-1]]
    for step in range(t.T):
        spikes = trains[step]
        sources = [spikes]  # this step's spikes of every source: the input, then each hidden layer's
        for k, layer in enumerate(layers):
            v[k] += step_input(layer, spikes, t) + np.repeat(layer.bias, layer.n_neurons // layer.channels)
            if layer.shortcut is not None:
                v[k] += step_input(model.shortcut_synapses(k), sources[layer.shortcut.source], t)
            if layer.is_output:
                break
            th = np.repeat(layer.thresholds, pos[k])
            fired = v[k] >= th
            v[k] -= np.where(fired, th, 0)
            counts[k] += fired
            c, h, w = layer.conv_shape
            q = layer.pool
            n = counts[k].reshape(c, h, w)
            pooled = np.array([[[n[ch, y * q:(y + 1) * q, x * q:(x + 1) * q].max() for x in range(w // q)]
                                for y in range(h // q)] for ch in range(c)]).reshape(-1)
            spikes = (pooled - pooled_before[k]).astype(np.uint8)
            assert set(np.unique(spikes)) <= {0, 1}
            pooled_before[k] = pooled
            out[k][step] = spikes
            sources.append(spikes)
    return out, v[-1]


@pytest.mark.parametrize("seed", range(6))
def test_residual_rate_networks_equal_the_stepwise_reference(seed):
    """rate_if layers with shortcuts (spec sections 12 and 14): identity, 1x1 and 3x3 shortcuts
    from the input and from hidden layers, strided, pooled after the add; reproduce with the seed."""
    rng = np.random.default_rng(300 + seed)
    t = Timing(T=int(rng.integers(2, 9)), B=2, frac_bits=int(rng.integers(10, 15)))
    blocks = [dict(channels=int(rng.integers(1, 6)), stride=int(rng.choice([1, 2])), pool=int(rng.choice([1, 2])),
                   shortcut_kernel=int(rng.choice([1, 3]))) for _ in range(int(rng.integers(1, 3)))]
    model = as_rate_if(rng, random_resnet(rng, (2, 8, 8), blocks, 3, t, stem=bool(seed % 2)))
    assert any(layer.shortcut is not None for layer in model.layers)
    golden_equals_reference(model, random_input_trains(rng, model.sizes[0], 3, t), _reference, seed)


def _random_rate(kind: str, seed: int, t: Timing) -> SnnModel:
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        return as_rate_if(rng, random_model(rng, [12, 9, 7, 4], t))
    return as_rate_if(rng, random_cnn(rng, (2, 6, 6), [dict(channels=3, kernel=3, padding=1, pool=2),
                                                       dict(channels=2, kernel=2, stride=1)], [5], 3, t))


@pytest.mark.parametrize("kind,seed,t", CASES, ids=CASE_IDS)
def test_golden_equals_stepwise_reference(kind, seed, t):
    """The vectorised, layer-after-layer golden model gives the spikes and scores of all layers
    stepped together (so running layer by layer over all T steps is exact)."""
    model = _random_rate(kind, seed, t)
    rng = np.random.default_rng(100 + seed)
    trains = random_input_trains(rng, model.layers[0].n_in, 6, t)
    g, per_image = golden_equals_reference(model, trains, _reference, seed)
    busy = sum(int(0 < s.sum() < s.size) for spikes in per_image for s in spikes)
    assert busy == len(trains) * (len(model.layers) - 1), "every hidden layer should be partly active"
    assert g.coding == "rate" and g.spike_counts().shape == (len(trains), len(model.layers))


def test_chunked_run_equals_one_chunk(monkeypatch):
    model = _random_rate("cnn", 5, Timing(T=6, B=2, frac_bits=10))
    trains = random_input_trains(np.random.default_rng(5), model.layers[0].n_in, 9, model.timing)
    whole = GoldenModel(model).run_spikes(trains)
    monkeypatch.setattr(rate_if, "CHUNK_ENTRIES", 200)  # a few images per chunk
    parts = GoldenModel(model).run_spikes(trains)
    assert all(np.array_equal(a, b) for a, b in zip(whole.spikes, parts.spikes))
    assert np.array_equal(whole.potentials, parts.potentials)


def test_input_encoding_is_an_integer_if_neuron():
    t = Timing(T=12, B=2, frac_bits=12)
    x = np.array([[0.0, -0.3, 1.0, 7.5, 0.5, 0.26, 1 / 3, 0.999]])
    trains = rate_if.encode(x, 1.0, t)[0]
    full = 1 << rate_if.INPUT_BITS
    for i, xi in enumerate(x[0]):
        q = min(full, math.floor(max(xi, 0.0) * full + 0.5))
        v, expected = full // 2, []
        for _ in range(t.T):
            v += q
            expected.append(int(v >= full))
            v -= full if v >= full else 0
        assert trains[:, i].tolist() == expected, f"input {xi}"
    assert trains[:, 0].sum() == 0 and trains[:, 1].sum() == 0  # zero and negative: silent
    assert trains[:, 2].sum() == t.T and trains[:, 3].sum() == t.T  # at or above theta_in: every step
    assert trains[:, 4].sum() == 6  # half the rate


def test_bad_spike_trains_are_refused():
    model = _random_rate("mlp", 0, Timing(T=8, B=2, frac_bits=12))
    g = GoldenModel(model)
    with pytest.raises(FirstspikeError, match=r"shape \(batch, 8, 12\)"):
        g.run_spikes(np.zeros((2, 12), dtype=np.int64))
    with pytest.raises(FirstspikeError, match="0 and 1"):
        g.run_spikes(np.full((1, 8, 12), 2))


def test_model_file_round_trip_and_errors(tmp_path):
    model = _random_rate("cnn", 2, Timing(T=6, B=2, frac_bits=10))
    model.save(tmp_path / "m.npz")
    back = SnnModel.load(tmp_path / "m.npz")
    assert [layer.neuron for layer in back.layers] == ["rate_if"] * len(model.layers)
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.initial, b.initial)
        assert (a.thresholds is None and b.thresholds is None) or np.array_equal(a.thresholds, b.thresholds)
    trains = random_input_trains(np.random.default_rng(0), model.layers[0].n_in, 3, model.timing)
    assert np.array_equal(GoldenModel(model).run_spikes(trains).potentials,
                          GoldenModel(back).run_spikes(trains).potentials)
    layers = list(model.layers)
    with pytest.raises(FormatError, match="unknown neuron model 'lif'"):
        SnnModel(timing=model.timing, input_theta=1.0, layers=[*layers[:-1], _with(layers[-1], neuron="lif")])
    with pytest.raises(FormatError, match="one network has one coding"):
        SnnModel(timing=model.timing, input_theta=1.0, layers=[*layers[:-1], _with(layers[-1], neuron="ttfs",
                                                                                    initial=None)])
    with pytest.raises(FormatError, match="one int64 threshold per channel"):
        SnnModel(timing=model.timing, input_theta=1.0,
                 layers=[_with(layers[0], thresholds=np.ones(model.timing.T + 1, dtype=np.int64)), *layers[1:]])
    with pytest.raises(FormatError, match="initial potentials"):
        SnnModel(timing=model.timing, input_theta=1.0, layers=[_with(layers[0], initial=None), *layers[1:]])


def _with(layer, **changes):
    from dataclasses import replace
    return replace(layer, **changes)


def test_unknown_neuron_in_a_file_is_a_model_file_error(tmp_path):
    import json
    model = _random_rate("mlp", 1, Timing(T=5, B=1, frac_bits=16))
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"]))
    meta["layers"][0]["neuron"] = "izhikevich"
    data["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ModelFileError, match="unknown neuron model 'izhikevich'.*diff_if, rate_if, ttfs"):
        SnnModel.load(tmp_path / "bad.npz")


def test_registry_names_every_model_and_its_coding():
    assert {name: neuron_model(name).CODING for name in NEURON_MODELS} == {"ttfs": "ttfs", "rate_if": "rate",
                                                                          "diff_if": "diff"}


def _rate_quantiser_error(theta: float, x: np.ndarray, T: int) -> float:
    q = theta / T * np.clip(np.floor(x * T / theta + 0.5), 0, T)
    return float(((q - np.maximum(x, 0)) ** 2).mean())


@pytest.mark.parametrize("T", [2, 4, 16])
def test_threshold_iteration_minimises_the_rate_quantisation_error(T):
    """The fixed point lies at the minimum of E[(Q(x) - ReLU(x))^2] for Gaussian x: no threshold
    on a fine grid does better by more than 0.5 % (large Gaussian samples, one per channel)."""
    rng = np.random.default_rng(T)
    mu, sigma = np.array([0.5, -0.2, 2.0]), np.array([1.0, 0.5, 3.0])
    pre = mu + sigma * rng.standard_normal((200_000, 3))
    theta = rate_if.threshold_iteration(pre, T)
    for c in range(3):
        best = min(_rate_quantiser_error(th, pre[:, c], T) for th in np.linspace(0.05, 4, 400) * theta[c])
        assert _rate_quantiser_error(theta[c], pre[:, c], T) <= best * 1.005, f"channel {c}, T={T}"
    dead = rate_if.threshold_iteration(np.concatenate([pre, -np.ones((len(pre), 1))], axis=1), T)
    assert dead[3] == pytest.approx(pre.max())  # never positive: the fallback


def test_hardware_sizes_rate_and_diff_models():
    from dataclasses import replace
    from firstspike.hw.config import ArrayConfig, DoesNotFit, hardware_geometry
    model = _random_rate("mlp", 0, Timing(T=8, B=2, frac_bits=12))
    cfg = ArrayConfig.for_model(model, 4)
    # the bias block holds biases, thresholds and initial potentials; one event per neuron and step
    assert cfg.bias_buffer == 3 * -(-max(layer.channels for layer in model.layers[:-1]) // 4)
    assert cfg.event_depth == 8 * sum(model.sizes[:-1])
    assert not cfg.diff_state
    diff = as_rate_if(np.random.default_rng(0), random_model(np.random.default_rng(0), [5, 4, 2], model.timing),
                      neuron="diff_if")
    assert ArrayConfig.for_model(diff, 4).diff_state
    with pytest.raises(DoesNotFit, match="diff_if layers and the array was built without their state .*--diff-state"):
        replace(ArrayConfig.for_model(diff, 4), diff_state=False).check_fits(diff)
    # a pooled diff_if layer's pool units take state words after its neurons' accumulators
    pooled = _random_rate("cnn", 0, Timing(T=8, B=2, frac_bits=12))
    as_diff = SnnModel(timing=pooled.timing, input_theta=pooled.input_theta,
                       layers=[replace(layer, neuron="diff_if") for layer in pooled.layers])
    g = hardware_geometry(pooled.layers[0])
    slots = -(-g["c_out"] // 4)
    units = g["h_pool"] * g["w_pool"] * slots
    assert pooled.layers[0].pool == 2 and units > 0
    assert ArrayConfig.for_model(as_diff, 4).slot_depth == ArrayConfig.for_model(pooled, 4).slot_depth + units


@pytest.mark.parametrize("initial", [0, 3])
def test_potentials_on_the_threshold_edge(initial):
    """Zero weights: V grows by the bias each step. A neuron whose bias equals its threshold fires
    every step; one unit below, it has fired floor((t * (TH - 1) + initial) / TH) times after t steps."""
    from dataclasses import replace
    t = Timing(T=16, B=2, frac_bits=12)
    model = as_rate_if(np.random.default_rng(0), random_model(np.random.default_rng(0), [4, 6, 2], t,
                                                              zero_fraction=1.0))
    hidden = model.layers[0]
    th = np.array([1, 2, 5, 9, 5, 9], dtype=np.int64)
    hidden = replace(hidden, thresholds=th, bias=np.array([1, 2, 5, 9, 4, 8], dtype=np.int64),
                     initial=np.full(6, initial, dtype=np.int64))
    model = SnnModel(timing=t, input_theta=1.0, layers=[hidden, model.layers[1]])
    g = GoldenModel(model).run_spikes(np.zeros((1, t.T, 4), dtype=np.uint8))
    counts = np.cumsum(g.spikes[1][0], axis=0)
    steps = np.arange(1, t.T + 1)
    assert np.all(counts[:, :4] == steps[:, None])
    for j in (4, 5):
        assert counts[:, j].tolist() == ((steps * (th[j] - 1) + initial) // th[j]).tolist()


# -- conversion of trained networks, from the CLI and the Python API ----------------------------
def test_cli_converts_to_rate_if_and_generates_its_processor(digits_cnn, tmp_path, capsys):
    from firstspike.cli import main
    ann, _, _ = digits_cnn
    out = tmp_path / "rate.npz"
    assert main(["convert", str(ann), "--neuron", "rate_if", "--calibration", "percentile", "--T", "16",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rate_if neurons" in text and "SNN (golden model)" in text
    model = SnnModel.load(out)
    assert model.coding == "rate" and model.info["neuron"] == "rate_if"
    assert all(layer.initial is not None for layer in model.layers)
    hidden = model.layers[0]
    assert np.array_equal(hidden.initial, (hidden.thresholds + 1) // 2)  # floor(TH / 2 + 1/2)
    assert main(["verilog", str(out), "--out", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "neuron_array.v").stat().st_size > 10_000 and (tmp_path / "v" / "memory.hex").exists()
    capsys.readouterr()
    # the whole flow on the RTL: trains in, trains and scores back, bit- and cycle-exact, a report
    assert main(["sim", "--model", str(out), "--pes", "4", "--images", "24", "--out", str(tmp_path / "sim"),
                 "--verilog-dir", str(tmp_path / "sv")]) == 0
    capsys.readouterr()
    import json
    r = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert r["mismatches"] == 0 and r["cycle_model_exact"] and r["rtl_accuracy"] == r["golden_accuracy"] > 0.9
    assert r["spikes_per_image"] > 200 and r["memory_bits_per_pe"]["spike_counts"] > 0
    # its HTML report plots spikes per step (not spike times)
    assert main(["report", "--sim", str(tmp_path / "sim" / "report.json"), "--no-sweep",
                 "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Spikes at each step per layer" in html and "Spike times per layer" not in html
    capsys.readouterr()
    assert main(["convert", str(ann), "--neuron", "rate_if", "--calibration", "cat", "--out",
                 str(tmp_path / "x.npz")]) == 2
    assert "calibrate: --calibration max, percentile or iteration" in capsys.readouterr().err
    assert main(["convert", str(ann), "--initial", "0.3", "--out", str(tmp_path / "y.npz")]) == 2
    assert "--initial sets the initial potential of rate_if and diff_if neurons" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "y.npz").exists()


@pytest.mark.parametrize("method,loss", [("percentile", 0.025), ("iteration", 0.05)])
def test_api_rate_conversion_keeps_digits_accuracy(digits_cnn, method, loss):
    """Training-free rate conversion of the float digits CNN at T=16 (measured: percentile 98.0 %,
    iteration 96.0 %, float 99.6 %; the Gaussian fit of threshold iteration clips the heavy tail of
    the second conv layer's activations, its thresholds are 30 % below the 99.9th percentile)."""
    import firstspike
    from firstspike.sw.checkpoint import ann_network, load_ann
    from firstspike.sw.data import load_dataset
    ann, _, _ = digits_cnn
    ckpt = load_ann(ann)
    ds = load_dataset("digits", seed=ckpt["seed"])
    snn = firstspike.convert(ann_network(ckpt), ds.x_train, T=16, method=method, input_theta=1.0,
                             neuron="rate_if", initial=0.5)
    acc = snn.accuracy(ds.x_test, ds.y_test)
    assert acc >= ckpt["float_accuracy"] - loss, f"{method}: {acc:.4f} vs float {ckpt['float_accuracy']:.4f}"
    with pytest.raises(FirstspikeError, match="rate_if neurons take no option foo"):
        firstspike.convert(ann_network(ckpt), ds.x_train, T=16, neuron="rate_if", foo=1)
    with pytest.raises(FirstspikeError, match="ttfs neurons take no option initial"):
        firstspike.convert(ann_network(ckpt), ds.x_train, T=16, initial=0.5)


@pytest.mark.parametrize("seed", range(30))
def test_random_networks_equal_the_reference(seed):
    """30 random rate_if networks (shapes, timing, weights, thresholds, initial potentials drawn from the
    seed) against the all-layers-stepped reference."""
    model, rng = random_shape_model(seed, "rate_if")
    golden_equals_reference(model, random_input_trains(rng, model.layers[0].n_in, 3, model.timing), _reference, seed)


def test_nir_export_refuses_rate_models_by_name(tmp_path):
    from firstspike.sw.nir_export import NirExportError, to_nir
    model = _random_rate("mlp", 0, Timing(T=8, B=2, frac_bits=12))
    with pytest.raises(NirExportError, match="uses rate_if neurons"):
        to_nir(model)

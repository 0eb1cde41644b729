"""Differential-coding IF neurons (docs/spec.md, section 13): golden model against a plain
step-by-step reference and against the paper's float equations; input encoding; conversion.

Random cases use fixed seeds; a failure names its seed, rerun it with
``pytest tests/test_diff_if.py -k <seed>``.
"""
import numpy as np
import pytest

from firstspike.errors import FirstspikeError
from firstspike.sw.formats import ZERO_CODE, Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.neurons import diff_if
from firstspike.sw.random_models import (as_rate_if, diff_threshold_edges, random_cnn, random_input_trains,
                                           random_model, with_levels)
from step_reference import CASE_IDS, CASES, golden_equals_reference, random_shape_model, step_input


def _fire(st: dict, j: int, t: int, current: int, levels: int = 1) -> int:
    """One neuron or pool unit, one step (spec 13.2; 13.7 with several levels), on plain Python integers."""
    th = st["th"][j]
    st["mem"][j] += current - st["eout"][j]
    st["cum"][j] += st["eout"][j]
    mem, cum = st["mem"][j], st["cum"][j]
    if levels == 1:
        s = 1 if mem >= th else (-1 if mem <= 0 and cum >= th else 0)
        value = s * th
    else:  # the first level k (the largest, TH >> k) whose 3/4 the potential reaches
        up = next((k for k in range(levels) if 4 * mem >= 3 * (th >> k)), None)
        down = next((k for k in range(levels) if 4 * mem <= -3 * (th >> k) and cum >= th >> k), None)
        s, value = (up + 1, th >> up) if up is not None else (-(down + 1), -(th >> down)) if down is not None \
            else (0, 0)
    st["mem"][j] -= value
    st["cum"][j] += value
    st["eout"][j] += value // t
    return s


def _state(initial, bias, th, n: int) -> dict:
    return dict(mem=[int(v) for v in initial], ein=[int(v) for v in bias], eout=[0] * n, cum=[0] * n,
                th=None if th is None else [int(v) for v in th])


def _reference(model: SnnModel, trains: np.ndarray):
    """Spike trains per layer and scores, every layer advanced one step at a time, one neuron at a time."""
    layers = model.layers
    state, units, top = [], [], []
    for layer in layers:
        pos = layer.n_neurons // layer.channels
        th = None if layer.is_output else np.repeat(layer.thresholds, pos)
        state.append(_state(np.repeat(layer.initial, pos), np.repeat(layer.bias, pos), th, layer.n_neurons))
        per_unit = layer.n_out // layer.channels
        units.append(None if layer.pool == 1 else _state(np.repeat(layer.initial, per_unit), [0] * layer.n_out,
                                                         np.repeat(layer.thresholds, per_unit), layer.n_out))
        top.append([0] * layer.n_out)
    out = [np.zeros((model.timing.T, layer.n_out), dtype=np.int8) for layer in layers[:-1]]
    for t in range(1, model.timing.T + 1):
        spikes = trains[t - 1]
        for k, layer in enumerate(layers):
            p = step_input(layer, spikes, model.timing)
            st = state[k]
            if layer.is_output:
                for j in range(layer.n_neurons):
                    st["ein"][j] += int(p[j]) // t
                break
            new = np.zeros(layer.n_neurons, dtype=np.int8)
            for j in range(layer.n_neurons):
                new[j] = _fire(st, j, t, int(p[j]) + st["ein"][j], layer.levels)
                st["ein"][j] += int(p[j]) // t
            if layer.pool > 1:  # pool units: input current t M[t] - (t - 1) M[t - 1], M the window's largest eout
                c, h, w = layer.conv_shape
                q = layer.pool
                eout = np.array(st["eout"]).reshape(c, h, w)
                m = [int(eout[ch, y * q:(y + 1) * q, x * q:(x + 1) * q].max())
                     for ch in range(c) for y in range(h // q) for x in range(w // q)]
                new = np.array([_fire(units[k], u, t, t * m[u] - (t - 1) * top[k][u], layer.levels)
                                for u in range(layer.n_out)], dtype=np.int8)
                top[k] = m
            spikes = new
            out[k][t - 1] = new
    return out, np.array(state[-1]["ein"])


def _random_diff(kind: str, seed: int, t: Timing) -> SnnModel:
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        return as_rate_if(rng, random_model(rng, [12, 9, 7, 4], t), neuron="diff_if")
    return as_rate_if(rng, random_cnn(rng, (2, 7, 7), [dict(channels=3, kernel=3, padding=1, pool=2),
                                                       dict(channels=2, kernel=2, stride=1)], [5], 3, t),
                      neuron="diff_if")


@pytest.mark.parametrize("kind,seed,t", CASES, ids=CASE_IDS)
def test_golden_equals_stepwise_reference(kind, seed, t):
    model = _random_diff(kind, seed, t)
    rng = np.random.default_rng(200 + seed)
    trains = random_input_trains(rng, model.layers[0].n_in, 6, t, signed=True)
    g, per_image = golden_equals_reference(model, trains, _reference, seed)
    negative = sum(int((s < 0).any()) for spikes in per_image for s in spikes)
    assert negative > 0, "no layer ever sent a negative spike: the case does not test them"
    assert g.coding == "diff"


def _paper_float(model: SnnModel, trains: np.ndarray) -> np.ndarray:
    """Scores of the paper's equations with exact (float64) running means, on the same integer network."""
    x = trains.astype(np.float64)
    t = model.timing
    for layer in model.layers:
        codes = layer.weights.astype(np.int64).reshape(layer.channels, -1)
        w = np.where((codes & 15) == 15, 0.0, (1 << t.frac_bits) / np.exp2(codes & 15))
        w = np.where(codes >> 4, -w, w)
        p = x @ w.T  # linear layers only
        mem, ein = layer.initial.astype(np.float64) + 0 * p[:, 0], layer.bias + 0.0 * p[:, 0]
        eout, cum = np.zeros_like(mem), np.zeros_like(mem)
        out = np.zeros_like(p)
        for step in range(1, t.T + 1):
            if not layer.is_output:
                th = layer.thresholds.astype(np.float64)
                mem = mem + p[:, step - 1] + ein - eout
                cum = cum + eout
                s = np.where(mem >= th, 1.0, np.where((mem <= 0) & (cum >= th), -1.0, 0.0))
                mem, cum = mem - s * th, cum + s * th
                eout = eout + s * th / step
                out[:, step - 1] = s
            ein = ein + p[:, step - 1] / step
        if layer.is_output:
            return ein
        x = out


def test_integer_means_cost_little_against_the_papers_float_equations(digits_model):
    """Floor divisions in accumulator units instead of exact running means: on the digits MLP at
    T=4 the integer model and the float equations (same weights, thresholds and input spikes)
    predict the same class for at least 97 % of the test images."""
    import firstspike
    from firstspike.sw.checkpoint import ann_network, load_ann
    from firstspike.sw.data import load_dataset
    ann, _, _ = digits_model
    ckpt = load_ann(ann)
    ds = load_dataset("digits", seed=ckpt["seed"])
    snn = firstspike.convert(ann_network(ckpt), ds.x_train, T=4, method="iteration", input_theta=1.0,
                             neuron="diff_if")
    g = snn.golden(ds.x_test)
    same = (np.argmax(_paper_float(snn.model, g.spikes[0]), axis=1) == g.predictions).mean()
    assert same >= 0.97, f"only {same:.3f} of the predictions agree"
    assert snn.accuracy(ds.x_test, ds.y_test) >= ckpt["float_accuracy"] - 0.08


def test_input_encoding_tracks_the_value():
    """A differential IF input neuron's running mean output after T steps is within 1/T of x."""
    t = Timing(T=16)
    x = np.array([[0.0, 0.3, 0.5, 0.77, 1.0, 2.0]])
    trains = diff_if.encode(x, 1.0, t)[0].astype(np.int64)  # (T, n)
    assert trains.dtype == np.int64 and set(np.unique(trains)) <= {-1, 0, 1}
    mean = np.zeros(x.shape[1])
    for step in range(1, t.T + 1):  # the running mean of o[t] = mean[t-1] + s[t] is the sum of s[t] / t
        mean += trains[step - 1] / step
    assert np.all(np.abs(mean - np.minimum(x[0], 1.0)) <= 1 / t.T), mean
    assert (trains < 0).any(), "some input should correct its mean downward"


def test_file_round_trip(tmp_path):
    t = Timing(T=6, B=2, frac_bits=10)
    model = _random_diff("cnn", 2, t)
    model.save(tmp_path / "d.npz")
    back = SnnModel.load(tmp_path / "d.npz")
    trains = random_input_trains(np.random.default_rng(1), model.layers[0].n_in, 3, t, signed=True)
    assert np.array_equal(GoldenModel(back).run_spikes(trains).potentials,
                          GoldenModel(model).run_spikes(trains).potentials)
    with pytest.raises(FirstspikeError, match="-1, 0 and 1"):
        GoldenModel(model).run_spikes(trains * 2)


@pytest.mark.parametrize("seed", range(30))
def test_random_networks_equal_the_reference(seed):
    """30 random diff_if networks (shapes with pooling, timing, weights, thresholds drawn from the seed)
    against the one-neuron-at-a-time reference."""
    model, rng = random_shape_model(seed, "diff_if")
    trains = random_input_trains(rng, model.layers[0].n_in, 3, model.timing, signed=True)
    golden_equals_reference(model, trains, _reference, seed)


@pytest.mark.parametrize("seed", range(16))
def test_multi_threshold_networks_equal_the_reference(seed):
    """16 random networks (pooled ones among them) with several spike levels per layer against
    the one-neuron-at-a-time reference: level choice at 3/4 of each level, negative levels only
    while the cumulative output allows, a level-k spike adding 2^F >> (m + k) downstream."""
    model, rng = random_shape_model(seed, "diff_if")
    model = with_levels(rng, model, keep_initial=True)
    trains = random_input_trains(rng, model.layers[0].n_in, 3, model.timing, signed=True)
    golden_equals_reference(model, trains, _reference, seed)


@pytest.mark.parametrize("levels", [1, 4])
def test_threshold_edge_networks_meet_every_edge_in_every_pe(levels):
    """sw.random_models.diff_threshold_edges (the mutation suite's and the RTL test's): the first
    hidden layer has zero weights, so a neuron's current is its bias, and channel c's potential
    before the spike lands on edge kind (c + c // 4) % 4 at some step, replayed here with this
    file's plain step: kinds 0, 1 at TH (a level's 3/4) and one below, 2 at 0 (-3/4 of a level)
    with enough output sent, 3 on the cumulative output's edge (one beyond -3/4); so each PE
    of a 4-PE array meets every kind. The golden model equals the reference on the network."""
    t = Timing(T=16, B=2, frac_bits=14)
    model = diff_threshold_edges(np.random.default_rng([levels, 9]), [5, 16, 9, 3], t, levels=levels)
    first = model.layers[0]
    assert (first.weights == ZERO_CODE).all() and first.levels == levels
    for c in range(first.channels):
        th, bias = int(first.thresholds[c]), int(first.bias[c])
        st, kinds = _state([first.initial[c]], [bias], [th], 1), set()
        for step in range(1, t.T + 1):
            mem, cum = st["mem"][0] + bias - st["eout"][0], st["cum"][0] + st["eout"][0]
            parts = [3 * (th >> k) for k in range(levels)] if levels > 1 else [4 * th]
            smallest = th >> (levels - 1)
            kinds |= {k for k, hit in enumerate([4 * mem in parts, 4 * mem + (1 if levels > 1 else 4) in parts,
                                                 (-4 * mem in parts and cum >= smallest) if levels > 1
                                                 else (mem == 0 and cum >= th),
                                                 (-4 * mem - 1 in parts) if levels > 1
                                                 else (cum == th and mem <= 0)]) if hit}
            _fire(st, 0, step, bias, levels)
        assert (c + c // 4) % 4 in kinds, (c, th, bias, int(first.initial[c]), kinds)
    trains = random_input_trains(np.random.default_rng(levels), 5, 4, t, signed=True)
    golden_equals_reference(model, trains, _reference, levels)


def test_multi_threshold_uses_its_levels_and_is_checked():
    """Several levels are sent (a network with K = 4 sends spikes of more than one level), the
    file keeps them, and impossible settings are refused with the reason."""
    from dataclasses import replace
    t = Timing(T=8, B=2, frac_bits=12)
    rng = np.random.default_rng(3)
    model = with_levels(rng, as_rate_if(rng, random_model(rng, [12, 16, 4], t), neuron="diff_if"), keep_initial=True)
    model = SnnModel(timing=t, input_theta=1.0, layers=[replace(model.layers[0], levels=4), model.layers[1]])
    trains = random_input_trains(rng, 12, 8, t, signed=True)
    g = GoldenModel(model).run_spikes(trains)
    assert len({int(abs(v)) for v in np.unique(g.spikes[1])} - {0}) >= 2
    with pytest.raises(FirstspikeError, match="levels must be an integer in 1..8"):
        SnnModel(timing=t, input_theta=1.0, layers=[replace(model.layers[0], levels=9), model.layers[1]])
    with pytest.raises(FirstspikeError, match="at least 8 units"):
        SnnModel(timing=t, input_theta=1.0, layers=[replace(model.layers[0], thresholds=np.full(16, 7), levels=4),
                                                    model.layers[1]])
    with pytest.raises(FirstspikeError, match="only hidden diff_if layers"):
        SnnModel(timing=t, input_theta=1.0, layers=[model.layers[0], replace(model.layers[1], levels=2)])


def test_cli_converts_to_multi_threshold_and_runs_it_on_the_processor(digits_cnn, tmp_path, capsys):
    """The whole flow for differential coding: ``convert --levels 4`` (the float digits CNN,
    threshold iteration, T = 2): the file keeps the levels, hidden layers send spikes of
    several levels and keep accuracy; ``sim`` runs it (pooled layers by pool units, signed
    multi-level trains in and out) on an array built with 4 levels, bit- and cycle-exact,
    with the state memory in the report; ``--levels`` without diff_if is an input error."""
    from firstspike.cli import main
    ann, _, _ = digits_cnn
    out = tmp_path / "mth.npz"
    assert main(["convert", str(ann), "--neuron", "diff_if", "--calibration", "iteration", "--T", "2",
                 "--levels", "4", "--out", str(out)]) == 0
    model = SnnModel.load(out)
    assert [layer.levels for layer in model.layers] == [4] * (len(model.layers) - 1) + [1]
    assert all((layer.initial == 0).all() for layer in model.layers[:-1])  # the paper's MTH neuron starts empty
    from firstspike.sw.data import load_dataset
    ds = load_dataset("digits")
    g = GoldenModel(model)
    r = g.run(ds.x_test[:200])
    assert len({int(abs(v)) for v in np.unique(r.spikes[1])} - {0}) >= 2
    assert (r.predictions == ds.y_test[:200]).mean() > 0.95
    capsys.readouterr()
    assert main(["sim", "--model", str(out), "--pes", "4", "--images", "12", "--out", str(tmp_path / "sim"),
                 "--verilog-dir", str(tmp_path / "sv")]) == 0
    import json
    r = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert r["mismatches"] == 0 and r["cycle_model_exact"] and r["rtl_accuracy"] == r["golden_accuracy"]
    assert json.loads((tmp_path / "sv" / "neuron_array.json").read_text())["config"]["diff_levels"] == 4
    bits = r["memory_bits_per_pe"]
    assert bits["diff_states"] == 4 * bits["accumulators"] > 0  # mem, ein, eout, cum beside each accumulator
    assert r["energy_breakdown_pj"]["fire"] > 0 and r["spikes_per_image"] > 100
    capsys.readouterr()
    assert main(["convert", str(ann), "--levels", "4", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--levels sets the spike levels of diff_if neurons" in capsys.readouterr().err

"""Generated Verilog under Verilator + cocotb, bit-exact against the golden model.

Random networks: reproduce a failure with the seed printed in the assertion message:
``_networks(index, timing)`` / ``_cnns(index, timing)`` build network ``seed`` from
``np.random.default_rng(seed)``.
"""
import copy

import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig, layer_descriptors, network_image
from firstspike.hw.host import decode_results, network_writes
from firstspike.hw.verilog import write_design
from firstspike.sim import verilator
from firstspike.sim.check import check_networks_on_rtl, first_mismatch
from firstspike.flow import simulate
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import (as_rate_if, at_thresholds, diff_threshold_edges, random_cnn,
                                           random_input_times,
                                           random_input_trains, random_model, random_resnet, rate_threshold_edges,
                                           with_levels,
                                           threshold_probe)

# (PEs, T, B, frac_bits): 1, 4 and 16 PEs; B in 1, 2, 4, 8. Odd shapes are "tiled": the
# weight buffer holds one output channel's weights, so layers run in several weight tiles.
CONFIGS = [(1, 8, 1, 12), (4, 16, 2, 16), (16, 8, 4, 14), (4, 5, 8, 10), (16, 32, 2, 16), (1, 12, 4, 12)]
NETWORKS_PER_CONFIG = 9
IMAGES_PER_NETWORK = 3


def _networks(index, timing):
    """Random depths (1-3 weight layers) and widths (1-24), one seed per network."""
    out = []
    for n in range(NETWORKS_PER_CONFIG):
        seed = 1000 * index + n
        rng = np.random.default_rng(seed)
        depth = int(rng.integers(1, 4))
        sizes = [int(s) for s in rng.integers(1, 25, size=depth + 1)]
        times = random_input_times(rng, sizes[0], IMAGES_PER_NETWORK, timing)
        out.append((seed, random_model(rng, sizes, timing), times))
    return out


def _mlp(rng, timing):
    depth = int(rng.integers(1, 4))
    return random_model(rng, [int(s) for s in rng.integers(1, 25, size=depth + 1)], timing)


def _check_bit_exact_and_cycles(nets, pes, timing, tmp_path, tight=False, sized_for=()):
    """Build one array big enough for every network (and those of ``sized_for``: networks of
    the same shape checked by another test, so both tests share one Verilator build), put
    each into external memory, compare with golden and perf model.

    ``tight``: the weight buffer holds just the largest output channel's weights, so layers
    with several channels per PE run in weight tiles (several passes over their input events)."""
    everything = list(nets) + list(sized_for)
    cfg = ArrayConfig.for_models((model for _, model, _ in everything), pes, smallest_weight_buffer=tight)
    if tight:
        tiles = [d.tiles for _, model, _ in everything for d in network_image(model, cfg).descriptors]
        assert max(tiles) >= 3, f"tight buffers should make tiles, got {tiles}"
    assert cfg.timing == timing
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    results = check_networks_on_rtl(built, cfg, [(model, times) for _, model, times in nets], tmp_path / "run")
    for (seed, model, _), problems in zip(nets, results):
        assert not problems, f"seed {seed}, shapes {model.shapes}, {timing}, {pes} PEs: {problems[:3]}"


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[f"pes{c[0]}-T{c[1]}-B{c[2]}" + ("-tiled" if i % 2 else "")
                                                          for i, c in enumerate(CONFIGS)])
def test_random_networks_bit_exact(index, tmp_path):
    pes, T, B, F = CONFIGS[index]
    timing = Timing(T=T, B=B, frac_bits=F)
    _check_bit_exact_and_cycles(_networks(index, timing), pes, timing, tmp_path, tight=index % 2 == 1,
                                sized_for=_every_net(index, timing))


# conv nets run on four of the array shapes above (indices into CONFIGS), sharing their builds:
# 1, 4 and 16 PEs, channel counts mostly not multiples of them, tiled and not
CNN_SHAPES = [5, 1, 2, 0]
CNN_CONFIGS = [CONFIGS[i] for i in CNN_SHAPES]
CNNS_PER_CONFIG = 9


def _shape_cnns(shape, timing):
    """The conv nets that run on array shape ``shape`` (index into CONFIGS)."""
    return [net for j, i in enumerate(CNN_SHAPES) if i == shape for net in _cnns(j, timing)]


def _seeded_nets(build, base, index, count, timing):
    """``count`` networks of ``build(rng, timing)``, each with 2 input images from its own
    generator, seeded ``base + 1000 * index + n``: (seed, model, times)."""
    out = []
    for n in range(count):
        seed = base + 1000 * index + n
        rng = np.random.default_rng(seed)
        model = build(rng, timing)
        out.append((seed, model, random_input_times(rng, model.layers[0].n_in, 2, timing)))
    return out


def _cnns(index, timing):
    """Random conv nets: 1-2 conv layers (kernel 1/3/5, stride 1/2, padding up to k//2,
    max pooling 1/2), 0-1 hidden linear layers, one seed per network."""
    return _seeded_nets(_conv_net, 5000, index, CNNS_PER_CONFIG, timing)


def _conv_net(rng, timing):
    shape = (int(rng.integers(1, 4)), int(rng.integers(5, 11)), int(rng.integers(5, 11)))
    convs, h, w = [], shape[1], shape[2]
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.choice([1, 3, 5]))
        p, s = int(rng.integers(0, k // 2 + 1)), int(rng.choice([1, 2]))
        if k > min(h, w) + 2 * p:
            k, p = 1, 0
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        pool = 2 if min(h, w) >= 2 and rng.random() < 0.5 else 1
        h, w = h // pool, w // pool
        convs.append(dict(channels=int(rng.integers(1, 21)), kernel=k, stride=s, padding=p, pool=pool))
    hidden = [int(rng.integers(1, 17))] if rng.random() < 0.5 else []
    return random_cnn(rng, shape, convs, hidden, int(rng.integers(2, 11)), timing)


@pytest.mark.parametrize("index", range(len(CNN_CONFIGS)),
                         ids=[f"pes{c[0]}-T{c[1]}-B{c[2]}" + ("-tiled" if CNN_SHAPES[i] % 2 else "")
                              for i, c in enumerate(CNN_CONFIGS)])
def test_random_cnns_bit_exact(index, tmp_path):
    shape = CNN_SHAPES[index]
    pes, T, B, F = CONFIGS[shape]
    timing = Timing(T=T, B=B, frac_bits=F)
    _check_bit_exact_and_cycles(_cnns(index, timing), pes, timing, tmp_path, tight=shape % 2 == 1,
                                sized_for=_every_net(shape, timing))


# residual nets (docs/spec.md section 14) run on three of the array shapes, sharing their builds
RESNET_SHAPES = [0, 2, 5]
RESNETS_PER_CONFIG = 8


def _shape_resnets(shape, timing):
    return [net for j, i in enumerate(RESNET_SHAPES) if i == shape for net in _resnets(j, timing)]


def _resnets(index, timing):
    """Random residual nets: an optional stem conv (without one, the first shortcut reads the
    input spikes) and 1-2 blocks (channels 1-20, stride 1/2, pooling 1/2 after the add,
    identity, 1x1 or 3x3 shortcuts), one seed per network."""
    return _seeded_nets(_residual_net, 9000, index, RESNETS_PER_CONFIG, timing)


def _residual_net(rng, timing):
    shape = (int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9)))
    blocks, h = [], min(shape[1:])
    for _ in range(int(rng.integers(1, 3))):
        stride = int(rng.choice([1, 2]))
        h = (h - 1) // stride + 1
        pool = int(rng.choice([1, 1, 2])) if h >= 2 else 1
        h //= pool
        blocks.append(dict(channels=int(rng.choice([rng.integers(1, 9), rng.integers(9, 21)])), stride=stride,
                           pool=pool, shortcut_kernel=int(rng.choice([1, 1, 3]))))
    return random_resnet(rng, shape, blocks, int(rng.integers(2, 11)), timing, stem=bool(rng.random() < 0.7))


@pytest.mark.parametrize("index", range(len(RESNET_SHAPES)),
                         ids=[f"pes{CONFIGS[i][0]}-T{CONFIGS[i][1]}-B{CONFIGS[i][2]}" + ("-tiled" if i % 2 else "")
                              for i in RESNET_SHAPES])
def test_random_resnets_bit_exact(index, tmp_path):
    """Shortcuts from the input and from hidden layers, identity and convolutional, into pooled
    and unpooled layers, with weight tiles: the second accumulation pass and its cycles."""
    shape = RESNET_SHAPES[index]
    pes, T, B, F = CONFIGS[shape]
    timing = Timing(T=T, B=B, frac_bits=F)
    _check_bit_exact_and_cycles(_resnets(index, timing), pes, timing, tmp_path, tight=shape % 2 == 1,
                                sized_for=_every_net(shape, timing))


# bands (docs/hardware.md): conv and residual nets on an array whose accumulators hold one row
# of pooling windows of the widest layer, and whose weight buffer one output channel's weights
BANDED_NETS = 10


def _banded_nets(timing):
    """Conv and residual nets of the generators above, ``BANDED_NETS`` each, their own seeds,
    and a conv layer of wide input (20 channels, 5x5) whose weights also run in tiles, its first
    image silent (every band of it a pass without events)."""
    rng = np.random.default_rng(42000)
    wide = random_cnn(rng, (20, 8, 8), [dict(channels=12, kernel=5, padding=2, pool=2)], [], 5, timing)
    silent = np.full((1, wide.layers[0].n_in), -1, dtype=np.int64)
    return (_seeded_nets(_conv_net, 40000, 0, BANDED_NETS, timing)
            + _seeded_nets(_residual_net, 41000, 0, BANDED_NETS, timing)
            + [(42000, wide, np.concatenate([silent, random_input_times(rng, wide.layers[0].n_in, 2, timing)]))])


def test_banded_networks_bit_exact(tmp_path):
    """Layers whose accumulators do not fit run in bands of output rows: every band re-reads the
    layer's input events (and reloads its weight tiles), the shortcut pass runs per band, the
    fire stage scans the band's rows. Bit- and cycle-exact, every counter as modelled."""
    pes, T, B, F = CONFIGS[1]
    timing = Timing(T=T, B=B, frac_bits=F)
    nets = _banded_nets(timing)
    cfg = ArrayConfig.for_models([m for _, m, _ in nets], pes, smallest_weight_buffer=True, smallest_acc_buffer=True)
    banded = [(layer, d) for _, model, _ in nets for layer, d in zip(model.layers, layer_descriptors(model, cfg))
              if d.bands > 1]
    assert len(banded) >= 8 and max(d.bands for _, d in banded) >= 3 and {1, 2} <= {d.tiles for _, d in banded}
    assert sum(layer.shortcut is not None for layer, _ in banded) >= 3
    assert any(layer.pool > 1 and d.h_out % d.band_rows for layer, d in banded)  # a short last band
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    results = check_networks_on_rtl(built, cfg, [(model, times) for _, model, times in nets], tmp_path / "run")
    for (seed, model, _), problems in zip(nets, results):
        assert not problems, f"seed {seed}, shapes {model.shapes}, {timing}, {pes} PEs, banded: {problems[:3]}"


def test_random_resnets_cover_the_shortcuts():
    """The generator gives what the RTL test promises: identity and conv shortcuts, from the
    input and from hidden layers, strided, into pooled layers, on 24 networks."""
    seen = set()
    for index, shape in enumerate(RESNET_SHAPES):
        pes, T, B, F = CONFIGS[shape]
        for _, model, _ in _resnets(index, Timing(T=T, B=B, frac_bits=F)):
            for k, layer in enumerate(model.layers):
                sc = layer.shortcut
                if sc is None:
                    continue
                identity = sc.kernel == 1 and np.count_nonzero(sc.weights != 15) <= layer.channels
                seen |= {("identity", bool(identity)), ("kernel", sc.kernel), ("stride", sc.stride),
                         ("pool", layer.pool), ("from input", sc.source == 0), ("slots > 1", layer.channels > pes)}
    assert {("identity", True), ("identity", False), ("kernel", 1), ("kernel", 3), ("stride", 1), ("stride", 2),
            ("pool", 1), ("pool", 2), ("from input", False), ("from input", True), ("slots > 1", True)} <= seen
    assert len(RESNET_SHAPES) * RESNETS_PER_CONFIG >= 20


# rate_if networks (docs/spec.md section 12) run on every array shape, sharing its build
RATE_NETS_PER_CONFIG = 6


def _rate_nets(index, timing):
    """Random rate_if networks: the MLP, conv net and residual net generators' shapes (rate max
    pooling, shortcuts run in every step) with per-channel thresholds and initial potentials
    (as_rate_if), input trains at random rates (some inputs silent, some spiking every step),
    one seed per network."""
    out = []
    for n in range(RATE_NETS_PER_CONFIG):
        seed = 20000 + 1000 * index + n
        rng = np.random.default_rng(seed)
        make = (_mlp, _conv_net, _residual_net)[n % 3]
        model = as_rate_if(rng, make(rng, timing))
        out.append((seed, model, random_input_trains(rng, model.layers[0].n_in, 2, timing)))
    return out


# diff_if networks (docs/spec.md section 13) run on three of the array shapes (their builds carry the
# diff_if datapath: state memories, dividers, level comparators, which cost build time)
DIFF_NETS_PER_CONFIG = 10
DIFF_CONFIGS = (0, 1, 5)


def _diff_nets(index, timing):
    """Random diff_if networks: MLPs, conv nets without pooling and the conv net generator's
    (max pooling by pool units), per-channel thresholds and initial potentials (as_rate_if),
    signed input trains at random rates, one seed per network; every other one with 2, 4 or
    8 spike levels per hidden layer (the multi-threshold variant, docs/spec.md 13.7)."""
    out = []
    for n in range(DIFF_NETS_PER_CONFIG if index in DIFF_CONFIGS else 0):
        seed = 30000 + 1000 * index + n
        rng = np.random.default_rng(seed)
        model = (_mlp, _unpooled_conv_net, _conv_net)[n % 3](rng, timing)
        model = as_rate_if(rng, model, neuron="diff_if")
        if (n + index) % 2:  # every kind both ways over the array shapes
            model = with_levels(rng, model)
        out.append((seed, model, random_input_trains(rng, model.layers[0].n_in, 2, timing, signed=True)))
    return out


def _unpooled_conv_net(rng, timing):
    """A random conv net without max pooling, small enough that its linear layers' fan-in does
    not outgrow the other tests' (their tiled configurations size the weight buffer by it)."""
    shape = (int(rng.integers(1, 4)), int(rng.integers(4, 8)), int(rng.integers(4, 8)))
    convs, h, w = [], shape[1], shape[2]
    for _ in range(int(rng.integers(1, 3))):
        k, stride, pad = int(rng.choice([1, 3])), int(rng.choice([1, 2])), int(rng.integers(0, 2))
        if k > min(h, w) + 2 * pad:
            k, pad = 1, 0
        h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        convs.append(dict(channels=int(rng.integers(1, 9)), kernel=k, stride=stride, padding=pad))
    hidden = [int(rng.integers(1, 13))] if rng.random() < 0.5 else []
    return random_cnn(rng, shape, convs, hidden, int(rng.integers(2, 9)), timing)


def _every_net(index, timing):
    """Every network the tests of array shape ``index`` run: each test sizes the array for all
    of them, so they share one Verilator build."""
    return (_networks(index, timing) + _shape_cnns(index, timing) + _shape_resnets(index, timing)
            + _rate_nets(index, timing) + _diff_nets(index, timing))


@pytest.mark.parametrize("index", DIFF_CONFIGS, ids=[f"pes{CONFIGS[i][0]}-T{CONFIGS[i][1]}-B{CONFIGS[i][2]}"
                                                     + ("-tiled" if i % 2 else "") for i in DIFF_CONFIGS])
def test_random_diff_networks_bit_exact(index, tmp_path):
    """diff_if on the processor: INIT of the state, T steps of step-filtered accumulation of
    signed spikes, the step's state update with its floor divisions by t, signed spikes out,
    the output layer's running means read back; trains, scores and cycles layer by layer."""
    pes, T, B, F = CONFIGS[index]
    timing = Timing(T=T, B=B, frac_bits=F)
    nets = _diff_nets(index, timing) + (_diff_edge_nets(timing) if index == 1 else [])
    _check_bit_exact_and_cycles(nets, pes, timing, tmp_path, tight=index % 2 == 1,
                                sized_for=_every_net(index, timing))


def _diff_edge_nets(timing):
    """diff_if nets whose first hidden layer meets its firing edges exactly (TH, 0, the
    cumulative output's edge; a level's 3/4 with several levels), one with one level and one
    with four (sw.random_models.diff_threshold_edges)."""
    out = []
    for k, levels in enumerate((1, 4)):
        rng = np.random.default_rng([k, 9])
        model = diff_threshold_edges(rng, [5, 16, 9, 3], timing, levels=levels, zero_fraction=0.7)
        out.append((k, model, random_input_trains(rng, 5, 2, timing, signed=True)))
    return out


def test_diff_nets_cover_the_diff_datapath():
    """The generators give what the diff RTL test promises: +1 and -1 spikes out of hidden
    layers, pooled ones among them, conv and linear layers, steps where a neuron is silent,
    spikes of higher levels (both signs), and at least 30 networks."""
    seen, count = set(), 0
    for index, (pes, T, B, F) in enumerate(CONFIGS):
        timing = Timing(T=T, B=B, frac_bits=F)
        for _, model, trains in _diff_nets(index, timing):
            count += 1
            g = GoldenModel(model).run_times(trains)
            hidden = np.concatenate([s.reshape(-1) for s in g.spikes[1:-1]] or [np.zeros(0)])
            seen |= {("+1", bool((hidden == 1).any())), ("-1", bool((hidden == -1).any())),
                     ("silent", bool((hidden == 0).any())), ("level > 0", bool((hidden > 1).any())),
                     ("negative level > 0", bool((hidden < -1).any()))}
            seen |= {("kind", layer.kind) for layer in model.layers}
            pooled = [(g.spikes[k + 1], layer.levels) for k, layer in enumerate(model.layers[:-1]) if layer.pool > 1]
            seen |= {(f"pooled {v}, levels {'1' if k == 1 else 'k'}", bool((s == v).any()))
                     for s, k in pooled for v in (1, -1)}
    assert {("+1", True), ("-1", True), ("silent", True), ("kind", "conv"), ("kind", "linear"),
            ("pooled 1, levels 1", True), ("pooled -1, levels 1", True), ("pooled 1, levels k", True),
            ("level > 0", True), ("negative level > 0", True)} <= seen, seen
    assert count >= 30


def _rate_edge_nets(timing):
    """rate_if nets whose first hidden layer sits exactly on its thresholds at some steps
    (sw.random_models.rate_threshold_edges)."""
    out = []
    for k in range(3):
        rng = np.random.default_rng([k, 6])
        out.append((k, rate_threshold_edges(rng, [5, 12, 9, 3], timing), random_input_trains(rng, 5, 2, timing)))
    return out


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[f"pes{c[0]}-T{c[1]}-B{c[2]}" + ("-tiled" if i % 2 else "")
                                                          for i, c in enumerate(CONFIGS)])
def test_random_rate_networks_bit_exact(index, tmp_path):
    """rate_if on the processor: INIT from the initial potentials, T steps of step-filtered
    accumulation and fire-subtract, rate max pooling, weight tiles reloaded every step;
    spike trains, output potentials and cycles layer by layer."""
    pes, T, B, F = CONFIGS[index]
    timing = Timing(T=T, B=B, frac_bits=F)
    nets = _rate_nets(index, timing) + (_rate_edge_nets(timing) if index == 1 else [])
    _check_bit_exact_and_cycles(nets, pes, timing, tmp_path, tight=index % 2 == 1,
                                sized_for=_every_net(index, timing))


def test_rate_nets_cover_the_rate_datapath():
    """The generators give what the rate RTL test promises: pooled and unpooled layers, several
    slots per PE, several weight tiles, silent and always-spiking inputs, threshold edges."""
    seen, T = set(), None
    for index, (pes, T, B, F) in enumerate(CONFIGS):
        timing = Timing(T=T, B=B, frac_bits=F)
        nets = _rate_nets(index, timing)
        cfg = ArrayConfig.for_models([m for _, m, _ in nets], pes, smallest_weight_buffer=index % 2 == 1)
        for _, model, trains in nets:
            seen |= {("pool", layer.pool) for layer in model.layers}
            seen.add(("slots > 1", any(layer.channels > pes for layer in model.layers)))
            seen.add(("tiles > 1", any(d.tiles > 1 for d in network_image(model, cfg).descriptors)))
            seen.add(("shortcut", any(layer.shortcut is not None for layer in model.layers)))
            # a shortcut layer keeps both weight sets in the buffer (loads once) or reloads them every step
            for d, sc in zip(*layer_descriptors(model, cfg, shortcuts=True)):
                if sc is not None:
                    seen.add(("both weight sets resident",
                              d.tiles == sc.tiles == 1 and d.tile_rows + sc.tile_rows <= cfg.weight_buffer))
            rates = trains.mean(axis=1)
            seen |= {("silent input", bool((rates == 0).any())), ("always on", bool((rates == 1).any()))}
    assert {("pool", 1), ("pool", 2), ("slots > 1", True), ("tiles > 1", True), ("silent input", True),
            ("always on", True), ("shortcut", True), ("both weight sets resident", True),
            ("both weight sets resident", False)} <= seen
    assert len(CONFIGS) * RATE_NETS_PER_CONFIG >= 30
    timing = Timing(T=16, B=2, frac_bits=16)
    for _, model, _ in _rate_edge_nets(timing):
        first = model.layers[0]
        assert np.all(first.thresholds % first.bias == 0) and np.all(first.initial % first.bias == 0)


def _edge_networks(timing):
    """CNNs of config 1 and MLPs with every hidden bias on a threshold edge (at_thresholds),
    on a silent image and mostly silent ones: potentials exactly at or one below TH[t]."""
    out = []
    for seed, model, _ in _cnns(1, timing)[:3] + _networks(1, timing)[:3]:
        rng = np.random.default_rng([seed, 2])
        n_in = model.layers[0].n_in
        times = np.concatenate([np.full((1, n_in), -1), random_input_times(rng, n_in, 3, timing, silent_fraction=0.9)])
        out.append((seed, at_thresholds(rng, model), times))
    for k in range(3):  # zero weights, wide tables: every threshold register bit matters
        rng = np.random.default_rng([k, 4])
        out.append((k, threshold_probe(rng, [6, 32, 32, 3], timing, 20), random_input_times(rng, 6, 2, timing)))
    return out


def test_potentials_exactly_at_thresholds_bit_exact(tmp_path):
    """Firing at the edge of the comparison V >= TH[t], where a random network rarely lands
    (the mutation score found threshold-register faults only such networks reveal)."""
    timing = Timing(T=16, B=2, frac_bits=14)
    nets = _edge_networks(timing)
    on_threshold = below = 0
    for _, model, times in nets:
        th = model.layers[0].thresholds
        if th is not None:  # the silent image: first-layer potentials are the biases
            v = GoldenModel(model).layer_potentials(0, times[:1]).ravel()
            on_threshold += int(np.isin(v, th).sum())
            below += int(np.isin(v + 1, th).sum())
    assert on_threshold >= 20 and below >= 20
    tables = [model.layers[0].thresholds for _, model, _ in nets if model.layers[0].thresholds is not None]
    assert max(int(th[0]) for th in tables) > 1 << 19  # the probes' wide tables
    _check_bit_exact_and_cycles(nets, 4, timing, tmp_path)


def test_random_cnns_cover_the_geometry():
    """The CNN generator exercises every kernel, stride, padding and pooling it promises."""
    seen = set()
    channels_not_multiple = 0
    for index, (pes, T, B, F) in enumerate(CNN_CONFIGS):
        for _, model, _ in _cnns(index, Timing(T=T, B=B, frac_bits=F)):
            for layer in model.layers:
                if layer.kind == "conv":
                    seen |= {("k", layer.kernel), ("s", layer.stride), ("p", layer.padding), ("pool", layer.pool)}
                    channels_not_multiple += layer.channels % pes != 0
    assert {("k", 1), ("k", 3), ("k", 5), ("s", 1), ("s", 2), ("p", 0), ("p", 1), ("p", 2), ("pool", 1),
            ("pool", 2)} <= seen
    assert channels_not_multiple >= 20
    assert len(CNN_CONFIGS) * CNNS_PER_CONFIG >= 30


def test_random_networks_exercise_the_design():
    """The generator is worth testing with: spikes at many times, silent neurons, all codes."""
    timing = Timing(T=16, B=2, frac_bits=16)
    times_seen, silent, codes = set(), 0, set()
    for seed, model, times in _networks(1, timing):
        g = GoldenModel(model).run_times(times)
        for s in g.spikes[1:]:
            times_seen |= set(s[s >= 0].tolist())
            silent += int((s < 0).sum())
        for layer in model.layers:
            codes |= set(layer.weights.ravel().tolist())
    assert len(times_seen) >= 12 and silent > 0 and len(codes) == 31


def test_digits_model_bit_exact_on_rtl(digits_model, tmp_path):
    """The trained CAT model, baked into the Verilog, on 120 test images."""
    _, snn_path, _ = digits_model
    report = simulate(snn_path, pes=16, images=120, out_dir=tmp_path / "sim", verilog_dir=tmp_path / "v", quiet=True)
    assert report["images"] == 120
    assert report["mismatches"] == 0, report["first_mismatch"]
    assert report["rtl_accuracy"] == report["golden_accuracy"]
    assert abs(report["golden_accuracy"] - report["float_accuracy"]) <= 0.01
    assert report["cycle_model_exact"] is True
    assert report["cycles_model_per_image"] == report["cycles_per_image"]
    assert [layer["cycles_model"] for layer in report["layers"]] == [layer["cycles"] for layer in report["layers"]]
    # the total is the sum of its parts, per component and per layer, in pJ
    parts = report["energy_breakdown_pj"]
    assert report["energy_per_image_uj"] * 1e6 == pytest.approx(sum(parts.values()), rel=1e-9)
    assert sum(sum(lay["energy_pj"].values()) for lay in report["layers"]) == pytest.approx(sum(parts.values()))
    assert parts["accumulators"] > parts["weight_reads"] > parts["event_memory"] > 0
    assert report["energy_baselines_pj"]["ann_macs"] == 64 * 64 + 64 * 32 + 32 * 10
    assert (tmp_path / "sim" / "report.json").exists()


def test_digits_cnn_bit_exact_on_rtl(digits_cnn, tmp_path):
    """The trained digits CNN (two conv + max-pool layers, one linear) on 200 test images."""
    _, snn_path, _ = digits_cnn
    report = simulate(snn_path, pes=16, images=200, out_dir=tmp_path / "sim", verilog_dir=tmp_path / "v", quiet=True)
    assert report["images"] == 200
    assert report["mismatches"] == 0, report["first_mismatch"]
    assert report["rtl_accuracy"] == report["golden_accuracy"]
    assert report["cycle_model_exact"] is True
    layers = report["layers"]
    assert [(lay["kind"], lay["maxpool"]) for lay in layers] == [("conv", 2), ("conv", 2), ("linear", 1)]
    assert [lay["out_shape"] for lay in layers] == [[16, 4, 4], [32, 2, 2], [10, 1, 1]]
    for lay in layers:
        assert 0 < lay["pe_utilization"] <= lay["accumulate_utilization"] <= 1
        assert lay["cycles"] == lay["cycles_model"]
    # a layer's spikes are the next layer's input events; the output layer does not fire
    assert [lay["spikes"] for lay in layers[:-1]] == [lay["input_events"] for lay in layers[1:]]
    assert layers[-1]["spikes"] == 0 and min(lay["spikes"] for lay in layers[:-1]) > 10
    assert sum(lay["spikes"] for lay in layers) == pytest.approx(report["spikes_per_image"])
    # the targets' figures at 28 nm: every on-chip constant is the 45 nm one x 28/45, so the
    # energy per event scales and the ratio to the int8 ANN does not
    t = report["energy_targets"]
    assert report["energy_technology"] == "45nm" and t["technology"] == "28nm"
    assert t["pj_per_synaptic_event"]["value"] == pytest.approx(report["on_chip_pj_per_synaptic_event"] * 28 / 45)
    assert t["snn_vs_int8"]["value"] == pytest.approx(report["on_chip_energy_per_image_uj"] * 1e6
                                                      / report["energy_baselines_pj"]["ann_int8_pj"])
    conv = [lay for lay in layers if lay["kind"] == "conv"]
    assert t["conv_pe_utilization"]["value"] == pytest.approx(
        sum(lay["synaptic_events"] for lay in conv) / (16 * sum(lay["cycles"] for lay in conv)))
    assert t["conv_pe_utilization"]["met"] is (t["conv_pe_utilization"]["value"] >= 0.8)
    assert t["snn_vs_int8"]["met"] is (t["snn_vs_int8"]["value"] <= 0.5)


def test_mismatch_is_reported_precisely():
    timing = Timing(T=8, B=2, frac_bits=12)
    model = random_model(np.random.default_rng(5), [6, 5, 3], timing)
    times = random_input_times(np.random.default_rng(6), 6, 1, timing)
    golden = GoldenModel(model).run_times(times)
    from firstspike.hw.host import RunResult
    spikes = [s[0].copy() for s in golden.spikes]
    spikes[1][2] = 7 if spikes[1][2] != 7 else 6
    bad = RunResult(spikes=spikes, potentials=golden.potentials[0].copy(), counters={}, layer_cycles=[],
                    layer_events=[])
    m = first_mismatch(4, golden, 0, bad)
    assert (m.image, m.layer, m.neuron, m.got) == (4, "hidden 0", 2, spikes[1][2])
    assert "image 4: hidden 0 neuron 2: spike time expected" in str(m)


def _shared_config(index, models):
    """The array of CONFIGS[index]'s random-network tests, sized for ``models`` too: small
    networks leave it as it is, so their test reuses that Verilator build."""
    pes, T, B, F = CONFIGS[index]
    everything = [m for _, m, _ in _every_net(index, Timing(T=T, B=B, frac_bits=F))] + list(models)
    return ArrayConfig.for_models(everything, pes, smallest_weight_buffer=index % 2 == 1)


def test_a_wrong_weight_in_the_rtl_is_caught(tmp_path):
    """End to end, the comparison detects a real difference: the array runs a network with
    one output-layer weight changed, the golden model the original."""
    timing = Timing(T=8, B=1, frac_bits=12)
    rng = np.random.default_rng(11)
    model = random_model(rng, [6, 4, 3], timing, zero_fraction=0.0)
    times = np.zeros((1, 6), dtype=np.int64)  # every input spikes at t = 0
    golden = GoldenModel(model).run_times(times)
    h = int(np.flatnonzero(golden.spikes[1][0] >= 0)[0])  # a hidden neuron that fired
    cfg = _shared_config(0, [model])
    old = int(model.layers[1].weights[0, h])
    new = 0b00000 if old != 0b00000 else 0b10000  # +-2**s: the largest magnitude, another value
    changed = copy.deepcopy(model)
    changed.layers[1].weights[0, h] = new  # the external memory holds the changed network
    image = network_image(changed, cfg)
    assert image.memory != network_image(model, cfg).memory
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    run = verilator.run(built, cfg, model.shapes, times, image.memory, load_writes=network_writes(cfg),
                        work_dir=tmp_path / "run")
    result = decode_results(cfg, model.shapes, run.stats[0], run.words[0])
    mismatch = first_mismatch(0, golden, 0, result)
    assert mismatch is not None and (mismatch.layer, mismatch.neuron, mismatch.what) == ("output", 0, "potential")
    table = timing.contribution_table()
    sign = lambda code: -1 if code >> 4 else 1  # noqa: E731
    t = int(golden.spikes[1][0][h])
    assert mismatch.got - mismatch.expected == sign(new) * table[new & 15, t] - sign(old) * table[old & 15, t]


def test_a_failing_memory_raises_memory_error(tmp_path):
    """The bench memory answers every read from a network's first word on with SLVERR (data
    still right, ``+axi_error_from``): the array's ``memory_error`` output goes high during that
    network and stays high (sticky until reset), the results stay exact, and the RTL check
    wants exactly that: the flag low before, high from the failing network on. The raw runs show
    the flag itself, after each network's last image."""
    timing = Timing(T=8, B=1, frac_bits=12)
    rng = np.random.default_rng(12)
    nets = [(random_model(rng, [6, 5, 3], timing), random_input_times(rng, 6, 2, timing)) for _ in range(3)]
    cfg = _shared_config(0, [m for m, _ in nets])
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    assert check_networks_on_rtl(built, cfg, nets, tmp_path / "run", failing_memory_from=1) == [[], [], []]
    # a working memory: the flag low everywhere (the check wants it low)
    assert check_networks_on_rtl(built, cfg, nets, tmp_path / "ok") == [[], [], []]
    from firstspike.sim.check import NETWORK_OFFSET_WORDS
    jobs = [verilator.RtlJob(m.shapes, t, network_image(m, cfg).memory, NETWORK_OFFSET_WORDS + 5000 * j,
                             network_writes(cfg, (NETWORK_OFFSET_WORDS + 5000 * j) * cfg.bus_bits // 8))
            for j, (m, t) in enumerate(nets)]
    runs = verilator.run_jobs(built, cfg, jobs, work_dir=tmp_path / "raw", error_from_word=NETWORK_OFFSET_WORDS + 5000)
    assert [r.memory_error for r in runs] == [False, True, True]

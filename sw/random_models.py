"""Random integer SNNs for verification: every weight code, busy and silent neurons."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .formats import SIGN_BIT, ZERO_CODE, Timing, threshold_table
from .model import Shortcut, SnnLayer, SnnModel


def random_model(rng: np.random.Generator, sizes: list[int], timing: Timing,
                 zero_fraction: float = 0.2) -> SnnModel:
    """A model with uniformly random weight codes and thresholds that make neurons fire
    across the whole window (some never fire, some fire at t = 0)."""
    layers = []
    one = 1 << timing.frac_bits
    for k in range(len(sizes) - 1):
        n_in, n_out = sizes[k], sizes[k + 1]
        mag = rng.integers(0, 15, size=(n_out, n_in))
        sign = rng.integers(0, 2, size=(n_out, n_in))
        codes = np.where(rng.random((n_out, n_in)) < zero_fraction, ZERO_CODE, mag | (sign * SIGN_BIT))
        typical = one * np.sqrt(n_in) / 4
        bias = rng.integers(-int(typical), int(typical) + 1, size=n_out).astype(np.int64)
        last = k == len(sizes) - 2
        th = None if last else threshold_table(float(typical * rng.uniform(0.3, 3.0)), timing)
        layers.append(SnnLayer(weights=codes.astype(np.uint8), bias=bias, thresholds=th))
    return SnnModel(timing=timing, input_theta=1.0, layers=layers, name="random")


def random_input_times(rng: np.random.Generator, n: int, batch: int, timing: Timing,
                       silent_fraction: float = 0.3) -> np.ndarray:
    """(batch, n) spike times with some silent inputs."""
    t = rng.integers(0, timing.T, size=(batch, n))
    return np.where(rng.random((batch, n)) < silent_fraction, -1, t).astype(np.int64)


def random_codes(rng: np.random.Generator, shape: tuple, zero_fraction: float) -> np.ndarray:
    """Random weight codes of ``shape``: exponents 0 to 14, either sign, and about
    ``zero_fraction`` of them the zero code."""
    mag = rng.integers(0, 15, size=shape)
    sign = rng.integers(0, 2, size=shape)
    return np.where(rng.random(shape) < zero_fraction, ZERO_CODE, mag | (sign * SIGN_BIT)).astype(np.uint8)


def random_cnn(rng: np.random.Generator, in_shape: tuple[int, int, int], convs: list[dict], hidden: list[int],
               classes: int, timing: Timing, zero_fraction: float = 0.2) -> SnnModel:
    """A random conv net: conv layers (dicts with ``channels``, ``kernel`` and optionally
    ``stride``, ``padding``, ``pool``), then linear layers of sizes ``hidden``, then the output."""
    layers = []
    one = 1 << timing.frac_bits
    shape = tuple(in_shape)
    for spec in convs:
        k = spec["kernel"]
        c_out = spec["channels"]
        codes = random_codes(rng, (c_out, shape[0], k, k), zero_fraction)
        typical = one * np.sqrt(shape[0] * k * k) / 4
        bias = rng.integers(-int(typical), int(typical) + 1, size=c_out).astype(np.int64)
        layer = SnnLayer(weights=codes, bias=bias, thresholds=threshold_table(float(typical * rng.uniform(0.3, 2.0)),
                                                                               timing),
                         kind="conv", in_shape=shape, stride=spec.get("stride", 1),
                         padding=spec.get("padding", 0), pool=spec.get("pool", 1))
        layers.append(layer)
        shape = layer.out_shape
    n_in = int(np.prod(shape))
    for k, n_out in enumerate([*hidden, classes]):
        typical = one * np.sqrt(n_in) / 4
        last = k == len(hidden)
        layers.append(SnnLayer(
            weights=random_codes(rng, (n_out, n_in), zero_fraction),
            bias=rng.integers(-int(typical), int(typical) + 1, size=n_out).astype(np.int64),
            thresholds=None if last else threshold_table(float(typical * rng.uniform(0.3, 3.0)), timing),
            in_shape=shape if k == 0 else None))
        n_in, shape = n_out, None
    return SnnModel(timing=timing, input_theta=1.0, layers=layers, name="random-cnn")


def random_resnet(rng: np.random.Generator, in_shape: tuple[int, int, int], blocks: list[dict], classes: int,
                  timing: Timing, zero_fraction: float = 0.2, stem: bool = True) -> SnnModel:
    """A random residual conv net (docs/spec.md, section 14): a 3x3 stem conv (unless not
    ``stem``: then the first block's shortcut reads the input spikes), then residual
    blocks (dicts with ``channels``, optionally ``stride`` and ``pool``), each two 3x3 convs
    whose second also receives the block's input through a shortcut (an identity, one code on
    the diagonal, where shapes allow; else a random 1x1 conv with the block's stride;
    ``shortcut_kernel`` 3 makes it a 3x3 conv), then the linear output layer."""
    one = 1 << timing.frac_bits
    layers = []

    def conv(shape, c_out, k=3, stride=1, padding=1, pool=1, shortcut=None):
        codes = random_codes(rng, (c_out, shape[0], k, k), zero_fraction)
        typical = one * np.sqrt(shape[0] * k * k) / 4
        bias = rng.integers(-int(typical), int(typical) + 1, size=c_out).astype(np.int64)
        layer = SnnLayer(weights=codes, bias=bias, thresholds=threshold_table(float(typical * rng.uniform(0.5, 2.0)),
                                                                               timing),
                         kind="conv", in_shape=shape, stride=stride, padding=padding, pool=pool, shortcut=shortcut)
        layers.append(layer)
        return layer.out_shape

    shape = conv(tuple(in_shape), int(rng.integers(1, 9))) if stem else tuple(in_shape)
    for spec in blocks:
        source, src_shape = len(layers), shape  # spike source index of the block's input
        c_out, stride = spec["channels"], spec.get("stride", 1)
        mid = conv(src_shape, c_out, stride=stride)
        k = spec.get("shortcut_kernel", 1)
        if k == 1 and stride == 1 and c_out == src_shape[0]:
            diagonal = np.full((c_out, c_out, 1, 1), ZERO_CODE, dtype=np.uint8)
            diagonal[np.arange(c_out), np.arange(c_out)] = int(rng.integers(0, 4))
            weights = diagonal
        else:
            weights = random_codes(rng, (c_out, src_shape[0], k, k), zero_fraction)
        shape = conv(mid, c_out, pool=spec.get("pool", 1),
                     shortcut=Shortcut(source=source, weights=weights, stride=stride, padding=k // 2))
    n_in = int(np.prod(shape))
    typical = one * np.sqrt(n_in) / 4
    layers.append(SnnLayer(weights=random_codes(rng, (classes, n_in), zero_fraction),
                           bias=rng.integers(-int(typical), int(typical) + 1, size=classes).astype(np.int64),
                           thresholds=None, in_shape=shape))
    return SnnModel(timing=timing, input_theta=1.0, layers=layers, name="random-resnet")


def at_thresholds(rng: np.random.Generator, model: SnnModel, wide_bits: int | None = None,
                  first_pair: int | None = None) -> SnnModel:
    """The model with every hidden layer's biases moved onto its threshold edges: bias
    ``TH[t]`` or ``TH[t] - 1``, a different (t, choice) pair per channel. A neuron that
    receives no input spike (or only a few weak ones) then sits exactly at, or one unit
    below, a threshold, so the comparison ``V >= TH[t]`` is tested at its edge for every t
    (a random network almost never lands there).

    ``wide_bits``: also replace each table by T distinct random integers in
    ``[1, 2**wide_bits]`` (model files hold thresholds >= 1), sorted descending, so every
    magnitude bit of every threshold register matters somewhere.

    ``first_pair``: instead of a random order, the hidden neurons, layer after layer, take
    the pairs in turn from ``first_pair`` on, so that a set of networks with first pairs a
    step apart meets every pair in every PE (the channels of PE p are p, p + P, ...)."""
    layers = []
    turn = first_pair
    for layer in model.layers:
        if layer.thresholds is not None:
            th = np.asarray(layer.thresholds, dtype=np.int64)
            if wide_bits is not None:
                lim = 1 << wide_bits
                th = np.sort(rng.choice(lim, size=len(th), replace=False) + 1)[::-1].astype(np.int64)
            # distinct (t, below) pairs in random order: with 2T channels or more, every
            # threshold is met exactly and missed by one
            pairs = 2 * len(th)
            if turn is None:
                j = rng.permutation(max(pairs, layer.channels))[:layer.channels]
            else:
                j = (turn + np.arange(layer.channels)) % pairs
                turn += layer.channels
            t, below = j % len(th), (j // len(th)) % 2
            layer = replace(layer, thresholds=th, bias=(th[t] - below).astype(np.int64))
        layers.append(layer)
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers, name=model.name + "-edges")


def threshold_probe(rng: np.random.Generator, sizes: list[int], timing: Timing, wide_bits: int,
                    first_pair: int | None = None) -> SnnModel:
    """A network whose hidden neurons sit exactly on their threshold edges on every image:
    all weights are the zero code, so each potential is its bias (at_thresholds with wide
    random tables, ``first_pair`` as there). It checks the fire stage's comparison and every
    threshold register bit in every hidden layer, whatever the input."""
    return at_thresholds(rng, random_model(rng, sizes, timing, zero_fraction=1.0), wide_bits, first_pair)


def as_rate_if(rng: np.random.Generator, model: SnnModel, neuron: str = "rate_if") -> SnnModel:
    """The random model with rate-coded IF neurons (sw/neurons/rate_if.py, or ``neuron``
    "diff_if", which has the same arrays): per-channel
    thresholds spread around the typical one-step input (so rates range from silent to
    every step), random initial potentials in [0, TH], biases scaled down (they are added
    at every step)."""
    layers = []
    for layer in model.layers:
        c = layer.channels
        bias = layer.bias // 4
        if layer.thresholds is None:
            th, init = None, rng.integers(-int(np.abs(bias).max()) - 1, int(np.abs(bias).max()) + 2, size=c)
        else:
            th = np.maximum(1, layer.thresholds[0] * rng.uniform(0.1, 1.0, size=c)).astype(np.int64)
            init = rng.integers(0, th + 1)
        layers.append(replace(layer, neuron=neuron, bias=bias.astype(np.int64), thresholds=th,
                              initial=np.asarray(init, dtype=np.int64)))
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers, name=f"{model.name}-{neuron}")


def with_levels(rng: np.random.Generator, model: SnnModel, choices=(2, 4, 8), keep_initial: bool = False) -> SnnModel:
    """A diff_if ``model`` with the multi-threshold variant (docs/spec.md 13.7): each hidden layer
    gets one of ``choices`` spike levels, its thresholds raised to at least one unit per level
    and its initial potentials 0 (the multi-threshold neuron's), or, with ``keep_initial``,
    those of a random half of its channels kept (the spec allows any)."""
    layers = []
    for layer in model.layers:
        k = 1 if layer.is_output else int(rng.choice(list(choices)))
        if k > 1:
            initial = (rng.integers(0, 2, size=layer.channels) * layer.initial if keep_initial
                       else np.zeros_like(layer.initial))
            layer = replace(layer, levels=k, initial=initial, thresholds=np.maximum(layer.thresholds, 1 << (k - 1)))
        layers.append(layer)
    return SnnModel(timing=model.timing, input_theta=model.input_theta, layers=layers, name=model.name)


def rate_threshold_edges(rng: np.random.Generator, sizes: list[int], timing: Timing) -> SnnModel:
    """A random rate_if network whose first hidden layer sits on its thresholds: zero weights,
    a bias that divides the threshold and an initial potential that is a multiple of the
    bias, so V reaches exactly TH at some steps (V >= TH fires there, V > TH would not)."""
    model = as_rate_if(rng, random_model(rng, sizes, timing))
    first = model.layers[0]
    th = rng.integers(1, 13, size=first.channels)
    bias = th // rng.choice([1, 2, 3, 4], size=first.channels)
    bias = np.where((bias > 0) & (th % np.maximum(bias, 1) == 0), bias, th)
    initial = bias * rng.integers(0, th // bias + 1)
    layers = [replace(first, weights=np.full_like(first.weights, ZERO_CODE), thresholds=th.astype(np.int64),
                      bias=bias.astype(np.int64), initial=initial.astype(np.int64))] + model.layers[1:]
    return SnnModel(timing=timing, input_theta=model.input_theta, layers=layers, name=f"{model.name}-edges")


def diff_threshold_edges(rng: np.random.Generator, sizes: list[int], timing: Timing, levels: int = 1,
                         zero_fraction: float = 0.2, tries: int = 400) -> SnnModel:
    """A random diff_if network whose first hidden layer meets the firing conditions of
    docs/spec.md 13.2 and 13.7 exactly: zero weights, so each neuron's input current is its
    bias, and small per-channel thresholds, biases and initial potentials, drawn until that
    neuron's potential before the spike lands on an edge at some step. Channel c takes edge
    kind (c + c // 4) % 4, so that each of an array's first four PEs (channel c on PE c % P)
    meets every kind in 16 channels (with ``levels`` 1: ``mem == TH``, ``mem == TH - 1``, ``mem == 0`` with
    ``cum >= TH``, ``cum == TH`` with ``mem <= 0``; with more levels each on a level's three
    quarters instead: ``4 mem == 3 (TH >> k)`` or one below, and their negatives), so that
    ``>=`` and ``<=`` are tested where they differ from ``>`` and ``<``. The layers after it
    are random diff_if layers fed by its spikes (``zero_fraction`` of their weights zero)."""
    model = as_rate_if(rng, random_model(rng, sizes, timing, zero_fraction), neuron="diff_if")
    first = model.layers[0]
    c = first.channels
    th, bias, init = (np.zeros(c, dtype=np.int64) for _ in range(3))
    low = 1 << (levels - 1)  # every level at least one unit
    for ch in range(c):
        kind = (ch + ch // 4) % 4
        for _ in range(tries):
            t_ = int(rng.integers(low, 4 * low + 9))
            b_, i_ = int(rng.integers(-t_, t_ + 1)), int(rng.integers(-t_, 2 * t_ + 1))
            if kind in _diff_edge_kinds(t_, b_, i_, timing.T, levels):
                break
        th[ch], bias[ch], init[ch] = t_, b_, i_
    layers = [replace(first, weights=np.full_like(first.weights, ZERO_CODE), thresholds=th, bias=bias, initial=init,
                      levels=levels)] + model.layers[1:]
    return SnnModel(timing=timing, input_theta=model.input_theta, layers=layers, name=f"{model.name}-edges")


def _diff_edge_kinds(th: int, bias: int, initial: int, T: int, levels: int) -> set[int]:
    """The edge kinds (diff_threshold_edges) that a diff_if neuron with a constant input
    current ``bias`` meets in T steps (sw.neurons.diff_if.DiffState, one neuron)."""
    from .neurons.diff_if import DiffState
    state = DiffState(1, np.array([bias]), np.array([th]), np.array([initial]), levels)
    kinds = set()
    for t in range(1, T + 1):
        mem, cum = int(state.mem[0, 0] + bias - state.eout[0, 0]), int(state.cum[0, 0] + state.eout[0, 0])
        if levels == 1:
            kinds |= {k for k, hit in enumerate([mem == th, mem == th - 1, mem == 0 and cum >= th,
                                                 cum == th and mem <= 0]) if hit}
        else:
            parts = [3 * (th >> k) for k in range(levels)]
            kinds |= {k for k, hit in enumerate([4 * mem in parts, 4 * mem + 1 in parts,
                                                 -4 * mem in parts and cum >= th >> (levels - 1),
                                                 -4 * mem - 1 in parts]) if hit}
        state.fire(t, np.array([[bias]]))
    return kinds


def random_input_trains(rng: np.random.Generator, n: int, batch: int, timing: Timing,
                        signed: bool = False) -> np.ndarray:
    """(batch, T, n) uint8 spike trains, each input at its own random rate (some silent, some always on);
    ``signed``: int8 trains where a fifth of the spikes are -1 (differential coding)."""
    rate = rng.choice([0.0, 1.0, 0.1, 0.5, 0.9], size=(batch, 1, n), p=[0.15, 0.1, 0.25, 0.25, 0.25])
    trains = (rng.random((batch, timing.T, n)) < rate).astype(np.uint8)
    if not signed:
        return trains
    return np.where(rng.random(trains.shape) < 0.2, -1, 1).astype(np.int8) * trains.astype(np.int8)

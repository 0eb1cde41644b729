"""Plain step-by-step references shared by the rate-coded neuron tests: explicit loops, no vectorisation."""
import numpy as np

from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import as_rate_if, random_cnn, random_model

#: the fixed cases of each rate-coded neuron model: (kind, seed, timing)
CASES = [
    ("mlp", 0, Timing(T=8, B=2, frac_bits=12)),
    ("mlp", 1, Timing(T=5, B=1, frac_bits=16)),
    ("cnn", 2, Timing(T=6, B=2, frac_bits=10)),
    ("cnn", 3, Timing(T=4, B=4, frac_bits=14)),
]
CASE_IDS = [f"{k}-seed{s}" for k, s, _ in CASES]


def golden_equals_reference(model, trains: np.ndarray, reference, seed: int):
    """Run the golden model on ``trains`` and assert, image by image, that every hidden layer's
    spikes and the scores equal ``reference(model, trains[b])``; return (golden result, the
    reference's spikes per image) for the caller's own checks."""
    g = GoldenModel(model).run_spikes(trains)
    per_image = []
    for b in range(len(trains)):
        spikes, scores = reference(model, trains[b])
        for k in range(len(model.layers) - 1):
            assert np.array_equal(g.spikes[k + 1][b], spikes[k]), f"seed {seed}: image {b}, layer {k}"
        assert np.array_equal(g.potentials[b], scores), f"seed {seed}: image {b} scores"
        per_image.append(spikes)
    return g, per_image


def step_input(layer, spikes: np.ndarray, t: Timing) -> np.ndarray:
    """What one step's signed input spikes add, per neuron (c, y, x), without the bias, by explicit loops."""
    one = 1 << t.frac_bits
    c_in, h, w = layer.in_shape
    c_out, ho, wo = layer.conv_shape
    x = spikes.reshape(c_in, h, w)
    wts = layer.weights if layer.kind == "conv" else layer.weights.reshape(c_out, c_in, h, w)
    conv = layer.kind == "conv"
    k = layer.kernel
    out = np.zeros((c_out, ho, wo), dtype=np.int64)
    for co in range(c_out):
        for oy in range(ho):
            for ox in range(wo):
                v = 0
                for ci in range(c_in):
                    for ky in range(k if conv else h):
                        for kx in range(k if conv else w):
                            y = oy * layer.stride - layer.padding + ky if conv else ky
                            xx = ox * layer.stride - layer.padding + kx if conv else kx
                            if not (0 <= y < h and 0 <= xx < w) or not x[ci, y, xx]:
                                continue
                            code = int(wts[co, ci, ky, kx])
                            if code & 15 == 15:
                                continue
                            spike = int(x[ci, y, xx])  # +-1, or a diff_if spike of level |spike| - 1
                            c = ((one >> (code & 15)) >> (abs(spike) - 1)) * (1 if spike > 0 else -1)
                            v += -c if code >> 4 else c
                out[co, oy, ox] = v
    return out.reshape(-1)


def random_shape_model(seed: int, neuron: str):
    """A small random MLP or CNN (with padding, stride or pooling) and timing, all drawn from ``seed``."""
    rng = np.random.default_rng(1000 + seed)
    t = Timing(T=int(rng.integers(1, 9)), B=int(rng.choice([1, 2, 4])), frac_bits=int(rng.integers(8, 17)))
    if seed % 2 == 0:
        sizes = [int(rng.integers(3, 12))] + [int(rng.integers(2, 9)) for _ in range(int(rng.integers(1, 3)))] + [3]
        return as_rate_if(rng, random_model(rng, sizes, t), neuron=neuron), rng
    conv = dict(channels=int(rng.integers(1, 4)), kernel=int(rng.choice([1, 2, 3])),
                padding=int(rng.integers(0, 2)), **rng.choice([{"pool": 2}, {"stride": 2}, {}]))
    return as_rate_if(rng, random_cnn(rng, (int(rng.integers(1, 3)), 6, 6), [conv], [4], 3, t), neuron=neuron), rng



"""Property-based tests (hypothesis): the golden model against a plain reference of the spec.

Hypothesis draws model geometries (conv kernels, strides, padding, pooling, linear sizes),
timings, weight codes, thresholds (also non-monotone tables) and input spikes, and shrinks
a failure to a minimal case. ``derandomize=True`` makes every run draw the same examples:
a failure reproduces with the same command, and its minimal example is printed.
"""
import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from firstspike.sw.formats import NO_SPIKE, Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import random_cnn, random_input_times, random_resnet

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _add_contributions(v: np.ndarray, layer, spikes: np.ndarray, timing: Timing) -> None:
    """Section 3 read literally: every spike of ``spikes`` through ``layer``'s synapses, one
    (event, neuron) pair at a time, added to the potentials ``v`` (C_out, H_out, W_out)."""
    mant = timing.mantissas()
    c_in, h, w = layer.in_shape
    c_out, h_out, w_out = layer.conv_shape
    k = layer.kernel if layer.kind == "conv" else None
    for idx, ti in enumerate(spikes):
        if ti == NO_SPIKE:
            continue
        c, y, x = np.unravel_index(idx, (c_in, h, w))
        for o in range(c_out):
            for oy in range(h_out):
                for ox in range(w_out):
                    if layer.kind == "conv":
                        ky, kx = y - oy * layer.stride + layer.padding, x - ox * layer.stride + layer.padding
                        if not (0 <= ky < k and 0 <= kx < k):
                            continue
                        code = int(layer.weights[o, c, ky, kx])
                    else:
                        code = int(layer.weights[o, idx])
                    sign, m = code >> 4, code & 15
                    if m == 15:
                        continue
                    contribution = mant[ti % timing.B] >> (m + ti // timing.B)
                    v[o, oy, ox] += -contribution if sign else contribution


def spec_reference(model, times: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """docs/spec.md read literally, one event and one neuron at a time: every layer's spike
    times and the output potentials of one image (shortcuts of section 14 included)."""
    t = model.timing
    spikes = [times]
    for k, layer in enumerate(model.layers):
        c_out, h_out, w_out = layer.conv_shape
        v = np.zeros((c_out, h_out, w_out), dtype=np.int64) + layer.bias[:, None, None]
        _add_contributions(v, layer, spikes[-1], t)
        if layer.shortcut is not None:
            sc = layer.shortcut
            _add_contributions(v, sc.synapses(layer, model.shapes[sc.source]), spikes[sc.source], t)
        if layer.is_output:
            return spikes, v.reshape(-1)
        fired = np.full(v.shape, NO_SPIKE)
        for pos in np.ndindex(v.shape):
            passing = [s for s in range(t.T) if v[pos] >= layer.thresholds[s]]
            fired[pos] = passing[0] if passing else NO_SPIKE
        q = layer.pool
        pooled = np.full((c_out, h_out // q, w_out // q), NO_SPIKE)
        for o, py, px in np.ndindex(pooled.shape):
            window = fired[o, py * q:(py + 1) * q, px * q:(px + 1) * q].reshape(-1)
            window = window[window != NO_SPIKE]
            pooled[o, py, px] = window.min() if window.size else NO_SPIKE
        spikes.append(pooled.reshape(-1))
    raise AssertionError("a model ends with its output layer")


@st.composite
def models(draw):
    T = draw(st.integers(1, 24))
    B = draw(st.sampled_from([1, 2, 4, 8]))
    F = draw(st.integers(4, 20))
    timing = Timing(T=T, B=B, frac_bits=F)
    c, size = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    convs, shape = [], (c, size, size)
    for _ in range(draw(st.integers(0, 2))):
        kernel = draw(st.sampled_from([1, 2, 3, 5]))
        stride = draw(st.sampled_from([1, 2]))
        padding = draw(st.integers(0, kernel - 1))
        out = (shape[1] + 2 * padding - kernel) // stride + 1
        assume(out >= 1)
        pool = draw(st.sampled_from([1, 1, 2]))
        assume(out >= pool)
        channels = draw(st.integers(1, 4))
        convs.append({"channels": channels, "kernel": kernel, "stride": stride, "padding": padding, "pool": pool})
        shape = (channels, out // pool, out // pool)
    hidden = draw(st.lists(st.integers(1, 6), max_size=2))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    model = random_cnn(rng, (c, size, size), convs, hidden, draw(st.integers(1, 4)), timing,
                       zero_fraction=draw(st.sampled_from([0.0, 0.2, 0.9])))
    if draw(st.booleans()):  # non-monotone threshold tables: "first t" is what both sides compute
        for layer in model.layers[:-1]:
            layer.thresholds = rng.permutation(layer.thresholds)
    times = random_input_times(rng, c * size * size, 3, timing, silent_fraction=draw(st.sampled_from([0.0, 0.5])))
    return model, times


def _assert_golden_is_the_spec(model, times):
    """Every image: the golden model's spikes and scores equal spec_reference's."""
    golden = GoldenModel(model).run_times(times)
    for b in range(len(times)):
        spikes, potentials = spec_reference(model, times[b])
        for k, s in enumerate(spikes):
            np.testing.assert_array_equal(golden.spikes[k][b], s, err_msg=f"image {b}, spikes of layer input {k}")
        np.testing.assert_array_equal(golden.potentials[b], potentials, err_msg=f"image {b}, output potentials")


@SETTINGS
@given(models())
def test_golden_equals_the_spec_read_literally(case):
    _assert_golden_is_the_spec(*case)


@st.composite
def resnets(draw):
    """Residual nets (spec section 14): blocks with identity, 1x1 and 3x3 shortcuts, strides and pooling."""
    timing = Timing(T=draw(st.integers(1, 16)), B=draw(st.sampled_from([1, 2, 4])), frac_bits=draw(st.integers(4, 16)))
    c, size = draw(st.integers(1, 3)), draw(st.integers(2, 6))
    blocks, h = [], size
    for _ in range(draw(st.integers(1, 2))):
        stride = draw(st.sampled_from([1, 2])) if h >= 2 else 1
        h = (h - 1) // stride + 1
        pool = draw(st.sampled_from([1, 2])) if h >= 2 else 1
        h //= pool
        blocks.append({"channels": draw(st.integers(1, 4)), "stride": stride, "pool": pool,
                       "shortcut_kernel": draw(st.sampled_from([1, 1, 3]))})
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    model = random_resnet(rng, (c, size, size), blocks, draw(st.integers(1, 4)), timing,
                          zero_fraction=draw(st.sampled_from([0.0, 0.2, 0.9])))
    times = random_input_times(rng, c * size * size, 2, timing, silent_fraction=draw(st.sampled_from([0.0, 0.5])))
    return model, times


@settings(SETTINGS, max_examples=60)
@given(resnets())
def test_golden_with_shortcuts_equals_the_spec_read_literally(case):
    model, times = case
    assert any(layer.shortcut is not None for layer in model.layers)
    _assert_golden_is_the_spec(model, times)

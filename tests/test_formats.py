"""Number formats: every weight code, the zero code, spike-time edges, exact tables."""
import math

import numpy as np
import pytest

from firstspike.sw.formats import (MAX_MAG, NO_SPIKE, SIGN_BIT, ZERO_CODE, FormatError, Timing, check_weight_codes,
                        COMPARE_MAX, count_at_or_below, decode_spike_times, decode_weights, encode_spike_times,
                        encode_weights, fire_times,
                        signed_bits, split_codes, threshold_table, weight_code, weight_scale_for)


@pytest.mark.parametrize("scale", [-3, 0, 2])
def test_every_weight_code_round_trips(scale):
    codes = np.array([weight_code(s, m) for s in (0, 1) for m in range(MAX_MAG + 1)] + [ZERO_CODE], dtype=np.uint8)
    values = decode_weights(codes, scale)
    assert np.array_equal(encode_weights(values, scale), codes)
    sign, mag = split_codes(codes)
    expected = np.where(mag == 15, 0.0, (-1.0) ** sign * 2.0 ** (scale - mag.astype(float)))
    assert np.array_equal(values, expected)


def test_zero_has_one_code():
    assert ZERO_CODE == 0b01111
    assert encode_weights(np.array([0.0, -0.0, 1e-30, -1e-30]), 0).tolist() == [ZERO_CODE] * 4
    with pytest.raises(FormatError, match="exactly one code"):
        weight_code(1, 15)
    with pytest.raises(FormatError, match="negative zero"):
        check_weight_codes(np.array([SIGN_BIT | 15]))


def test_weight_rounding_is_nearest_in_linear_distance_with_ties_up():
    s = 0
    # midpoint between 2**-1 and 2**0 is 0.75: a tie goes to the larger magnitude
    assert split_codes(encode_weights(np.array([0.75]), s))[1].tolist() == [0]
    assert split_codes(encode_weights(np.array([np.nextafter(0.75, 0)]), s))[1].tolist() == [1]
    # clip above 2**s, zero below half the smallest level 2**(s - 15)
    assert split_codes(encode_weights(np.array([100.0]), s))[1].tolist() == [0]
    assert encode_weights(np.array([2.0 ** -15]), s).tolist() == [MAX_MAG]
    assert encode_weights(np.array([np.nextafter(2.0 ** -15, 0)]), s).tolist() == [ZERO_CODE]
    assert split_codes(encode_weights(np.array([-0.3]), s))[0].tolist() == [1]


def test_weight_quantisation_error_bound():
    rng = np.random.default_rng(0)
    w = rng.normal(size=5000)
    s = weight_scale_for(w)
    q = decode_weights(encode_weights(w, s), s)
    big = np.abs(w) >= 2.0 ** (s - MAX_MAG)
    inside = big & (np.abs(w) <= 2.0 ** s)
    # nearest of two levels a factor 2 apart: error at most a third of |w|
    assert np.all(np.abs(q - w)[inside] <= np.abs(w[inside]) / 3 + 1e-12)
    assert 0.75 * 2.0 ** s <= np.abs(w).max() < 1.5 * 2.0 ** s


@pytest.mark.parametrize("T,B", [(1, 1), (8, 1), (16, 2), (32, 4), (20, 8)])
def test_spike_time_edges(T, B):
    t = Timing(T=T, B=B)
    levels = t.levels(2.0)
    times = encode_spike_times(levels, 2.0, t)
    assert times.tolist() == list(range(T))  # each level fires exactly at its own step
    assert encode_spike_times(np.array([5.0, 2.0]), 2.0, t).tolist() == [0, 0]  # clipped
    below = np.nextafter(levels[-1], 0)
    assert encode_spike_times(np.array([below, 0.0]), 2.0, t).tolist() == [NO_SPIKE, NO_SPIKE]
    assert np.allclose(decode_spike_times(times, 2.0, t), levels)
    assert decode_spike_times(np.array([NO_SPIKE]), 2.0, t).tolist() == [0.0]


def test_mantissa_table_is_exactly_rounded():
    for B in (1, 2, 4, 8):
        for F in (4, 12, 16, 30):
            for r, m in enumerate(Timing(T=4, B=B, frac_bits=F).mantissas()):
                exact = 2.0 ** (F - r / B)
                assert abs(m - exact) <= 0.5 + 1e-9 * exact
    assert Timing(B=1, frac_bits=16).mantissas() == [65536]
    assert Timing(B=2, frac_bits=16).mantissas() == [65536, 46341]  # 2**15.5 = 46340.95


def test_contribution_table():
    t = Timing(T=8, B=2, frac_bits=10)
    c = t.contribution_table()
    assert c[0, 0] == 1024 and c[0, 2] == 512 and c[1, 0] == 512
    assert c[0, 1] == round(1024 / math.sqrt(2))
    assert c[15].tolist() == [0] * 8  # zero code row
    assert c[14, 7] == (t.mantissas()[1] >> (14 + 3))


def test_fire_times_first_threshold_passed():
    th = np.array([100, 70, 50, 35])
    assert fire_times(np.array([200, 100, 99, 50, 35, 34, -5]), th).tolist() == [0, 0, 1, 2, 3, NO_SPIKE, NO_SPIKE]
    table = threshold_table(100.0, Timing(T=4, B=2))
    assert table.tolist() == [100, 71, 50, 36]


@pytest.mark.parametrize("T,B,theta", [(16, 2, 0.9), (16, 2, 1.0), (8, 1, 3.3), (40, 4, 0.37), (256, 8, 1e-3)])
def test_float32_inputs_encode_as_their_float64_values(T, B, theta):
    """Float32 inputs are compared in float32 against levels rounded up: the same spike times."""
    t = Timing(T=T, B=B)
    levels32 = t.levels(theta).astype(np.float32)
    near = np.concatenate([levels32, np.nextafter(levels32, np.float32(0)), np.nextafter(levels32, np.float32(9)),
                           np.random.default_rng(T).uniform(0, 1.2 * theta, 1000).astype(np.float32), [0, 1e30]])
    x = near.astype(np.float32)
    assert encode_spike_times(x, theta, t).tolist() == encode_spike_times(x.astype(np.float64), theta, t).tolist()


@pytest.mark.parametrize("length", [1, 5, COMPARE_MAX, COMPARE_MAX + 1, 200])
def test_count_at_or_below_equals_binary_search(length):
    """Counting by comparisons (short tables) and by binary search (long ones) agree, ties included."""
    rng = np.random.default_rng(length)
    table = np.sort(rng.integers(-50, 50, length))[::-1]
    v = np.concatenate([table, table - 1, table + 1, rng.integers(-60, 60, 500)])
    expect = np.searchsorted(np.sort(table), v, side="right")
    assert count_at_or_below(table, v).tolist() == expect.tolist()
    assert count_at_or_below(table.astype(np.float32), v.astype(np.float32)).tolist() == expect.tolist()


@pytest.mark.parametrize("kwargs,match", [
    ({"T": 0}, "T"), ({"T": 1000}, "T"), ({"B": 3}, "B"), ({"frac_bits": 2}, "frac_bits"), ({"T": 2.5}, "T")])
def test_impossible_timing_parameters(kwargs, match):
    with pytest.raises(FormatError, match=match):
        Timing(**kwargs)


def test_signed_bits():
    assert signed_bits(-1, 0) == 1
    assert signed_bits(-128, 127) == 8
    assert signed_bits(-128, 128) == 9

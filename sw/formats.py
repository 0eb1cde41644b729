"""Number formats shared by the converter, the golden model and the hardware generator.

Everything here is specified in docs/spec.md; this module is the only place that
implements it. The hardware imports its constants (mantissa table, widths) from here
so the two sides cannot drift apart.
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# Log weights: 5 bits = sign (bit 4) + magnitude code m (bits 3..0).
# value = (-1)**sign * 2**(s - m) for m in 0..14; m == 15 encodes zero.
# ---------------------------------------------------------------------------
WEIGHT_BITS = 5
MAG_BITS = 4
MAX_MAG = 14  #: largest magnitude code that is not zero
ZERO_MAG = 15  #: magnitude code reserved for the value zero
ZERO_CODE = ZERO_MAG  #: canonical zero: sign 0, magnitude 15 (0b01111)
SIGN_BIT = 1 << MAG_BITS

NO_SPIKE = -1  #: spike time of a neuron that does not fire in its window

SUPPORTED_B = (1, 2, 4, 8)  #: steps per octave: powers of two, so t // B and t % B are bit fields
MAX_T = 256
MIN_FRAC_BITS, MAX_FRAC_BITS = 4, 30


class FormatError(FirstspikeError, ValueError):
    """A parameter or a code lies outside what the spec allows."""


def weight_code(sign: int, mag: int) -> int:
    """Pack a sign bit and a magnitude code into a 5-bit log-weight code."""
    if sign not in (0, 1):
        raise FormatError(f"sign must be 0 or 1, not {sign!r}")
    if not 0 <= mag <= ZERO_MAG:
        raise FormatError(f"magnitude code must be in 0..{ZERO_MAG}, not {mag!r}")
    if mag == ZERO_MAG and sign:
        raise FormatError("the zero weight has exactly one code (sign 0, magnitude 15)")
    return (sign << MAG_BITS) | mag


def split_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (sign, magnitude) arrays of 5-bit weight codes."""
    codes = np.asarray(codes).astype(np.int64)
    return (codes >> MAG_BITS) & 1, codes & ZERO_MAG


def check_weight_codes(codes: np.ndarray, where: str = "weights") -> None:
    """Reject codes outside 5 bits and the non-canonical negative zero (0b11111)."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << WEIGHT_BITS):
        raise FormatError(f"{where}: weight codes must be 5-bit values 0..31")
    if np.any(codes == (SIGN_BIT | ZERO_MAG)):
        raise FormatError(f"{where}: code 0b11111 (negative zero) is not a valid weight code")


def decode_weights(codes: np.ndarray, scale: int) -> np.ndarray:
    """Float value of each code: (-1)**sign * 2**(scale - m), zero for m == 15."""
    sign, mag = split_codes(codes)
    value = np.ldexp(1.0, (scale - mag).astype(np.int64))
    value = np.where(mag == ZERO_MAG, 0.0, value)
    return np.where(sign == 1, -value, value)


def weight_scale_for(w: np.ndarray) -> int:
    """Layer scale s such that max|w| lands in [0.75, 1.5) * 2**s (rounds to code m = 0)."""
    peak = float(np.max(np.abs(w))) if np.size(w) else 0.0
    if not np.isfinite(peak):
        raise FormatError("weights contain NaN or infinity")
    if peak == 0.0:
        return 0
    s = int(np.floor(np.log2(peak / 0.75)))
    # float log2 can be off by one at exact powers of two: settle it with exact comparisons
    while peak < 0.75 * 2.0**s:
        s -= 1
    while peak >= 1.5 * 2.0**s:
        s += 1
    return s


def encode_weights(w: np.ndarray, scale: int) -> np.ndarray:
    """Round float weights to the nearest log level (linear distance) and pack them.

    Levels are 2**(scale - m), m = 0..14, and 0. Ties go to the larger magnitude;
    magnitudes above 2**scale clip to m = 0; below 2**(scale - 15) become zero.
    """
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise FormatError("weights contain NaN or infinity")
    a = np.abs(w)
    # candidate m from log2, then fix with exact float comparisons against midpoints
    with np.errstate(divide="ignore"):
        m = scale - np.floor(np.log2(np.where(a > 0, a, 1.0) / 0.75))
    m = np.clip(m, 0, MAX_MAG).astype(np.int64)
    # the midpoint below level m is 0.75 * 2**(scale - m); above it 1.5 * 2**(scale - m)
    lower = 0.75 * np.ldexp(1.0, scale - m)
    upper = 1.5 * np.ldexp(1.0, scale - m)
    m = np.where((a < lower) & (m < MAX_MAG), m + 1, m)
    m = np.where((a >= upper) & (m > 0), m - 1, m)
    zero = a < np.ldexp(1.0, scale - MAX_MAG - 1)
    mag = np.where(zero, ZERO_MAG, m)
    sign = np.where(zero, 0, (w < 0).astype(np.int64))
    return ((sign << MAG_BITS) | mag).astype(np.uint8)


# ---------------------------------------------------------------------------
# TTFS timing parameters and the arithmetic tables derived from them.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Window length T, steps per octave B and fractional bits F of the potential.

    A spike at step t stands for theta * 2**(-t / B). Contributions are kept
    with F fractional bits below the layer unit (see docs/spec.md, section 3).
    """

    T: int = 16
    B: int = 2
    frac_bits: int = 16

    def __post_init__(self):
        if not isinstance(self.T, int) or not 1 <= self.T <= MAX_T:
            raise FormatError(f"T (time steps per layer) must be an integer in 1..{MAX_T}, not {self.T!r}")
        if self.B not in SUPPORTED_B:
            raise FormatError(f"B (steps per octave) must be one of {SUPPORTED_B}, not {self.B!r}")
        if not isinstance(self.frac_bits, int) or not MIN_FRAC_BITS <= self.frac_bits <= MAX_FRAC_BITS:
            raise FormatError(
                f"frac_bits must be an integer in {MIN_FRAC_BITS}..{MAX_FRAC_BITS}, not {self.frac_bits!r}")

    @property
    def log2_B(self) -> int:
        return self.B.bit_length() - 1

    @property
    def time_bits(self) -> int:
        """Bits of a spike time 0..T-1."""
        return max(1, (self.T - 1).bit_length())

    @property
    def max_shift(self) -> int:
        """Largest right shift of a mantissa: m = 14 with the last time step."""
        return MAX_MAG + (self.T - 1) // self.B

    def mantissas(self) -> list[int]:
        """M[r] = round-half-up(2**(F - r/B)), r = 0..B-1, computed exactly in integers."""
        return [_round_pow2_fraction(self.frac_bits * self.B - r, self.B) for r in range(self.B)]

    def contribution_table(self) -> np.ndarray:
        """C[m, t] = M[t mod B] >> (m + t div B): the magnitude a spike at t adds through code m.

        Row 15 (the zero code) is all zeros.
        """
        mant = self.mantissas()
        table = np.zeros((ZERO_MAG + 1, self.T), dtype=np.int64)
        for m in range(MAX_MAG + 1):
            for t in range(self.T):
                table[m, t] = mant[t % self.B] >> (m + t // self.B)
        return table

    def levels(self, theta: float = 1.0) -> np.ndarray:
        """Float values theta * 2**(-t/B) of the T spike times."""
        return theta * np.exp2(-np.arange(self.T) / self.B)


def _round_pow2_fraction(num: int, den: int) -> int:
    """Exact floor(2**(num/den) + 1/2) for num >= 0, den >= 1, using integers only.

    x is the answer iff (2x - 1)**den <= 2**(num + den) < (2x + 1)**den.
    """
    target = 1 << (num + den)
    x = int(round(2.0 ** (num / den)))
    while (2 * x + 1) ** den <= target:
        x += 1
    while (2 * x - 1) ** den > target:
        x -= 1
    return x


# ---------------------------------------------------------------------------
# TTFS activations
# ---------------------------------------------------------------------------
def encode_spike_times(x: np.ndarray, theta: float, timing: Timing) -> np.ndarray:
    """Spike time of each value: the first t with x >= theta * 2**(-t/B); NO_SPIKE if none.

    Values at or above theta fire at t = 0 (clipping). Used for the input layer;
    hidden layers fire by the integer rule of the spec, which is the same
    quantiser applied to the integer potential.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise FormatError("input contains NaN or infinity")
    if not theta > 0:
        raise FormatError(f"theta must be positive, not {theta!r}")
    levels = timing.levels(theta)
    if x.dtype == np.float32:  # same answers as float64, half the memory traffic
        levels = round_up_to_float32(levels)
    return fire_times(x, levels)


def encode_residual_spikes(x: np.ndarray, theta: float, timing: Timing, spikes: int) -> np.ndarray:
    """``spikes`` spike times per value, in blocks (last axis: block k holds every value's k-th
    spike): the first is encode_spike_times' code, each next one codes what the earlier ones
    leave, ``r_k = r_(k-1) - theta * 2**(-t_(k-1)/B)`` (float64, r_0 = x; NO_SPIKE leaves it).
    The levels they stand for add up to x minus less than the smallest level's worth of the
    last remainder (spec section 2, "Residual input spikes")."""
    if spikes < 1:
        raise FormatError(f"spikes per input must be at least 1, not {spikes!r}")
    first = encode_spike_times(x, theta, timing)
    levels = np.append(timing.levels(theta), 0.0)  # NO_SPIKE (-1) reads the 0 at the end
    rest = np.asarray(x, dtype=np.float64)
    blocks = [first]
    for _ in range(spikes - 1):
        rest = rest - levels[blocks[-1]]
        blocks.append(fire_times(rest, levels[:-1]))
    return np.concatenate(blocks, axis=-1)


def round_up_to_float32(v: np.ndarray) -> np.ndarray:
    """The smallest float32 at or above each float64 (inf above the float32 range).

    A float32 x satisfies x >= v exactly when x >= round_up_to_float32(v), so float32
    inputs can be compared in float32 with the results of float64 comparisons.
    """
    v = np.asarray(v, dtype=np.float64)
    f = v.astype(np.float32)
    return np.where(f < v, np.nextafter(f, np.float32(np.inf)), f)


def decode_spike_times(t: np.ndarray, theta: float, timing: Timing) -> np.ndarray:
    """Float value of spike times: theta * 2**(-t/B), 0 for NO_SPIKE."""
    t = np.asarray(t)
    if np.any((t != NO_SPIKE) & ((t < 0) | (t >= timing.T))):
        raise FormatError(f"spike times must be in 0..{timing.T - 1} or NO_SPIKE")
    return np.where(t == NO_SPIKE, 0.0, theta * np.exp2(-np.where(t == NO_SPIKE, 0, t) / timing.B))


def threshold_table(theta_units: float, timing: Timing) -> np.ndarray:
    """Integer thresholds TH[t] = ceil(theta_units * 2**(-t/B)), at least 1.

    theta_units is the layer threshold expressed in accumulator units.
    """
    if not np.isfinite(theta_units) or theta_units <= 0:
        raise FormatError(f"threshold must be positive and finite, not {theta_units!r}")
    th = np.ceil(theta_units * np.exp2(-np.arange(timing.T) / timing.B))
    return np.maximum(th, 1).astype(np.int64)


def fire_times(potential: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Spike time of potentials: the first t with V >= TH[t]; NO_SPIKE if none.

    For a non-increasing table the first passing t is the number of thresholds above V
    (a binary search); any other table is compared entry by entry.
    """
    v = np.asarray(potential)
    th = np.asarray(thresholds)
    if np.all(th[1:] <= th[:-1]):
        # passing thresholds -> spike time: none -> NO_SPIKE, all T -> 0
        time_of_count = np.array([NO_SPIKE] + list(range(len(th) - 1, -1, -1)), dtype=np.int64)
        return time_of_count[count_at_or_below(th, v)]  # fancy indexing: faster than np.take here
    fires = v[..., None] >= th
    t = np.argmax(fires, axis=-1)
    return np.where(fires.any(axis=-1), t, NO_SPIKE).astype(np.int64)


#: tables up to this long are counted by comparisons, longer ones by binary search
COMPARE_MAX = 32


def count_at_or_below(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Entries of ``table`` at or below each element of v (np.searchsorted(sorted table, v, "right")).

    A short table is counted one comparison per entry over the whole array, several
    times faster than a binary search per element (numpy's searchsorted), which is
    kept for long tables. Comparisons follow numpy's promotion, so mixed int/float
    operands compare exactly.
    """
    table = np.asarray(table)
    if len(table) > COMPARE_MAX:
        return np.searchsorted(np.sort(table), v, side="right")
    count = np.zeros(np.shape(v), dtype=np.int8)
    passed = np.empty(np.shape(v), dtype=bool)
    for level in table:
        np.greater_equal(v, level, out=passed)
        count += passed.view(np.int8)  # int8 + int8: no bool -> int8 cast per element
    return count


def signed_bits(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement type holding every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits

"""Adaptive rounding of log weights: training-free recovery of what 5-bit log weights lose.

Rounding every weight to its nearest power of two (sw/formats.encode_weights) is the
largest conversion loss of a network that was not trained for it: on the digits CNN it
costs 1.6 points on its own, where TTFS activations cost none. Layer by layer, the
calibration images run through the layers already rounded (inputs h) and through the
float network (inputs f). An output channel with rounded weights q and float weights w
is off by q.h - w.f; its mean goes into the bias, and each weight may take the other
neighbouring level (the power of two on its other side, or zero) where that lowers the
variance of the rest, E[((q.h - w.f) - mean)^2]: a few greedy sweeps with exact
incremental updates, since the variance is quadratic in q. Matching the float network's
outputs, not the float weights on the rounded inputs, also corrects what earlier layers'
rounding moved. Weights stay 5-bit log codes; only which level each takes changes. A
residual layer's shortcut weights are columns of the same problem (sw/convert.py passes
both sets' inputs side by side): they share the layer's scale and add into its outputs.
Cost: sweeps * fan_in**2 * C_out per layer, seconds for the networks this CPU trains,
minutes for full-width VGG layers.
"""
from __future__ import annotations

import numpy as np

from .formats import MAX_MAG, ZERO_CODE, ZERO_MAG, decode_weights, encode_weights, split_codes

#: calibration rows (images x positions) used for the input statistics of one layer
MAX_ROWS = 50_000
#: calibration images that run through the rounded layers
MAX_IMAGES = 1000
SWEEPS = 3


def adaptive_codes(w: np.ndarray, scale: int, inputs: np.ndarray, sweeps: int = SWEEPS,
                   seed: int = 0, reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes (C_out, fan_in) uint8, bias shift (C_out,)) for weights w (C_out, fan_in) at layer
    scale ``scale``: ``inputs`` (rows, fan_in) are what the rounded weights multiply, in the
    order of w's columns, ``reference`` the same rows' inputs in the float network (default:
    ``inputs``). The bias shift w.mean(f) - q.mean(h) keeps each output's mean on the float one.
    """
    w = np.asarray(w, dtype=np.float64)
    h = np.asarray(inputs, dtype=np.float64)
    f = h if reference is None else np.asarray(reference, dtype=np.float64)
    if len(h) > MAX_ROWS:
        pick = np.random.default_rng(seed).choice(len(h), MAX_ROWS, replace=False)
        h, f = h[pick], f[pick]
    mean, mean_f = h.mean(axis=0), f.mean(axis=0)
    hc, fc = h - mean, f - mean_f
    cov = hc.T @ hc / max(1, len(h))
    cross = fc.T @ hc / max(1, len(h))
    codes = encode_weights(w, scale)
    q = decode_weights(codes, scale)
    alt = _alternative(w, codes, scale)
    qa = decode_weights(alt, scale)
    d = q - w
    g = q @ cov - w @ cross  # (C_out, fan_in): E[(q.h - w.f) h_i], centred
    diag = np.diag(cov)
    for _ in range(sweeps):
        changed = 0
        for i in range(w.shape[1]):
            step = qa[:, i] - q[:, i]
            gain = 2 * step * g[:, i] + step * step * diag[i]
            take = gain < 0
            if not take.any():
                continue
            changed += int(take.sum())
            rows = np.flatnonzero(take)
            g[rows] += step[rows, None] * cov[i][None, :]
            d[rows, i] += step[rows]
            q[rows, i], qa[rows, i] = qa[rows, i], q[rows, i]
            codes[rows, i], alt[rows, i] = alt[rows, i], codes[rows, i]
        if not changed:
            break
    return codes, w @ mean_f - q @ mean


def _alternative(w: np.ndarray, codes: np.ndarray, scale: int) -> np.ndarray:
    """For each weight, the level on the other side of it from its nearest one: one octave up or down
    (zero below the smallest level, nothing above m = 0: then the nearest itself)."""
    sign, mag = split_codes(codes)
    a = np.abs(w)
    nearest = np.abs(decode_weights(codes, scale))
    wsign = (w < 0).astype(np.int64)
    up = np.where(mag == ZERO_MAG, MAX_MAG, mag - 1)  # a larger magnitude
    down = mag + 1  # a smaller one; m = 15 is zero
    above = a > nearest
    alt_mag = np.where(above, up, down)
    alt_mag = np.where((mag == 0) & above, 0, alt_mag)  # nothing above 2**s
    alt_mag = np.where((mag == ZERO_MAG) & ~above, ZERO_MAG, np.minimum(alt_mag, ZERO_MAG))
    alt_sign = np.where(alt_mag == ZERO_MAG, 0, np.where(mag == ZERO_MAG, wsign, sign))
    alt = ((alt_sign << 4) | alt_mag).astype(np.uint8)
    return np.where(alt_mag == ZERO_MAG, np.uint8(ZERO_CODE), alt)

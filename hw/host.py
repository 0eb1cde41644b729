"""The host's side of the NeuronArray bus: what to write to run a network, how to read results.

Pure Python, no simulator: the Amaranth-simulation tests and the cocotb testbench both
drive the bus with these transactions, so the protocol lives in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstspike.sw.formats import NO_SPIKE

from .config import ArrayConfig, Control, Counter, Region
from .layouts import pack, spike_event, unpack


def network_writes(cfg: ArrayConfig, network_addr: int = 0) -> list[tuple[int, int]]:
    """(address, data) writes that select a network for an idle array: the byte address in
    external memory where its image (``NetworkImage.memory``) starts. After reset the array
    runs the network at address 0 without this write."""
    return [(cfg.address(Region.CONTROL, Control.NETWORK_ADDRESS), network_addr)]


def _shape(s) -> tuple[int, int, int]:
    return (int(s), 1, 1) if np.isscalar(s) else tuple(int(v) for v in s)


def input_writes(cfg: ArrayConfig, times: np.ndarray, shape=None) -> list[tuple[int, int]]:
    """Writes that place one image's input spike times as events, position by position: (y, x, c)
    order, like the fire stage writes a layer's spikes, so the events of one position are
    consecutive and accumulate as one group (hw/grouper.py).

    ``times`` is flat (C*H*W,) in (c, y, x) order; ``shape`` (C, H, W) is the first layer's
    input shape (default: (len(times), 1, 1), a flat input). A rate_if network's input is a
    spike train (T, C*H*W) of 0 and 1, a diff_if network's one of -1, 0 and 1: its events go
    step by step, each step's in (y, x, c) order, as the array reads them (one step at a time,
    hw/grouper.py); a -1 is a ``negative`` event.
    """
    layout = spike_event(cfg)
    times = np.asarray(times)
    c_, h_, w_ = _shape(times.shape[-1] if shape is None else shape)
    if times.ndim == 2:  # a rate train: (t, y, x, c) order
        by_step = times.reshape(-1, c_, h_, w_).transpose(0, 2, 3, 1)
        events = [(int(c), int(y), int(x), int(t), int(by_step[t, y, x, c] < 0), abs(int(by_step[t, y, x, c])) - 1)
                  for t, y, x, c in np.argwhere(by_step != 0)]
    else:
        by_position = times.reshape(c_, h_, w_).transpose(1, 2, 0)
        events = [(int(c), int(y), int(x), int(by_position[y, x, c]), 0, 0)
                  for y, x, c in np.argwhere(by_position != NO_SPIKE)]
    writes = [(cfg.address(Region.EVENTS, k), pack(layout, channel=c, y=y, x=x, time=t, negative=n, level=lv))
              for k, (c, y, x, t, n, lv) in enumerate(events)]
    writes.append((cfg.address(Region.CONTROL, Control.INPUT_EVENTS), len(writes)))
    return writes


def stats_reads(cfg: ArrayConfig, n_layers: int) -> list[int]:
    """Addresses of the counters, then per-layer cycles, then per-layer input events."""
    a = cfg.address
    return ([a(Region.CONTROL, c) for c in Counter] + [a(Region.LAYER_CYCLES, k) for k in range(n_layers)]
            + [a(Region.LAYER_EVENTS, k) for k in range(n_layers)])


def result_reads(cfg: ArrayConfig, total_events: int, n_out: int) -> list[int]:
    """Addresses of every event of the run, then the n_out output potentials.

    The output layer's accumulators are the top ``ceil(n_out / pes)`` of each PE.
    """
    a = cfg.address
    base = cfg.slot_depth - -(-n_out // cfg.pes)
    return ([a(Region.EVENTS, k) for k in range(total_events)]
            + [a(cfg.pe_region(j % cfg.pes), base + j // cfg.pes) for j in range(n_out)])


@dataclass
class RunResult:
    """What one run of the array reports, decoded."""

    spikes: list[np.ndarray]  #: per layer boundary, like GoldenResult.spikes (input first)
    potentials: np.ndarray  #: output layer, int64
    counters: dict[str, int]
    layer_cycles: list[int]
    layer_events: list[int]  #: input events of each layer


def decode_stats(cfg: ArrayConfig, n_layers: int, words: list[int]) -> tuple[dict, list[int], list[int]]:
    nc = len(Counter)
    counters = {c.name.lower(): int(words[c]) for c in Counter}
    return counters, [int(w) for w in words[nc:nc + n_layers]], [int(w) for w in words[nc + n_layers:]]


def decode_results(cfg: ArrayConfig, shapes: list, stats: list[int], words: list[int], coding: str = "ttfs"
                   ) -> RunResult:
    """Turn the words read back into per-layer spike times and signed potentials.

    ``coding`` (``SnnModel.coding``): "rate", a rate_if network: each layer's spikes come out as
    a train (T, C*H*W) of 0 and 1 (uint8); "diff", a diff_if network: as a train of -1, 0
    and 1, +-(k + 1) for a spike of level k (int8); "ttfs": as spike times.

    ``shapes`` are the layers' spike shapes (C, H, W), input first (``SnnModel.shapes``;
    plain widths mean flat layers). Events of layer k are the slice of the event memory
    after those of layers < k; a neuron with no event did not fire. Spike times come out
    flat in (c, y, x) order, like the golden model's.
    """
    shapes = [_shape(s) for s in shapes]
    sizes = [int(np.prod(s)) for s in shapes]
    n_layers = len(sizes) - 1
    counters, layer_cycles, layer_events = decode_stats(cfg, n_layers, stats)
    layout = spike_event(cfg)
    total = sum(layer_events)
    rate = coding in ("rate", "diff")
    spikes, pos = [], 0
    for k in range(n_layers):
        t = (np.zeros((cfg.timing.T, sizes[k]), dtype=np.int8 if coding == "diff" else np.uint8) if rate
             else np.full(sizes[k], NO_SPIKE, np.int64))
        c_, h_, w_ = shapes[k]
        for w in words[pos:pos + layer_events[k]]:
            ev = unpack(layout, w)
            j = (ev["channel"] * h_ + ev["y"]) * w_ + ev["x"]
            where = (ev["time"], j) if rate else j
            if not (ev["channel"] < c_ and ev["y"] < h_ and ev["x"] < w_ and ev["time"] < cfg.timing.T) \
                    or t[where] != (0 if rate else NO_SPIKE) or ((ev["negative"] or ev["level"]) and coding != "diff"):
                raise ValueError(f"layer {k}: malformed event {ev} read back from the array")
            t[where] = ((-1 if ev["negative"] else 1) * (ev["level"] + 1)) if rate else ev["time"]
        spikes.append(t)
        pos += layer_events[k]
    raw = words[total:total + sizes[-1]]
    W = cfg.acc_width
    pot = np.array([((w & ((1 << W) - 1)) ^ (1 << (W - 1))) - (1 << (W - 1)) for w in raw], dtype=np.int64)
    return RunResult(spikes=spikes, potentials=pot, counters=counters, layer_cycles=layer_cycles,
                     layer_events=layer_events)

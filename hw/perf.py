"""Performance model: the NeuronArray's exact cycle and event counts, from the golden model.

Derived from the sequencer's schedule (hw/sequencer.py, docs/hardware.md). Every layer
runs as a convolution (a linear layer's kernel covers its input). With ``P`` PEs,
``L`` spike lanes, ``slots = ceil(C_out / P)``, ``taps(e)`` the kernel taps an input
event e touches (the output positions whose window covers it), ``q`` the max-pool size,
``A = sum_e max(1, taps(e) * slots)`` the ACCUMULATE cycles (an event touching nothing:
1) and ``d`` the accumulators left dirty by the previous layer (its ``acc_count`` if it
is hidden and its pooling drops a remainder row or column, else 0):

    hidden layer:  1 + max(d + 2 + A, T + 2)          DESCRIPTOR, CLEAR, ACCUMULATE_FIRST,
                                                      ACCUMULATE, AFTER_ACCUMULATE (waits for
                                                      the T thresholds, loaded meanwhile)
                   + q*q + sum_{g < G-1} max(q*q, ceil(k_g / L)) + ceil(k_{G-1} / L) + 2
                                                      FIRE, FIRE_FLUSH
    output layer:  1 + d + acc_count + 1 + A + 1      DESCRIPTOR, CLEAR, INIT, ACCUMULATE...

For FIRE, the G = H_pool * W_pool * slots groups (one pooled position, P channels) are
read in order; each takes q*q cycles of reads, all PEs at once, and its k_g spikes leave
L per cycle while the next group is read (hw/fire.py), so a group costs
max(q*q, ceil(k_g / L)); the last group's spikes drain in FIRE_FLUSH. The one-time
accumulator clear after reset or new descriptors is not part of a run's cycles.

Tests assert equality with the RTL's counters, layer by layer, on every tested network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from firstspike.hw.config import default_spike_lanes, hardware_geometry
from firstspike.sw.formats import NO_SPIKE, ZERO_MAG, split_codes
from firstspike.sw.golden import GoldenResult
from firstspike.sw.model import SnnModel


@dataclass
class LayerCounts:
    """Per-image counts of one layer, arrays of shape (batch,)."""

    kind: str
    cycles: np.ndarray
    input_events: np.ndarray
    weight_reads: np.ndarray  #: one per PE per accumulate command
    acc_updates: np.ndarray  #: synaptic events: accumulations of a nonzero weight
    spikes: np.ndarray  #: output spikes (0 for the output layer)
    fired_neurons: int  #: potentials that pass the fire unit's comparators (0 for the output layer)
    init_writes: int  #: accumulator writes outside accumulation (INIT, CLEAR, fire-stage clears), all PEs
    accumulate_cycles: np.ndarray  #: cycles of the ACCUMULATE state
    pe_utilization: np.ndarray  #: acc_updates / (P * cycles): the whole layer
    accumulate_utilization: np.ndarray  #: acc_updates / (P * accumulate_cycles)


def axis_taps(size_in: int, kernel: int, size_out: int, stride: int, padding: int) -> np.ndarray:
    """Per input coordinate v: how many kernel offsets k put it in an output's window."""
    v = np.arange(size_in)[:, None] + padding - np.arange(kernel)[None, :]
    return ((v >= 0) & (v % stride == 0) & (v // stride < size_out)).sum(axis=1)


def layer_counts(model: SnnModel, pes: int, golden: GoldenResult, lanes: int | None = None) -> list[LayerCounts]:
    """Exact counts of every layer for every image of a golden batch.

    ``lanes``: the array's spike lanes (default: ArrayConfig's default for ``pes``).
    """
    T = model.timing.T
    L = lanes or default_spike_lanes(pes)
    out = []
    dirty = 0
    for k, layer in enumerate(model.layers):
        g = hardware_geometry(layer)
        slots = -(-g["c_out"] // pes)
        active = (golden.spikes[k] != NO_SPIKE).reshape(-1, g["c_in"], g["h_in"], g["w_in"])
        events = active.sum(axis=(1, 2, 3))
        taps = np.outer(axis_taps(g["h_in"], g["kh"], g["h_out"], g["stride"], g["padding"]),
                        axis_taps(g["w_in"], g["kw"], g["w_out"], g["stride"], g["padding"]))  # (H_in, W_in)
        per_event = (taps * slots)[None, None]
        accumulate = (active * np.maximum(1, per_event)).sum(axis=(1, 2, 3))
        commands = (active * per_event).sum(axis=(1, 2, 3))
        _, mag = split_codes(layer.weights)
        nonzero = (mag != ZERO_MAG).reshape(g["c_out"], g["c_in"], g["kh"], g["kw"]).sum(axis=0)
        updates = torch.nn.functional.conv2d(torch.from_numpy(active.astype(np.float64)),
                                             torch.from_numpy(nonzero[None].astype(np.float64)),
                                             stride=g["stride"], padding=g["padding"])
        updates = updates.sum(dim=(1, 2, 3)).numpy().astype(np.int64)
        acc_count = g["h_out"] * g["w_out"] * slots
        if layer.is_output:
            cycles = 1 + dirty + acc_count + 1 + accumulate + 1
            writes = dirty + acc_count  # CLEAR, INIT
            spikes = np.zeros_like(events)
            fired = 0
        else:
            fired_out = golden.spikes[k + 1] != NO_SPIKE
            spikes = fired_out.sum(axis=1)
            fired = g["h_pool"] * g["w_pool"] * slots * pes * g["pool"] ** 2
            window = g["pool"] ** 2
            # spikes per group (pooled position, channel group), in scan order
            padded = np.zeros((len(spikes), slots * pes, g["h_pool"], g["w_pool"]), dtype=np.int64)
            padded[:, :g["c_out"]] = fired_out.reshape(-1, g["c_out"], g["h_pool"], g["w_pool"])
            groups = padded.reshape(-1, slots, pes, g["h_pool"], g["w_pool"]).sum(axis=2)
            groups = groups.transpose(0, 2, 3, 1).reshape(len(spikes), -1)  # (batch, G): py, px, slot
            drain = -(-groups // L)
            fire = window + np.maximum(window, drain[:, :-1]).sum(axis=1) + drain[:, -1] + 2
            cycles = 1 + np.maximum(dirty + 2 + accumulate, T + 2) + fire
            writes = dirty + g["h_pool"] * g["w_pool"] * slots * g["pool"] ** 2  # CLEAR, the fire stage's clears
            remainder = g["h_pool"] * g["pool"] != g["h_out"] or g["w_pool"] * g["pool"] != g["w_out"]
        dirty = acc_count if not layer.is_output and remainder else 0
        out.append(LayerCounts(kind=layer.kind, cycles=cycles, input_events=events, weight_reads=commands * pes,
                               acc_updates=updates, spikes=spikes, fired_neurons=fired, init_writes=writes * pes,
                               accumulate_cycles=accumulate, pe_utilization=updates / (pes * cycles),
                               accumulate_utilization=updates / (pes * np.maximum(1, accumulate))))
    return out


def total_cycles(counts: list[LayerCounts]) -> np.ndarray:
    return sum(c.cycles for c in counts)


def latency_us(cycles: float, clock_mhz: float) -> float:
    """Latency of one inference at a clock frequency."""
    return cycles / clock_mhz


def throughput_per_s(cycles: float, clock_mhz: float) -> float:
    """Inferences per second when images run back to back (host I/O not counted)."""
    return clock_mhz * 1e6 / cycles

"""Performance model: the NeuronArray's exact cycle and event counts, from the golden model.

Derived from the sequencer's schedule (hw/sequencer.py, docs/hardware.md). For a layer
with ``slots = ceil(n_out / P)`` and ``E`` input events:

    cycles = 1                    DESCRIPTOR
           + slots                INIT
           + T        (hidden)    THRESHOLDS
           + 1                    ACCUMULATE_FIRST
           + E * slots            ACCUMULATE
           + 1                    AFTER_ACCUMULATE
           + n_out    (hidden)    FIRE
           + 2 + f    (hidden)    FIRE_FLUSH; f = 1 if neuron n_out-1 fired (its event
                                  still has to reach the event memory), else 0

Tests assert equality with the RTL's counters, layer by layer, on every tested network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sw.formats import NO_SPIKE, ZERO_MAG, split_codes
from sw.golden import GoldenResult
from sw.model import SnnModel


@dataclass
class LayerCounts:
    """Per-image counts of one layer, arrays of shape (batch,)."""

    kind: str
    cycles: np.ndarray
    input_events: np.ndarray
    weight_reads: np.ndarray  #: one per PE per accumulate cycle
    acc_updates: np.ndarray  #: synaptic events: accumulations of a nonzero weight
    spikes: np.ndarray  #: output spikes (0 for the output layer)
    fired_neurons: int  #: neurons that pass the fire unit (n_out for hidden layers)
    init_writes: int  #: accumulator initialisations, all PEs
    pe_utilization: np.ndarray  #: acc_updates / (P * cycles)


def layer_counts(model: SnnModel, pes: int, golden: GoldenResult) -> list[LayerCounts]:
    """Exact counts of every layer for every image of a golden batch."""
    T = model.timing.T
    out = []
    for k, layer in enumerate(model.layers):
        slots = -(-layer.n_out // pes)
        active = golden.spikes[k] != NO_SPIKE  # (batch, n_in)
        events = active.sum(axis=1)
        _, mag = split_codes(layer.weights)
        nonzero_per_input = (mag != ZERO_MAG).sum(axis=0)  # (n_in,)
        updates = active.astype(np.int64) @ nonzero_per_input
        cycles = 1 + slots + 1 + events * slots + 1
        if layer.is_output:
            spikes = np.zeros_like(events)
            fired = 0
        else:
            fired_out = golden.spikes[k + 1] != NO_SPIKE
            spikes = fired_out.sum(axis=1)
            cycles = cycles + T + layer.n_out + 2 + fired_out[:, -1].astype(np.int64)
            fired = layer.n_out
        out.append(LayerCounts(kind="linear", cycles=cycles, input_events=events, weight_reads=events * slots * pes,
                               acc_updates=updates, spikes=spikes, fired_neurons=fired, init_writes=slots * pes,
                               pe_utilization=updates / (pes * cycles)))
    return out


def total_cycles(counts: list[LayerCounts]) -> np.ndarray:
    return sum(c.cycles for c in counts)


def latency_us(cycles: float, clock_mhz: float) -> float:
    """Latency of one inference at a clock frequency."""
    return cycles / clock_mhz


def throughput_per_s(cycles: float, clock_mhz: float) -> float:
    """Inferences per second when images run back to back (host I/O not counted)."""
    return clock_mhz * 1e6 / cycles

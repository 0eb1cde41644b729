"""Energy per inference from the array's event counters and a per-event energy table.

A first-order model: each counted event costs a fixed energy taken from published 45 nm
figures (Horowitz, "Computing's energy problem", ISSCC 2014, 0.9 V). Static power is
not modelled yet. Every constant carries its source beside it; the report lists them.
"""
from __future__ import annotations

from dataclasses import dataclass

# Horowitz ISSCC 2014, 45 nm: 32-bit integer add 0.1 pJ; 8 KB SRAM, 64-bit access ~10 pJ.
INT32_ADD_PJ = 0.1  # source: Horowitz ISSCC 2014, table "Integer ADD 32 bit 0.1 pJ"
SRAM_8KB_64BIT_PJ = 10.0  # source: Horowitz ISSCC 2014, "Memory 64 bit, 8 KB cache ~10 pJ"
SRAM_PJ_PER_BIT = SRAM_8KB_64BIT_PJ / 64  # derived: linear in access width (first-order assumption)
ADD_PJ_PER_BIT = INT32_ADD_PJ / 32  # derived: ripple adder energy linear in width (first-order)
# Literature convention (e.g. Huang et al. ICML 2025): SOP 0.9 pJ, MAC 4.6 pJ (FP32, Horowitz).
SOP_PJ = 0.9  # source: Horowitz ISSCC 2014, FP32 add
MAC_PJ = 4.6  # source: Horowitz ISSCC 2014, FP32 mult 3.7 + add 0.9

SOURCES = {
    "INT32_ADD_PJ": "Horowitz, ISSCC 2014, 45 nm: 32-bit integer add 0.1 pJ",
    "SRAM_8KB_64BIT_PJ": "Horowitz, ISSCC 2014, 45 nm: 64-bit access of an 8 KB SRAM ~10 pJ",
    "SRAM_PJ_PER_BIT": "SRAM_8KB_64BIT_PJ / 64 (assumes energy linear in access width)",
    "ADD_PJ_PER_BIT": "INT32_ADD_PJ / 32 (assumes adder energy linear in width)",
    "SOP_PJ": "Horowitz, ISSCC 2014: FP32 add 0.9 pJ (the SNN literature's SOP convention)",
    "MAC_PJ": "Horowitz, ISSCC 2014: FP32 multiply-add 4.6 pJ (the ANN baseline of that convention)",
}


@dataclass
class EnergyBreakdown:
    weight_reads_pj: float
    accumulator_pj: float
    events_pj: float
    fire_pj: float

    @property
    def total_pj(self) -> float:
        return self.weight_reads_pj + self.accumulator_pj + self.events_pj + self.fire_pj

    def as_dict(self) -> dict:
        return {"weight_reads_pj": self.weight_reads_pj, "accumulator_pj": self.accumulator_pj,
                "events_pj": self.events_pj, "fire_pj": self.fire_pj, "total_pj": self.total_pj}


def inference_energy(counters: dict, *, acc_width: int, event_bits: int, T: int, fired_neurons: int,
                     init_writes: int) -> EnergyBreakdown:
    """Energy of one inference from its counters.

    - weight reads: 5-bit SRAM read per PE per accumulate cycle;
    - accumulator: every accumulate cycle reads and writes an acc_width-bit word and
      adds (the add only for nonzero weights), plus the bias initialisation writes;
    - events: one event-memory read per processed event, one write per spike;
    - fire: T comparisons of acc_width bits and one accumulator read per hidden neuron.
    """
    acc_rw = 2 * acc_width * SRAM_PJ_PER_BIT
    return EnergyBreakdown(
        weight_reads_pj=counters["weight_reads"] * 5 * SRAM_PJ_PER_BIT,
        accumulator_pj=(counters["weight_reads"] * acc_rw + counters["acc_updates"] * acc_width * ADD_PJ_PER_BIT
                        + init_writes * acc_width * SRAM_PJ_PER_BIT),
        events_pj=(counters["events_in"] + counters["spikes"]) * event_bits * SRAM_PJ_PER_BIT,
        fire_pj=fired_neurons * (T * acc_width * ADD_PJ_PER_BIT + acc_width * SRAM_PJ_PER_BIT),
    )

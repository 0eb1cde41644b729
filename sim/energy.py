"""Energy per inference from exact event counts (sim/perf.py) and a per-event energy table.

Two technology presets (45 nm from Horowitz, ISSCC 2014; 28 nm scaled from it) and user
overrides from a YAML file. Every constant carries its source; reports list them.
Also computes the literature's convention (SOPs x 0.9 pJ vs MACs x 4.6 pJ) and an 8-bit
ANN baseline that counts memory traffic, so SNN numbers can be compared fairly.
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError

import math
from dataclasses import dataclass
from pathlib import Path

from firstspike.hw.perf import LayerCounts

HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"

# name: (value, source). Energies in pJ, power in uW.
PRESET_45NM: dict[str, tuple[float, str]] = {
    "int_add_pj_per_bit": (0.1 / 32, f"{HOROWITZ}: 32-bit integer add 0.1 pJ; / 32 (energy linear in width)"),
    "sram_8kb_pj_per_bit": (10.0 / 64, f"{HOROWITZ}: 64-bit read of an 8 KB SRAM ~10 pJ; / 64"),
    "sram_32kb_pj_per_bit": (20.0 / 64, f"{HOROWITZ}: 64-bit read of a 32 KB SRAM ~20 pJ; / 64"),
    "sram_1mb_pj_per_bit": (100.0 / 64, f"{HOROWITZ}: 64-bit read of a 1 MB SRAM ~100 pJ; / 64"),
    "int8_mac_pj": (0.2 + 0.03, f"{HOROWITZ}: 8-bit integer multiply 0.2 pJ + add 0.03 pJ"),
    "fp32_mac_pj": (4.6, f"{HOROWITZ}: 32-bit float multiply 3.7 pJ + add 0.9 pJ (literature convention)"),
    "fp32_add_pj": (0.9, f"{HOROWITZ}: 32-bit float add 0.9 pJ (the SNN literature's SOP convention)"),
    "dram_pj_per_bit": (1950.0 / 64, f"{HOROWITZ}: 64-bit DRAM access 1.3-2.6 nJ; the midpoint 1.95 nJ / 64 "
                                     "(not scaled with the logic node: a DRAM access is I/O and array energy)"),
    "register_pj_per_bit": (0.1 / 32, "assumption, not a measurement: a flip-flop written costs per bit what a "
                                      f"bit of an adder costs ({HOROWITZ}: 32-bit add 0.1 pJ / 32); the running "
                                      "sum, the event group registers and the int8 baseline's partial sum are "
                                      "charged this (docs/hardware.md shows the effect of 10x)"),
    "static_uw": (0.0, "not modelled by default: no leakage figure for these macros is adopted; "
                       "set static_uw in an override file to include static power x runtime"),
}
SCALE_28NM = 28 / 45
SCALE_28NM_SOURCE = ("45 nm value x 28/45: classical scaling of dynamic energy C*V^2 with capacitance "
                     "proportional to feature size at an unchanged 0.9 V supply; Stillmaker and Baas "
                     "(Integration 2017) show real nodes deviate from classical scaling: treat as rough")
PRESETS = ("45nm", "28nm")


class EnergyTableError(FirstspikeError, ValueError):
    """An unknown preset, a malformed override file or an unknown constant."""


@dataclass
class EnergyTable:
    """Constants (name -> value) and their sources (name -> text)."""

    name: str
    values: dict[str, float]
    sources: dict[str, str]

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def sram_pj_per_bit(self, macro_bits: int) -> float:
        """Energy per bit accessed of an SRAM macro of ``macro_bits``: log-linear between the
        8 KB, 32 KB and 1 MB points; macros below 8 KB are charged the 8 KB figure (an
        upper bound: small macros cost less)."""
        points = [(8 * 8192, self["sram_8kb_pj_per_bit"]), (32 * 8192, self["sram_32kb_pj_per_bit"]),
                  (1024 * 8192, self["sram_1mb_pj_per_bit"])]
        if macro_bits <= points[0][0]:
            return points[0][1]
        for (s0, e0), (s1, e1) in zip(points, points[1:]):
            if macro_bits <= s1:
                f = (math.log(macro_bits) - math.log(s0)) / (math.log(s1) - math.log(s0))
                return e0 + f * (e1 - e0)
        return points[-1][1]


def energy_table(preset: str = "45nm", overrides: str | Path | None = None) -> EnergyTable:
    """A preset, optionally with constants replaced from a YAML file (``name: value`` pairs)."""
    if preset not in PRESETS:
        raise EnergyTableError(f"unknown technology preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {k: v for k, (v, _) in PRESET_45NM.items()}
    sources = {k: s for k, (_, s) in PRESET_45NM.items()}
    if preset == "28nm":
        for k in values:
            if k not in ("static_uw", "dram_pj_per_bit"):
                values[k] *= SCALE_28NM
                sources[k] = f"{SCALE_28NM_SOURCE}. 45 nm source: {sources[k]}"
    if overrides is not None:
        import yaml
        path = Path(overrides)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise EnergyTableError(f"{path}: cannot read energy overrides ({e})") from None
        if not isinstance(data, dict):
            raise EnergyTableError(f"{path}: expected a mapping of constant names to numbers")
        unknown = sorted(set(data) - set(values))
        if unknown:
            raise EnergyTableError(f"{path}: unknown energy constants {unknown}; known: {sorted(values)}")
        for k, v in data.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise EnergyTableError(f"{path}: {k} must be a non-negative finite number, not {v!r}")
            values[k] = float(v)
            sources[k] = f"user override from {path}"
    return EnergyTable(name=preset, values=values, sources=sources)


@dataclass
class ArrayGeometry:
    """What the energy of an event depends on: widths and macro sizes (bits)."""

    pes: int
    T: int
    acc_width: int
    event_bits: int
    weight_macro_bits: int  #: one PE's weight memory
    acc_macro_bits: int  #: one PE's accumulator memory
    event_macro_bits: int
    threshold_macro_bits: int
    group_entry_bits: int = 0  #: one entry of the event group registers (weight base and time)
    clock_mhz: float = 100.0
    bus_bits: int = 64  #: external memory word


#: energy of the processor itself; EXTERNAL: of the memory it reads its weights from
ON_CHIP = ("weight_reads", "accumulators", "event_memory", "fire", "buffer_loads", "static")
EXTERNAL = ("external_memory",)
COMPONENTS = ON_CHIP + EXTERNAL


def layer_energy_pj(c: LayerCounts, g: ArrayGeometry, table: EnergyTable, b: int) -> dict[str, float]:
    """Energy of one layer of image b, per component (pJ).

    - weight_reads: a 5-bit read per PE per accumulate cycle;
    - accumulators: per PE, an accumulator memory read and write of acc_width bits per
      write-back (one per event group, tap and slot: hw/pe.py), an add for each synaptic
      update, an acc_width-bit register write (the running sum) per accumulate cycle, and a
      bias read + accumulator write per initialisation or clear;
    - event_memory: a read per input event and weight tile (each tile reads the events
      again; a shortcut's pass reads its source's events), two group register writes per
      such read (collected, then moved to the output register: hw/grouper.py), a write per
      output spike;
    - fire: per potential read an accumulator read and its comparisons (adds) of acc_width
      bits (ttfs: T, against the layer's threshold table, read once per layer; rate_if: one,
      against its channel's threshold, read each time; diff_if: three comparisons per spike
      level and eight adds), a rate_if layer's spike-count memory reads and writes, and a diff_if layer's
      state words (4 x acc_width bits, in a memory the size of the accumulators') and floor
      divisions (acc_width compare-subtract stages as wide as the step number, plus one:
      hw/divider.py);
    - buffer_loads: writing every bus word read into the weight or bias buffers;
    - static: static_uw x the layer's run time;
    - external_memory: the bus words read from DRAM (biases and weights), dram_pj_per_bit.
    """
    add = table["int_add_pj_per_bit"] * g.acc_width
    reg = table["register_pj_per_bit"]
    acc_bit = table.sram_pj_per_bit(g.acc_macro_bits)
    acc_rw = 2 * g.acc_width * acc_bit
    wr = int(c.weight_reads[b])
    comparisons = c.fired_neurons * g.T if c.fire_comparisons is None else c.fire_comparisons
    thresholds = (g.T if c.fired_neurons else 0) if c.threshold_reads is None else c.threshold_reads
    reads = int(c.event_reads[b])
    e = {
        "weight_reads": wr * 5 * table.sram_pj_per_bit(g.weight_macro_bits),
        "accumulators": int(c.acc_writebacks[b]) * acc_rw + int(c.acc_updates[b]) * add + wr * g.acc_width * reg
        + c.init_writes * acc_rw,
        "event_memory": (reads + int(c.spikes[b])) * g.event_bits * table.sram_pj_per_bit(g.event_macro_bits)
        + reads * 2 * g.group_entry_bits * reg,
        "fire": c.fired_neurons * g.acc_width * acc_bit + comparisons * add
        + thresholds * g.acc_width * table.sram_pj_per_bit(g.threshold_macro_bits)
        + c.count_accesses * g.T.bit_length() * acc_bit
        + c.state_accesses * 4 * g.acc_width * table.sram_pj_per_bit(4 * g.acc_macro_bits)
        + c.divisions * g.acc_width * (g.T.bit_length() + 1) * table["int_add_pj_per_bit"],
        "buffer_loads": int(c.memory_beats[b]) * g.bus_bits * table.sram_pj_per_bit(g.weight_macro_bits),
        "static": table["static_uw"] * 1e-6 * (int(c.cycles[b]) / (g.clock_mhz * 1e6)) * 1e12,
        "external_memory": int(c.memory_beats[b]) * g.bus_bits * table["dram_pj_per_bit"],
    }
    return e


def ann_baselines_pj(layers: list[tuple[int, ...]], table: EnergyTable, sops: float,
                     weight_buffer: int | None = None) -> dict[str, float]:
    """Reference energies of the equivalent ANN (one inference, pJ).

    ``layers``: per layer (n_in, n_out) for a fully connected layer, or
    (n_in, n_out, macs, weights[, biases[, tiles]]) in general (a conv layer reuses its
    weights: macs > weights; biases default to n_out; tiles, the passes over the layer's
    input that a weight buffer of ``weight_buffer`` entries per PE needs, default 1).

    - literature convention: SNN = synaptic operations x fp32 add; ANN = MACs x fp32 MAC;
    - int8 ANN, on the SNN array's memory model: MACs x int8 MAC, one 8-bit weight read per
      MAC from a weight buffer of ``weight_buffer`` 8-bit entries per PE (the SNN array's
      entries; None: an SRAM holding the whole layer), its partial sum in a 32-bit register
      written per MAC (the SNN's running sum is charged the same register energy), one
      8-bit read per input activation and weight tile (the SNN reads its events once per
      tile) and one 8-bit write per output;
    - its external memory: under the SNN's assumptions (every weight and bias read from DRAM
      once per inference, activations and partial sums stay on chip), the 8-bit weights and
      32-bit biases of every layer, at dram_pj_per_bit.
    """
    full = [(n_in, n_out, n_in * n_out, n_in * n_out) if len(t) == 2 else tuple(t) for t in layers
            for n_in, n_out in [t[:2]]]
    full = [(*f[:4], f[4] if len(f) > 4 else f[1], f[5] if len(f) > 5 else 1) for f in full]
    macs = sum(f[2] for f in full)
    int8 = 0.0
    dram_bytes = 0
    for n_in, n_out, m, weights, biases, tiles in full:
        w_bit = table.sram_pj_per_bit(8 * (weights if weight_buffer is None else weight_buffer))
        a_bit = table.sram_pj_per_bit(8 * max(n_in, n_out))
        int8 += m * (table["int8_mac_pj"] + 8 * w_bit + 32 * table["register_pj_per_bit"]) \
            + (n_in * tiles + n_out) * 8 * a_bit
        dram_bytes += weights + 4 * biases
    return {"snn_sop_fp32_add_pj": sops * table["fp32_add_pj"], "ann_mac_fp32_pj": macs * table["fp32_mac_pj"],
            "ann_int8_pj": int8, "ann_macs": macs, "ann_int8_external_bytes": dram_bytes,
            "ann_int8_external_pj": dram_bytes * 8 * table["dram_pj_per_bit"]}

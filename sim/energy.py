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

    - weight_reads: a 5-bit read per accumulate cycle in each PE holding a channel of the
      command's slot (hw/pe.py: the others stay idle);
    - accumulators: per such PE, an accumulator memory read and write of acc_width bits per
      write-back (one per event group, tap and slot: hw/pe.py), an add for each synaptic
      update, an acc_width-bit register write (the running sum) per accumulate cycle, and a
      bias read + accumulator write per initialisation or clear;
    - event_memory: a read per input event and weight tile (each tile reads the events
      again; a shortcut's pass reads its source's events), two group register writes per
      such read (collected, then moved to the output register: hw/grouper.py), a write per
      output spike, and (layer 0) a write per input event the host writes before the run;
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
    host_writes = 0 if c.host_writes is None else int(c.host_writes[b])
    e = {
        "weight_reads": wr * 5 * table.sram_pj_per_bit(g.weight_macro_bits),
        "accumulators": int(c.acc_writebacks[b]) * acc_rw + int(c.acc_updates[b]) * add + wr * g.acc_width * reg
        + c.init_writes * acc_rw,
        "event_memory": (reads + int(c.spikes[b]) + host_writes) * g.event_bits
        * table.sram_pj_per_bit(g.event_macro_bits)
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


def on_chip_pj(counts: list[LayerCounts], g: ArrayGeometry, table: EnergyTable) -> list[float]:
    """Per image of the counts' batch: the ON_CHIP components of every layer together (pJ)."""
    return [sum(v for c in counts for k, v in layer_energy_pj(c, g, table, b).items() if k in ON_CHIP)
            for b in range(len(counts[0].cycles))]


@dataclass(frozen=True)
class AnnLayer:
    """One layer of the equivalent ANN, in the geometry the array runs it (flow.ann_layers)."""

    n_in: int  #: input activations
    n_out: int  #: outputs it writes (0: a residual shortcut, whose MACs add into its layer's outputs)
    macs: int  #: padding taps excluded
    weights: int
    c_in: int  #: input channels (a linear layer after a conv layer: the conv's channels)
    c_out: int  #: output channels (a shortcut: its layer's)
    out_positions: int = 1  #: output positions before pooling (1 for a linear layer)
    biases: int = 0
    tiles: int = 1  #: passes over the input that the array's weight buffer needs
    #: passes over the input per tile that the array's accumulator memory needs (its bands of
    #: output rows): what the input-stationary dataflow, which keeps partial sums there, needs
    bands: int = 1
    #: inputs in one band of kernel rows (KH x W_in x C_in; a linear layer: n_in), what an
    #: output-stationary array keeps in a line buffer; 0: n_in
    line_inputs: int = 0

    @classmethod
    def fully_connected(cls, n_in: int, n_out: int) -> "AnnLayer":
        return cls(n_in, n_out, n_in * n_out, n_in * n_out, c_in=n_in, c_out=n_out, biases=n_out)


#: the two ways the int8 array can keep its partial sums (ann_baselines_pj)
INT8_DATAFLOWS = ("output_stationary", "input_stationary")


def int8_layer_pj(layer: AnnLayer, table: EnergyTable, *, pes: int, group_size: int,
                  weight_buffer: int | None, acc_depth: int | None) -> dict[str, float]:
    """On-chip energy of one int8 layer on ``pes`` PEs (output channel o in PE o % pes), in each
    of INT8_DATAFLOWS, and ``partial_sums_free``: inputs read once per tile with no partial-sum
    storage, which neither reaches (pJ). Both: per MAC an 8-bit MAC, an 8-bit weight read and a 32-bit
    partial-sum register write; an 8-bit write per output.

    - output_stationary: a PE finishes one output in its register before the next, so every
      input activation is read again for each output position and slot it reaches (one read
      broadcast to the PEs: macs x slots / c_out reads), from the layer's activation memory
      or, where cheaper, from a line buffer of ``line_inputs`` bytes that each input enters
      once per tile;
    - input_stationary (the SNN's dataflow): each input read once per weight tile and band
      of output rows, and broadcast; the partial sums of the outputs it reaches wait in a
      32-bit accumulator memory of ``acc_depth`` entries per PE (None: the layer's outputs), read and written
      once per (input position, output position, slot, group of ``group_size`` channels)
      in each PE that holds a channel of the slot, as the SNN's event groups do, and read once
      per output at the end.
    """
    slots = -(-layer.c_out // pes)
    w_bit = table.sram_pj_per_bit(8 * (layer.weights if weight_buffer is None else weight_buffer))
    a_bit = table.sram_pj_per_bit(8 * max(layer.n_in, layer.n_out))
    acc_bit = table.sram_pj_per_bit(32 * (layer.out_positions * slots if acc_depth is None else acc_depth))
    common = layer.macs * (table["int8_mac_pj"] + 8 * w_bit + 32 * table["register_pj_per_bit"]) \
        + layer.n_out * 8 * a_bit
    pairs = layer.macs // (layer.c_in * layer.c_out)  # (input position, output position) pairs connected
    writebacks = pairs * layer.c_out * -(-layer.c_in // group_size)  # idle PEs (c_out < slots * pes) none
    final_reads = layer.out_positions * layer.c_out if layer.n_out else 0
    inputs_once = common + layer.n_in * layer.tiles * 8 * a_bit
    rereads = layer.macs * slots // layer.c_out * 8  # bits
    line_bit = table.sram_pj_per_bit(8 * (layer.line_inputs or layer.n_in))
    output_stationary = min(common + rereads * a_bit,  # from the layer's activation memory
                            inputs_once + (layer.n_in * layer.tiles * 8 + rereads) * line_bit)
    return {
        "output_stationary": output_stationary,
        "input_stationary": inputs_once + layer.n_in * layer.tiles * (layer.bands - 1) * 8 * a_bit
        + (2 * writebacks + final_reads) * 32 * acc_bit,
        "partial_sums_free": inputs_once,  # neither dataflow reaches this
    }


def ann_baselines_pj(layers: list[AnnLayer], table: EnergyTable, sops: float, *, pes: int = 1,
                     group_size: int = 16, weight_buffer: int | None = None,
                     acc_depth: int | None = None) -> dict:
    """Reference energies of the equivalent ANN (one inference, pJ).

    - literature convention: SNN = synaptic operations x fp32 add; ANN = MACs x fp32 MAC;
    - int8 ANN on the SNN array's memory model: the same PEs, weight-buffer entries (8-bit
      instead of 5-bit: ``weight_buffer`` per PE; None: an SRAM holding the whole layer),
      tiles and accumulator entries; each layer in the cheaper of INT8_DATAFLOWS
      (int8_layer_pj). ``ann_int8_partial_sums_free_pj`` is the figure neither dataflow
      reaches, kept for comparison: inputs read once per tile and no partial-sum storage;
    - its external memory: under the SNN's assumptions (every weight and bias read from DRAM
      once per inference, activations and partial sums stay on chip), the 8-bit weights and
      32-bit biases of every layer, at dram_pj_per_bit.
    """
    per_layer = [int8_layer_pj(layer, table, pes=pes, group_size=group_size, weight_buffer=weight_buffer,
                               acc_depth=acc_depth) for layer in layers]
    macs = sum(layer.macs for layer in layers)
    dram_bytes = sum(layer.weights + 4 * layer.biases for layer in layers)
    return {"snn_sop_fp32_add_pj": sops * table["fp32_add_pj"], "ann_mac_fp32_pj": macs * table["fp32_mac_pj"],
            "ann_int8_pj": sum(min(e[d] for d in INT8_DATAFLOWS) for e in per_layer),
            "ann_int8_dataflows": [min(INT8_DATAFLOWS, key=e.get) for e in per_layer],
            "ann_int8_partial_sums_free_pj": sum(e["partial_sums_free"] for e in per_layer),
            "ann_macs": macs, "ann_int8_external_bytes": dram_bytes,
            "ann_int8_external_pj": dram_bytes * 8 * table["dram_pj_per_bit"]}

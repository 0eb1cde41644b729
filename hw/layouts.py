"""Data layouts shared by the hardware blocks, and their packing for host software.

Verilog sees a struct as one packed vector; ``pack``/``unpack`` convert between Python
dicts and those integers from the layout itself, so the two cannot disagree.
"""
from __future__ import annotations

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

from . import external
from .config import ArrayConfig


class PeOp(enum.Enum, shape=2):
    """What every PE does with the command broadcast this cycle."""

    NOP = 0  #: nothing
    INIT = 1  #: accumulator[acc_addr] <- bias[bias_addr]; count[acc_addr] <- 0
    ACCUM = 2  #: sum <- (accumulator[acc_addr] if first else sum) + contribution of weight[weight_addr]
    #: at time; accumulator[acc_addr] <- sum if last
    READ = 3  #: potential <- accumulator[acc_addr] (+ bias[bias_addr] if add_bias) on the next cycle;
    #: with ``subtract`` also fired <- potential >= bias[param_addr] (a rate_if threshold) and count[acc_addr];
    #: with ``diff`` the diff_if step of state[acc_addr] with synaptic input accumulator[acc_addr]


class LoadTarget(enum.Enum, shape=2):
    """Which on-chip buffer a load fills."""

    WEIGHTS = 0
    BIASES = 1
    HEADER = 2  #: the layer header register (descriptor and thresholds)


def addr_width(depth: int) -> int:
    """Address bits of a memory of ``depth`` entries (0 for one entry)."""
    return max(0, (depth - 1).bit_length())


def spike_event(cfg: ArrayConfig) -> data.StructLayout:
    """A spike: which neuron of the layer (channel, row, column), at which time step, whether
    it is a negative one (a diff_if spike of -1, docs/spec.md section 13) and its level (the
    multi-threshold variant, section 13.7; 0 otherwise)."""
    return data.StructLayout({"channel": unsigned(cfg.channel_bits), "y": unsigned(cfg.coord_bits),
                              "x": unsigned(cfg.coord_bits), "time": unsigned(cfg.timing.time_bits),
                              "negative": 1, "level": unsigned(cfg.level_bits)})


def spike_group(cfg: ArrayConfig) -> data.StructLayout:
    """Up to ``spike_lanes`` spikes leaving the fire stage in one cycle: lanes 0..count-1."""
    return data.StructLayout({"count": range(cfg.spike_lanes + 1),
                              "events": data.ArrayLayout(spike_event(cfg), cfg.spike_lanes)})


def group_entry(cfg: ArrayConfig) -> data.StructLayout:
    """One event of an event group: the weight buffer address of its channel's first tap
    (channel * kernel_area), its time, its sign and its level."""
    return data.StructLayout({"weight_base": unsigned(addr_width(cfg.weight_buffer)),
                              "time": unsigned(cfg.timing.time_bits), "negative": 1,
                              "level": unsigned(cfg.level_bits)})


def event_group(cfg: ArrayConfig) -> data.StructLayout:
    """Up to ``group_size`` consecutive input events at one position (y, x): entries 0..count-1.
    They touch the same accumulators, so each accumulator is read and written once per group."""
    return data.StructLayout({"y": unsigned(cfg.coord_bits), "x": unsigned(cfg.coord_bits),
                              "count": range(cfg.group_size + 1),
                              "events": data.ArrayLayout(group_entry(cfg), cfg.group_size)})


def count_shape(cfg: ArrayConfig) -> unsigned:
    """A rate_if neuron's spike count so far: 0..T."""
    return unsigned(cfg.timing.T.bit_length())


def potential_sample(cfg: ArrayConfig) -> data.StructLayout:
    """One potential per PE, read in the same cycle, on their way to the fire stage.

    Lane p holds channel ``channel_base + p`` at (pooled) position (y, x); ``first`` and
    ``last`` mark the ends of a max-pool window. A rate_if layer's step also brings, per
    lane, whether the neuron fires now (``fired``) and its spikes before this step
    (``counts``): rate max pooling needs both (docs/spec.md, section 12). A diff_if step brings
    each lane's signed spike: ``fired``, ``negative`` and its ``levels`` entry.
    """
    return data.StructLayout({"channel_base": unsigned(cfg.channel_bits + 1), "y": unsigned(cfg.coord_bits),
                              "x": unsigned(cfg.coord_bits), "first": 1, "last": 1,
                              "values": data.ArrayLayout(signed(cfg.acc_width), cfg.pes),
                              "fired": unsigned(cfg.pes), "negative": unsigned(cfg.pes),
                              "levels": data.ArrayLayout(unsigned(cfg.level_bits), cfg.pes),
                              "counts": data.ArrayLayout(count_shape(cfg), cfg.pes)})


def layer_descriptor(cfg: ArrayConfig) -> data.StructLayout:
    """One entry of the descriptor memory: the network's layer list is data, not circuit.

    Field meanings: hw.config.Descriptor and docs/hardware.md.
    """
    size = unsigned(max(1, cfg.max_size.bit_length()))
    channels = unsigned(max(1, cfg.max_channels.bit_length()))
    slots = unsigned(max(1, cfg.slot_depth.bit_length()))
    rows = unsigned(max(1, cfg.weight_buffer.bit_length()))
    return data.StructLayout({
        "c_in": channels, "kh": size, "kw": size, "padding": size, "stride_log2": unsigned(3),
        "c_out": channels, "h_out": size, "w_out": size, "pool_log2": unsigned(3), "h_pool": size, "w_pool": size,
        "slots": slots, "last_pes": range(cfg.pes + 1),
        #: rate_if neurons (docs/spec.md, section 12): T steps of binary spikes, per-channel thresholds
        "rate": 1,
        #: diff_if neurons (docs/spec.md, section 13): T steps of signed spikes, running means
        "diff": 1,
        "levels": unsigned(max(1, cfg.diff_levels.bit_length())),  #: a diff_if layer's spike levels (13.7)
        "bias_rows": unsigned(max(1, cfg.bias_buffer.bit_length())),  #: rows of the bias block
        "bias_addr": unsigned(external.ADDR_BITS), "bias_beats": beats(cfg),
        "weight_addr": unsigned(external.ADDR_BITS), "tiles": slots,
        "tile_slots": slots, "tile_rows": rows, "tile_beats": beats(cfg),
        "last_slots": slots, "last_rows": rows, "last_beats": beats(cfg),
        "kernel_area": unsigned(max(1, (cfg.max_size ** 2).bit_length())),
        "slot_stride": rows,
        "row_stride": unsigned(max(1, cfg.slot_depth.bit_length())),
        "band_rows": size, "bands": size,  #: output rows per band, and bands (docs/hardware.md, "Bands")
        "acc_count": unsigned(max(1, cfg.slot_depth.bit_length())),
        "acc_base": unsigned(max(1, cfg.slot_depth.bit_length())),
        "init_count": unsigned(max(1, cfg.slot_depth.bit_length())),
        "last": 1,  #: the output layer: the network ends after it
    })


def layer_header(cfg: ArrayConfig) -> data.StructLayout:
    """What the array reads from external memory to start a layer: its descriptor, its shortcut's
    and its T thresholds (hw/external.py places the headers of a network in a table at its start)."""
    return data.StructLayout({"descriptor": layer_descriptor(cfg),
                              #: a shortcut (docs/spec.md section 14): a second accumulation pass over the
                              #: events of spike source ``source`` (0: the input, j + 1: hidden layer j's output)
                              "has_shortcut": 1, "source": range(cfg.max_layers), "shortcut": layer_descriptor(cfg),
                              "thresholds": data.ArrayLayout(signed(cfg.acc_width), cfg.timing.T)})


def header_words(cfg: ArrayConfig) -> int:
    """Bus words of one layer header."""
    return -(-layer_header(cfg).size // cfg.bus_bits)


def beats(cfg: ArrayConfig) -> unsigned:
    """Bus words of the largest weight or bias block: a full weight buffer or a full bias buffer."""
    most = max(external.beats(cfg.weight_buffer, external.weight_row_bits(cfg.pes), cfg.bus_bits),
               external.beats(cfg.bias_buffer, external.bias_row_bits(cfg.pes, cfg.acc_width), cfg.bus_bits))
    return unsigned(max(1, most.bit_length()))


def load_command(cfg: ArrayConfig) -> data.StructLayout:
    """Fill a buffer from external memory: ``rows`` rows from ``beats`` bus words at byte ``addr``
    into buffer rows ``first_row``.. (a header is one row)."""
    words = unsigned(max(beats(cfg).width, header_words(cfg).bit_length()))
    return data.StructLayout({"addr": unsigned(external.ADDR_BITS), "beats": words,
                              "rows": unsigned(max(1, max(cfg.weight_buffer, cfg.bias_buffer).bit_length())),
                              "first_row": unsigned(addr_width(max(cfg.weight_buffer, cfg.bias_buffer))),
                              "target": LoadTarget})


def pe_command(cfg: ArrayConfig) -> data.StructLayout:
    return data.StructLayout({
        "op": PeOp,
        "weight_addr": unsigned(addr_width(cfg.weight_buffer)),
        "bias_addr": unsigned(addr_width(cfg.bias_buffer)),
        "acc_addr": unsigned(addr_width(cfg.slot_depth)),
        "time": unsigned(cfg.timing.time_bits),  #: ACCUM: the spike's time; a diff READ: the step (0-based)
        "negative": 1,  #: ACCUM: a negative spike (diff_if): subtract what a positive one adds
        "level": unsigned(cfg.level_bits),  #: ACCUM: the spike's level k (diff_if 13.7): k more bits of shift
        "levels": unsigned(max(1, cfg.diff_levels.bit_length())),  #: diff READ: the layer's spike levels
        #: ACCUM: PEs 0..live_pes-1 hold a channel of the command's slot; the others touch no memory
        "live_pes": range(cfg.pes + 1),
        "first": 1,  #: ACCUM: start from accumulator[acc_addr], not from the PE's running sum (diff READ: below)
        "last": 1,  #: ACCUM: write the running sum back to accumulator[acc_addr]
        "add_bias": 1,  #: READ: the potential includes bias[bias_addr]
        #: READ: a rate_if step: compare with the threshold bias[param_addr]; clear writes back the
        #: potential less the threshold if it fired, and the count plus one
        "subtract": 1,
        "param_addr": unsigned(addr_width(cfg.bias_buffer)),
        #: INIT, READ: a diff_if layer (INIT: its state from bias[bias_addr] and bias[param_addr]; READ: its
        #: step ``time`` with threshold bias[param_addr]; clear writes the state back)
        "diff": 1,
        "readout": 1,  #: diff READ: the output layer (never fires; its last step's clear leaves ein in the accumulator)
        #: diff READ: the pool unit of the window just read (docs/spec.md 13.4); INIT: a pool unit's state.
        #: A diff READ's ``first`` marks the first neuron of a pooling window
        "pool_unit": 1,
        "clear": 1,  #: accumulator[clear_addr] <- 0 this cycle (the fire stage took its value)
        "clear_addr": unsigned(addr_width(cfg.slot_depth)),
    })


def pack(layout: data.StructLayout, **fields) -> int:
    """Integer of a struct value, fields given by name (all of them)."""
    if set(fields) != {name for name, _ in layout}:
        raise ValueError(f"fields {sorted(fields)} do not match layout fields {[n for n, _ in layout]}")
    value = 0
    for name, f in layout:
        v = int(fields[name])
        width = f.width
        if not (0 <= v < (1 << width)) and not (Shape.cast(f.shape).signed and -(1 << (width - 1)) <= v < 0):
            raise ValueError(f"field {name}={v} does not fit {width} bits")
        value |= (v & ((1 << width) - 1)) << f.offset
    return value


def unpack(layout: data.StructLayout, value: int) -> dict[str, int]:
    out = {}
    for name, f in layout:
        v = (value >> f.offset) & ((1 << f.width) - 1)
        if Shape.cast(f.shape).signed and v >> (f.width - 1):
            v -= 1 << f.width
        out[name] = v
    return out

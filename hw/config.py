"""Parameters of a NeuronArray and the mapping of a converted model into its memories.

Every layer runs as a convolution: a linear layer is a conv whose kernel covers its
whole input (a linear layer on flat input has a 1x1 input and kernel). Output channel
o lives in PE ``o % pes`` at slot ``o // pes``; its potential at output position
(y, x) is accumulator ``(y * W_out + x) * slots + slot``. Biases and weights live in
external memory (hw/external.py) and are loaded, layer by layer and tile by tile, into
each PE's bias buffer (slot s at address s) and weight buffer (the tile's slot j at
``j * C_in*KH*KW + (c * KH + ky) * KW + kx``). Padding channels (o >= C_out) get the
zero weight code and bias 0 and are never fired. See docs/hardware.md.
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError, InputError

import enum
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from firstspike.sw.formats import WEIGHT_BITS, ZERO_CODE, Timing
from firstspike.sw.model import SnnLayer, SnnModel

from . import external


class DoesNotFit(FirstspikeError, ValueError):
    """A model needs more of some resource than the array configuration has."""


class Region(enum.IntEnum):
    """Host bus address regions (upper address bits). PE regions follow PE_BASE."""

    CONTROL = 0
    LAYER_CYCLES = 1
    LAYER_EVENTS = 2
    EVENTS = 3
    PE_BASE = 4


class Control(enum.IntEnum):
    """Write offsets of the CONTROL region (its reads are the counters)."""

    NETWORK_ADDRESS = 0
    INPUT_EVENTS = 1


class Counter(enum.IntEnum):
    """Read offsets of the CONTROL region."""

    STATUS = 0
    CYCLES = 1
    WEIGHT_READS = 2
    ACC_UPDATES = 3
    SPIKES = 4
    EVENTS_IN = 5
    MEMORY_BEATS = 6
    ACC_WRITEBACKS = 7


#: The host bus map: what each region, control write and counter means. The decoder
#: (hw/neuron_array.py), the host transactions (hw/host.py), the manifest
#: (``neuron_array.json``) and the table in docs/hardware.md (``bus_map_markdown``; a test
#: keeps them equal) all derive from these enums and this text. Keyed by (enum, member): the
#: enums are IntEnums, so a plain dict would take Region.LAYER_EVENTS and Counter.WEIGHT_READS
#: (both 2) for one key.
BUS_MAP_TEXT = {(type(m), m): text for m, text in (
    (Region.CONTROL, "write: the `Control` offsets; read: the `Counter` offsets"),
    (Region.LAYER_CYCLES, "read: offset l = cycles spent in layer l"),
    (Region.LAYER_EVENTS, "read: offset l = input events of layer l"),
    (Region.EVENTS, "write: input events from offset 0 (while idle); read: every layer's events after a run"),
    (Region.PE_BASE, "region PE_BASE + p, read: PE p's accumulator at the offset (the output layer's potentials)"),
    (Control.NETWORK_ADDRESS, "byte address of the network in external memory (0 after reset); write it "
                              "whenever the network changes, even at the same address: the next run first "
                              "clears every accumulator"),
    (Control.INPUT_EVENTS, "number of input events written to EVENTS"),
    (Counter.STATUS, "bit 0 busy, bit 1 done"),
    (Counter.CYCLES, "cycles from start to done"),
    (Counter.WEIGHT_READS, "weight buffer reads, all PEs (per accumulate command, one in each PE holding a channel "
                           "of its slot)"),
    (Counter.ACC_UPDATES, "accumulations of a nonzero weight (synaptic events), all PEs"),
    (Counter.SPIKES, "spikes the fire stage emitted, all layers"),
    (Counter.EVENTS_IN, "input events processed, all layers (each once, however many weight tiles or shortcuts "
                        "read it)"),
    (Counter.MEMORY_BEATS, "external memory words read"),
    (Counter.ACC_WRITEBACKS, "accumulator memory read-modify-writes by accumulation, all PEs (one per event group, "
                             "tap and slot in each PE holding a channel of the slot)"),
)}


def bus_map() -> dict:
    """The host bus map as data (the manifest's ``host_bus``)."""
    return {kind.__name__.lower(): {m.name: {"value": int(m), "meaning": BUS_MAP_TEXT[kind, m]} for m in kind}
            for kind in (Region, Control, Counter)}


def bus_map_markdown() -> str:
    """The host bus map as the markdown table of docs/hardware.md."""
    rows = ["| kind | name | value | meaning |", "|---|---|---|---|"]
    for kind in (Region, Control, Counter):
        rows += [f"| {kind.__name__} | `{m.name}` | {int(m)} | {BUS_MAP_TEXT[kind, m]} |" for m in kind]
    return "\n".join(rows) + "\n"


COUNTER_BITS = 32


#: events per group when nothing else is asked for: a position's spiking channels in the
#: digits CNN and VGG-16 mostly fit, at 2 x 16 entries of group registers
DEFAULT_GROUP_SIZE = 16


@dataclass(frozen=True)
class ArrayConfig:
    """Sizes of a generated NeuronArray. Memories are per PE unless said otherwise."""

    pes: int
    timing: Timing
    acc_width: int
    max_layers: int
    max_channels: int  #: most channels of any layer's input or output
    max_size: int  #: largest image height/width, kernel size or padding + 1 of any layer
    weight_buffer: int  #: weight codes per PE (a layer's weights load in tiles that fit)
    bias_buffer: int  #: biases per PE (one layer's)
    slot_depth: int  #: accumulators per PE
    event_depth: int  #: event memory entries (shared)
    #: spikes the fire stage writes per cycle: the event memory has this many banks
    #: (a power of two up to ``pes``; 0 picks min(4, pes) rounded down to a power of two)
    spike_lanes: int = 0
    #: data width of the AXI4 bus to external memory
    bus_bits: int = 64
    #: most input events of one position accumulated per accumulator memory access (the
    #: entries of the event group registers, hw/grouper.py)
    group_size: int = DEFAULT_GROUP_SIZE
    #: the PEs keep the four state words of differential-coding (diff_if) neurons (docs/spec.md,
    #: section 13) beside the accumulators, and divide by the step number: an array without them
    #: runs ttfs and rate_if networks only
    diff_state: bool = False
    #: most spike levels of a diff_if layer (the multi-threshold variant, docs/spec.md 13.7): the
    #: PEs compare with this many levels, and an event carries its level
    diff_levels: int = 1

    def __post_init__(self):
        if self.spike_lanes == 0 and isinstance(self.pes, int) and self.pes >= 1:
            object.__setattr__(self, "spike_lanes", default_spike_lanes(self.pes))
        for name in ("pes", "max_layers", "max_channels", "max_size", "weight_buffer", "bias_buffer", "slot_depth",
                     "event_depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, not {v!r}")
        if _log2_exact(self.spike_lanes) is None or self.spike_lanes > self.pes:
            raise InputError(f"spike_lanes must be a power of two up to pes ({self.pes}), not {self.spike_lanes!r}")
        if not isinstance(self.group_size, int) or not 1 <= self.group_size <= 64:
            raise InputError(f"group_size must be an integer in 1..64, not {self.group_size!r}")
        if self.bus_bits not in (32, 64, 128, 256, 512, 1024):
            raise InputError(f"bus_bits must be a power of two from 32 to 1024, not {self.bus_bits!r}")
        if self.pes > 64:
            raise InputError(f"pes must be at most 64, not {self.pes}")
        if not isinstance(self.diff_state, bool):
            raise InputError(f"diff_state must be True or False, not {self.diff_state!r}")
        if not isinstance(self.diff_levels, int) or not 1 <= self.diff_levels <= 8:
            raise InputError(f"diff_levels must be an integer in 1..8, not {self.diff_levels!r}")
        if self.diff_levels > 1 and not self.diff_state:
            raise InputError("diff_levels above 1 needs diff_state (the levels are diff_if spikes)")
        if not isinstance(self.acc_width, int) or not self.timing.frac_bits + 2 <= self.acc_width <= 48:
            raise InputError(f"acc_width must be an integer in {self.timing.frac_bits + 2}..48 "
                             f"(frac_bits + 2 at least), not {self.acc_width!r}")

    # -- derived widths ------------------------------------------------------------------
    @property
    def channel_bits(self) -> int:
        return max(1, (self.max_channels - 1).bit_length())

    @property
    def coord_bits(self) -> int:
        return max(1, (self.max_size - 1).bit_length())

    @property
    def level_bits(self) -> int:
        """Bits of a diff_if spike's level 0..diff_levels-1."""
        return max(1, (self.diff_levels - 1).bit_length())

    @property
    def lane_bits(self) -> int:
        return self.spike_lanes.bit_length() - 1

    @property
    def event_bank_depth(self) -> int:
        """Entries per event memory bank: event address a is row a >> lane_bits of bank a % lanes."""
        return -(-self.event_depth // self.spike_lanes)

    @property
    def region_count(self) -> int:
        return Region.PE_BASE + self.pes

    @property
    def offset_bits(self) -> int:
        depths = [self.slot_depth, self.event_depth, self.max_layers, len(Counter)]
        return max(1, max((d - 1).bit_length() for d in depths))

    @property
    def region_bits(self) -> int:
        return max(1, (self.region_count - 1).bit_length())

    @property
    def addr_bits(self) -> int:
        """Width of the host bus address: region, then offset."""
        return self.region_bits + self.offset_bits

    def pe_region(self, pe: int) -> int:
        """The region of PE ``pe``'s potentials."""
        return Region.PE_BASE + pe

    def address(self, region: int, offset: int) -> int:
        return (region << self.offset_bits) | offset

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "timing"}
        d["timing"] = {"T": self.timing.T, "B": self.timing.B, "frac_bits": self.timing.frac_bits}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArrayConfig":
        d = dict(d)
        return cls(timing=Timing(**d.pop("timing")), **d)

    # -- construction from a model ---------------------------------------------------------
    @classmethod
    def for_model(cls, model: SnnModel, pes: int, **overrides) -> "ArrayConfig":
        """A configuration that runs ``model``: the default weight buffer (larger if one output
        channel's weights need more), every other size the smallest that fits. ``overrides``
        set sizes explicitly; DoesNotFit names each one that is too small."""
        if not isinstance(pes, int) or pes < 1:
            raise InputError(f"pes must be a positive integer, not {pes!r}")
        if unsupported(model):
            raise DoesNotFit("; ".join(unsupported(model)))
        need = requirements(model, pes)
        need["weight_buffer"] = max(need["weight_buffer"], DEFAULT_WEIGHT_BUFFER)
        need["slot_depth"] = accumulators(model, pes)
        cfg = cls(pes=pes, timing=model.timing, **{**need, **overrides})
        if overrides:
            cfg.check_fits(model)
        return cfg

    @classmethod
    def for_models(cls, models, pes: int, smallest_weight_buffer: bool = False,
                   smallest_acc_buffer: bool = False) -> "ArrayConfig":
        """The smallest configuration that runs every one of ``models`` (all of one timing):
        one build serves them all, each placed in external memory. ``smallest_weight_buffer``:
        a weight buffer of just the largest output channel's weights instead of the default
        (layers with more run in weight tiles). ``smallest_acc_buffer``: accumulators for one
        row of pooling windows of the widest ttfs layer instead of every layer's (layers with
        more run in bands)."""
        models = list(models)
        if len({m.timing for m in models}) != 1:
            raise InputError(f"one array runs one timing, not {sorted({str(m.timing) for m in models})}")
        cfgs = [cls.for_model(m, pes) for m in models]
        need = {k: max(getattr(c, k) for c in cfgs) for k in requirements(models[0], pes)}
        need["diff_state"] = any(c.diff_state for c in cfgs)
        if smallest_weight_buffer:
            need["weight_buffer"] = max(requirements(m, pes)["weight_buffer"] for m in models)
        if smallest_acc_buffer:
            need["slot_depth"] = max(requirements(m, pes)["slot_depth"] for m in models)
        return replace(cfgs[0], **need)

    def check_fits(self, model: SnnModel) -> None:
        """Raise DoesNotFit listing every resource the model needs more of."""
        if model.timing != self.timing:
            raise DoesNotFit(f"the model uses {model.timing} but the array was built for {self.timing}")
        need = requirements(model, self.pes)
        short = unsupported(model) + [
            "diff_state: the model has diff_if layers and the array was built without their state (build with "
            f"{PARAMETER_FLAGS[name]})" if name == "diff_state" else
            f"{name}: model needs {need[name]}, array has {getattr(self, name)}"
            + (f" (raise {PARAMETER_FLAGS[name]})" if name in PARAMETER_FLAGS else "")
            for name in need if need[name] > getattr(self, name)]
        if short:
            raise DoesNotFit("model does not fit the array: " + "; ".join(short))


#: weight codes per PE when nothing else is asked for: one output channel of a 3x3 conv with 512
#: input channels (VGG-16's widest) needs 4608, so every layer of it runs in tiles
DEFAULT_WEIGHT_BUFFER = 8192

#: the command-line option that sets each size (firstspike verilog, sim, synth)
PARAMETER_FLAGS = {"weight_buffer": "--weight-buffer", "bias_buffer": "--bias-buffer", "slot_depth": "--acc-buffer",
                   "event_depth": "--event-buffer", "acc_width": "--acc-width", "max_layers": "--max-layers",
                   "max_channels": "--max-channels", "max_size": "--max-size",
                   "group_size": "--group-size", "diff_state": "--diff-state",
                   "diff_levels": "--diff-levels"}

#: the neuron models (sw/neurons) whose layers the array runs
HW_NEURONS = ("ttfs", "rate_if", "diff_if")

#: neuron models that run their T steps one after another on the array (docs/hardware.md)
STEPPED_NEURONS = ("rate_if", "diff_if")


def default_spike_lanes(pes: int) -> int:
    """min(4, pes) rounded down to a power of two: four lanes keep the fire stage ahead of a
    2x2 pool window for up to 16 spikes per group, at four event memory banks."""
    return 1 << (min(4, pes).bit_length() - 1)


def _log2_exact(v: int) -> int | None:
    return v.bit_length() - 1 if v >= 1 and v & (v - 1) == 0 else None


def hardware_geometry(layer: SnnLayer) -> dict[str, int]:
    """A layer as the convolution the array runs (sizes of docs/hardware.md)."""
    c_in, h_in, w_in = layer.in_shape
    c_out, h_out, w_out = layer.conv_shape
    if layer.kind == "conv":
        kh = kw = layer.kernel
    else:
        kh, kw = h_in, w_in
    return dict(c_in=c_in, h_in=h_in, w_in=w_in, kh=kh, kw=kw, c_out=c_out, h_out=h_out, w_out=w_out,
                padding=layer.padding, stride=layer.stride, pool=layer.pool,
                h_pool=h_out // layer.pool, w_pool=w_out // layer.pool)


def unsupported(model: SnnModel) -> list[str]:
    """What of a model the array cannot run at any size (strides and pools must be powers of two;
    neuron models the array implements: HW_NEURONS)."""
    out = [f"layer {k}: {layer.neuron} neurons are not in the processor yet, which runs "
           f"{', '.join(HW_NEURONS)}; the golden model runs them (firstspike golden, firstspike report)"
           for k, layer in enumerate(model.layers) if layer.neuron not in HW_NEURONS][:1]
    if out:
        return out
    geo = hardware_geometry(model.layers[-1])
    if geo["h_out"] * geo["w_out"] != 1:
        out.append(f"output layer: {geo['h_out']}x{geo['w_out']} positions; the array reads one potential per "
                   "output channel (end the network with a linear layer)")
    for k, layer in enumerate(model.layers):
        for what, synapses in (("", layer), ("shortcut ", model.shortcut_synapses(k))):
            for name in ("stride", "pool") if synapses is not None else ():
                v = getattr(synapses, name)
                if _log2_exact(v) is None or v > 128:
                    out.append(f"layer {k}: {what}{name} {v} is not a power of two up to 128 (the array shifts, "
                               "it does not divide)")
    return out


def synapse_sets(model: SnnModel) -> list[SnnLayer]:
    """Every set of synapses the array accumulates through: each layer's own, and its
    shortcut's (docs/spec.md, section 14) as a conv layer of its own."""
    return [s for k, layer in enumerate(model.layers) for s in (layer, model.shortcut_synapses(k)) if s is not None]


def requirements(model: SnnModel, pes: int) -> dict[str, int]:
    """Memory sizes and widths a model needs on an array of ``pes`` PEs."""
    geo = [hardware_geometry(layer) for layer in model.layers]
    every = [hardware_geometry(s) for s in synapse_sets(model)]
    slots = [-(-g["c_out"] // pes) for g in geo]
    rows = [s * bias_block_parts(layer) for s, layer in zip(slots, model.layers)]
    # a rate_if or diff_if layer stores up to one spike per neuron and step
    steps = [model.timing.T if layer.neuron in STEPPED_NEURONS else 1 for layer in model.layers]
    return {
        "acc_width": max(model.acc_bits(), model.timing.frac_bits + 2),
        "max_layers": len(model.layers),
        "max_channels": max(max(g["c_in"], g["c_out"]) for g in every),
        "max_size": max(max(g["h_in"], g["w_in"], g["kh"], g["kw"], g["h_out"], g["w_out"], g["padding"] + 1)
                        for g in every),
        # one output channel group's weights must fit; more slots per tile need fewer passes
        "weight_buffer": max(g["c_in"] * g["kh"] * g["kw"] for g in every),
        "bias_buffer": max(rows),
        # hidden layers use accumulators from 0 up (a pooled diff_if layer's pool units the state
        # words after them), the output layer the top ``slots`` ones; a ttfs layer runs in bands
        # of output rows (docs/hardware.md, "Bands"), so one row of pooling windows is enough
        "slot_depth": accumulators(model, pes, least_accumulators),
        # input events plus the spikes of every hidden layer, at most one per (pooled) neuron
        "event_depth": sum(n * t for n, t in zip(model.sizes[:-1], steps)),
        "diff_state": any(layer.neuron == "diff_if" for layer in model.layers),
        "diff_levels": max(layer.levels for layer in model.layers),
    }


def least_accumulators(layer: SnnLayer, slots: int) -> int:
    """The fewest accumulators per PE a hidden layer runs in: a ttfs layer's band of one row of
    pooling windows, a rate_if or diff_if layer's every neuron (they keep their potentials over
    the T steps, so they run in one band)."""
    if layer.neuron in STEPPED_NEURONS:
        return init_count(layer, slots)
    g = hardware_geometry(layer)
    return g["pool"] * g["w_out"] * slots


def accumulators(model: SnnModel, pes: int, per_layer=None) -> int:
    """Accumulators per PE for ``model``: the output layer's slots above the most any hidden
    layer uses, ``per_layer(layer, slots)`` (default ``init_count``: every layer in one band,
    what ``for_model`` gives; ``least_accumulators``: the least, with bands)."""
    slots = [-(-hardware_geometry(layer)["c_out"] // pes) for layer in model.layers]
    per_layer = per_layer or init_count
    return max([per_layer(layer, s) for s, layer in zip(slots[:-1], model.layers)], default=0) + slots[-1]


def bands(layer: SnnLayer, slots: int, room: int) -> tuple[int, int]:
    """(output rows per band, bands) of a hidden layer whose accumulators may use ``room`` per PE
    (the accumulator memory below the output layer's). A band is a whole number of pooling
    window rows; rows past the last whole window row are never fired, so they need no band of
    their own. A layer that fits runs in one band of all its rows."""
    g = hardware_geometry(layer)
    row_stride = g["w_out"] * slots
    if layer.is_output or layer.neuron in STEPPED_NEURONS or g["h_out"] * row_stride <= room:
        return g["h_out"], 1
    rows = room // row_stride // g["pool"] * g["pool"]
    assert rows >= g["pool"], "check_fits makes room for one row of pooling windows (least_accumulators)"
    return rows, -(-g["h_pool"] * g["pool"] // rows)


def init_count(layer: SnnLayer, slots: int) -> int:
    """Accumulators (and diff_if state words) a layer uses from its first one: its neurons',
    then, for a pooled diff_if layer, one pool unit per window and slot (docs/spec.md 13.4)."""
    g = hardware_geometry(layer)
    units = g["h_pool"] * g["w_pool"] * slots if layer.neuron == "diff_if" and layer.pool > 1 else 0
    return g["h_out"] * g["w_out"] * slots + units


def bias_block_parts(layer: SnnLayer) -> int:
    """Rows per slot of a layer's bias block: a hidden rate_if or diff_if layer's holds its
    biases, its thresholds and its initial potentials (hw/external.py), any other layer's its
    biases."""
    return 3 if layer.neuron in STEPPED_NEURONS and not layer.is_output else 1


@dataclass
class Descriptor:
    """One layer's entry in the descriptor memory (field meanings: docs/hardware.md).

    Products the address generators need are precomputed here, by the host, so the
    sequencer adds instead of multiplying in its inner loops.
    """

    c_in: int
    kh: int
    kw: int
    padding: int
    stride_log2: int
    c_out: int
    h_out: int
    w_out: int
    pool_log2: int
    h_pool: int
    w_pool: int
    slots: int
    #: PEs holding a channel in the last slot, c_out - (slots - 1) * pes: the others stay idle there
    last_pes: int
    rate: int  #: 1: rate_if neurons (docs/spec.md, section 12), run step by step
    diff: int  #: 1: diff_if neurons (docs/spec.md, section 13), run step by step
    levels: int  #: a diff_if layer's spike levels (section 13.7), else 1
    bias_rows: int  #: rows of the bias block: slots, or 3 * slots for a hidden rate_if or diff_if layer
    bias_addr: int  #: external byte address of the layer's bias block
    bias_beats: int  #: its bus words
    weight_addr: int  #: external byte address of the first weight tile
    tiles: int  #: weight tiles of the layer
    tile_slots: int  #: slots per tile, all but the last
    tile_rows: int  #: weight rows (buffer entries) of such a tile: tile_slots * slot_stride
    tile_beats: int  #: its bus words; tile t starts tile_beats * t words after weight_addr
    last_slots: int  #: slots of the last tile
    last_rows: int
    last_beats: int
    kernel_area: int  #: kh * kw: weight address step per input channel
    slot_stride: int  #: c_in * kh * kw: weight address step per slot
    row_stride: int  #: w_out * slots: accumulator address step per output row
    #: output rows per band: all of them (h_out), or, when the layer's accumulators do not fit, a
    #: whole number of pooling window rows (docs/hardware.md, "Bands")
    band_rows: int
    bands: int  #: passes over the layer's input, one per band of output rows
    acc_count: int  #: band_rows * w_out * slots: accumulators the layer uses
    acc_base: int  #: first accumulator: 0 for hidden layers, slot_depth - slots for the output layer
    #: accumulators INIT writes: acc_count, and a pooled diff_if layer's pool units after them
    init_count: int
    last: int  #: 1 for the output layer: the network ends after it


@dataclass
class NetworkImage:
    """One model laid out for an array: its external memory contents (hw/external.py), and the
    descriptors and thresholds they hold, for the host's cycle model and manifest."""

    descriptors: list[Descriptor]
    thresholds: list[list[int]]  #: per layer, T entries (zeros for the output layer)
    memory: list[int]  #: external memory, one bus word per entry from the network's address
    n_layers: int = field(default=0)
    #: per layer, its shortcut's descriptor (a second accumulation pass), or None
    shortcuts: list[Descriptor | None] = field(default_factory=list)


def _descriptor(synapses: SnnLayer, cfg: ArrayConfig, words: int, output: bool, room: int,
                shortcut_of: Descriptor | None = None) -> tuple[Descriptor, int]:
    """The descriptor of one set of synapses whose blocks start at bus word ``words``: its
    bias block, then its weight tiles; and the words they take. ``room``: the accumulators per
    PE below the output layer's, which its bands must fit. A shortcut (``shortcut_of``: its
    layer's descriptor) has no bias block of its own and accumulates in its layer's bands."""
    bias = shortcut_of is None
    P, W = cfg.pes, cfg.bus_bits
    g = hardware_geometry(synapses)
    slots = -(-g["c_out"] // P)
    fan_in = g["c_in"] * g["kh"] * g["kw"]
    tiles = external.tiling(slots, fan_in, cfg.weight_buffer)
    bias_rows = slots * bias_block_parts(synapses)
    bias_beats = external.beats(bias_rows, external.bias_row_bits(P, cfg.acc_width), W) if bias else 0
    last_slots = tiles.slots_of(tiles.count - 1)
    tile_beats = external.beats(tiles.tile_slots * fan_in, external.weight_row_bits(P), W)
    last_beats = external.beats(last_slots * fan_in, external.weight_row_bits(P), W)
    band_rows, n_bands = bands(synapses, slots, room) if bias else (shortcut_of.band_rows, shortcut_of.bands)
    acc_count = band_rows * g["w_out"] * slots
    d = Descriptor(
        c_in=g["c_in"], kh=g["kh"], kw=g["kw"], padding=g["padding"], stride_log2=_log2_exact(g["stride"]),
        c_out=g["c_out"], h_out=g["h_out"], w_out=g["w_out"], pool_log2=_log2_exact(g["pool"]),
        h_pool=g["h_pool"], w_pool=g["w_pool"], slots=slots, last_pes=g["c_out"] - (slots - 1) * P,
        rate=int(synapses.neuron == "rate_if"),
        diff=int(synapses.neuron == "diff_if"), levels=int(synapses.levels),
        bias_rows=bias_rows, bias_addr=words * W // 8 if bias else 0, bias_beats=bias_beats,
        weight_addr=(words + bias_beats) * W // 8,
        tiles=tiles.count, tile_slots=tiles.tile_slots, tile_rows=tiles.tile_slots * fan_in, tile_beats=tile_beats,
        last_slots=last_slots, last_rows=last_slots * fan_in, last_beats=last_beats,
        kernel_area=g["kh"] * g["kw"], slot_stride=fan_in, row_stride=g["w_out"] * slots,
        band_rows=band_rows, bands=n_bands, acc_count=acc_count,
        acc_base=cfg.slot_depth - slots if output else 0,
        init_count=init_count(synapses, slots) if n_bands == 1 else acc_count, last=int(output))
    return d, bias_beats + tile_beats * (tiles.count - 1) + last_beats


def layer_descriptors(model: SnnModel, cfg: ArrayConfig, shortcuts: bool = False):
    """Every layer's descriptor on ``cfg`` (checks the fit first), its external addresses those
    of ``network_image``'s layout: the header table, then per layer its bias block and weight
    tiles, then its shortcut's weight tiles, each starting on a new bus word. Cheap: no weight
    is packed (the cycle model needs only these). ``shortcuts``: return (descriptors, the
    shortcut descriptors, None for a layer without one)."""
    from .layouts import header_words
    cfg.check_fits(model)
    words = header_words(cfg) * len(model.layers)  # the header table
    room = cfg.slot_depth - -(-hardware_geometry(model.layers[-1])["c_out"] // cfg.pes)
    descriptors, extra = [], []
    for k, layer in enumerate(model.layers):
        d, n = _descriptor(layer, cfg, words, layer.is_output, room)
        descriptors.append(d)
        words += n
        synapses = model.shortcut_synapses(k)
        if synapses is not None:  # the second pass accumulates into the same potentials: no biases of its own
            d, n = _descriptor(synapses, cfg, words, output=False, room=room, shortcut_of=d)
            words += n
        extra.append(d if synapses is not None else None)
    return (descriptors, extra) if shortcuts else descriptors


def network_image(model: SnnModel, cfg: ArrayConfig) -> NetworkImage:
    """Lay a model out into the external memory of ``cfg`` (checks the fit first): the table of
    layer headers (descriptor and thresholds), then per layer its bias block and weight tiles
    at the addresses of ``layer_descriptors``. Addresses inside the descriptors are relative
    to the network's address."""
    from .layouts import header_words, layer_header, pack
    descriptors, shortcuts = layer_descriptors(model, cfg, shortcuts=True)
    P, T, W = cfg.pes, cfg.timing.T, cfg.bus_bits
    n_header = header_words(cfg)
    memory: list[int] = [0] * (n_header * len(model.layers))  # the header table, filled below

    def weight_tiles(weights: np.ndarray, d: Descriptor) -> list[int]:
        padded = np.full((d.slots * P, d.slot_stride), ZERO_CODE, dtype=np.int64)
        padded[:d.c_out] = weights.reshape(d.c_out, d.slot_stride)  # (c, ky, kx) order either way
        # rows: (slot, input) -> the P codes of channels slot * P + p
        rows = padded.reshape(d.slots, P, d.slot_stride).transpose(0, 2, 1)
        return [w for first in range(0, d.slots, d.tile_slots)
                for w in external.pack_rows(rows[first:first + d.tile_slots].reshape(-1, P), WEIGHT_BITS, W)]

    thresholds = []
    for layer, d, sc in zip(model.layers, descriptors, shortcuts):
        assert len(memory) * W // 8 == d.bias_addr
        memory += external.pack_rows(bias_block(layer, d, T, P), cfg.acc_width, W)  # row s: channels s*P + p
        assert len(memory) * W // 8 == d.weight_addr
        memory += weight_tiles(layer.weights, d)
        if sc is not None:
            assert len(memory) * W // 8 == sc.weight_addr
            memory += weight_tiles(layer.shortcut.weights, sc)
        ttfs = layer.neuron == "ttfs" and layer.thresholds is not None
        thresholds.append([int(v) for v in layer.thresholds] if ttfs else [0] * T)
    header = layer_header(cfg)
    descriptor = header["descriptor"].shape
    for k, (d, sc, th) in enumerate(zip(descriptors, shortcuts, thresholds)):
        layer = model.layers[k]
        value = pack(header, descriptor=pack(descriptor, **asdict(d)),
                     shortcut=pack(descriptor, **asdict(sc)) if sc is not None else 0,
                     has_shortcut=int(sc is not None), source=layer.shortcut.source if sc is not None else 0,
                     thresholds=sum((v & ((1 << cfg.acc_width) - 1)) << (i * cfg.acc_width) for i, v in enumerate(th)))
        memory[k * n_header:(k + 1) * n_header] = [(value >> (i * W)) & ((1 << W) - 1) for i in range(n_header)]
    return NetworkImage(descriptors=descriptors, thresholds=thresholds, memory=memory, n_layers=len(model.layers),
                        shortcuts=shortcuts)


def bias_block(layer: SnnLayer, d: Descriptor, T: int, P: int) -> np.ndarray:
    """The rows of a layer's bias block, ``d.bias_rows`` x P (row s: channels s * P + p).

    A ttfs layer's are its biases. A hidden rate_if layer's are its biases, then its
    thresholds, then its initial potentials, ``slots`` rows each; a rate_if output layer's
    are initial + T * bias, what its INIT starts from: it accumulates all T steps' input
    in one pass, and the spec's readout is initial + the T steps' bias and input (section 12).
    A hidden diff_if layer's are laid out as a hidden rate_if layer's; a diff_if output
    layer's are its biases, the initial running means of its input (section 13.3).
    """
    def per_slot(values) -> np.ndarray:
        v = np.zeros(d.slots * P, dtype=np.int64)
        v[:d.c_out] = values
        return v.reshape(d.slots, P)
    if layer.neuron not in STEPPED_NEURONS or (layer.neuron == "diff_if" and layer.is_output):
        return per_slot(layer.bias)
    if layer.is_output:
        return per_slot(layer.initial + T * layer.bias)
    return np.concatenate([per_slot(layer.bias), per_slot(layer.thresholds), per_slot(layer.initial)])

"""Performance model: the NeuronArray's exact cycle and event counts, from the golden model.

Derived from the sequencer's schedule (hw/sequencer.py, docs/hardware.md). Every layer
runs as a convolution (a linear layer's kernel covers its input). With ``P`` PEs,
``L`` spike lanes, ``slots = ceil(C_out / P)``, ``taps(e)`` the kernel taps an input
event e touches (the output positions whose window covers it), ``q`` the max-pool size,
``d`` the accumulators left dirty by the previous layer (its ``acc_count`` if it is
hidden and its pooling drops a remainder row or column, else 0), ``Lh`` the cycles of
reading the layer's header (``header_cycles``), ``Lb`` and ``Lw_t`` the
cycles of loading the layer's biases and its weight tile t (``load_cycles``: they depend
on the block sizes and the memory's latency only, not on the data), ``A_t`` the
cycles of ACCUMULATE for tile t (``accumulate_cycles``: the event groups' schedule, below),
``S = sum_t (Lw_t + 1 + A_t)`` (``S = 1`` when the layer has no input events: it loads no
weights):

    hidden layer:  Lh + 1 + max(d + Lb + S + 1, T + 2)  HEADER, DESCRIPTOR, CLEAR, LOAD_BIASES, per tile
                                                      LOAD_WEIGHTS, ACCUMULATE_FIRST, ACCUMULATE,
                                                      then AFTER_ACCUMULATE (waits for the T
                                                      thresholds, loaded meanwhile)
                   + q*q + sum_{g < G-1} max(q*q, ceil(k_g / L)) + ceil(k_{G-1} / L) + 2
                                                      FIRE (the scan, then its flush)
    output layer:  Lh + 1 + d + Lb + acc_count + S + 1  HEADER, DESCRIPTOR, CLEAR, LOAD_BIASES, INIT, ...

A hidden layer that runs in bands of output rows (docs/hardware.md, "Bands"; ``band_rows``)
costs Lh + 1 + max(d + Lb + S_0 + 1, T + 2) + FIRE_0 + sum_{b>0} (S_b + 1 + FIRE_b): each band
is a pass over every input event, counting only the taps whose output row is in the band,
and a FIRE of the band's pooled rows; a layer that keeps its one weight tile (or its and its
shortcut's, resident together) loads it in the first band only (Lw = 1 after it).

For FIRE, the G = H_pool * W_pool * slots groups (one pooled position, P channels) are
read in order; each takes q*q cycles of reads, all PEs at once, and its k_g spikes leave
L per cycle while the next group is read (hw/fire.py), so a group costs
max(q*q, ceil(k_g / L)); the last group's spikes drain in the flush. The one-time
accumulator clear after reset or new descriptors is not part of a run's cycles.

ACCUMULATE: the input events, in memory order (position by position), form groups: runs
of up to ``group_size`` events at one position (hw/grouper.py). Group g has ``n_g`` events
and its position ``taps_g`` kernel taps; the tap walker spends ``a_g = max(1, taps_g *
slots_t * n_g)`` cycles on it (hw/taps.py) and the grouper collects the next group
meanwhile, one event per cycle; the event that ends a group opens the next in the cycle the
group moves on (``r_g`` = 0, but 1 for a last group that a later step's event ends: the
cycle that sees it). With ACCUMULATE_FIRST:

    A_t + 1 = n_0 + r_0 + 2 + sum_{g < last} max(n_{g+1} + r_{g+1}, a_g) + a_last

and every PE reads and writes an accumulator ``sum_g taps_g * slots_t`` times.

Tests assert equality with the RTL's counters, layer by layer, on every tested network.
"""
from __future__ import annotations

from dataclasses import dataclass

from functools import lru_cache

import numpy as np
import torch

from firstspike.hw import external
from firstspike.hw.axi import MEMORY_LATENCY, bursts
from firstspike.hw.config import STEPPED_NEURONS, ArrayConfig, hardware_geometry
from firstspike.hw.layouts import header_words
from firstspike.sw.formats import NO_SPIKE, ZERO_MAG, split_codes
from firstspike.sw.golden import GoldenResult
from firstspike.sw.model import SnnModel


@dataclass
class LayerCounts:
    """Per-image counts of one layer, arrays of shape (batch,)."""

    kind: str
    cycles: np.ndarray
    input_events: np.ndarray
    weight_reads: np.ndarray  #: per accumulate command, one per PE holding a channel of its slot
    acc_updates: np.ndarray  #: synaptic events: accumulations of a nonzero weight
    acc_writebacks: np.ndarray  #: accumulator memory read-modify-writes by accumulation, live PEs
    spikes: np.ndarray  #: output spikes (0 for the output layer)
    fired_neurons: int  #: potentials that pass the fire unit's comparators (0 for the output layer)
    init_writes: int  #: accumulator writes outside accumulation (INIT, CLEAR, fire-stage clears), all PEs
    accumulate_cycles: np.ndarray  #: cycles of the ACCUMULATE state
    pe_utilization: np.ndarray  #: acc_updates / (P * cycles): the whole layer
    accumulate_utilization: np.ndarray  #: acc_updates / (P * accumulate_cycles)
    tiles: int  #: weight tiles (passes over the input events per band)
    memory_beats: np.ndarray  #: external memory words read (header, biases, and weights if there were events)
    load_cycles: np.ndarray  #: cycles spent loading the header, biases and weights
    #: events of the layer's shortcut source, read by its second pass (0 without a shortcut)
    shortcut_events: np.ndarray
    event_reads: np.ndarray  #: event memory reads: events x weight tiles, over both passes
    #: threshold comparisons of the fire stage (None: T per read potential, ttfs)
    fire_comparisons: int | None = None
    #: thresholds read, acc_width bits each (None: the T of a hidden ttfs layer's table, once)
    threshold_reads: int | None = None
    count_accesses: int = 0  #: reads and writes of the rate_if spike-count memory, all PEs
    state_accesses: int = 0  #: reads and writes of diff_if state words (4 x acc_width bits), all PEs
    divisions: int = 0  #: floor divisions by the step number (hw/divider.py), all PEs
    #: input events the host writes into the event memory before the run (layer 0's inputs;
    #: None for the layers after it, whose inputs the array writes itself)
    host_writes: np.ndarray | None = None
    bands: int = 1  #: bands of output rows (passes over the input events, each of every tile)


def axis_taps(size_in: int, kernel: int, size_out: int, stride: int, padding: int, first: int = 0) -> np.ndarray:
    """Per input coordinate v: how many kernel offsets k put it in the window of an output in
    ``[first, size_out)``."""
    v = np.arange(size_in)[:, None] + padding - np.arange(kernel)[None, :]
    return ((v >= 0) & (v % stride == 0) & (v // stride >= first) & (v // stride < size_out)).sum(axis=1)


def kernel_taps(g: dict, rows: tuple[int, int] | None = None) -> np.ndarray:
    """(H_in, W_in): the kernel taps of each input position of a layer of geometry ``g``,
    counting outputs in the output rows ``rows`` (first, end) only (default: all)."""
    first, end = rows if rows is not None else (0, g["h_out"])
    return np.outer(axis_taps(g["h_in"], g["kh"], end, g["stride"], g["padding"], first),
                    axis_taps(g["w_in"], g["kw"], g["w_out"], g["stride"], g["padding"]))


def band_rows(d) -> list[tuple[int, int, int, int]]:
    """The bands of descriptor ``d`` (docs/hardware.md, "Bands"): per band its output rows
    (first, end) and its pooled rows (first, end)."""
    q = 1 << d.pool_log2
    return [(b * d.band_rows, min(d.h_out, (b + 1) * d.band_rows),
             b * d.band_rows // q, min(d.h_pool, (b + 1) * d.band_rows // q)) for b in range(d.bands)]


def event_positions(active: np.ndarray) -> np.ndarray:
    """The flat positions y * W + x of the events of ``active`` (C, H, W), in the order they are
    stored: position by position, (y, x, c)."""
    return np.argwhere(active.transpose(1, 2, 0))[:, :2] @ np.array([active.shape[2], 1])


def group_schedule(active: np.ndarray, taps: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The event groups of one image's layer input, in the order the grouper forms them:
    (n_g, taps_g) per group. ``active`` (C, H, W): which input neurons spiked; ``taps``
    (H, W): the kernel taps of each position. Events are stored position by position, so a
    position with k events gives ceil(k / group_size) groups, all full but the last."""
    return stream_groups(event_positions(active), taps, group_size)


def synaptic_updates(synapses, active: np.ndarray, rows: tuple[int, int] | None = None) -> np.ndarray:
    """Per row of ``active`` (rows, C_in, H_in, W_in): the synaptic events its spikes make through
    ``synapses`` (one per nonzero weight each spike reaches), int64; into the output rows
    ``rows`` (first, end) only, if given."""
    g = hardware_geometry(synapses)
    _, mag = split_codes(synapses.weights)
    nonzero = (mag != ZERO_MAG).reshape(g["c_out"], g["c_in"], g["kh"], g["kw"]).sum(axis=0)
    updates = torch.nn.functional.conv2d(torch.from_numpy(active.astype(np.float64)),
                                         torch.from_numpy(nonzero[None].astype(np.float64)),
                                         stride=g["stride"], padding=g["padding"])
    if rows is not None:
        updates = updates[:, :, rows[0]:rows[1]]
    return updates.sum(dim=(1, 2, 3)).numpy().astype(np.int64)


def accumulate_cycles(n: np.ndarray, taps: np.ndarray, slots: int, stopped: bool = False) -> int:
    """ACCUMULATE_FIRST and ACCUMULATE of one pass over the groups (n_g, taps_g) with ``slots``
    slots per tap (the module docstring's A_t + 1). ``stopped``: the pass ends at an event of
    a later step (a rate_if step, hw/grouper.py), one more cycle to see it (r_last = 1)."""
    if len(n) == 0:  # a rate_if step without events of its own: read the later one, see it, done
        return 3
    a = np.maximum(1, taps * slots * n)
    r = np.zeros_like(n)
    r[-1] = int(stopped)
    return int(n[0] + r[0] + 2 + np.maximum(n[1:] + r[1:], a[:-1]).sum() + a[-1])


def stream_groups(positions: np.ndarray, taps: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The event groups of events stored in the order ``positions`` (flat y * W + x of each):
    runs of one position, cut every ``group_size`` events; (n_g, taps_g) per group."""
    if len(positions) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.diff(positions, prepend=-1) != 0)
    runs = np.diff(np.append(starts, len(positions)))
    parts = -(-runs // group_size)
    n = np.full(int(parts.sum()), group_size, dtype=np.int64)
    ends = np.cumsum(parts) - 1
    n[ends] = runs - (parts - 1) * group_size
    return n, taps.ravel()[np.repeat(positions[starts], parts)]


@lru_cache(maxsize=4096)
def load_cycles(addr: int, beats: int, rows: int, row_bits: int, bus_bits: int, latency: int) -> int:
    """Cycles of LOAD_BIASES or LOAD_WEIGHTS and its wait: the sequencer's command (cycle 0),
    the loader's request (1), the BurstReader's bursts (hw/axi.py; sim/axi_memory.py's timing:
    the first beat ``latency`` cycles after its address) and the RowUnpacker's rows (hw/unpack.py),
    one per cycle, up to the last; the sequencer moves on two cycles after it."""
    W, R = bus_bits, row_bits
    capacity = W + R - 1
    plan = [b for _, b in bursts(addr, beats, bus_bits // 8)]
    level, done_rows, burst, beat, t = 0, 0, 0, 0, 2  # the first address is accepted in cycle 2
    next_beat = t + latency
    last_row = None
    while done_rows < rows:
        out = level >= R
        after = level - R if out else level
        take = burst < len(plan) and t >= next_beat and after + W <= capacity
        if out:
            done_rows += 1
            last_row = t
        level = after + (W if take else 0)
        if take:
            beat += 1
            next_beat = t + 1
            if beat == plan[burst]:
                burst, beat = burst + 1, 0
                next_beat = t + 1 + latency  # the next address goes out the cycle after the last beat
        t += 1
        if t > 4 * (beats + rows + latency * len(plan)) + 16:
            raise RuntimeError(f"load of {rows} rows from {beats} words never completes: a layout bug")
    return last_row + 2


def tile_load_cycles(d, cfg: ArrayConfig, network_addr: int, latency: int) -> list[int]:
    """LOAD_WEIGHTS cycles of each weight tile of descriptor ``d`` (``load_cycles``)."""
    word_bytes = cfg.bus_bits // 8
    return [load_cycles(network_addr + d.weight_addr + t * d.tile_beats * word_bytes,
                        d.last_beats if t == d.tiles - 1 else d.tile_beats,
                        d.last_rows if t == d.tiles - 1 else d.tile_rows,
                        external.weight_row_bits(cfg.pes), cfg.bus_bits, latency) for t in range(d.tiles)]


def header_cycles(addr: int, beats: int, bus_bits: int, latency: int) -> int:
    """Cycles of HEADER and its wait: the command (cycle 0), the loader's request (1), the
    bursts (the header's words shift into the header register as they come, never stalling),
    and two cycles after the last word."""
    t = 2  # the first address is accepted in cycle 2
    for _, b in bursts(addr, beats, bus_bits // 8):
        last = t + latency + b - 1
        t = last + 1
    return last + 2


def _pass_counts(synapses, d, spikes: np.ndarray, cfg: ArrayConfig, network_addr: int, latency: int,
                 rows: tuple[int, int] | None = None, loaded: bool = False) -> dict:
    """Per image counts of one accumulation pass (LOAD_WEIGHTS, ACCUMULATE_FIRST and ACCUMULATE
    of every tile) of ``synapses`` (a layer, or a shortcut as a layer) with descriptor ``d``
    over input ``spikes``, into the output rows ``rows`` (a band; default: all). ``loaded``: the
    pass's only tile is still in the weight buffer (a later band), LOAD_WEIGHTS takes a cycle."""
    g = hardware_geometry(synapses)
    tile_loads = [1] if loaded else tile_load_cycles(d, cfg, network_addr, latency)
    active = (spikes != NO_SPIKE).reshape(-1, g["c_in"], g["h_in"], g["w_in"])
    events = active.sum(axis=(1, 2, 3))
    taps = kernel_taps(g, rows)
    schedule = [group_schedule(a, taps, cfg.group_size) for a in active]
    accumulate = np.array([sum(accumulate_cycles(n, t, d.tile_slots if i < d.tiles - 1 else d.last_slots)
                               for i in range(d.tiles)) if len(n) else 0 for n, t in schedule], dtype=np.int64)
    has_events = events > 0
    # every slot's commands reach the PEs holding one of its channels: c_out over all slots
    return dict(
        events=events, event_reads=events * d.tiles,
        weight_reads=(active * (taps * g["c_out"])[None, None]).sum(axis=(1, 2, 3)),
        writebacks=np.array([int(t.sum()) for _, t in schedule], dtype=np.int64) * g["c_out"],
        updates=synaptic_updates(synapses, active, rows),
        cycles=np.where(has_events, accumulate + sum(tile_loads), 1),  # S of the docstring
        loads=np.where(has_events & (not loaded), sum(tile_loads), 0),
        beats=np.where(has_events & (not loaded), d.tile_beats * (d.tiles - 1) + d.last_beats, 0),
        accumulate=np.where(has_events, accumulate - d.tiles, 0))  # without ACCUMULATE_FIRST


def both_resident(d, sc, cfg: ArrayConfig) -> bool:
    """A layer (descriptor ``d``) and its shortcut (``sc``, None without one) keep both weight
    sets in the weight buffer (hw/sequencer.py's ``resident``): one tile each, fitting together."""
    return sc is not None and d.tiles == 1 and sc.tiles == 1 and d.tile_rows + sc.tile_rows <= cfg.weight_buffer


def fire_cycles(fired: np.ndarray, g: dict, slots: int, pes: int, lanes: int, units: bool = False) -> np.ndarray:
    """FIRE of one scan (the module docstring): ``fired`` (batch, C_out * H_pool * W_pool) which
    pooled neurons spike, in (c, y, x) order. ``units``: each window ends with a READ of its
    pool unit (a pooled diff_if layer), q*q + 1 reads per window."""
    padded = np.zeros((len(fired), slots * pes, g["h_pool"], g["w_pool"]), dtype=np.int64)
    padded[:, :g["c_out"]] = fired.reshape(-1, g["c_out"], g["h_pool"], g["w_pool"])
    groups = padded.reshape(-1, slots, pes, g["h_pool"], g["w_pool"]).sum(axis=2)
    groups = groups.transpose(0, 2, 3, 1).reshape(len(fired), -1)  # (batch, G): py, px, slot
    drain = -(-groups // lanes)
    window = g["pool"] ** 2 + int(units)
    return window + np.maximum(window, drain[:, :-1]).sum(axis=1) + drain[:, -1] + 2


class _StepPass:
    """One set of synapses of a rate_if or diff_if layer (its own, or its shortcut's) over its input trains:
    what the cycle model needs of each of its passes (hw/sequencer.py)."""

    def __init__(self, synapses, d, trains: np.ndarray, cfg: ArrayConfig, network_addr: int, latency: int):
        g = hardware_geometry(synapses)
        T = cfg.timing.T
        self.d = d
        self.loads = tile_load_cycles(d, cfg, network_addr, latency)
        self.beats = [d.last_beats if t == d.tiles - 1 else d.tile_beats for t in range(d.tiles)]
        self.slots = [d.last_slots if t == d.tiles - 1 else d.tile_slots for t in range(d.tiles)]
        self.taps = kernel_taps(g)
        b = len(trains)
        self.active = (trains != 0).reshape(b, T, g["c_in"], g["h_in"], g["w_in"])
        self.events = self.active.sum(axis=(1, 2, 3, 4))
        # every slot's commands reach the PEs holding one of its channels: c_out over all slots
        self.weight_reads = (self.active * (self.taps * g["c_out"])[None, None, None]).sum(axis=(1, 2, 3, 4))
        per_step = self.active.reshape(b * T, g["c_in"], g["h_in"], g["w_in"])
        self.updates = synaptic_updates(synapses, per_step).reshape(b, T).sum(axis=1)

    def steps(self, i: int) -> list[np.ndarray]:
        """Image i's events step by step, each step's in (y, x, c) order: their flat positions y * W_in + x."""
        return [event_positions(a) for a in self.active[i]]


def stepped_layer_counts(model: SnnModel, k: int, d, sc, cfg: ArrayConfig, golden: GoldenResult, network_addr: int,
                         latency: int, head: int) -> LayerCounts:
    """Counts of a rate_if or diff_if layer (hw/sequencer.py): HEADER, DESCRIPTOR, LOAD_BIASES, INIT, then
    per step t, per tile, LOAD_WEIGHTS (a one-tile layer loads once, at the first step with
    input events left; with a shortcut only if both weight sets are one tile and fit the buffer
    together, else every step) and ACCUMULATE over step t's events, then (a layer with
    shortcut descriptor ``sc``) one cycle and the same over its source's step-t events, then
    AFTER_ACCUMULATE and FIRE. A pass with no events left takes one cycle; a pass that ends at
    a later step's event spends a cycle seeing it (r_last = 1; 3 cycles with no events of its
    own). A rate_if output layer accumulates all steps' events in one pass after INIT; a diff_if
    output layer runs its steps as a hidden layer does, its FIRE scans firing nothing."""
    layer = model.layers[k]
    g = hardware_geometry(layer)
    pes, T = cfg.pes, cfg.timing.T
    diff = layer.neuron == "diff_if"
    one_pass = layer.is_output and not diff  # a rate_if output layer: all steps in one pass
    bias_load = load_cycles(network_addr + d.bias_addr, d.bias_beats, d.bias_rows,
                            external.bias_row_bits(pes, cfg.acc_width), cfg.bus_bits, latency)
    passes = [_StepPass(layer, d, golden.spikes[k], cfg, network_addr, latency)]
    if sc is not None:
        passes.append(_StepPass(model.shortcut_synapses(k), sc, golden.spikes[layer.shortcut.source], cfg,
                                network_addr, latency))
    b = len(golden.spikes[k])
    # both weight sets stay in the buffer (the shortcut's rows after the layer's) when each is one tile
    resident = both_resident(d, sc, cfg)
    acc_count = g["h_out"] * g["w_out"] * d.slots
    units = diff and g["pool"] > 1  # a pool unit per window, read after it (hw/fire_scan.py)
    scan = g["h_pool"] * g["w_pool"] * d.slots * (g["pool"] ** 2 + int(units))  # fire reads per PE and step
    cycles, accumulate, loads, beats, reads, writebacks = (np.zeros(b, dtype=np.int64) for _ in range(6))
    fire = np.zeros((b, T), dtype=np.int64)
    if not one_pass:
        out = golden.spikes[k + 1] if not layer.is_output else np.zeros((b, T, g["c_out"]), dtype=np.int8)
        fire = np.stack([fire_cycles(out[:, t] != 0, g, d.slots, pes, cfg.spike_lanes, units) for t in range(T)],
                        axis=1)

    def run_pass(i: int, p: _StepPass, events: np.ndarray, stopped: bool, reload: bool) -> None:
        n, tp = stream_groups(events, p.taps, cfg.group_size)
        for tile in range(p.d.tiles):
            if reload:
                cycles[i] += p.loads[tile]
                loads[i] += p.loads[tile]
                beats[i] += p.beats[tile]
            else:
                cycles[i] += 1  # LOAD_WEIGHTS: the only tile is still in the buffers
            a = accumulate_cycles(n, tp, p.slots[tile], stopped=stopped)
            cycles[i] += a
            accumulate[i] += a - 1
        reads[i] += (len(events) + int(stopped)) * p.d.tiles
        writebacks[i] += int(tp.sum()) * p.d.c_out

    for i in range(b):
        if one_pass:
            events = np.concatenate(passes[0].steps(i))
            if len(events):
                run_pass(i, passes[0], events, stopped=False, reload=True)
            else:
                cycles[i] += 1
            continue
        per_pass = [p.steps(i) for p in passes]
        left = [np.cumsum([len(e) for e in steps][::-1])[::-1] for steps in per_pass]  # events at steps >= t
        loaded = [False, False]
        for t in range(T):
            for j, (p, steps) in enumerate(zip(passes, per_pass)):
                cycles[i] += j  # the shortcut pass starts from AFTER_ACCUMULATE
                if left[j][t] == 0:
                    cycles[i] += 1  # LOAD_WEIGHTS sees no events left
                    continue
                reload = not (loaded[j] and p.d.tiles == 1 and (sc is None or resident))
                run_pass(i, p, steps[t], stopped=bool(left[j][t] > len(steps[t])), reload=reload)
                loaded[j] = True
            cycles[i] += 1 + fire[i, t]  # AFTER_ACCUMULATE, FIRE
    base = head + 1 + bias_load + d.init_count  # HEADER, DESCRIPTOR, LOAD_BIASES, INIT
    if one_pass:
        cycles = base + cycles + 1
        spikes, fired, writes = np.zeros(b, dtype=np.int64), 0, d.init_count
    else:
        cycles = base + cycles
        spikes = (golden.spikes[k + 1] != 0).sum(axis=(1, 2)) if not layer.is_output else np.zeros(b, dtype=np.int64)
        fired, writes = scan * pes * T, d.init_count + scan * T
    updates = sum(p.updates for p in passes)
    # the fire stage's arithmetic per potential read: rate_if one comparison; diff_if (hw/pe.py) the
    # three comparisons per level and eight adds of the step, two divisions and a state word read and written
    extra = dict(fire_comparisons=fired, threshold_reads=fired, count_accesses=acc_count * pes + 2 * fired)
    if diff:
        extra = dict(fire_comparisons=(8 + 3 * layer.levels) * fired, threshold_reads=fired + d.init_count * pes,
                     count_accesses=0, state_accesses=d.init_count * pes + 2 * fired, divisions=2 * fired)
    return LayerCounts(kind=layer.kind, cycles=cycles, input_events=passes[0].events,
                       weight_reads=sum(p.weight_reads for p in passes), acc_updates=updates,
                       acc_writebacks=writebacks, spikes=spikes, fired_neurons=fired,
                       init_writes=writes * pes, accumulate_cycles=accumulate,
                       pe_utilization=updates / (pes * cycles),
                       accumulate_utilization=updates / (pes * np.maximum(1, accumulate)), tiles=d.tiles,
                       memory_beats=header_words(cfg) + d.bias_beats + beats, load_cycles=head + bias_load + loads,
                       shortcut_events=passes[1].events if sc is not None else np.zeros(b, dtype=np.int64),
                       event_reads=reads, **extra)


def layer_counts(model: SnnModel, cfg: ArrayConfig | int, golden: GoldenResult,
                 latency: int = MEMORY_LATENCY, network_addr: int = 0) -> list[LayerCounts]:
    """Exact counts of every layer for every image of a golden batch, on the array ``cfg``
    (a PE count means ``ArrayConfig.for_model(model, pes)``) with external memory of
    ``latency`` cycles holding the network at byte address ``network_addr``."""
    if isinstance(cfg, int):
        cfg = ArrayConfig.for_model(model, cfg)
    from firstspike.hw.config import layer_descriptors
    descriptors, shortcuts = layer_descriptors(model, cfg, shortcuts=True)
    n_header, word_bytes = header_words(cfg), cfg.bus_bits // 8
    pes, T, L = cfg.pes, model.timing.T, cfg.spike_lanes
    out = []
    dirty = 0
    for k, layer in enumerate(model.layers):
        g = hardware_geometry(layer)
        d = descriptors[k]
        slots = d.slots
        head = header_cycles(network_addr + k * n_header * word_bytes, n_header, cfg.bus_bits, latency)
        if layer.neuron in STEPPED_NEURONS:
            out.append(stepped_layer_counts(model, k, d, shortcuts[k], cfg, golden, network_addr, latency, head))
            dirty = 0  # rate_if and diff_if layers INIT what they use and never CLEAR
            continue
        bias_load = load_cycles(network_addr + d.bias_addr, d.bias_beats, d.slots,
                                external.bias_row_bits(pes, cfg.acc_width), cfg.bus_bits, latency)
        sc = shortcuts[k]
        # a later band finds a one-tile layer's weights (and a resident shortcut's) still in the buffer
        resident = both_resident(d, sc, cfg)
        keeps = [d.tiles == 1 and (sc is None or resident), resident]
        bands, passes = band_rows(d), []
        fired_out = golden.spikes[k + 1] != NO_SPIKE if not layer.is_output else None
        cycles = head + 1
        for b, (first, end, pool_first, pool_end) in enumerate(bands):
            here = [_pass_counts(layer, d, golden.spikes[k], cfg, network_addr, latency, (first, end),
                                 loaded=b > 0 and keeps[0])]
            if sc is not None:  # SHORTCUT: one cycle in AFTER_ACCUMULATE, then the second pass
                here.append(_pass_counts(model.shortcut_synapses(k), sc, golden.spikes[layer.shortcut.source], cfg,
                                         network_addr, latency, (first, end), loaded=b > 0 and keeps[1]))
            passes += here
            accumulation = sum(p["cycles"] for p in here) + len(here) - 1
            if layer.is_output:
                cycles = cycles + dirty + bias_load + d.acc_count + accumulation + 1  # CLEAR, LOAD_BIASES, INIT, ...
                continue
            b_fired = fired_out.reshape(len(fired_out), g["c_out"], g["h_pool"], g["w_pool"])[:, :, pool_first:pool_end]
            fire = fire_cycles(b_fired.reshape(len(fired_out), -1), {**g, "h_pool": pool_end - pool_first}, slots,
                               pes, L)
            if b == 0:  # AFTER_ACCUMULATE waits for the thresholds, loaded since DESCRIPTOR
                cycles = cycles + np.maximum(dirty + bias_load + accumulation + 1, T + 2) + fire
            else:
                cycles = cycles + accumulation + 1 + fire
        main = passes[0]
        total = {key: sum(p[key] for p in passes) for key in main}
        if layer.is_output:
            writes = dirty + d.acc_count  # CLEAR, INIT
            spikes = np.zeros_like(main["events"])
            fired = 0
        else:
            spikes = fired_out.sum(axis=1)
            fired = g["h_pool"] * g["w_pool"] * slots * pes * g["pool"] ** 2
            writes = dirty + g["h_pool"] * g["w_pool"] * slots * g["pool"] ** 2  # CLEAR, the fire stage's clears
            remainder = g["h_pool"] * g["pool"] != g["h_out"] or g["w_pool"] * g["pool"] != g["w_out"]
        dirty = d.acc_count if not layer.is_output and remainder else 0
        updates = total["updates"]
        out.append(LayerCounts(kind=layer.kind, cycles=cycles, input_events=main["events"],
                               weight_reads=total["weight_reads"], acc_updates=updates,
                               acc_writebacks=total["writebacks"], spikes=spikes, fired_neurons=fired,
                               init_writes=writes * pes, accumulate_cycles=total["accumulate"],
                               pe_utilization=updates / (pes * cycles),
                               accumulate_utilization=updates / (pes * np.maximum(1, total["accumulate"])),
                               tiles=d.tiles, memory_beats=n_header + d.bias_beats + total["beats"],
                               load_cycles=head + bias_load + total["loads"],
                               shortcut_events=passes[1]["events"] if sc is not None else np.zeros_like(updates),
                               event_reads=total["event_reads"], bands=d.bands))
    out[0].host_writes = out[0].input_events
    return out


def total_cycles(counts: list[LayerCounts]) -> np.ndarray:
    return sum(c.cycles for c in counts)


def latency_us(cycles: float, clock_mhz: float) -> float:
    """Latency of one inference at a clock frequency."""
    return cycles / clock_mhz


def throughput_per_s(cycles: float, clock_mhz: float) -> float:
    """Inferences per second when images run back to back (host I/O not counted)."""
    return clock_mhz * 1e6 / cycles

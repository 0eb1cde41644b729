"""Sequencer: runs a network's layers one after another on the PE array."""
from __future__ import annotations

from amaranth.hdl import Array, Assert, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import external
from .config import COUNTER_BITS, ArrayConfig, Counter
from .fire import ThresholdWrite
from .events import EventMemory
from .fire_scan import FireScanner
from .grouper import EventGrouper
from .layouts import (LoadTarget, PeOp, addr_width, count_shape, header_words, layer_descriptor, layer_header,
                      load_command, pe_command, potential_sample, spike_event, spike_group)
from .taps import TapWalker



class Sequencer(wiring.Component):
    """Walks the network's layer table; per layer: HEADER, DESCRIPTOR, (CLEAR), LOAD_BIASES,
    (INIT), then per weight tile LOAD_WEIGHTS and ACCUMULATE, then FIRE.

    Every layer is a convolution (hw/config.py; a linear layer's kernel covers its input).

    - HEADER: the layer's header (descriptor and thresholds) comes from external memory
      into the loader's header register: layer k's is entry k of the table at the network's
      address (hw/external.py); the output layer's descriptor says it is the last.
    - DESCRIPTOR: a hidden layer's T thresholds start loading into the fire unit, in
      parallel with what follows (FIRE waits until they are in).
    - CLEAR: zeroes accumulators a previous layer left dirty (a pool remainder it never
      read). Hidden layers accumulate from zero: the fire stage adds the bias as it reads
      a potential and clears the accumulator (hw/pe.py).
    - LOAD_BIASES, LOAD_WEIGHTS: the layer's biases, then one tile of its weights (as many
      output channel groups as the weight buffer holds, hw/external.py), come from external
      memory through the loader (hw/loader.py). A layer with no input events loads no weights.
    - INIT (output layer): its accumulators, the top ``slots`` of each PE, get their bias.
    - SHORTCUT (a layer with a shortcut, docs/spec.md section 14): after the last tile, a
      second pass of LOAD_WEIGHTS and ACCUMULATE runs the shortcut's descriptor over the
      events of its source layer (still in the event memory), into the same accumulators.
    - ACCUMULATE: the event grouper (hw/grouper.py) reads the layer's input events and
      hands on runs of up to ``group_size`` events at one position; the tap walker
      (hw/taps.py) turns each group into one command to all PEs per (kernel tap, slot of the
      tile, event), the group's events innermost, so a PE reads and writes each accumulator
      once per group. Cycles follow the spikes, not T. With several tiles, the layer's input
      events are read once per tile.
    - FIRE (hidden layers): the fire scanner (hw/fire_scan.py) reads every PE's potential
      at one address in the same cycle, in pooled-output order (row, column, channel group,
      then the pool window); they pass the fire unit's per-PE comparators, which keep the earliest spike of each
      window; up to ``spike_lanes`` spikes per cycle are appended to the event memory
      (one bank each) and become the next layer's input.
    - Bands: a ttfs layer whose accumulators do not fit runs in bands of ``band_rows`` output
      rows (``descriptor.bands``; docs/hardware.md). Each band is a pass of its own: per tile
      LOAD_WEIGHTS (a one-tile layer, or one whose two one-tile weight sets fit the buffer
      together, loads once) and ACCUMULATE over all the layer's input events (the tap walker
      keeps the band's rows only), the SHORTCUT pass the same, then FIRE of the band's rows,
      whose spikes follow the previous band's, so the layer's spikes stay in position order.

    - A rate_if layer (docs/spec.md, section 12; ``descriptor.rate``) runs its T steps one
      after another. Its bias block also holds its thresholds and initial potentials; INIT
      sets its potentials to the initial ones, then per step t: per tile LOAD_WEIGHTS (a
      one-tile layer loads once) and ACCUMULATE over the input events of step t only (the
      events are stored step by step; the grouper stops at the first later one), then
      FIRE, which adds the bias, fires at threshold, subtracts it and appends step t's
      spikes. A rate_if output layer accumulates all steps' events in one pass onto its
      INIT value, initial + T * bias (what T steps of bias add). Rate layers need no CLEAR:
      INIT writes every accumulator they read. A rate_if layer with a shortcut runs the
      SHORTCUT pass in every step, over its source's events of that step.
    - A diff_if layer (docs/spec.md, section 13; ``descriptor.diff``) runs as a hidden rate_if
      layer: INIT sets each neuron's state (hw/pe.py) and zeroes its accumulator, then per
      step ACCUMULATE over that step's signed events and FIRE, where the PEs run the step.
      Its output layer runs step by step too: its FIRE scans fire nothing, and the last one
      leaves the scores in the accumulators. A pooled diff_if layer's INIT also sets its pool
      units' states (``init_count``), and its FIRE runs each window's pool unit after the
      window (hw/fire_scan.py).

    After reset or a new network address, the next start first clears every accumulator
    (not counted in the run's cycles).

    The event memory therefore ends up holding every layer's events in order: the input
    events, then layer 0's spikes, then layer 1's, and so on. Layer l's events occupy
    ``LAYER_EVENTS[l]`` entries; where each source starts is kept for shortcuts. After the
    output layer the potentials stay in the PEs.

    Members
    -------
    start : In(1)       pulse to run the network (ignored while busy)
    busy, done : Out(1) done stays high from the end of a run until the next start
    network_addr : In  byte address of the network in external memory (its layer table)
    network_w : In(1)  the host wrote a network address (the next start clears the accumulators)
    n_inputs : In  the number of input events, stored from address 0 of the event memory
    header : In(layer_header)  the loader's header register
    cmd : Out(pe_command)  broadcast to the PEs
    pe_potentials : In(array of signed(acc_width))  each PE's ``potential``
    pe_fired, pe_negative, pe_levels, pe_counts : In  each PE's ``fired``, ``negative``, ``level`` and ``count``
    updates, weight_reads, writebacks : In  how many PEs made a synaptic update, read a weight, wrote
        a running sum back this cycle (the ACC_UPDATES, WEIGHT_READS and ACC_WRITEBACKS counters)
    potentials : Out(stream)  to the fire unit;  spikes : In(stream)  from it
    thresholds : Out(ThresholdWrite)  to the fire unit
    rate, diff, step : Out  to the fire unit: the layer is rate_if, or diff_if, and the step being fired
    load : Out(stream.Signature(load_command))  to the loader;  load_busy : In(1)  from it
    memory_beat : In(1)  a bus word was taken this cycle (counted in MEMORY_BEATS)
    event_w : Out(memory.WritePort.Signature)  host loading (a memory-side port)
    event_r : Out(memory.ReadPort.Signature)  host read-back when idle
    counters, layer_cycles, layer_events : Out(arrays of unsigned(32))
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        W, L = cfg.acc_width, cfg.max_layers
        counter = unsigned(COUNTER_BITS)
        event_addr = addr_width(cfg.event_depth)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "network_addr": In(external.ADDR_BITS),
            "network_w": In(1),
            "header": In(layer_header(cfg)),
            "n_inputs": In(range(cfg.event_depth + 1)),
            "cmd": Out(pe_command(cfg)),
            "pe_potentials": In(data.ArrayLayout(signed(W), cfg.pes)),
            "pe_fired": In(cfg.pes),
            "pe_negative": In(cfg.pes),
            "pe_levels": In(data.ArrayLayout(unsigned(cfg.level_bits), cfg.pes)),
            "pe_counts": In(data.ArrayLayout(count_shape(cfg), cfg.pes)),
            "updates": In(range(cfg.pes + 1)),
            "weight_reads": In(range(cfg.pes + 1)),
            "writebacks": In(range(cfg.pes + 1)),
            "potentials": Out(stream.Signature(potential_sample(cfg))),
            "channels": Out(range(cfg.max_channels + 1)),
            "spikes": In(stream.Signature(spike_group(cfg))),
            "thresholds": Out(ThresholdWrite(cfg)),
            "rate": Out(1),
            "diff": Out(1),
            "step": Out(range(cfg.timing.T)),
            "load": Out(stream.Signature(load_command(cfg))),
            "load_busy": In(1),
            "memory_beat": In(1),
            "event_w": Out(memory.WritePort.Signature(addr_width=event_addr, shape=spike_event(cfg))),
            "event_r": Out(memory.ReadPort.Signature(addr_width=event_addr, shape=spike_event(cfg))),
            "counters": Out(data.ArrayLayout(counter, len(Counter))),
            "layer_cycles": Out(data.ArrayLayout(counter, L)),
            "layer_events": Out(data.ArrayLayout(counter, L)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        T, L = cfg.timing.T, cfg.max_layers
        bus_size = (cfg.bus_bits // 8 - 1).bit_length()  # log2 of the bytes per bus word
        m = Module()
        busy = Signal()
        layer = Signal(range(L + 1))
        desc = self.header.descriptor
        last, rate, diff, stepped = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [last.eq(desc.last), rate.eq(desc.rate), diff.eq(desc.diff), stepped.eq(desc.rate | desc.diff)]
        step = Signal(range(T))  # a rate_if or diff_if layer's step
        cursor = Signal(range(cfg.event_depth + 1))  # where its next step's input events start
        sc_cursor = Signal.like(cursor)  # ... and its shortcut source's
        loaded = Signal()  # the layer's weights are in the buffers (a one-tile rate_if layer loads once)
        sc_loaded = Signal()  # ... and its shortcut's
        # a layer with a shortcut whose two weight sets are one tile each and fit the weight buffer
        # together keeps both: the shortcut's rows follow the layer's, and each set loads once for
        # all of a rate_if layer's steps or a ttfs layer's bands
        resident = Signal()
        m.d.comb += resident.eq(self.header.has_shortcut & (desc.tiles == 1) & (self.header.shortcut.tiles == 1)
                                & (desc.tile_rows + self.header.shortcut.tile_rows <= cfg.weight_buffer))
        # the band of output rows being accumulated and fired: rows [band_first, band_end), pooled
        # rows [band_first >> pool_log2, + band_pooled); a layer that fits is one band of every row
        band = Signal(range(cfg.max_size + 1))
        band_first = Signal(range(cfg.max_size + 1))
        band_end = Signal(range(cfg.max_size + 1))
        band_pool_first = Signal(range(cfg.max_size + 1))
        band_pooled = Signal(range(cfg.max_size + 1))
        last_band = Signal()
        band_top = band_first + desc.band_rows
        m.d.comb += [band_end.eq(Mux(band_top > desc.h_out, desc.h_out, band_top)),
                     band_pool_first.eq(band_first >> desc.pool_log2),
                     band_pooled.eq(Mux(desc.h_pool - band_pool_first < (desc.band_rows >> desc.pool_log2),
                                        desc.h_pool - band_pool_first, desc.band_rows >> desc.pool_log2)),
                     last_band.eq(band == desc.bands - 1)]
        header_addr = Signal(external.ADDR_BITS)
        # the events the grouper reads: the layer's input, or its shortcut source's
        ev_base = Signal(range(cfg.event_depth + 1))
        ev_end = Signal.like(ev_base)
        in_base, in_end = Signal.like(ev_base), Signal.like(ev_base)  # the layer's own input events
        # where spike source j (0: the input, j + 1: hidden layer j's output) starts; source j ends where j + 1 starts
        starts = Array(Signal.like(ev_base, name=f"source_start_{j}") for j in range(L + 1))
        # the accumulation pass: 0 the layer's own synapses, 1 its shortcut's (header.shortcut)
        shortcut_pass = Signal()
        pas = Signal(layer_descriptor(cfg))
        m.d.comb += pas.eq(Mux(shortcut_pass, self.header.shortcut, desc))
        slot = Signal(range(cfg.slot_depth + 1))
        acc = Signal(range(cfg.slot_depth + 1))
        thr_index = Signal(range(T + 1))
        thr_valid = Signal()
        thr_slot = Signal(range(T))
        thr_loading = Signal()
        # weight tile: index, first slot, slots, byte offset from the layer's weight_addr
        tile = Signal(range(cfg.slot_depth + 1))
        tile_first = Signal(range(cfg.slot_depth + 1))
        tile_slots = Signal(range(cfg.slot_depth + 1))
        tile_offset = Signal(external.ADDR_BITS)
        last_tile = Signal()
        m.d.comb += [last_tile.eq(tile == pas.tiles - 1),
                     tile_slots.eq(Mux(last_tile, pas.last_slots, pas.tile_slots))]
        # accumulators [0, dirty) may be nonzero; the rest are zero (hidden layers clear
        # what they fire). After reset or a new descriptor everything may be dirty.
        dirty = Signal(range(cfg.slot_depth + 1))
        dirty_all = Signal(init=1)

        counters = [Signal(unsigned(COUNTER_BITS), name=c.name.lower()) for c in Counter]
        cycles = counters[Counter.CYCLES]
        layer_start = Signal(unsigned(COUNTER_BITS))
        layer_cycles = Array(Signal(unsigned(COUNTER_BITS), name=f"layer_cycles_{k}") for k in range(L))
        layer_events = Array(Signal(unsigned(COUNTER_BITS), name=f"layer_events_{k}") for k in range(L))
        done = Signal()
        for k in range(L):
            m.d.comb += [self.layer_cycles[k].eq(layer_cycles[k]), self.layer_events[k].eq(layer_events[k])]
        for c in Counter:
            if c is not Counter.STATUS:
                m.d.comb += self.counters[c].eq(counters[c])
        m.d.comb += [self.counters[Counter.STATUS].eq(busy | (done << 1)), self.busy.eq(busy), self.done.eq(done)]

        # threshold loading (memory read -> fire unit register file), in parallel with the
        # layer's accumulation; started by DESCRIPTOR for hidden layers
        m.d.sync += thr_valid.eq(0)
        m.d.comb += [self.thresholds.en.eq(thr_valid), self.thresholds.index.eq(thr_slot),
                     self.thresholds.value.eq(self.header.thresholds[thr_slot])]
        with m.If(thr_loading):
            m.d.sync += [thr_valid.eq(1), thr_slot.eq(thr_index), thr_index.eq(thr_index + 1)]
            with m.If(thr_index == T - 1):
                m.d.sync += thr_loading.eq(0)
        thr_ready = Signal()
        m.d.comb += thr_ready.eq(~thr_loading & ~thr_valid)
        with m.If(self.network_w):
            m.d.sync += dirty_all.eq(1)

        # fire pipeline: scanner READ -> PE potentials -> fire unit -> event memory
        m.submodules.scanner = scanner = FireScanner(cfg)
        wiring.connect(m, scanner.potentials, wiring.flipped(self.potentials))
        m.d.comb += [scanner.descriptor.eq(desc), scanner.row_first.eq(band_pool_first), scanner.rows.eq(band_pooled),
                     scanner.pe_potentials.eq(self.pe_potentials),
                     scanner.pe_fired.eq(self.pe_fired), scanner.pe_counts.eq(self.pe_counts),
                     scanner.pe_negative.eq(self.pe_negative), scanner.pe_levels.eq(self.pe_levels),
                     self.rate.eq(rate), self.diff.eq(diff), self.step.eq(step), scanner.step.eq(step),
                     scanner.spikes_pending.eq(self.spikes.valid),
                     self.channels.eq(desc.c_out)]

        # the event memory: the grouper reads while busy, the host otherwise; spikes append
        m.submodules.events = events = EventMemory(cfg)
        wiring.connect(m, wiring.flipped(self.spikes), events.spikes)
        wiring.connect(m, wiring.flipped(self.event_w), events.host_w)
        wiring.connect(m, wiring.flipped(self.event_r), events.host_r)
        m.d.comb += [events.busy.eq(busy), events.append_at.eq(self.n_inputs)]
        with m.If(busy):
            with m.If(self.spikes.valid):
                m.d.sync += counters[Counter.SPIKES].eq(counters[Counter.SPIKES] + self.spikes.payload.count)
            m.d.sync += [cycles.eq(cycles + 1),
                         counters[Counter.ACC_UPDATES].eq(counters[Counter.ACC_UPDATES] + self.updates),
                         counters[Counter.WEIGHT_READS].eq(counters[Counter.WEIGHT_READS] + self.weight_reads),
                         counters[Counter.ACC_WRITEBACKS].eq(counters[Counter.ACC_WRITEBACKS] + self.writebacks),
                         counters[Counter.MEMORY_BEATS].eq(counters[Counter.MEMORY_BEATS] + self.memory_beat)]

        def end_layer():
            m.d.sync += [layer_cycles[layer].eq(cycles + 1 - layer_start), layer_start.eq(cycles + 1),
                         layer_events[layer].eq(in_end - in_base)]

        # -- accumulation: event groups (hw/grouper.py) walked tap by tap (hw/taps.py) ---------
        m.submodules.grouper = grouper = EventGrouper(cfg)
        m.submodules.walker = walker = TapWalker(cfg)
        wiring.connect(m, grouper.groups, walker.groups)
        m.d.comb += [grouper.first.eq(ev_base), grouper.end.eq(ev_end), grouper.kernel_area.eq(pas.kernel_area),
                     grouper.event.eq(events.data), events.read_addr.eq(grouper.read_addr),
                     events.read_en.eq(grouper.read_en),
                     grouper.one_step.eq((rate & ~last) | diff), grouper.step.eq(step), grouper.time_zero.eq(stepped),
                     walker.descriptor.eq(pas), walker.tile_first.eq(tile_first), walker.tile_slots.eq(tile_slots),
                     walker.band_first.eq(band_first), walker.band_end.eq(band_end),
                     walker.weight_offset.eq(Mux(resident & shortcut_pass, desc.tile_rows, 0))]

        def load(addr, beats, rows, target, then, first_row=0):
            """Issue one load command (hw/loader.py); ``then``: the state that waits for it."""
            m.d.comb += [self.load.valid.eq(1), self.load.payload.addr.eq(addr), self.load.payload.beats.eq(beats),
                         self.load.payload.rows.eq(rows), self.load.payload.target.eq(target),
                         self.load.payload.first_row.eq(first_row)]
            with m.If(self.load.ready):
                m.next = then

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += events.restart.eq(1)
                    m.d.sync += [layer.eq(0), in_base.eq(0), in_end.eq(self.n_inputs), starts[0].eq(0),
                                 starts[1].eq(self.n_inputs),
                                 header_addr.eq(self.network_addr), layer_start.eq(0), done.eq(0), acc.eq(0),
                                 busy.eq(1)]
                    m.d.sync += [c.eq(0) for c in counters]
                    m.d.sync += [s.eq(0) for s in layer_cycles] + [s.eq(0) for s in layer_events]
                    m.next = "HEADER"
                    with m.If(dirty_all):
                        m.next = "SETUP_CLEAR"
            with m.State("SETUP_CLEAR"):  # once after reset or a new network address; not counted
                m.d.comb += [self.cmd.clear.eq(1), self.cmd.clear_addr.eq(acc)]
                m.d.sync += acc.eq(acc + 1)
                with m.If(acc == cfg.slot_depth - 1):
                    m.d.sync += [dirty_all.eq(0), dirty.eq(0), layer_start.eq(0)]
                    m.d.sync += [c.eq(0) for c in counters]
                    m.next = "HEADER"
            with m.State("HEADER"):  # the layer's descriptor and thresholds, from external memory
                load(header_addr, header_words(cfg), 1, LoadTarget.HEADER, "HEADER_WAIT")
            with m.State("HEADER_WAIT"):
                with m.If(~self.load_busy):
                    m.next = "DESCRIPTOR"
            with m.State("DESCRIPTOR"):
                m.d.sync += [slot.eq(0), acc.eq(0), tile.eq(0), tile_first.eq(0), tile_offset.eq(0),
                             shortcut_pass.eq(0), ev_base.eq(in_base), ev_end.eq(in_end),
                             step.eq(0), cursor.eq(in_base), sc_cursor.eq(starts[self.header.source]),
                             loaded.eq(0), sc_loaded.eq(0), band.eq(0), band_first.eq(0)]
                m.d.sync += Assert(((~stepped & ~last) | (desc.bands == 1)) & (desc.bands != 0),
                                   "only a hidden ttfs layer runs in more than one band")
                with m.If(~last & ~stepped):
                    m.d.sync += [thr_loading.eq(1), thr_index.eq(0)]
                with m.If((dirty != 0) & ~stepped):
                    m.next = "CLEAR"
                with m.Else():
                    m.next = "LOAD_BIASES"
            with m.State("CLEAR"):  # accumulators a previous layer left nonzero
                m.d.comb += [self.cmd.clear.eq(1), self.cmd.clear_addr.eq(acc)]
                m.d.sync += acc.eq(acc + 1)
                with m.If(acc == dirty - 1):
                    m.d.sync += [dirty.eq(0), acc.eq(0)]
                    m.next = "LOAD_BIASES"
            with m.State("LOAD_BIASES"):
                load(self.network_addr + desc.bias_addr, desc.bias_beats, desc.bias_rows, LoadTarget.BIASES,
                     "LOAD_BIASES_WAIT")
            with m.State("LOAD_BIASES_WAIT"):
                with m.If(~self.load_busy):
                    m.next = "LOAD_WEIGHTS"
                    with m.If(last | stepped):
                        m.next = "INIT"
            with m.State("INIT"):  # output layer: its bias; rate_if hidden layer: the initial potentials;
                # diff_if layer: the state (bias, initial potential) and a zero accumulator
                init_row = Mux(rate & ~last, desc.slots << 1, 0)  # bias block: biases, thresholds, initials
                m.d.comb += [self.cmd.op.eq(PeOp.INIT), self.cmd.acc_addr.eq(desc.acc_base + acc),
                             self.cmd.bias_addr.eq(init_row + slot), self.cmd.diff.eq(diff),
                             self.cmd.param_addr.eq((desc.slots << 1) + slot),
                             self.cmd.pool_unit.eq(acc >= desc.acc_count)]  # a pooled diff_if layer's units
                m.d.sync += [slot.eq(slot + 1), acc.eq(acc + 1)]
                with m.If(slot == desc.slots - 1):
                    m.d.sync += slot.eq(0)
                with m.If(acc == desc.init_count - 1):
                    m.d.sync += slot.eq(0)
                    m.next = "LOAD_WEIGHTS"
            with m.State("LOAD_WEIGHTS"):  # the weights of tile `tile`; none without input events
                with m.If(ev_base == ev_end):
                    m.next = "AFTER_ACCUMULATE"
                with m.Elif((pas.tiles == 1) & Mux(self.header.has_shortcut,
                                                   resident & Mux(shortcut_pass, sc_loaded, loaded), loaded)):
                    # the only tile is still in the buffers (a later step or band)
                    m.next = "ACCUMULATE_FIRST"
                with m.Else():
                    load(self.network_addr + pas.weight_addr + tile_offset,
                         Mux(last_tile, pas.last_beats, pas.tile_beats),
                         Mux(last_tile, pas.last_rows, pas.tile_rows), LoadTarget.WEIGHTS, "LOAD_WEIGHTS_WAIT",
                         first_row=Mux(resident & shortcut_pass, desc.tile_rows, 0))
            with m.State("LOAD_WEIGHTS_WAIT"):
                with m.If(~self.load_busy):
                    with m.If(shortcut_pass):
                        m.d.sync += sc_loaded.eq(1)
                    with m.Else():
                        m.d.sync += loaded.eq(1)
                    m.next = "ACCUMULATE_FIRST"
            with m.State("ACCUMULATE_FIRST"):  # LOAD_WEIGHTS made sure there are events
                m.d.comb += grouper.start.eq(1)
                m.next = "ACCUMULATE"
            with m.State("ACCUMULATE"):
                cmd = walker.cmd
                m.d.comb += self.cmd.eq(cmd)
                # an event counts once, however many tiles, bands (or shortcuts) read it
                with m.If(grouper.taken & (tile == 0) & (band == 0) & ~shortcut_pass):
                    m.d.sync += [counters[Counter.EVENTS_IN].eq(counters[Counter.EVENTS_IN] + 1),
                                 cursor.eq(cursor + 1)]
                with m.If(grouper.taken & (tile == 0) & shortcut_pass):
                    m.d.sync += sc_cursor.eq(sc_cursor + 1)
                with m.If(grouper.done & last_tile):
                    m.next = "AFTER_ACCUMULATE"
                with m.Elif(grouper.done):  # the next tile reads the same events again
                    m.d.sync += [tile.eq(tile + 1), tile_first.eq(tile_first + pas.tile_slots),
                                 tile_offset.eq(tile_offset + (pas.tile_beats << bus_size))]
                    m.next = "LOAD_WEIGHTS"
            with m.State("AFTER_ACCUMULATE"):
                with m.If(self.header.has_shortcut & ~shortcut_pass):  # SHORTCUT: the source's events
                    src = self.header.source
                    m.d.sync += Assert(~last & (src <= layer), "a shortcut feeds a hidden layer from an earlier source")
                    m.d.sync += [shortcut_pass.eq(1), ev_base.eq(Mux(rate, sc_cursor, starts[src])),
                                 ev_end.eq(starts[src + 1]),
                                 tile.eq(0), tile_first.eq(0), tile_offset.eq(0)]
                    m.next = "LOAD_WEIGHTS"
                with m.Elif(last & ~diff):
                    end_layer()
                    m.d.sync += [busy.eq(0), done.eq(1)]
                    m.next = "IDLE"
                with m.Elif(thr_ready):  # a diff_if output layer too: its running means
                    m.d.comb += scanner.start.eq(1)
                    m.next = "FIRE"
            with m.State("FIRE"):  # until the scanner's last sample is taken and its spikes are written
                m.d.comb += self.cmd.eq(scanner.cmd)
                with m.If(scanner.done & stepped & (step != T - 1)):  # the next step of a rate_if or diff_if layer
                    m.d.sync += [step.eq(step + 1), ev_base.eq(cursor), ev_end.eq(in_end), shortcut_pass.eq(0),
                                 tile.eq(0), tile_first.eq(0), tile_offset.eq(0)]
                    m.next = "LOAD_WEIGHTS"
                with m.Elif(scanner.done & last):  # a diff_if output layer's last step: the scores are in
                    end_layer()
                    m.d.sync += [busy.eq(0), done.eq(1)]
                    m.next = "IDLE"
                with m.Elif(scanner.done & ~last_band):  # the next band: the same events, the next rows
                    m.d.sync += [band.eq(band + 1), band_first.eq(band_first + desc.band_rows), ev_base.eq(in_base),
                                 ev_end.eq(in_end), shortcut_pass.eq(0), tile.eq(0), tile_first.eq(0),
                                 tile_offset.eq(0)]
                    m.next = "LOAD_WEIGHTS"
                with m.Elif(scanner.done):
                    end_layer()
                    with m.If(rate):  # what is left after firing stays in the accumulators
                        m.d.sync += dirty.eq(Mux(dirty > desc.acc_count, dirty, desc.acc_count))
                    # a pool remainder row or column was never read, so never cleared
                    with m.Elif(((desc.h_pool << desc.pool_log2) != desc.h_out) |
                                ((desc.w_pool << desc.pool_log2) != desc.w_out)):
                        m.d.sync += dirty.eq(desc.acc_count)
                    m.d.sync += [in_base.eq(in_end), in_end.eq(events.end), starts[layer + 2].eq(events.end),
                                 layer.eq(layer + 1),
                                 header_addr.eq(header_addr + (header_words(cfg) << bus_size))]
                    m.next = "HEADER"
        return m

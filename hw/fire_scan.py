"""FireScanner: reads a hidden layer's potentials, all PEs at once, in pooled-output order."""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import PeOp, count_shape, layer_descriptor, pe_command, potential_sample


class FireScanner(wiring.Component):
    """After accumulation, walks every PE's potentials at one accumulator address per cycle,
    in pooled-output order: pooled row, pooled column, channel group (slot), then the pool
    window (dx fastest). Each address goes out as a READ with the bias added; one cycle later
    the PEs' potentials, with their coordinates, are offered to the fire unit. A sample the
    fire unit does not take is read again (same address) the next cycle; in the cycle it is
    taken the accumulator is cleared, so the next layer finds zeros (hw/pe.py).

    A rate_if layer (``descriptor.rate``) is scanned once per step: the READs carry
    ``subtract`` and the threshold's address (bias buffer row ``slots + slot``), and the
    write-back in the cycle a sample is taken keeps what is left after firing instead of 0.
    A diff_if layer's READs carry ``diff``, the step and the threshold's address; the PEs run
    the step and write the neuron's state back when its sample is taken (hw/pe.py). The output
    layer of a diff_if network is scanned too, every step (``readout``: its running means are
    updated, nothing fires), at its accumulators (``acc_base`` on). A pooled diff_if layer's
    window is followed by one more READ (``pool_unit``, at ``acc_count`` + the window's index):
    the window's pool unit, whose sample alone ends the window (``last``) and carries its spike.

    A layer that runs in bands of output rows (docs/hardware.md, "Bands") is scanned a band at
    a time: the pooled rows ``row_first`` to ``row_first + rows - 1``, whose accumulators start
    where row 0's would (the band's rows are relative to its first); spikes carry the rows'
    own coordinates.

    Members
    -------
    start : In(1)  pulse: scan the layer ``descriptor`` describes
    descriptor : In(layer_descriptor)
    row_first, rows : In  the band's first pooled row and its pooled rows (all: 0 and h_pool)
    step : In  the step a rate_if or diff_if scan belongs to
    cmd : Out(pe_command)  READ and clear commands to the PEs
    pe_potentials : In(array of signed(acc_width))  the PEs' ``potential`` outputs
    pe_fired, pe_negative, pe_levels, pe_counts : In  the PEs' ``fired``, ``negative``, ``level`` and ``count``
    potentials : Out(stream.Signature(potential_sample))  to the fire unit
    spikes_pending : In(1)  the fire unit still has spikes on its way to the event memory
    done : Out(1)  the last sample was taken and its spikes have left (the layer can end)
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        super().__init__({
            "start": In(1),
            "descriptor": In(layer_descriptor(cfg)),
            "row_first": In(range(cfg.max_size + 1)), "rows": In(range(cfg.max_size + 1)),
            "step": In(range(cfg.timing.T)),
            "cmd": Out(pe_command(cfg)),
            "pe_potentials": In(data.ArrayLayout(signed(cfg.acc_width), cfg.pes)),
            "pe_fired": In(cfg.pes),
            "pe_negative": In(cfg.pes),
            "pe_levels": In(data.ArrayLayout(unsigned(cfg.level_bits), cfg.pes)),
            "pe_counts": In(data.ArrayLayout(count_shape(cfg), cfg.pes)),
            "potentials": Out(stream.Signature(potential_sample(cfg))),
            "spikes_pending": In(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg, desc = self.cfg, self.descriptor
        P = cfg.pes
        m = Module()
        size = range(cfg.max_size + 1)
        # pooled row (within the band) and column, and the offset in the pool window
        py, px, dy, dx = (Signal(size, name=n) for n in ("py", "px", "dy", "dx"))
        slot = Signal(range(cfg.slot_depth + 1))
        ch_base = Signal(range(cfg.slot_depth * P + P + 1))
        scanning, flushing = Signal(), Signal()
        valid = Signal()  # a READ's potentials are on the PEs' outputs this cycle
        sample = Signal(potential_sample(cfg))  # their coordinates; values come from the PEs
        held_addr = Signal.like(self.cmd.acc_addr)  # address of the sample presented
        held_bias = Signal.like(self.cmd.bias_addr)
        held_param = Signal.like(self.cmd.param_addr)  # a rate_if threshold's row
        held_first, held_unit = Signal(), Signal()
        # a pooled diff_if layer: after each window, its pool unit (``unit``-th, at acc_count + unit)
        units = Signal()
        unit_next = Signal()  # the next READ is the window's pool unit
        unit = Signal(range(cfg.slot_depth + 1))
        m.d.comb += units.eq(desc.diff & (desc.pool_log2 != 0))
        pool_last = Signal(size)
        addr = Signal.like(self.cmd.acc_addr)
        m.d.comb += [pool_last.eq((1 << desc.pool_log2) - 1),
                     addr.eq(desc.acc_base + (((py << desc.pool_log2) + dy) * desc.row_stride)
                             + (((px << desc.pool_log2) + dx) * desc.slots) + slot)]

        taken = Signal()
        m.d.comb += [taken.eq(~valid | self.potentials.ready),
                     self.potentials.valid.eq(valid), self.potentials.payload.eq(sample),
                     self.potentials.payload.values.eq(self.pe_potentials),
                     self.potentials.payload.fired.eq(self.pe_fired), self.potentials.payload.counts.eq(self.pe_counts),
                     self.potentials.payload.negative.eq(self.pe_negative),
                     self.potentials.payload.levels.eq(self.pe_levels),
                     self.done.eq(flushing & ~valid & ~self.spikes_pending)]
        with m.If(valid & self.potentials.ready):
            m.d.sync += valid.eq(0)
            m.d.comb += [self.cmd.clear.eq(1), self.cmd.clear_addr.eq(held_addr)]

        # a sample not taken is read again: the PEs' outputs show the held address
        m.d.comb += [self.cmd.op.eq(PeOp.READ), self.cmd.acc_addr.eq(held_addr), self.cmd.bias_addr.eq(held_bias),
                     self.cmd.param_addr.eq(held_param), self.cmd.add_bias.eq(~desc.diff),
                     self.cmd.subtract.eq(desc.rate), self.cmd.diff.eq(desc.diff), self.cmd.readout.eq(desc.last),
                     self.cmd.time.eq(self.step), self.cmd.first.eq(held_first), self.cmd.pool_unit.eq(held_unit),
                     self.cmd.levels.eq(desc.levels)]
        def next_window():
            """The window after this one: the next slot, then the next pooled position."""
            m.d.sync += [slot.eq(slot + 1), ch_base.eq(ch_base + P)]
            with m.If(slot == desc.slots - 1):
                m.d.sync += [slot.eq(0), ch_base.eq(0), px.eq(px + 1)]
                with m.If(px == desc.w_pool - 1):
                    m.d.sync += [px.eq(0), py.eq(py + 1)]
                    with m.If(py == self.rows - 1):
                        m.d.sync += [scanning.eq(0), flushing.eq(1)]

        with m.If(self.start):
            m.d.sync += Assert(~scanning & ~flushing & ~valid, "a scan started while one runs")
            m.d.sync += [scanning.eq(1), py.eq(0), px.eq(0), dy.eq(0), dx.eq(0), slot.eq(0), ch_base.eq(0),
                         unit.eq(0), unit_next.eq(0)]
        with m.Elif(scanning & taken & unit_next):  # the window's pool unit: its spike is the window's
            unit_addr = desc.acc_count + unit
            m.d.comb += [self.cmd.acc_addr.eq(unit_addr), self.cmd.bias_addr.eq(slot),
                         self.cmd.param_addr.eq(desc.slots + slot), self.cmd.first.eq(0), self.cmd.pool_unit.eq(1)]
            m.d.sync += [valid.eq(1), held_addr.eq(unit_addr), held_bias.eq(slot), held_param.eq(desc.slots + slot),
                         held_first.eq(0), held_unit.eq(1), sample.first.eq(1), sample.last.eq(1),
                         unit_next.eq(0), unit.eq(unit + 1)]
            next_window()
        with m.Elif(scanning & taken):
            window_first = (dy == 0) & (dx == 0)
            window_last = (dy == pool_last) & (dx == pool_last)
            m.d.comb += [self.cmd.acc_addr.eq(addr), self.cmd.bias_addr.eq(slot),
                         self.cmd.param_addr.eq(desc.slots + slot), self.cmd.first.eq(window_first),
                         self.cmd.pool_unit.eq(0)]
            m.d.sync += [valid.eq(1), held_addr.eq(addr), held_bias.eq(slot), held_param.eq(desc.slots + slot),
                         held_first.eq(window_first), held_unit.eq(0),
                         sample.channel_base.eq(ch_base), sample.y.eq(self.row_first + py), sample.x.eq(px),
                         sample.first.eq(window_first), sample.last.eq(window_last & ~units)]
            m.d.sync += dx.eq(dx + 1)
            with m.If(dx == pool_last):
                m.d.sync += [dx.eq(0), dy.eq(dy + 1)]
                with m.If(dy == pool_last):
                    m.d.sync += dy.eq(0)
                    with m.If(units):
                        m.d.sync += unit_next.eq(1)
                    with m.Else():
                        next_window()
        with m.If(self.done):
            m.d.sync += flushing.eq(0)
        return m

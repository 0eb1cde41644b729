"""TapWalker: the accumulate address generator, one PE command per (kernel tap, slot, event)."""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import PeOp, event_group, layer_descriptor, pe_command


class TapWalker(wiring.Component):
    """Turns each event group into the ACCUM commands of its synaptic updates.

    The group's events share a position (y, x), so they touch the same output positions:
    the kernel taps whose window covers (y, x). Their range is computed from the position in
    the group's first cycle (no cycle is spent on a tap outside the image or off the stride
    grid). Per tap (row ``jy``, then column ``jx``), per slot of the weight tile, the group's
    events follow one another as one run on one accumulator: ``first`` on the first event,
    ``last`` on the last, so each PE reads and writes that accumulator once (hw/pe.py).
    A group costs ``max(1, taps * tile_slots * count)`` cycles; the group is taken in its
    last cycle. Each command says how many PEs hold a channel of its slot (``live_pes``: all
    but in the layer's last slot, where ``c_out`` may end before the last PE), so idle PEs
    read no weight and write no accumulator.

    A layer whose accumulators do not fit runs in bands of output rows (docs/hardware.md,
    "Bands"): only the rows ``[band_first, band_end)`` are accumulated, row ``band_first`` at
    the accumulators where row 0 would be.

    Per axis, for input coordinate v: a = v + padding; the taps k with (a - k) a multiple of
    the stride and lo <= (a - k) >> stride_log2 < hi (columns: 0 and w_out; rows: the band)
    are k0, k0 + stride, ..., where o_max = min(a >> stride_log2, hi - 1) and
    k0 = a - (o_max << stride_log2); there are none when o_max < lo.

    Members
    -------
    groups : In(stream.Signature(event_group))  from hw/grouper.py
    descriptor : In(layer_descriptor)  the layer's
    tile_first, tile_slots : In  the weight tile's first slot and its slots
    band_first, band_end : In  the output rows of the band (all rows: 0 and h_out)
    weight_offset : In  the weight buffer row where the tile starts (0 unless two weight sets share the buffer)
    cmd : Out(pe_command)  ACCUM commands, NOP when there is no group
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        slots = range(cfg.slot_depth + 1)
        super().__init__({
            "groups": In(stream.Signature(event_group(cfg))),
            "descriptor": In(layer_descriptor(cfg)),
            "tile_first": In(slots), "tile_slots": In(slots),
            "band_first": In(range(cfg.max_size + 1)), "band_end": In(range(cfg.max_size + 1)),
            "weight_offset": In(range(cfg.weight_buffer)),
            "cmd": Out(pe_command(cfg)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        desc, group = self.descriptor, self.groups.payload
        size = range(cfg.max_size + 1)

        def taps(v, kernel, lo, hi, name):
            """(k0, o_max - lo, n): the first tap, its output relative to ``lo``, the tap count."""
            a = Signal(range(2 * cfg.max_size + 1), name=f"{name}_a")
            o_top = Signal(range(2 * cfg.max_size + 1), name=f"{name}_o_top")
            o_max = Signal(size, name=f"{name}_o_max")
            o_rel = Signal(size, name=f"{name}_o_rel")
            k0 = Signal(range(2 * cfg.max_size + 1), name=f"{name}_k0")
            n = Signal(size, name=f"{name}_n")
            q = Signal(size, name=f"{name}_q")
            m.d.comb += [a.eq(v + desc.padding), o_top.eq(a >> desc.stride_log2),
                         o_max.eq(Mux(o_top > hi - 1, hi - 1, o_top)), o_rel.eq(o_max - lo),
                         k0.eq(a - (o_max << desc.stride_log2)),
                         q.eq(((kernel - 1 - k0) >> desc.stride_log2) + 1)]
            with m.If((k0 < kernel) & (o_max >= lo)):
                m.d.comb += n.eq(Mux(o_rel + 1 < q, o_rel + 1, q))
            return k0, o_rel, n

        ky0, oy0, ny0 = taps(group.y, desc.kh, self.band_first, self.band_end, "ty")
        kx0, ox0, nx0 = taps(group.x, desc.kw, 0, desc.w_out, "tx")
        # w: weight buffer offset of the tap and slot (the event adds channel * kernel_area);
        # a: accumulator address (rows relative to the band's first). Both step by additions only.
        w0 = Signal.like(self.cmd.weight_addr)
        a0 = Signal.like(self.cmd.acc_addr)
        m.d.comb += [w0.eq(ky0 * desc.kw + kx0 + self.weight_offset),
                     a0.eq(desc.acc_base + oy0 * desc.row_stride + ox0 * desc.slots + self.tile_first)]

        first = Signal(init=1)  # the next valid cycle starts a group: loop state comes from its position
        ny, nx, jy, jx = (Signal(size, name=n) for n in ("ny", "nx", "jy", "jx"))
        slot = Signal.like(self.tile_slots)
        index = Signal(range(cfg.group_size))
        w_row, w_col, w_cur = (Signal.like(w0, name=n) for n in ("w_row", "w_col", "w_cur"))
        a_row, a_col, a_cur = (Signal.like(a0, name=n) for n in ("a_row", "a_col", "a_cur"))
        c_ny, c_nx, c_jy, c_jx = (Signal(size, name=f"c_{n}") for n in ("ny", "nx", "jy", "jx"))
        c_slot, c_index = Signal.like(slot), Signal.like(index)
        c_w_row, c_w_col, c_w = (Signal.like(w0, name=f"c_{n}") for n in ("w_row", "w_col", "w"))
        c_a_row, c_a_col, c_a = (Signal.like(a0, name=f"c_{n}") for n in ("a_row", "a_col", "a"))
        with m.If(first):
            m.d.comb += [c_ny.eq(ny0), c_nx.eq(nx0), c_jy.eq(0), c_jx.eq(0), c_slot.eq(0), c_index.eq(0),
                         c_w_row.eq(w0), c_w_col.eq(w0), c_w.eq(w0), c_a_row.eq(a0), c_a_col.eq(a0), c_a.eq(a0)]
        with m.Else():
            m.d.comb += [c_ny.eq(ny), c_nx.eq(nx), c_jy.eq(jy), c_jx.eq(jx), c_slot.eq(slot), c_index.eq(index),
                         c_w_row.eq(w_row), c_w_col.eq(w_col), c_w.eq(w_cur),
                         c_a_row.eq(a_row), c_a_col.eq(a_col), c_a.eq(a_cur)]
        last_event = c_index == group.count - 1
        group_done = Signal()
        m.d.comb += group_done.eq((c_ny == 0) | (c_nx == 0) |
                                  (last_event & (c_slot == self.tile_slots - 1) & (c_jx == c_nx - 1)
                                   & (c_jy == c_ny - 1)))

        with m.If(self.groups.valid):
            m.d.sync += Assert(group.count != 0, "an empty event group")
            entry = group.events[c_index]
            with m.If((c_ny != 0) & (c_nx != 0)):
                m.d.comb += [self.cmd.op.eq(PeOp.ACCUM), self.cmd.acc_addr.eq(c_a),
                             self.cmd.weight_addr.eq(entry.weight_base + c_w), self.cmd.time.eq(entry.time),
                             self.cmd.negative.eq(entry.negative), self.cmd.level.eq(entry.level),
                             self.cmd.first.eq(c_index == 0), self.cmd.last.eq(last_event),
                             self.cmd.live_pes.eq(Mux(self.tile_first + c_slot == desc.slots - 1, desc.last_pes,
                                                      cfg.pes))]
            # next (event, slot, kx, ky): the group's events fastest, then the slot, the kernel column, the row
            m.d.sync += [first.eq(0), ny.eq(c_ny), nx.eq(c_nx), jy.eq(c_jy), jx.eq(c_jx), slot.eq(c_slot),
                         index.eq(c_index), w_row.eq(c_w_row), w_col.eq(c_w_col), w_cur.eq(c_w),
                         a_row.eq(c_a_row), a_col.eq(c_a_col), a_cur.eq(c_a)]
            with m.If(~last_event):
                m.d.sync += index.eq(c_index + 1)
            with m.Elif(c_slot != self.tile_slots - 1):
                m.d.sync += [index.eq(0), slot.eq(c_slot + 1), w_cur.eq(c_w + desc.slot_stride), a_cur.eq(c_a + 1)]
            with m.Elif(c_jx != c_nx - 1):
                step_w = c_w_col + (1 << desc.stride_log2)
                step_a = c_a_col - desc.slots
                m.d.sync += [index.eq(0), slot.eq(0), jx.eq(c_jx + 1), w_col.eq(step_w), w_cur.eq(step_w),
                             a_col.eq(step_a), a_cur.eq(step_a)]
            with m.Else():
                step_w = c_w_row + (desc.kw << desc.stride_log2)
                step_a = c_a_row - desc.row_stride
                m.d.sync += [index.eq(0), slot.eq(0), jx.eq(0), jy.eq(c_jy + 1), w_row.eq(step_w),
                             w_col.eq(step_w), w_cur.eq(step_w), a_row.eq(step_a), a_col.eq(step_a),
                             a_cur.eq(step_a)]
            with m.If(group_done):
                m.d.comb += self.groups.ready.eq(1)
                m.d.sync += first.eq(1)
        return m

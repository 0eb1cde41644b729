"""EventGrouper: a layer's input events, read from the event memory, as groups that share a position."""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import event_group, spike_event


class EventGrouper(wiring.Component):
    """Reads events ``[first, end)`` one per cycle and emits runs of up to ``group_size``
    consecutive events with the same (y, x) as one group.

    Events at one position touch the same accumulators (every channel of a position has the
    same kernel taps), so the tap walker (hw/taps.py) can add a whole group into a PE's
    running sum per accumulator access. The fire stage writes spikes position by position and
    the host writes input events in (y, x, c) order, so a position's events are consecutive.

    Two group registers: one being collected, one on the output stream. An event that does
    not fit the group being collected (another position, or a full group) ends it: if the
    output is free (empty, or the consumer takes the previous group this cycle), the group
    moves there and the event opens the next group in the same cycle; if not, the group is
    complete and waits, and the event stays on the event memory's output (no new read)
    until the cycle the group moves, when it opens the next. So collection loses no cycle
    between groups. The last group (and one ended by a later step's event) moves the cycle
    after it completes, or later.

    A rate_if layer's events are stored step by step (each step's in position order). Its
    hidden layers accumulate one step at a time: with ``one_step`` the pass also ends at the
    first event whose time is not ``step`` (it stays unread, one cycle to see it). With
    ``time_zero`` every entry gets time 0: a binary spike's contribution (spec section 12).
    diff_if layers (hidden and output) run the same way; an entry keeps its event's sign.

    Members
    -------
    start : In(1)  pulse: begin a pass over events ``[first, end)`` (the caller makes sure
        ``first < end``); its read of ``first`` goes out in this cycle
    first, end : In  event memory addresses
    kernel_area : In  the layer's ``kh * kw``: a group entry's weight base is ``channel * kernel_area``
    one_step, step, time_zero : In  rate_if passes (above)
    read_addr, read_en : Out  the event memory's synchronous read port ...
    event : In(spike_event)  ... and its data, one cycle after an enabled read
    taken : Out(1)  an event joined a group this cycle
    groups : Out(stream.Signature(event_group))
    done : Out(1)  no pass in progress, or its last group is being taken this cycle
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        addr = range(cfg.event_depth + 1)
        super().__init__({
            "start": In(1), "first": In(addr), "end": In(addr),
            "kernel_area": In(range(cfg.max_size ** 2 + 1)),
            "one_step": In(1), "step": In(range(cfg.timing.T)), "time_zero": In(1),
            "read_addr": Out(addr), "read_en": Out(1), "event": In(spike_event(cfg)),
            "taken": Out(1),
            "groups": Out(stream.Signature(event_group(cfg))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        ptr = Signal.like(self.first)
        have = Signal()  # self.event holds an event not yet in a group
        building = Signal(event_group(cfg))
        complete = Signal()  # building is a whole group
        out = self.groups
        event = self.event

        taking = out.valid & out.ready
        free = ~out.valid | out.ready  # the output register can take a group this cycle
        move = complete & free
        m.d.comb += self.done.eq(~have & ~complete & (building.count == 0) & free)
        with m.If(move):
            m.d.sync += [out.payload.eq(building), out.valid.eq(1), building.count.eq(0), complete.eq(0)]
        with m.Elif(taking):
            m.d.sync += out.valid.eq(0)

        kept = Signal.like(building.count)  # entries that stay in the group register this cycle
        m.d.comb += kept.eq(Mux(move, 0, building.count))
        fits = (kept == 0) | ((event.y == building.y) & (event.x == building.x) & (building.count != cfg.group_size))
        leave = Signal()  # the event does not fit: the group leaves now and the event opens the next
        with m.If(self.start):
            m.d.comb += [self.read_addr.eq(self.first), self.read_en.eq(1)]
            m.d.sync += [ptr.eq(self.first + 1), have.eq(1)]
            m.d.sync += Assert(self.first < self.end, "a pass over no events")
        with m.Elif(have & (~complete | move)):
            with m.If(self.one_step & (event.time != self.step)):  # a later step's event ends the pass
                m.d.sync += [have.eq(0), complete.eq(kept != 0)]
            with m.Elif(fits | free):
                m.d.comb += leave.eq(~fits)
                with m.If(leave):
                    m.d.sync += [out.payload.eq(building), out.valid.eq(1)]
                index = Mux(leave, 0, kept)
                entry = building.events[index]
                m.d.comb += self.taken.eq(1)
                m.d.sync += [entry.weight_base.eq(event.channel * self.kernel_area),
                             entry.time.eq(Mux(self.time_zero, 0, event.time)), entry.negative.eq(event.negative),
                             entry.level.eq(event.level),
                             building.count.eq(index + 1), building.y.eq(event.y), building.x.eq(event.x)]
                with m.If(ptr == self.end):
                    m.d.sync += [have.eq(0), complete.eq(1)]
                with m.Else():
                    m.d.comb += [self.read_addr.eq(ptr), self.read_en.eq(1)]
                    m.d.sync += ptr.eq(ptr + 1)
            with m.Else():
                m.d.sync += complete.eq(1)
        return m

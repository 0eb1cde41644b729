"""EventMemory: every layer's spike events, in banks so the fire stage can append several per cycle."""
from __future__ import annotations

from amaranth.hdl import Array, Assert, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import addr_width, spike_event, spike_group



class EventMemory(wiring.Component):
    """``event_depth`` spike events in ``spike_lanes`` banks: event address a is row
    a // lanes of bank a % lanes, so the up to ``spike_lanes`` spikes of one group from
    the fire stage go to consecutive addresses, one per bank, in one cycle. Readers see
    one linear address space; a read answers, one cycle later, the address of the last
    enabled read (the bank index is kept with it).

    While ``busy`` the datapath owns the memory: the event grouper reads, spikes append at
    the write pointer. Otherwise the host writes input events and reads results.

    Members
    -------
    busy : In(1)  the array runs a network
    restart : In(1)  pulse: the write pointer moves to ``append_at`` (the first spike of a
        run goes after its input events)
    append_at : In  the write pointer's new value
    end : Out  the write pointer: one past the last event written
    read_addr, read_en : In  datapath read (while busy)
    data : Out(spike_event)  the event read, for the datapath and the host
    spikes : In(stream.Signature(spike_group))  appended at the write pointer; always ready
    host_w : Out(memory.WritePort.Signature)  host writes (while idle; a memory-side port)
    host_r : Out(memory.ReadPort.Signature)  host reads (while idle); its data is ``data``
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        addr = range(cfg.event_depth + 1)
        bits = addr_width(cfg.event_depth)
        super().__init__({
            "busy": In(1), "restart": In(1), "append_at": In(addr), "end": Out(addr),
            "read_addr": In(addr), "read_en": In(1), "data": Out(spike_event(cfg)),
            "spikes": In(stream.Signature(spike_group(cfg))),
            "host_w": Out(memory.WritePort.Signature(addr_width=bits, shape=spike_event(cfg))),
            "host_r": Out(memory.ReadPort.Signature(addr_width=bits, shape=spike_event(cfg))),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        E, lb = cfg.spike_lanes, cfg.lane_bits
        m = Module()
        banks = []
        for b in range(E):
            mem = memory.Memory(shape=spike_event(cfg), depth=cfg.event_bank_depth, init=[])
            m.submodules[f"bank{b}"] = mem
            banks.append((mem.read_port(), mem.write_port()))

        wptr = Signal.like(self.end)
        m.d.comb += self.end.eq(wptr)
        raddr, ren = Signal.like(self.read_addr), Signal()
        m.d.comb += [raddr.eq(self.read_addr), ren.eq(self.read_en)]
        with m.If(~self.busy):
            m.d.comb += [raddr.eq(self.host_r.addr), ren.eq(self.host_r.en)]
        bank_r = Signal(range(E))
        if E > 1:
            with m.If(ren):
                m.d.sync += bank_r.eq(raddr[:lb])
        m.d.comb += [self.data.eq(Array(rd.data for rd, _ in banks)[bank_r]), self.host_r.data.eq(self.data)]

        group = self.spikes.payload
        m.d.comb += self.spikes.ready.eq(1)
        for b, (rd, wr) in enumerate(banks):
            m.d.comb += [rd.addr.eq(raddr >> lb), rd.en.eq(ren)]
            with m.If(~self.busy):
                m.d.comb += [wr.addr.eq(self.host_w.addr >> lb), wr.data.eq(self.host_w.data),
                             wr.en.eq(self.host_w.en & (self.host_w.addr[:lb] == b if E > 1 else 1))]
            with m.Else():  # spike lane i of the group goes to bank (wptr + i) % E
                lane = Signal(range(E), name=f"bank{b}_lane")
                if E > 1:
                    m.d.comb += lane.eq((b + E - wptr[:lb])[:lb])
                m.d.comb += [wr.addr.eq((wptr + lane) >> lb), wr.data.eq(group.events[lane]),
                             wr.en.eq(self.spikes.valid & (lane < group.count))]
        with m.If(self.restart):
            m.d.sync += wptr.eq(self.append_at)
        with m.Elif(self.busy & self.spikes.valid):
            m.d.sync += wptr.eq(wptr + group.count)
            m.d.sync += Assert(wptr + group.count <= cfg.event_depth, "more events than the event memory holds")
        return m

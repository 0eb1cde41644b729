"""NeuronArray: the top level: PEs, fire unit, sequencer, loader, the host bus and the memory bus."""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from firstspike.sw.formats import WEIGHT_BITS

from . import external
from .axi import BurstReader
from .config import ArrayConfig, Control, Counter, Region
from .fire import FireUnit
from .layouts import PeOp, spike_event
from .loader import BufferLoader, max_request_words
from .pe import ProcessingElement
from .sequencer import Sequencer


class HostBus(wiring.Signature):
    """Word-wide memory-mapped access for a host (a CPU, or the testbench).

    Members (host's view): ``addr`` = region << offset_bits | offset, ``w_data``, ``w_en``
    (writes are ignored while the array is busy), ``r_data`` (the word at the ``addr`` of
    the previous cycle). Regions are listed in :class:`hw.config.Region`.
    """

    def __init__(self, cfg: ArrayConfig):
        super().__init__({
            "addr": Out(cfg.addr_bits),
            "w_data": Out(host_data_bits(cfg)),
            "w_en": Out(1),
            "r_data": In(host_data_bits(cfg)),
        })


def host_data_bits(cfg: ArrayConfig) -> int:
    return max(32, external.ADDR_BITS, cfg.acc_width, spike_event(cfg).size)


class NeuronArray(wiring.Component):
    """A TTFS spiking neural network processor with ``cfg.pes`` processing elements.

    The network stays in external memory (layout: hw/external.py): a table of layer headers
    (descriptor and thresholds), then every layer's biases and weights, read over the AXI4
    bus ``axi`` into fixed-size on-chip buffers as each layer runs. The Verilog depends on
    the configuration only, never on a network.

    Run protocol: write the network's byte address (CONTROL offset 0; 0 after reset) if it
    changed, write the input events to region EVENTS from address 0 and their count
    (CONTROL offset 1), pulse ``start``, wait for ``done``. Then read
    the counters (CONTROL), per-layer cycles and event counts, every layer's events
    (EVENTS) and the output potentials (each PE's potential region; neuron j at PE j % pes,
    offset j // pes).

    Members
    -------
    start : In(1);  busy, done : Out(1);  host : In(HostBus);  axi : Out(AxiReadBus)
    memory_error : Out(1)  an external read returned an error response (stays high until reset)
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        self._reader = BurstReader(external.ADDR_BITS, cfg.bus_bits, max_request_words(cfg))
        super().__init__({"start": In(1), "busy": Out(1), "done": Out(1), "host": In(HostBus(cfg)),
                          "axi": Out(self._reader.bus), "memory_error": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.sequencer = seq = Sequencer(cfg)
        m.submodules.fire = fire = FireUnit(cfg)
        m.submodules.reader = reader = self._reader
        m.submodules.loader = loader = BufferLoader(cfg)
        wiring.connect(m, seq.load, loader.command)
        wiring.connect(m, loader.request, reader.request)
        wiring.connect(m, reader.data, loader.words)
        wiring.connect(m, reader.axi, wiring.flipped(self.axi))
        m.d.comb += [seq.load_busy.eq(loader.busy), seq.header.eq(loader.header),
                     seq.memory_beat.eq(reader.data.valid & reader.data.ready),
                     self.memory_error.eq(reader.error)]
        pes = []
        for p in range(cfg.pes):
            pe = ProcessingElement(cfg, p)
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)
            for port, load, bits in ((pe.weight_w, loader.weight_w, WEIGHT_BITS),
                                     (pe.bias_w, loader.bias_w, cfg.acc_width)):
                m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data[p * bits:(p + 1) * bits]),
                             port.en.eq(load.en)]

        wiring.connect(m, seq.potentials, fire.potentials)
        wiring.connect(m, fire.spikes, seq.spikes)
        wiring.connect(m, seq.thresholds, fire.thresholds)
        m.d.comb += [fire.channels.eq(seq.channels), fire.rate.eq(seq.rate), fire.diff.eq(seq.diff),
                     fire.step.eq(seq.step)]

        host = self.host
        region = host.addr[cfg.offset_bits:]
        offset = host.addr[:cfg.offset_bits]
        idle = ~seq.busy
        writing = host.w_en & idle

        network_addr = Signal.like(seq.network_addr)
        n_inputs = Signal.like(seq.n_inputs)
        with m.If(writing & (region == Region.CONTROL)):
            with m.If(offset == Control.NETWORK_ADDRESS):
                m.d.sync += network_addr.eq(host.w_data)
                m.d.comb += seq.network_w.eq(1)
            with m.If(offset == Control.INPUT_EVENTS):
                m.d.sync += n_inputs.eq(host.w_data)
        m.d.comb += [seq.network_addr.eq(network_addr), seq.n_inputs.eq(n_inputs), seq.start.eq(self.start),
                     self.busy.eq(seq.busy), self.done.eq(seq.done)]
        m.d.comb += [seq.event_w.addr.eq(offset), seq.event_w.data.eq(host.w_data),
                     seq.event_w.en.eq(writing & (region == Region.EVENTS))]
        m.d.comb += [seq.event_r.addr.eq(offset), seq.event_r.en.eq(1)]

        updates = reads = writebacks = 0
        for p, pe in enumerate(pes):
            m.d.comb += [seq.pe_potentials[p].eq(pe.potential), seq.pe_fired[p].eq(pe.fired),
                         seq.pe_negative[p].eq(pe.negative), seq.pe_levels[p].eq(pe.level),
                         seq.pe_counts[p].eq(pe.count)]
            # while idle, the host reads potentials through a READ command
            with m.If(seq.busy):
                m.d.comb += pe.cmd.eq(seq.cmd)
            with m.Else():
                m.d.comb += [pe.cmd.op.eq(PeOp.READ), pe.cmd.acc_addr.eq(offset)]
            updates, reads, writebacks = updates + pe.updated, reads + pe.weight_read, writebacks + pe.written_back
        m.d.comb += [seq.updates.eq(updates), seq.weight_reads.eq(reads), seq.writebacks.eq(writebacks)]

        # reads answer the address of the previous cycle
        region_r = Signal.like(region)
        offset_r = Signal.like(offset)
        m.d.sync += [region_r.eq(region), offset_r.eq(offset)]
        with m.Switch(region_r):
            with m.Case(Region.CONTROL):
                for c in Counter:
                    with m.If(offset_r == c):
                        m.d.comb += host.r_data.eq(seq.counters[c])
            with m.Case(Region.LAYER_CYCLES):
                m.d.comb += host.r_data.eq(seq.layer_cycles[offset_r])
            with m.Case(Region.LAYER_EVENTS):
                m.d.comb += host.r_data.eq(seq.layer_events[offset_r])
            with m.Case(Region.EVENTS):
                m.d.comb += host.r_data.eq(seq.event_r.data)
            for p, pe in enumerate(pes):
                with m.Case(cfg.pe_region(p)):
                    m.d.comb += host.r_data.eq(pe.potential.as_unsigned())
        return m

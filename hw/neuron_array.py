"""NeuronArray: the top level: PEs, fire unit, sequencer, loader, the host bus and the memory bus."""
from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from firstspike.sw.formats import WEIGHT_BITS

from . import external
from .axi import BurstReader
from .config import ArrayConfig, Counter, NetworkImage, Region
from .fire import FireUnit
from .layouts import PeOp, layer_descriptor, spike_event
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
    return max(32, cfg.acc_width, layer_descriptor(cfg).size, spike_event(cfg).size)


class NeuronArray(wiring.Component):
    """A TTFS spiking neural network processor with ``cfg.pes`` processing elements.

    Biases and weights stay in external memory (layout: hw/external.py), read over the AXI4
    bus ``axi`` into fixed-size on-chip buffers as each layer runs. The layer descriptors
    and thresholds are loaded over the host bus. With an ``image``, those tables start with
    that network and ``n_layers`` resets to its layer count, so the design runs it after
    reset without a host (the external memory must hold the image's ``memory``).

    Run protocol: write the input events to region EVENTS from address 0, write
    ``n_input_events`` (CONTROL offset 1), pulse ``start``, wait for ``done``. Then read
    the counters (CONTROL), per-layer cycles and event counts, every layer's events
    (EVENTS) and the output potentials (each PE's potential region; neuron j at PE j % pes,
    offset j // pes).

    Members
    -------
    start : In(1);  busy, done : Out(1);  host : In(HostBus);  axi : Out(AxiReadBus)
    memory_error : Out(1)  an external read returned an error response (stays high until reset)
    """

    def __init__(self, cfg: ArrayConfig, image: NetworkImage | None = None):
        self.cfg = cfg
        self.image = image
        self._reader = BurstReader(external.ADDR_BITS, cfg.bus_bits, max_request_words(cfg))
        super().__init__({"start": In(1), "busy": Out(1), "done": Out(1), "host": In(HostBus(cfg)),
                          "axi": Out(self._reader.bus), "memory_error": Out(1)})

    def elaborate(self, platform):
        cfg, image = self.cfg, self.image
        m = Module()
        m.submodules.sequencer = seq = Sequencer(
            cfg,
            descriptor_init=[asdict(d) for d in image.descriptors] if image else (),
            threshold_init=image.thresholds if image else ())
        m.submodules.fire = fire = FireUnit(cfg)
        m.submodules.reader = reader = self._reader
        m.submodules.loader = loader = BufferLoader(cfg)
        wiring.connect(m, seq.load, loader.command)
        wiring.connect(m, loader.request, reader.request)
        wiring.connect(m, reader.data, loader.words)
        wiring.connect(m, reader.axi, wiring.flipped(self.axi))
        m.d.comb += [seq.load_busy.eq(loader.busy), seq.memory_beat.eq(reader.data.valid & reader.data.ready),
                     self.memory_error.eq(reader.error)]
        pes = []
        for p in range(cfg.pes):
            pe = ProcessingElement(cfg)
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)
            for port, load, bits in ((pe.weight_w, loader.weight_w, WEIGHT_BITS),
                                     (pe.bias_w, loader.bias_w, cfg.acc_width)):
                m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data[p * bits:(p + 1) * bits]),
                             port.en.eq(load.en)]

        wiring.connect(m, seq.potentials, fire.potentials)
        wiring.connect(m, fire.spikes, seq.spikes)
        wiring.connect(m, seq.thresholds, fire.thresholds)
        m.d.comb += fire.channels.eq(seq.channels)

        host = self.host
        region = host.addr[cfg.offset_bits:]
        offset = host.addr[:cfg.offset_bits]
        idle = ~seq.busy
        writing = host.w_en & idle

        n_layers = Signal.like(seq.n_layers, init=image.n_layers if image else 0)
        n_inputs = Signal.like(seq.n_inputs)
        with m.If(writing & (region == Region.CONTROL)):
            with m.If(offset == 0):
                m.d.sync += n_layers.eq(host.w_data)
            with m.If(offset == 1):
                m.d.sync += n_inputs.eq(host.w_data)
        m.d.comb += [seq.n_layers.eq(n_layers), seq.n_inputs.eq(n_inputs), seq.start.eq(self.start),
                     self.busy.eq(seq.busy), self.done.eq(seq.done)]

        for port, reg in ((seq.descriptor_w, Region.DESCRIPTORS), (seq.threshold_w, Region.THRESHOLDS),
                          (seq.event_w, Region.EVENTS)):
            m.d.comb += [port.addr.eq(offset), port.data.eq(host.w_data), port.en.eq(writing & (region == reg))]
        m.d.comb += [seq.event_r.addr.eq(offset), seq.event_r.en.eq(1)]

        updates = 0
        for p, pe in enumerate(pes):
            m.d.comb += seq.pe_potentials[p].eq(pe.potential)
            # while idle, the host reads potentials through a READ command
            with m.If(seq.busy):
                m.d.comb += pe.cmd.eq(seq.cmd)
            with m.Else():
                m.d.comb += [pe.cmd.op.eq(PeOp.READ), pe.cmd.acc_addr.eq(offset)]
            updates = updates + pe.updated
        m.d.comb += seq.updates.eq(updates)

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

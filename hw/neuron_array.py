"""NeuronArray: the top level: PEs, fire unit, sequencer and the host bus."""
from __future__ import annotations

from dataclasses import asdict

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig, Counter, NetworkImage, Region
from .fire import FireUnit
from .layouts import PeOp, layer_descriptor, spike_event
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

    With an ``image``, every memory starts with that network and ``n_layers`` resets to
    its layer count, so the design runs it after reset without a host; the host bus can
    still load another network of the same sizes.

    Run protocol: write the input events to region EVENTS from address 0, write
    ``n_input_events`` (CONTROL offset 1), pulse ``start``, wait for ``done``. Then read
    the counters (CONTROL), per-layer cycles and event counts, every layer's events
    (EVENTS) and the output potentials (each PE's potential region; neuron j at PE j % pes,
    offset j // pes).

    Members
    -------
    start : In(1);  busy, done : Out(1);  host : In(HostBus)
    """

    def __init__(self, cfg: ArrayConfig, image: NetworkImage | None = None):
        self.cfg = cfg
        self.image = image
        super().__init__({"start": In(1), "busy": Out(1), "done": Out(1), "host": In(HostBus(cfg))})

    def elaborate(self, platform):
        cfg, image = self.cfg, self.image
        m = Module()
        m.submodules.sequencer = seq = Sequencer(
            cfg,
            descriptor_init=[asdict(d) for d in image.descriptors] if image else (),
            threshold_init=image.thresholds if image else ())
        m.submodules.fire = fire = FireUnit(cfg)
        pes = []
        for p in range(cfg.pes):
            pe = ProcessingElement(cfg, weight_init=image.weights[p] if image else (),
                                   bias_init=image.biases[p] if image else ())
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)

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
            for port, which in ((pe.weight_w, 0), (pe.bias_w, 1)):
                m.d.comb += [port.addr.eq(offset), port.data.eq(host.w_data),
                             port.en.eq(writing & (region == cfg.pe_region(p, which)))]
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
                with m.Case(cfg.pe_region(p, 2)):
                    m.d.comb += host.r_data.eq(pe.potential.as_unsigned())
        return m

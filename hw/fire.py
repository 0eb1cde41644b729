"""FireUnit: turns a neuron's final potential into its time-to-first-spike event."""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import potential_sample, spike_event


class ThresholdWrite(wiring.Signature):
    """Loads entry ``index`` of the threshold table when ``en`` is high.

    Members: ``index`` (time step), ``value`` (threshold in accumulator units), ``en``.
    """

    def __init__(self, cfg: ArrayConfig):
        super().__init__({
            "index": Out(range(cfg.timing.T)),
            "value": Out(signed(cfg.acc_width)),
            "en": Out(1),
        })


class FireUnit(wiring.Component):
    """Spike time = the first t with potential >= TH[t]; no event if there is none.

    All T comparisons happen in parallel against a threshold register file that the
    sequencer loads once per layer, so firing costs one cycle per neuron whatever T is.
    The table is not assumed monotone: a priority encoder picks the first passing t,
    exactly as the spec (section 4) and the golden model say.

    Max pooling in TTFS is the earliest spike of the window (spec section 5): the samples
    of one window arrive back to back between ``first`` and ``last``; the unit keeps the
    running minimum and emits one event, at the window's (pooled) coordinates, on ``last``.

    Members
    -------
    potentials : In(stream.Signature(potential_sample))
    spikes : Out(stream.Signature(spike_event))
        One registered stage; a sample that does not fire produces nothing.
    thresholds : In(ThresholdWrite)
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        super().__init__({
            "potentials": In(stream.Signature(potential_sample(cfg))),
            "spikes": Out(stream.Signature(spike_event(cfg))),
            "thresholds": In(ThresholdWrite(cfg)),
        })

    def elaborate(self, platform):
        T = self.cfg.timing.T
        m = Module()
        table = [Signal(signed(self.cfg.acc_width), name=f"threshold_{t}") for t in range(T)]
        with m.If(self.thresholds.en):
            for t in range(T):
                with m.If(self.thresholds.index == t):
                    m.d.sync += table[t].eq(self.thresholds.value)

        value = self.potentials.payload.value
        first = Signal(range(T + 1))
        m.d.comb += first.eq(T)
        for t in reversed(range(T)):  # later assignments win: the smallest passing t
            with m.If(value >= table[t]):
                m.d.comb += first.eq(t)

        sample = self.potentials.payload
        running = Signal(range(T + 1))  # earliest time of the window so far (T: none)
        earliest = Signal(range(T + 1))
        m.d.comb += earliest.eq(first)
        with m.If(~sample.first & (running < first)):
            m.d.comb += earliest.eq(running)

        m.d.comb += self.potentials.ready.eq(~self.spikes.valid | self.spikes.ready)
        with m.If(self.potentials.valid & self.potentials.ready):
            m.d.sync += [running.eq(earliest),
                         self.spikes.valid.eq(sample.last & (earliest != T)),
                         self.spikes.payload.channel.eq(sample.channel),
                         self.spikes.payload.y.eq(sample.y),
                         self.spikes.payload.x.eq(sample.x),
                         self.spikes.payload.time.eq(earliest)]
        with m.Elif(self.spikes.ready):
            m.d.sync += self.spikes.valid.eq(0)
        return m

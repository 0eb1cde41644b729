"""DiffStep: one step of a differential-coding IF neuron or pool unit, combinational."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .divider import FloorDivider


def diff_state(cfg: ArrayConfig) -> data.StructLayout:
    """A diff_if neuron's integers (docs/spec.md, section 13.2), one state memory word. A pool
    unit keeps its window's previous largest running mean M[t-1] in ``ein``."""
    return data.StructLayout({name: signed(cfg.acc_width) for name in ("mem", "ein", "eout", "cum")})


class DiffStep(wiring.Component):
    """The new state and the signed spike of docs/spec.md section 13.2 at step ``step + 1``.

    A neuron's input current is its synaptic input plus its ``ein``; a pool unit's (13.4,
    ``pool_unit``) is ``I[t] = M + (t-1)(M - M[t-1])`` with ``M`` its window's largest running
    mean (``window_top``): the product by the step number as shifted adds, one per bit. With
    ``levels`` above 1 (13.7) the spike is of the largest level ``k`` whose three quarters the
    potential reaches, ``4 mem >= 3 (TH >> k)``, compared with shifts and adds. The running
    means divide by ``t`` rounding down (hw/divider.py). The output layer (``readout``) never
    fires. No multiplier, no memory: the PE holds the state (hw/pe.py).

    Members
    -------
    state : In(diff_state)  the neuron's integers before the step
    synaptic : In(signed(acc_width))  P[t], the step's synaptic input
    threshold : In(signed(acc_width))  its channel's TH
    step : In(range(T))  t - 1
    levels, readout, pool_unit, window_top : In  see above
    new : Out(diff_state)  the integers after the step
    up, down, level : Out  the spike: +1 or -1 (at most one) of level ``level``
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        W = cfg.acc_width
        super().__init__({
            "state": In(diff_state(cfg)), "synaptic": In(signed(W)), "threshold": In(signed(W)),
            "step": In(range(cfg.timing.T)), "levels": In(range(cfg.diff_levels + 1)), "readout": In(1),
            "pool_unit": In(1), "window_top": In(signed(W)),
            "new": Out(diff_state(cfg)), "up": Out(1), "down": Out(1), "level": Out(range(cfg.diff_levels)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        W, T = cfg.acc_width, cfg.timing.T
        m = Module()
        old, th, top, t1 = self.state, self.threshold, self.window_top, self.step
        change = Signal(signed(W + 1))
        m.d.comb += change.eq(top - old.ein)
        product = sum(Mux(t1[i], change << i, 0) for i in range(len(t1)))
        current = Signal(signed(W))
        m.d.comb += current.eq(Mux(self.pool_unit, top + product, self.synaptic + old.ein))
        mem, cum = Signal(signed(W)), Signal(signed(W))  # after the input, before the spike
        up, down, level = self.up, self.down, self.level
        m.d.comb += [mem.eq(old.mem + current - old.eout), cum.eq(old.cum + old.eout),
                     up.eq(~self.readout & (mem >= th)), down.eq(~self.readout & ~up & (mem <= 0) & (cum >= th))]
        if cfg.diff_levels > 1:
            with m.If(self.levels > 1):
                m.d.comb += [up.eq(0), down.eq(0)]
                for k in reversed(range(cfg.diff_levels)):  # later assignments win: the smallest k
                    part = th >> k
                    with m.If((k < self.levels) & ~self.readout & ((mem << 2) >= (part << 1) + part)):
                        m.d.comb += [up.eq(1), level.eq(k)]
                with m.If(~up):
                    for k in reversed(range(cfg.diff_levels)):
                        part = th >> k
                        with m.If((k < self.levels) & ~self.readout & ((mem << 2) <= -((part << 1) + part))
                                  & (cum >= part)):
                            m.d.comb += [down.eq(1), level.eq(k)]
        value = Signal(signed(W))  # the spike's worth: +-(TH >> level), or 0
        m.d.comb += value.eq(Mux(up, th >> level, Mux(down, -(th >> level), 0)))
        m.submodules.input_mean = input_mean = FloorDivider(W, T)  # floor(P / t)
        m.submodules.output_mean = output_mean = FloorDivider(W, T)  # floor(value / t)
        m.d.comb += [input_mean.dividend.eq(self.synaptic), input_mean.divisor.eq(t1 + 1),
                     output_mean.dividend.eq(value), output_mean.divisor.eq(t1 + 1)]
        m.d.comb += [self.new.mem.eq(mem - value), self.new.cum.eq(cum + value),
                     self.new.eout.eq(old.eout + output_mean.quotient),
                     self.new.ein.eq(Mux(self.pool_unit, top, old.ein + input_mean.quotient))]
        return m

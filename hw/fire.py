"""FireUnit: turns a neuron's final potential into its time-to-first-spike event."""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArrayConfig
from .layouts import potential_sample, spike_group


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

    One comparator set per PE lane: a sample carries the potentials of all PEs, read in
    the same cycle, and every lane compares its value with all T thresholds at once
    (a register file the sequencer loads once per layer). The table is not assumed
    monotone: a priority encoder per lane picks the first passing t, exactly as the spec
    (section 4) and the golden model say.

    Max pooling in TTFS is the earliest spike of the window (spec section 5): the samples
    of one window arrive back to back between ``first`` and ``last``; each lane keeps its
    running minimum. On ``last`` the lanes that fire (and hold a real channel,
    ``channel_base + p < channels``) become pending spikes. Up to L = ``spike_lanes`` of
    them leave per cycle, lowest PE lanes first, while the next window's samples already
    come in; that window's last sample waits until the pending spikes leave in the same
    cycle (at most L left). A group of k spikes thus costs max(window samples, ceil(k / L))
    cycles.

    A rate_if layer (``rate``) fires once per step: the PEs have compared each potential with
    its channel's threshold (``fired``). Rate max pooling (spec section 12): the window's
    pooled neuron spikes at ``step`` when the window's largest spike count grows, i.e. when
    the largest of ``counts + fired`` exceeds the largest of ``counts``; each lane keeps both
    running maxima over the window. Without pooling that is just ``fired``.

    A diff_if layer (``diff``) sends each lane's signed spike of the step as the PEs computed
    it: ``fired``, ``negative`` for a -1, and its level (13.7); a pooled layer's window ends
    with its pool unit's sample (hw/fire_scan.py), whose spike is the window's.

    Members
    -------
    potentials : In(stream.Signature(potential_sample))
    spikes : Out(stream.Signature(spike_group))  up to ``spike_lanes`` spikes per transfer
    thresholds : In(ThresholdWrite)
    channels : In  output channels of the current layer
    rate, diff, step : In  the layer is rate_if, or diff_if, and the step its samples belong to
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        super().__init__({
            "potentials": In(stream.Signature(potential_sample(cfg))),
            "spikes": Out(stream.Signature(spike_group(cfg))),
            "thresholds": In(ThresholdWrite(cfg)),
            "channels": In(range(cfg.max_channels + 1)),
            "rate": In(1),
            "diff": In(1),
            "step": In(range(cfg.timing.T)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        T, P = cfg.timing.T, cfg.pes
        m = Module()
        table = [Signal(signed(cfg.acc_width), name=f"threshold_{t}") for t in range(T)]
        with m.If(self.thresholds.en):
            for t in range(T):
                with m.If(self.thresholds.index == t):
                    m.d.sync += table[t].eq(self.thresholds.value)

        sample = self.potentials.payload
        accept = Signal()
        pending = Signal(P)  # lanes with a spike still to emit
        pending_t = [Signal(range(T + 1), name=f"pending_t{p}") for p in range(P)]
        pending_negative = Signal(P)
        pending_level = [Signal(cfg.level_bits, name=f"pending_level{p}") for p in range(P)]
        base = Signal.like(sample.channel_base)
        py, px = Signal.like(sample.y), Signal.like(sample.x)
        # the lowest L pending lanes leave this cycle; `rest` is what stays pending
        L = cfg.spike_lanes
        remaining = [pending]
        lanes = []
        for i in range(L):
            r = remaining[-1]
            lane = Signal(range(P), name=f"lane{i}")
            for p in reversed(range(P)):
                with m.If(r[p]):
                    m.d.comb += lane.eq(p)
            lanes.append(lane)
            nxt = Signal(P, name=f"pending_after{i}")
            m.d.comb += nxt.eq(r & (r - 1))  # drop the lowest set bit
            remaining.append(nxt)
        rest = remaining[-1]
        # a window's last sample waits until the pending spikes all leave now
        m.d.comb += [self.potentials.ready.eq(~sample.last | (rest == 0) & ((pending == 0) | self.spikes.ready)),
                     accept.eq(self.potentials.valid & self.potentials.ready)]
        load = []
        for p in range(P):
            value = sample.values[p]
            first = Signal(range(T + 1), name=f"first_t{p}")
            m.d.comb += first.eq(T)
            for t in reversed(range(T)):  # later assignments win: the smallest passing t
                with m.If(value >= table[t]):
                    m.d.comb += first.eq(t)
            running = Signal(range(T + 1), name=f"running_t{p}")  # earliest of the window so far (T: none)
            earliest = Signal(range(T + 1), name=f"earliest_t{p}")
            m.d.comb += earliest.eq(Mux(~sample.first & (running < first), running, first))
            # rate_if: the window's largest count before this step, and after it
            count = sample.counts[p]
            after = Signal.like(count, name=f"after{p}")
            m.d.comb += after.eq(count + sample.fired[p])
            top_before, top_after = (Signal.like(count, name=f"{n}{p}") for n in ("top_before", "top_after"))
            run_before, run_after = (Signal.like(count, name=f"running_{n}{p}") for n in ("before", "after"))
            m.d.comb += [top_before.eq(Mux(~sample.first & (run_before > count), run_before, count)),
                         top_after.eq(Mux(~sample.first & (run_after > after), run_after, after))]
            with m.If(accept):
                m.d.sync += [running.eq(earliest), run_before.eq(top_before), run_after.eq(top_after)]
            with m.If(accept & sample.last):
                m.d.sync += [pending_t[p].eq(Mux(self.rate | self.diff, self.step, earliest)),
                             pending_level[p].eq(Mux(self.diff, sample.levels[p], 0))]
            spikes = Mux(self.diff, sample.fired[p], Mux(self.rate, top_after > top_before, earliest != T))
            load.append(spikes & (sample.channel_base + p < self.channels))

        count = Signal(range(L + 1))
        for i in range(L):
            with m.If(remaining[i] != 0):
                m.d.comb += count.eq(i + 1)
        times = Array(pending_t)
        levels = Array(pending_level)
        m.d.comb += [self.spikes.valid.eq(pending != 0), self.spikes.payload.count.eq(count)]
        for i, lane in enumerate(lanes):
            ev = self.spikes.payload.events[i]
            m.d.comb += [ev.channel.eq(base + lane), ev.y.eq(py), ev.x.eq(px), ev.time.eq(times[lane]),
                         ev.negative.eq(pending_negative.bit_select(lane, 1)), ev.level.eq(levels[lane])]
        with m.If(self.spikes.valid & self.spikes.ready):
            m.d.sync += pending.eq(rest)
        with m.If(accept & sample.last):
            m.d.sync += [pending.eq(Cat(*load)), pending_negative.eq(Mux(self.diff, sample.negative, 0)),
                         base.eq(sample.channel_base), py.eq(sample.y), px.eq(sample.x)]
        return m

"""ProcessingElement: one slice of the neuron array with its own weights and accumulators."""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Assert, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from firstspike.sw.formats import WEIGHT_BITS, ZERO_MAG

from .config import ArrayConfig
from .diff_step import DiffStep, diff_state
from .layouts import PeOp, addr_width, count_shape, pe_command


class ProcessingElement(wiring.Component):
    """Shift-add accumulation for the output channels o with o % pes == this PE's index.

    Two-stage pipeline. Stage 0 presents the command's addresses to the synchronous
    weight, bias and accumulator memories; stage 1 computes and writes back. A spike at
    time t through weight code (sign, m) adds ``+-(M[t % B] >> (m + t // B))`` (spec
    section 3): a table lookup and a barrel shift, no multiplier.

    A run of ACCUM commands to one accumulator (the events of one event group, hw/grouper.py)
    adds into a register, the running sum: the first command of the run reads the
    accumulator memory, the last writes it back, the ones between touch no memory but the
    weight buffer. So the accumulator memory costs one read and one write per run, not per
    synaptic event (docs/hardware.md, "Dataflow"). Its read port is enabled only for a first
    ACCUM or a READ, and is transparent to its write port: a run may start on the
    accumulator the previous run is writing back. A PE at or beyond the command's
    ``live_pes`` holds no channel of its slot (the layer's last slot when ``c_out`` is not a
    multiple of the PE count, or a layer narrower than the array): it reads no weight, keeps
    its running sum and writes no accumulator, so idle PEs cost no memory access.

    Hidden layers accumulate from zero and add the bias when the fire stage reads the
    potential (``add_bias``); the fire stage then clears the accumulator (``clear``), so
    the next layer finds zeros and needs no initialisation pass. The output layer's
    accumulators are initialised with their bias (INIT), for the host to read.

    A rate_if layer (docs/spec.md, section 12) keeps its potentials across its T steps. INIT
    sets them to the initial potentials (a row of the bias buffer). Each step's fire read
    (``subtract``) adds the bias, compares with the channel's threshold (another row of the
    bias buffer, on a second read port) and, when the fire stage takes the value, writes
    back the potential less the threshold if the neuron fired; a count memory keeps each
    neuron's spikes so far, which rate max pooling needs.

    A diff_if layer (section 13; only on an array built with ``diff_state``) keeps each
    neuron's four integers (mem, ein, eout, cum) in a state memory beside the accumulator,
    which holds the step's synaptic input P only. INIT sets the state (ein to the bias, mem
    to the initial potential) and zeroes the accumulator. Each step's fire read (``diff``)
    runs the step: the new state and the signed spike come out of stage 1, with two floor
    divisions by the step number (hw/diff_step.py, hw/divider.py). When the fire stage takes the spike, the
    state is written back and the accumulator cleared; the output layer (``readout``) never
    fires, and its last step leaves ein, the score, in the accumulator for the host. A pooled
    layer's neurons feed a register with the largest running mean of the window being read
    (from its ``first`` READ on); after the window, a READ with ``pool_unit`` runs the window's
    pool unit (section 13.4), whose state words follow the layer's accumulators.

    Members
    -------
    cmd : In(pe_command)
        Broadcast by the sequencer to every PE in the same cycle.
    potential : Out(signed(acc_width))
        Accumulator read by a ``READ`` command, valid one cycle later.
    fired, count : Out  a ``subtract`` READ: potential >= threshold, and the neuron's spikes before
        (valid with ``potential``)
    negative, level : Out  a ``diff`` READ: the spike (``fired``) is negative, and its level (13.7)
    updated : Out(1)
        High in stage 1 of an ``ACCUM`` whose weight is not zero (a synaptic event).
    weight_read, written_back : Out(1)
        The weight buffer's read port is enabled (stage 0 of a live ``ACCUM``); the running sum
        is written back (stage 1 of a live ``last`` one). The energy counters add these up, so
        they count what the memories do, idle PEs included.
    weight_w, bias_w : Out(memory.WritePort.Signature)  (memory-side ports: the loader drives them)
        Loading of the weight and bias buffers (hw/loader.py), one layer or tile at a time.
    """

    def __init__(self, cfg: ArrayConfig, index: int = 0):
        if not 0 <= index < cfg.pes:
            raise ValueError(f"PE index {index} is not one of the array's {cfg.pes} PEs")
        self.cfg, self.index = cfg, index
        W = cfg.acc_width
        super().__init__({
            "cmd": In(pe_command(cfg)),
            "potential": Out(signed(W)),
            "fired": Out(1),
            "negative": Out(1),
            "level": Out(range(cfg.diff_levels)),
            "count": Out(count_shape(cfg)),
            "updated": Out(1),
            "weight_read": Out(1),
            "written_back": Out(1),
            "weight_w": Out(memory.WritePort.Signature(addr_width=addr_width(cfg.weight_buffer),
                                                      shape=unsigned(WEIGHT_BITS))),
            "bias_w": Out(memory.WritePort.Signature(addr_width=addr_width(cfg.bias_buffer), shape=signed(W))),
        })

    def elaborate(self, platform):
        cfg, t = self.cfg, self.cfg.timing
        W, F = cfg.acc_width, t.frac_bits
        m = Module()
        m.submodules.weights = weights = memory.Memory(shape=unsigned(WEIGHT_BITS), depth=cfg.weight_buffer,
                                                       init=[])
        m.submodules.biases = biases = memory.Memory(shape=signed(W), depth=cfg.bias_buffer, init=[])
        m.submodules.accumulators = accs = memory.Memory(shape=signed(W), depth=cfg.slot_depth, init=[])
        m.submodules.counts = counts = memory.Memory(shape=count_shape(cfg), depth=cfg.slot_depth, init=[])
        w_rd, w_wr = weights.read_port(), weights.write_port()
        b_rd, b_wr = biases.read_port(), biases.write_port()
        p_rd = biases.read_port()  # a rate_if threshold, read with the bias
        a_wr = accs.write_port()
        a_rd = accs.read_port(transparent_for=(a_wr,))
        n_wr = counts.write_port()
        n_rd = counts.read_port(transparent_for=(n_wr,))
        running = Signal(signed(W))  # the running sum of a run of ACCUM commands
        running_addr = Signal.like(self.cmd.acc_addr)
        open_run = Signal()  # a run has started and not been written back

        for port, load in ((w_wr, self.weight_w), (b_wr, self.bias_w)):
            m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data), port.en.eq(load.en)]

        # stage 0: addresses to the synchronous read ports; an idle PE's ACCUM reads nothing
        cmd = self.cmd
        live = Signal()
        m.d.comb += live.eq(self.index < cmd.live_pes)
        m.d.comb += [w_rd.addr.eq(cmd.weight_addr), w_rd.en.eq((cmd.op == PeOp.ACCUM) & live),
                     self.weight_read.eq(w_rd.en),
                     b_rd.addr.eq(cmd.bias_addr), a_rd.addr.eq(cmd.acc_addr),
                     a_rd.en.eq((cmd.op == PeOp.READ) | ((cmd.op == PeOp.ACCUM) & cmd.first & live)),
                     p_rd.addr.eq(cmd.param_addr), n_rd.addr.eq(cmd.acc_addr), n_rd.en.eq(cmd.op == PeOp.READ)]
        op1 = Signal(PeOp)
        slot1 = Signal.like(cmd.acc_addr)
        time1 = Signal.like(cmd.time)
        add_bias1, subtract1, first1, last1, live1 = Signal(), Signal(), Signal(), Signal(), Signal()
        negative1, diff1, readout1, unit1 = Signal(), Signal(), Signal(), Signal()
        level1, levels1 = Signal.like(cmd.level), Signal.like(cmd.levels)
        m.d.sync += [op1.eq(cmd.op), slot1.eq(cmd.acc_addr), time1.eq(cmd.time), add_bias1.eq(cmd.add_bias),
                     subtract1.eq(cmd.subtract), first1.eq(cmd.first), last1.eq(cmd.last), live1.eq(live),
                     negative1.eq(cmd.negative), diff1.eq(cmd.diff), readout1.eq(cmd.readout),
                     unit1.eq(cmd.pool_unit), level1.eq(cmd.level), levels1.eq(cmd.levels)]

        # stage 1: contribution = M[t % B] >> (m + t // B + level), zero for the zero code (a diff_if
        # spike of level k adds 2^F >> (m + k): docs/spec.md 13.7)
        sign = w_rd.data[WEIGHT_BITS - 1]
        mag = w_rd.data[:WEIGHT_BITS - 1]
        mantissas = t.mantissas()
        mant = Signal(unsigned(F + 1))
        m.d.comb += mant.eq(mantissas[0])
        if t.B > 1:
            r = time1[:t.log2_B]
            for idx, value in enumerate(mantissas):
                with m.If(r == idx):
                    m.d.comb += mant.eq(value)
        shift = Signal(range(t.max_shift + 1 + cfg.diff_levels))
        m.d.comb += shift.eq(mag + (time1 >> t.log2_B) + level1)
        contribution = Signal(unsigned(F + 1))
        m.d.comb += contribution.eq(Mux(mag == ZERO_MAG, 0, mant >> shift))

        acc = a_rd.data
        potential = Signal(signed(W))
        fired = Signal()
        m.d.comb += [potential.eq(Mux(add_bias1, acc + b_rd.data, acc)), self.potential.eq(potential),
                     fired.eq(subtract1 & (potential >= p_rd.data)), self.fired.eq(fired),
                     self.count.eq(n_rd.data), a_wr.addr.eq(slot1), n_wr.addr.eq(slot1)]
        with m.Switch(op1):
            with m.Case(PeOp.INIT):
                m.d.comb += [a_wr.data.eq(Mux(diff1, 0, b_rd.data)), a_wr.en.eq(1), n_wr.data.eq(0), n_wr.en.eq(1)]
            with m.Case(PeOp.ACCUM):
                base = Mux(first1, acc, running)
                total = Signal(signed(W))
                m.d.comb += total.eq(Mux(sign ^ negative1, base - contribution, base + contribution))
                with m.If(live1):
                    m.d.comb += [a_wr.data.eq(total), a_wr.en.eq(last1), self.written_back.eq(last1),
                                 self.updated.eq(mag != ZERO_MAG)]
                    m.d.sync += [running.eq(total), running_addr.eq(slot1), open_run.eq(~last1)]
                    m.d.sync += Assert(first1 | (open_run & (running_addr == slot1)),
                                       "an ACCUM that is not first continues the open run on its accumulator")
                with m.Else():
                    m.d.sync += Assert(~open_run, "an idle PE has no open run")
            with m.Default():
                m.d.sync += Assert(~open_run, "a run of ACCUM commands ends with a write-back (last)")
        # the sequencer never clears in a cycle whose stage 1 writes (READs precede clears). A rate_if
        # step's clear comes in the cycle its READ shows on stage 1: what is left after firing goes back
        with m.If(cmd.clear):
            m.d.comb += [a_wr.addr.eq(cmd.clear_addr), a_wr.data.eq(0), a_wr.en.eq(1)]
            with m.If(cmd.subtract):
                m.d.sync += Assert(subtract1 & (op1 == PeOp.READ) & (slot1 == cmd.clear_addr),
                                   "a rate_if write-back follows its own READ")
                m.d.comb += [a_wr.data.eq(potential - Mux(fired, p_rd.data, 0)),
                             n_wr.addr.eq(cmd.clear_addr), n_wr.data.eq(n_rd.data + fired), n_wr.en.eq(1)]
        if cfg.diff_state:
            stage1 = SimpleNamespace(op=op1, slot=slot1, time=time1, diff=diff1, readout=readout1, first=first1,
                                     unit=unit1, levels=levels1)
            self._diff_step(m, stage1, synaptic=acc, threshold_port=p_rd, bias_port=b_rd, acc_write=a_wr,
                            rate_fired=fired)
        else:
            m.d.sync += Assert(~(cmd.diff & (cmd.op != PeOp.NOP)), "a diff_if command on an array without diff_state")
        return m

    def _diff_step(self, m, stage1, *, synaptic, threshold_port, bias_port, acc_write, rate_fired):
        """The state memory around hw/diff_step.py: read with the command, written back when the
        fire stage takes the sample; the pooling window's largest running mean (see the class docstring).
        ``stage1``: the command's fields one cycle later, beside the read ports' data."""
        cfg, cmd = self.cfg, self.cmd
        op1, slot1, time1, diff1 = stage1.op, stage1.slot, stage1.time, stage1.diff
        readout1, first1, unit1, levels1 = stage1.readout, stage1.first, stage1.unit, stage1.levels
        m.submodules.states = states = memory.Memory(shape=diff_state(cfg), depth=cfg.slot_depth, init=[])
        s_wr = states.write_port()
        s_rd = states.read_port(transparent_for=(s_wr,))
        m.submodules.step = step = DiffStep(cfg)
        window_top = Signal(signed(cfg.acc_width))  # the largest new eout of the window being read
        m.d.comb += [s_rd.addr.eq(cmd.acc_addr), step.state.eq(s_rd.data), step.synaptic.eq(synaptic),
                     step.threshold.eq(threshold_port.data), step.step.eq(time1), step.levels.eq(levels1),
                     step.readout.eq(readout1), step.pool_unit.eq(unit1), step.window_top.eq(window_top)]
        new = step.new
        reading = diff1 & (op1 == PeOp.READ)
        m.d.comb += [self.fired.eq(rate_fired | (reading & (step.up | step.down))),
                     self.negative.eq(reading & step.down), self.level.eq(step.level)]
        with m.If((op1 == PeOp.INIT) & diff1):  # ein <- bias (a pool unit's M[0] <- 0), mem <- initial potential
            m.d.comb += [s_wr.addr.eq(slot1), s_wr.en.eq(1), s_wr.data.mem.eq(threshold_port.data),
                         s_wr.data.ein.eq(Mux(unit1, 0, bias_port.data)), s_wr.data.eout.eq(0), s_wr.data.cum.eq(0)]
        with m.If(cmd.clear & cmd.diff):  # the fire stage took the step's spike: the state goes back
            m.d.sync += Assert(diff1 & (op1 == PeOp.READ) & (slot1 == cmd.clear_addr),
                               "a diff_if write-back follows its own READ")
            m.d.comb += [s_wr.addr.eq(cmd.clear_addr), s_wr.data.eq(new), s_wr.en.eq(1)]
            with m.If(~unit1):  # a neuron of a pooling window: the window's largest running mean so far
                m.d.sync += window_top.eq(Mux(first1 | (new.eout > window_top), new.eout, window_top))
            with m.If(readout1 & (time1 == cfg.timing.T - 1)):  # the scores, for the host
                m.d.comb += acc_write.data.eq(new.ein)

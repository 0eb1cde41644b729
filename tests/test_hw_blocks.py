"""Amaranth-simulator tests of the PE, the fire unit and the whole array (no Verilator)."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from firstspike.errors import InputError
from firstspike.hw.config import ArrayConfig, DoesNotFit, network_image
from firstspike.hw.fire import FireUnit
from firstspike.hw.layouts import PeOp
from firstspike.hw.pe import ProcessingElement
from firstspike.hw.perf import layer_counts
from firstspike.sim.amaranth_backend import run_amaranth
from firstspike.sim.check import result_problems
from firstspike.sw.formats import NO_SPIKE, Timing, fire_times, weight_code
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import random_input_times, random_model


def small_config(timing, **kw):
    base = dict(pes=1, timing=timing, acc_width=24, max_layers=2, max_channels=32, max_size=4, weight_buffer=64,
                bias_buffer=8, slot_depth=4, event_depth=16)
    base.update(kw)
    return ArrayConfig(**base)


@pytest.mark.parametrize("B", [1, 2, 4])
def test_pe_accumulates_every_code_at_every_time(B):
    """Each of the 31 codes at each time step, into 4 slots, in runs of 1 to 6 commands
    (first ... last: the running sum), including back-to-back runs on one slot (the
    transparent accumulator read after the previous run's write-back). A fifth of the runs
    come with ``live_pes`` 0, the PE idle for their slot: they must change nothing, count no
    update, read no weight and write nothing back."""
    timing = Timing(T=8, B=B, frac_bits=12)
    cfg = small_config(timing)
    codes = [weight_code(s, m) for s in (0, 1) for m in range(15)] + [15]
    bias = [1000, -2000, 0, 12345]
    dut = ProcessingElement(cfg)
    table = timing.contribution_table()
    rng = np.random.default_rng(B)
    ops = []  # (weight address, slot, time, first, last, live)
    while len(ops) < 300:
        slot, n, live = int(rng.integers(0, 4)), int(rng.integers(1, 7)), bool(rng.random() >= 0.2)
        ops += [(int(rng.integers(0, len(codes))), slot, int(rng.integers(0, 8)), i == 0, i == n - 1, live)
                for i in range(n)]
    # runs on one slot, an idle run between live ones
    ops += [(0, 2, 0, True, True, True)] * 5 + [(3, 2, 1, True, False, True), (5, 2, 7, False, True, True),
                                                (4, 2, 3, True, True, False), (6, 2, 2, True, True, True)]
    assert sum(not op[5] for op in ops) >= 10
    expected = list(bias)
    updates = 0
    for addr, slot, t, _, _, live in ops:
        if not live:
            continue
        sign, mag = codes[addr] >> 4, codes[addr] & 15
        expected[slot] += -table[mag, t] if sign else table[mag, t]
        updates += mag != 15

    got, seen_updates, reads, writebacks = [], [], [], []

    async def bench(ctx):
        for port, values in ((dut.weight_w, codes), (dut.bias_w, bias)):  # as the loader fills the buffers
            for addr, v in enumerate(values):
                ctx.set(port.addr, addr)
                ctx.set(port.data, v)
                ctx.set(port.en, 1)
                await ctx.tick()
            ctx.set(port.en, 0)
        for slot in range(4):
            ctx.set(dut.cmd, {"op": PeOp.INIT, "acc_addr": slot, "bias_addr": slot, "weight_addr": 0, "time": 0})
            await ctx.tick()
        for addr, slot, t, first, last, live in ops:
            ctx.set(dut.cmd, {"op": PeOp.ACCUM, "acc_addr": slot, "weight_addr": addr, "bias_addr": 0, "time": t,
                              "first": first, "last": last, "live_pes": int(live)})
            reads.append(ctx.get(dut.weight_read))
            await ctx.tick()
            seen_updates.append(ctx.get(dut.updated))
            writebacks.append(ctx.get(dut.written_back))
        for slot in range(4):
            ctx.set(dut.cmd, {"op": PeOp.READ, "acc_addr": slot, "weight_addr": 0, "bias_addr": 0, "time": 0})
            await ctx.tick()
            seen_updates.append(ctx.get(dut.updated))
            got.append(ctx.get(dut.potential))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected
    assert sum(seen_updates) == updates
    # what the energy counters add up: a weight read per live command, a write-back per live run
    assert reads == [int(op[5]) for op in ops]
    assert writebacks == [int(op[4] and op[5]) for op in ops]


def _run_fire_unit(dut, tables_and_samples, seed, ready_fraction=0.6):
    """Drive a FireUnit by the stream rules: each sample stays offered, unchanged, until the
    unit takes it (valid & ready at a clock edge); the consumer's ``ready`` is random
    (seeded), so spikes stall. Returns the spike events transferred (valid & ready) and the
    cycles the spike stream stalled and the sample stream waited."""
    rng = np.random.default_rng(seed)
    stalls = {"spikes": 0, "samples": 0}

    async def driver(ctx):
        ctx.set(dut.channels, 32)
        for table, samples in tables_and_samples:
            for t, v in enumerate(table):
                ctx.set(dut.thresholds.en, 1)
                ctx.set(dut.thresholds.index, t)
                ctx.set(dut.thresholds.value, v)
                await ctx.tick()
            ctx.set(dut.thresholds.en, 0)
            for payload in samples:
                ctx.set(dut.potentials.valid, 1)
                ctx.set(dut.potentials.payload, payload)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.potentials.ready)
                    if ready:
                        break
                    stalls["samples"] += 1
            ctx.set(dut.potentials.valid, 0)
            while ctx.get(dut.spikes.valid):  # the table changes only after the last spike left
                await ctx.tick()

    spikes = []  # the consumer records transfers, separately from the driver

    async def consumer(ctx):
        ctx.set(dut.spikes.ready, 1)
        async for _, _, valid, ready, payload in ctx.tick().sample(dut.spikes.valid, dut.spikes.ready,
                                                                     dut.spikes.payload):
            if valid and ready:
                spikes.extend((int(ev.channel), int(ev.y), int(ev.x), int(ev.time))
                              for ev in list(payload.events)[:payload.count])
            stalls["spikes"] += bool(valid and not ready)
            ctx.set(dut.spikes.ready, int(rng.random() < ready_fraction))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_process(consumer)
    sim.run()
    return spikes, stalls


def test_fire_unit_matches_spec_including_non_monotone_table():
    timing = Timing(T=6, B=2, frac_bits=12)
    cfg = small_config(timing)
    tables = [[900, 640, 450, 320, 225, 160], [100, 300, 50, 400, 10, 5]]
    rng = np.random.default_rng(0)
    values = list(rng.integers(-100, 1100, size=200)) + [900, 899, 160, 159, 5, 4]
    samples = [{"channel_base": n % 32, "y": 0, "x": 0, "first": 1, "last": 1, "values": [int(v)]}
               for n, v in enumerate(values)]
    spikes, stalls = _run_fire_unit(FireUnit(cfg), [(table, samples) for table in tables], seed=1)
    expected = []
    for table in tables:
        times = fire_times(np.array(values), np.array(table))
        expected += [(n % 32, int(t)) for n, t in enumerate(times) if t != NO_SPIKE]
    assert [(c, t) for c, _, _, t in spikes] == expected
    assert stalls["spikes"] > 20 and stalls["samples"] > 20  # backpressure was exercised


def test_fire_unit_pools_the_earliest_spike_of_each_window():
    """Windows of 4 samples (first/last flags): one event per window, at its earliest time."""
    timing = Timing(T=6, B=2, frac_bits=12)
    cfg = small_config(timing)
    table = [900, 640, 450, 320, 225, 160]
    rng = np.random.default_rng(3)
    values = rng.integers(-100, 1100, size=(40, 4))
    values[0] = [0, 0, 0, 0]  # a silent window
    values[1] = [100, 950, 0, 0]  # clipped to t = 0 by its second sample
    samples = [{"channel_base": w % 32, "y": w % 4, "x": 3 - w % 4, "first": i == 0, "last": i == 3,
                "values": [int(v)]} for w, window in enumerate(values) for i, v in enumerate(window)]
    spikes, stalls = _run_fire_unit(FireUnit(cfg), [(table, samples)], seed=2, ready_fraction=0.15)
    times = fire_times(values.reshape(-1), np.array(table)).reshape(values.shape)
    earliest = np.where(times == NO_SPIKE, 99, times).min(axis=1)
    expected = [(w % 32, w % 4, 3 - w % 4, int(t)) for w, t in enumerate(earliest) if t != 99]
    assert spikes == expected and expected[0][3] == 0 and len(expected) < len(values)
    assert stalls["spikes"] > 5 and stalls["samples"] > 5


def test_fire_unit_emits_lowest_lanes_first_under_backpressure():
    """4 PEs, 2 spike lanes: a window whose 4 lanes all fire leaves in two groups, lowest lanes
    first, while the next window's samples wait; channels beyond ``channels`` never fire."""
    timing = Timing(T=6, B=2, frac_bits=12)
    cfg = small_config(timing, pes=4, spike_lanes=2)
    table = [900, 640, 450, 320, 225, 160]
    rng = np.random.default_rng(5)
    values = rng.integers(-100, 1100, size=(60, 4))
    samples = [{"channel_base": 4 * (w % 8), "y": w % 4, "x": w % 3, "first": 1, "last": 1,
                "values": [int(v) for v in row]} for w, row in enumerate(values)]
    spikes, stalls = _run_fire_unit(FireUnit(cfg), [(table, samples)], seed=3)
    times = fire_times(values, np.array(table))
    expected = [(4 * (w % 8) + p, w % 4, w % 3, int(times[w, p])) for w in range(len(values)) for p in range(4)
                if times[w, p] != NO_SPIKE and 4 * (w % 8) + p < 32]
    assert spikes == expected
    assert stalls["spikes"] > 10 and stalls["samples"] > 10


@pytest.mark.parametrize("seed,pes,T,B", [(0, 1, 8, 1), (1, 3, 16, 2), (2, 4, 5, 4)])
def test_array_in_amaranth_matches_golden(seed, pes, T, B):
    rng = np.random.default_rng(seed)
    timing = Timing(T=T, B=B, frac_bits=12)
    model = random_model(rng, [9, 7, 6, 5], timing)
    cfg = ArrayConfig.for_model(model, pes)
    times = random_input_times(rng, 9, 3, timing)
    golden = GoldenModel(model).run_times(times)
    for words in (0, 37):  # the network at the reset address, and elsewhere (relocated)
        results = run_amaranth(cfg, network_image(model, cfg), model.shapes, times, network_words=words)
        counts = layer_counts(model, cfg, golden, network_addr=words * cfg.bus_bits // 8)
        assert result_problems(cfg, model, golden, counts, results) == [], words
        for r in results:  # event-driven: an input event reads one weight per output neuron, idle PEs none
            assert r.counters["weight_reads"] == sum(e * layer.n_out for e, layer in zip(r.layer_events, model.layers))


@pytest.mark.parametrize("group_size", [1, 2, 16])
def test_conv_array_in_amaranth_matches_golden(group_size):
    """A conv layer with stride 2 and padding, one with pooling, then linear layers; event
    groups of one event (an accumulator access per synaptic event), of two (a position's
    events split over several groups) and of 16; bit-exact and cycle-exact."""
    from firstspike.sw.random_models import random_cnn
    rng = np.random.default_rng(7)
    timing = Timing(T=6, B=2, frac_bits=10)
    model = random_cnn(rng, (2, 6, 6), [dict(channels=3, kernel=3, stride=2, padding=1),
                                        dict(channels=5, kernel=2, padding=1, pool=2)], [4], 3, timing)
    cfg = ArrayConfig.for_model(model, 2, group_size=group_size)
    times = random_input_times(rng, model.layers[0].n_in, 2, timing)
    golden = GoldenModel(model).run_times(times)
    results = run_amaranth(cfg, network_image(model, cfg), model.shapes, times)
    counts = layer_counts(model, cfg, golden)
    assert result_problems(cfg, model, golden, counts, results) == []
    writebacks = sum(int(c.acc_writebacks.sum()) for c in counts)
    reads = sum(int(c.weight_reads.sum()) for c in counts)
    assert (writebacks == reads) == (group_size == 1)  # groups of one read-modify-write every update


def test_model_that_does_not_fit_names_the_resource():
    model = random_model(np.random.default_rng(0), [20, 10, 4], Timing(T=8, B=2, frac_bits=12))
    cfg = small_config(Timing(T=8, B=2, frac_bits=12), pes=2, max_channels=16, weight_buffer=16)
    with pytest.raises(DoesNotFit, match=r"max_channels: model needs 20, array has 16 \(raise --max-channels\); "
                                         r"weight_buffer: model needs 20, array has 16 \(raise --weight-buffer\)"):
        cfg.check_fits(model)
    with pytest.raises(DoesNotFit, match="built for"):
        small_config(Timing(T=4, B=2, frac_bits=12)).check_fits(model)


@pytest.mark.parametrize("kwargs,match", [({"pes": 0}, "pes"), ({"acc_width": 8}, "acc_width"),
                                          ({"weight_buffer": -1}, "weight_buffer"), ({"bus_bits": 48}, "bus_bits")])
def test_impossible_array_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_config(Timing(), **kwargs)


def test_strides_and_pools_must_be_powers_of_two():
    from firstspike.sw.random_models import random_cnn
    model = random_cnn(np.random.default_rng(0), (1, 9, 9), [dict(channels=2, kernel=3, stride=3, pool=3)], [], 2,
                       Timing(T=8, B=2, frac_bits=10))
    with pytest.raises(DoesNotFit, match="layer 0: stride 3 is not a power of two.*layer 0: pool 3 is not"):
        ArrayConfig.for_model(model, 4)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_spike_lanes_change_cycles_not_results(lanes):
    """The same conv network (odd sizes: a pool remainder to clear) at 4 PEs with 1, 2 and
    4 spike lanes: identical spikes, and cycles exactly as the performance model says."""
    from firstspike.hw.perf import layer_counts
    from firstspike.sw.random_models import random_cnn
    rng = np.random.default_rng(11)
    timing = Timing(T=4, B=2, frac_bits=10)
    model = random_cnn(rng, (1, 5, 5), [dict(channels=6, kernel=3, padding=1, pool=2),
                                        dict(channels=5, kernel=1, pool=1)], [], 3, timing)
    cfg = ArrayConfig.for_model(model, 4, spike_lanes=lanes)
    times = random_input_times(rng, model.layers[0].n_in, 2, timing)
    golden = GoldenModel(model).run_times(times)
    counts = layer_counts(model, cfg, golden)
    results = run_amaranth(cfg, network_image(model, cfg), model.shapes, times)
    for b, r in enumerate(results):
        for k, s in enumerate(r.spikes):
            assert np.array_equal(s, golden.spikes[k][b]), (b, k)
        assert np.array_equal(r.potentials, golden.potentials[b])
        assert r.layer_cycles == [int(c.cycles[b]) for c in counts]
    # enough spikes for the lanes to matter: one lane is slower than four
    one, four = (sum(c.cycles for c in layer_counts(model, ArrayConfig.for_model(model, 4, spike_lanes=n), golden))
                 for n in (1, 4))
    assert (one > four).all()


def test_spike_lanes_must_be_a_power_of_two_up_to_pes():
    with pytest.raises(ValueError, match="spike_lanes"):
        small_config(Timing(T=4, B=2, frac_bits=8), pes=4, spike_lanes=3)
    with pytest.raises(ValueError, match="spike_lanes"):
        small_config(Timing(T=4, B=2, frac_bits=8), pes=2, spike_lanes=4)
    assert small_config(Timing(T=4, B=2, frac_bits=8), pes=16).spike_lanes == 4
    assert small_config(Timing(T=4, B=2, frac_bits=8), pes=3).spike_lanes == 2


def test_one_array_for_several_models_is_their_largest_requirement():
    timing = Timing(T=8, B=2, frac_bits=12)
    models = [random_model(np.random.default_rng(s), sizes, timing) for s, sizes in ((0, [30, 5, 2]), (1, [4, 40, 3]))]
    cfg = ArrayConfig.for_models(models, 4)
    singles = [ArrayConfig.for_model(m, 4) for m in models]
    assert cfg.weight_buffer == max(c.weight_buffer for c in singles) and cfg.max_channels == 40
    assert cfg.acc_width == max(c.acc_width for c in singles)
    for m in models:
        cfg.check_fits(m)
    other = random_model(np.random.default_rng(2), [4, 3], Timing(T=6, B=2, frac_bits=12))
    with pytest.raises(InputError, match="one timing"):
        ArrayConfig.for_models(models + [other], 4)

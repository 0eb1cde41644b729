"""Loading buffers from external memory: RowUnpacker, BufferLoader, the layout of hw/external.py
and the load timing of the cycle model (hw.perf.load_cycles), in Amaranth's simulator.

Random streams use fixed seeds (the parametrize ids); rerun one case to reproduce it."""
import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from firstspike.hw import external
from firstspike.hw.axi import BurstReader
from firstspike.hw.config import ArrayConfig
from firstspike.hw.layouts import LoadTarget
from firstspike.hw.loader import BufferLoader, max_request_words
from firstspike.hw.perf import load_cycles
from firstspike.hw.unpack import RowUnpacker
from firstspike.sim.axi_memory import AxiMemoryModel
from firstspike.sw.formats import Timing


def _rows(rng, n, pes, bits):
    return rng.integers(0, 1 << bits, size=(n, pes))


def _row_value(row, bits):
    return sum(int(v) << (bits * p) for p, v in enumerate(row))


@pytest.mark.parametrize("word_bits,pes,bits", [(64, 16, 5), (64, 1, 5), (64, 4, 23), (32, 3, 24), (128, 7, 5)])
def test_unpacker_cuts_back_to_back_rows_under_random_stalls(word_bits, pes, bits):
    """Two blocks (a flush between them) of packed rows arrive with random gaps while the
    consumer is randomly not ready: every row comes out once, in order, intact."""
    rng = np.random.default_rng([word_bits, pes, bits])
    blocks = [_rows(rng, n, pes, bits) for n in (13, 7)]
    dut = RowUnpacker(word_bits, pes * bits)
    got = [[], []]

    async def producer(ctx):
        for i, block in enumerate(blocks):
            for word in external.pack_rows(block, bits, word_bits):
                ctx.set(dut.words.payload, word)
                ctx.set(dut.words.valid, 0)
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.words.valid, 1)
                await ctx.tick().until(dut.words.ready)
            ctx.set(dut.words.valid, 0)
            while len(got[i]) < len(block):
                await ctx.tick()
            ctx.set(dut.flush, 1)  # the rest of the last word is padding
            await ctx.tick()
            ctx.set(dut.flush, 0)

    async def consumer(ctx):
        block = 0
        async for _, _, valid, ready, payload in ctx.tick().sample(dut.rows.valid, dut.rows.ready, dut.rows.payload):
            if valid and ready:
                got[block].append(payload)
                if len(got[block]) == len(blocks[block]):
                    block += 1
            ctx.set(dut.rows.ready, int(rng.random() < 0.7))
            if block == len(blocks):
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_process(consumer)
    sim.run_until(1e-8 * 5000)
    for block, rows in zip(blocks, got):
        assert rows == [_row_value(r, bits) for r in block]


def _loader_on_memory(cfg, words, latency):
    """A BufferLoader reading through a BurstReader from the memory model holding ``words``."""
    top = Module()
    top.submodules.loader = loader = BufferLoader(cfg)
    top.submodules.reader = reader = BurstReader(external.ADDR_BITS, cfg.bus_bits, max_request_words(cfg))
    top.submodules.memory = memory = AxiMemoryModel(external.ADDR_BITS, cfg.bus_bits, words, latency)
    wiring.connect(top, loader.request, reader.request)
    wiring.connect(top, reader.data, loader.words)
    wiring.connect(top, reader.axi, memory.axi)
    return top, loader


@pytest.mark.parametrize("pes,acc_width,bus_bits,rows,target", [
    (16, 23, 64, 300, LoadTarget.WEIGHTS),  # 80-bit rows, 375 words: two bursts
    (1, 24, 64, 70, LoadTarget.WEIGHTS),  # 12 rows per word: the bus stalls
    (4, 20, 32, 9, LoadTarget.BIASES),
    (3, 18, 128, 700, LoadTarget.WEIGHTS),  # crosses a 4 KB boundary
])
def test_loader_fills_buffers_in_the_cycles_the_model_predicts(pes, acc_width, bus_bits, rows, target):
    """A load command through BufferLoader, BurstReader and the memory model: the buffer gets
    row r at address r, and the loader is busy exactly as long as hw.perf.load_cycles says."""
    cfg = ArrayConfig(pes=pes, timing=Timing(T=4, B=2, frac_bits=8), acc_width=acc_width, max_layers=1,
                      max_channels=4, max_size=2, weight_buffer=1024, bias_buffer=16, slot_depth=4, event_depth=4,
                      bus_bits=bus_bits)
    bits = 5 if target == LoadTarget.WEIGHTS else acc_width
    rng = np.random.default_rng(rows)
    data = _rows(rng, rows, pes, bits)
    offset = 3 * bus_bits // 8  # the block starts three words into the memory
    words = [0, 0, 0] + external.pack_rows(data, bits, bus_bits)
    latency = 5
    top, loader = _loader_on_memory(cfg, words, latency)
    port = loader.weight_w if target == LoadTarget.WEIGHTS else loader.bias_w
    written, busy_until = {}, []

    async def bench(ctx):
        ctx.set(loader.command.payload, {"addr": offset, "beats": len(words) - 3, "rows": rows, "target": target})
        ctx.set(loader.command.valid, 1)
        await ctx.tick()  # cycle 0: the command is taken
        ctx.set(loader.command.valid, 0)
        cycle = 1
        while ctx.get(loader.busy):
            if ctx.get(port.en):
                written[ctx.get(port.addr)] = ctx.get(port.data)
            await ctx.tick()
            cycle += 1
        busy_until.append(cycle)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert written == {r: _row_value(data[r], bits) for r in range(rows)}
    row_bits = pes * bits
    # the sequencer leaves its LOAD state in the cycle after the loader is idle again
    assert busy_until[0] + 1 == load_cycles(offset, len(words) - 3, rows, row_bits, bus_bits, latency)


@pytest.mark.parametrize("bus_bits,T", [(64, 16), (32, 4)])
def test_header_load_fills_the_header_register_in_the_predicted_cycles(bus_bits, T):
    """A layer header (descriptor and thresholds, hw.layouts.layer_header) read through the
    loader: the header register holds it, word 0 lowest, after exactly hw.perf.header_cycles."""
    from firstspike.hw.layouts import header_words, layer_header
    from firstspike.hw.perf import header_cycles
    cfg = ArrayConfig(pes=4, timing=Timing(T=T, B=2, frac_bits=8), acc_width=20, max_layers=3, max_channels=16,
                      max_size=8, weight_buffer=256, bias_buffer=8, slot_depth=64, event_depth=64, bus_bits=bus_bits)
    n = header_words(cfg)
    size = layer_header(cfg).size
    rng = np.random.default_rng(n)
    value = int.from_bytes(rng.bytes(n * bus_bits // 8), "little") & ((1 << size) - 1)
    offset = 4096 - bus_bits // 8 * 2  # two words before a 4 KB boundary: two bursts
    words = [0] * (offset * 8 // bus_bits) + [(value >> (i * bus_bits)) & ((1 << bus_bits) - 1) for i in range(n)]
    latency = 3
    top, loader = _loader_on_memory(cfg, words, latency)
    seen = {}

    async def bench(ctx):
        ctx.set(loader.command.payload, {"addr": offset, "beats": n, "rows": 1, "target": LoadTarget.HEADER})
        ctx.set(loader.command.valid, 1)
        await ctx.tick()
        ctx.set(loader.command.valid, 0)
        cycle = 1
        while ctx.get(loader.busy):
            await ctx.tick()
            cycle += 1
        seen["cycle"] = cycle
        seen["header"] = ctx.get(loader.header.as_value())

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert n > 2 and seen["header"] == value
    assert seen["cycle"] + 1 == header_cycles(offset, n, bus_bits, latency)

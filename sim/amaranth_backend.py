"""Run a NeuronArray in Amaranth's own simulator: the slow, 4-state-free cross-check of the
Verilator runs, and the way block tests drive the design."""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from firstspike.hw.config import ArrayConfig, NetworkImage
from firstspike.hw.host import (RunResult, decode_results, decode_stats, input_writes, network_writes, result_reads,
                                 stats_reads)
from firstspike.hw import external
from firstspike.hw.axi import MEMORY_LATENCY
from firstspike.hw.neuron_array import NeuronArray

from .axi_memory import AxiMemoryModel


def run_amaranth(cfg: ArrayConfig, image: NetworkImage, shapes: list, input_times: np.ndarray,
                 *, network_words: int = 0, max_cycles: int = 1_000_000) -> list[RunResult]:
    """Put ``image`` into the external memory model ``network_words`` bus words from its
    start, give the array that address (no write for 0: the address after reset), and run
    every row of input_times."""
    dut = NeuronArray(cfg)
    top = Module()
    top.submodules.dut = dut
    top.submodules.memory = memory = AxiMemoryModel(external.ADDR_BITS, cfg.bus_bits,
                                                    [0] * network_words + image.memory, MEMORY_LATENCY)
    wiring.connect(top, dut.axi, memory.axi)
    results: list[RunResult] = []
    n_layers = len(shapes) - 1

    async def bench(ctx):
        async def write(pairs):
            for addr, data in pairs:
                ctx.set(dut.host.addr, addr)
                ctx.set(dut.host.w_data, data)
                ctx.set(dut.host.w_en, 1)
                await ctx.tick()
            ctx.set(dut.host.w_en, 0)

        async def read(addrs):
            out = []
            for addr in addrs:
                ctx.set(dut.host.addr, addr)
                await ctx.tick()
                out.append(ctx.get(dut.host.r_data))
            return out

        if network_words:
            await write(network_writes(cfg, network_words * cfg.bus_bits // 8))
        for times in input_times:
            await write(input_writes(cfg, times, shapes[0]))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(max_cycles):
                if ctx.get(dut.done):
                    break
                await ctx.tick()
            else:
                raise TimeoutError(f"no done after {max_cycles} cycles")
            stats = await read(stats_reads(cfg, n_layers))
            _, _, layer_events = decode_stats(cfg, n_layers, stats)
            words = await read(result_reads(cfg, sum(layer_events), int(np.prod(shapes[-1]))))
            results.append(decode_results(cfg, shapes, stats, words))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results

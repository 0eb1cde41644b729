"""cocotb testbench for the generated NeuronArray (runs inside the simulator process).

The toplevel is the wrapper of sim.verilator.bench_top, which generates the clock.

The job comes from the file named by FIRSTSPIKE_JOB (written by sim.verilator.run):
the array configuration, layer spike shapes, optional network-load writes and the input
spike times of every image. The bench only drives and records; the comparison with
the golden model happens afterwards in sim.flow, outside the simulator.

Per image the Python side touches the design only to write the input events (one
cycle each), pulse start and read back results; while the array runs, the bench waits
on ``done`` without per-cycle Python.
"""
from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hw.config import ArrayConfig
from hw.host import decode_stats, input_writes, result_reads, stats_reads


class HostDriver:
    """Drives the host bus: one word written or read per clock cycle."""

    def __init__(self, dut):
        self.dut = dut
        self.cycles = 0

    async def write(self, pairs):
        dut = self.dut
        for addr, data in pairs:
            dut.host__addr.value = int(addr)
            dut.host__w_data.value = int(data)
            dut.host__w_en.value = 1
            await RisingEdge(dut.clk)
        dut.host__w_en.value = 0
        self.cycles += len(pairs)

    async def read(self, addrs):
        """r_data answers the address of the previous cycle: present the next address
        right after each edge, sample the answer in the read-only phase of that edge."""
        dut = self.dut
        out = []
        if not addrs:
            return out
        dut.host__addr.value = int(addrs[0])
        for nxt in list(addrs[1:]) + [None]:
            await RisingEdge(dut.clk)
            if nxt is not None:
                dut.host__addr.value = int(nxt)
            await ReadOnly()
            out.append(int(dut.host__r_data.value.to_unsigned()))
        await RisingEdge(dut.clk)
        self.cycles += len(addrs) + 1
        return out


class ArrayBench:
    """Clock, reset and the run protocol of one NeuronArray."""

    def __init__(self, dut, cfg: ArrayConfig):
        self.dut, self.cfg = dut, cfg
        self.host = HostDriver(dut)
        self.busy_seconds = 0.0  # wall time while the array runs on its own
        self.busy_cycles = 0

    async def reset(self):
        dut = self.dut
        dut.start.value = 0
        dut.host__w_en.value = 0
        dut.host__addr.value = 0
        dut.host__w_data.value = 0
        dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def run_image(self, times, shapes):
        dut, cfg = self.dut, self.cfg
        n_layers = len(shapes) - 1
        await self.host.write(input_writes(cfg, times, shapes[0]))
        dut.start.value = 1
        started = time.perf_counter()
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await RisingEdge(dut.done)
        self.busy_seconds += time.perf_counter() - started
        await RisingEdge(dut.clk)
        stats = await self.host.read(stats_reads(cfg, n_layers))
        counters, _, layer_events = decode_stats(cfg, n_layers, stats)
        self.busy_cycles += counters["cycles"]
        self.host.cycles += counters["cycles"] + 2
        words = await self.host.read(result_reads(cfg, sum(layer_events), int(np.prod(shapes[-1]))))
        return stats, words


@cocotb.test()
async def run_job(dut):
    """Run every image of the job and save the raw read-back words."""
    with np.load(os.environ["FIRSTSPIKE_JOB"], allow_pickle=False) as job:
        cfg = ArrayConfig.from_dict(json.loads(str(job["config"])))
        shapes = [tuple(int(v) for v in s) for s in job["shapes"]]
        inputs = job["input_times"]
        loads = list(zip(job["load_addr"].tolist(), (int(d) for d in job["load_data"])))
    progress = os.environ.get("FIRSTSPIKE_PROGRESS")

    # the clock runs inside the simulator (sim.verilator.bench_top): no per-edge Python
    bench = ArrayBench(dut, cfg)
    await bench.reset()
    await bench.host.write(loads)

    all_stats, all_words = [], []
    for n, times in enumerate(inputs):
        stats, words = await bench.run_image(times, shapes)
        all_stats.append(stats)
        all_words.append(words)
        if progress:
            with open(progress, "w") as f:
                f.write(str(n + 1))
    np.savez(os.environ["FIRSTSPIKE_RESULT"],
             stats=np.array([w for s in all_stats for w in s], dtype=np.uint64),
             stats_len=np.array([len(s) for s in all_stats], dtype=np.int64),
             words=np.array([w for s in all_words for w in s], dtype=np.uint64),
             words_len=np.array([len(s) for s in all_words], dtype=np.int64),
             sim_cycles=np.array(bench.host.cycles), busy_cycles=np.array(bench.busy_cycles),
             busy_seconds=np.array(bench.busy_seconds))

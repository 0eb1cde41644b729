"""cocotb testbench for the generated NeuronArray (runs inside the simulator process).

The toplevel is the wrapper of sim.verilator.bench_top: it makes the clock and holds a
host sequencer that replays the scripts sim.verilator.run wrote (sim.host_script). The
bench only resets the design and starts one script after another; every bus word and
every clock edge happens inside the simulator. The comparison with the golden model
happens afterwards in sim.flow, outside the simulator.

The job (FIRSTSPIKE_JOB, JSON) lists how many images each script runs; the bench writes
the cycles and wall time of the scripts and the array's ``memory_error`` output after each
script to FIRSTSPIKE_RESULT and the images done so far
to FIRSTSPIKE_PROGRESS. With ``cycle_limit`` in the job, a script that runs longer fails
the test (a timer inside the simulator, not a Python check per cycle).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge, with_timeout

from firstspike.sim.verilator import CLOCK_NS


@cocotb.test()
async def run_job(dut):
    """Run every script of the job."""
    job = json.loads(Path(os.environ["FIRSTSPIKE_JOB"]).read_text())
    progress = os.environ.get("FIRSTSPIKE_PROGRESS")
    dut.go.value = 0
    dut.chunk.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    cycles, seconds, images, memory_error = 0, 0.0, 0, []
    for i, n in enumerate(job["images"]):
        dut.chunk.value = i
        dut.go.value = 1
        started = time.perf_counter()
        await RisingEdge(dut.clk)
        dut.go.value = 0
        if job.get("cycle_limit"):
            await with_timeout(RisingEdge(dut.script_done), job["cycle_limit"] * CLOCK_NS, "ns")
        else:
            await RisingEdge(dut.script_done)
        seconds += time.perf_counter() - started
        cycles += int(dut.cycles.value)
        memory_error.append(int(dut.memory_error.value))
        images += n
        if progress:
            Path(progress).write_text(str(images))
    Path(os.environ["FIRSTSPIKE_RESULT"]).write_text(json.dumps({"cycles": cycles, "seconds": seconds,
                                                                "memory_error": memory_error}))

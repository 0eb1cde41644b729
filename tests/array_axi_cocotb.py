"""cocotb test of the whole NeuronArray on a real AXI4 bus model (run by tests/test_axi.py).

The array reads its biases and weights from cocotbext-axi's AxiRamRead, whose AR and R
channels pause at random, while cocotb plays the host (hw.host's transactions, one bus
word per cycle). FIRSTSPIKE_ARRAY_JOB (JSON): the host writes, the memory image, the
read addresses per image and the seed; FIRSTSPIKE_ARRAY_RESULT receives the words read.
"""
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

JOB = json.loads(open(os.environ["FIRSTSPIKE_ARRAY_JOB"]).read()) if "FIRSTSPIKE_ARRAY_JOB" in os.environ else {}


@cocotb.test()
async def array_against_axi_ram(dut):
    from cocotbext.axi import AxiRamRead, AxiReadBus
    Clock(dut.clk, 10, unit="ns").start()
    nbytes = JOB["bus_bits"] // 8
    ram = AxiRamRead(AxiReadBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=1 << 20)
    ram.write(0, b"".join(w.to_bytes(nbytes, "little") for w in JOB["memory"]))
    rng = random.Random(JOB["seed"])
    ram.ar_channel.set_pause_generator(iter(lambda: rng.random() < 0.4, None))
    ram.r_channel.set_pause_generator(iter(lambda: rng.random() < 0.4, None))

    # inputs change on falling edges; a read's answer is there one rising edge after its address
    dut.start.value = 0
    dut.host__w_en.value = 0
    dut.host__addr.value = 0
    dut.host__w_data.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    async def write(pairs):
        for addr, data in pairs:
            await FallingEdge(dut.clk)
            dut.host__addr.value = addr
            dut.host__w_data.value = data
            dut.host__w_en.value = 1
        await FallingEdge(dut.clk)
        dut.host__w_en.value = 0

    async def read(addrs):
        out = []
        for addr in addrs:
            dut.host__addr.value = addr
            await FallingEdge(dut.clk)
            out.append(int(dut.host__r_data.value))
        return out

    await write(JOB["load_writes"])
    images = []
    for image in JOB["images"]:
        await write(image["writes"])
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        for _ in range(JOB["cycle_limit"]):
            await FallingEdge(dut.clk)
            if int(dut.done.value):
                break
        else:
            raise AssertionError("the array did not finish")
        stats = await read(image["stats_reads"])
        words = await read(image["result_reads"])
        images.append({"stats": stats, "words": words})
    assert int(dut.memory_error.value) == 0
    open(os.environ["FIRSTSPIKE_ARRAY_RESULT"], "w").write(json.dumps(images))

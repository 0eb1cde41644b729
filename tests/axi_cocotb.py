"""cocotb tests of hw.axi.BurstReader (run inside the simulator by tests/test_axi.py).

FIRSTSPIKE_AXI_JOB (JSON) lists the requests (byte address, words), the data width and
the seed; FIRSTSPIKE_AXI_RESULT receives what the tests observed.
"""
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

JOB = json.loads(open(os.environ["FIRSTSPIKE_AXI_JOB"]).read()) if "FIRSTSPIKE_AXI_JOB" in os.environ else {}


def _word(addr: int, nbytes: int) -> int:
    """The memory pattern: every byte is a hash of its address (so a wrong address shows)."""
    return int.from_bytes(bytes(((addr + i) * 167 + ((addr + i) >> 8) * 31) & 0xFF for i in range(nbytes)), "little")


async def _reset(dut):
    dut.request__valid.value = 0
    dut.data__ready.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _run_requests(dut, requests, ready_prob, rng, record):
    """Drive the request stream and the data consumer; record (cycle, word) of every data beat
    and (cycle, araddr, arlen, arsize, arburst) of every AR handshake."""
    cycle = 0
    pending = list(requests)
    words_expected = sum(w for _, w in requests)
    got = 0
    while got < words_expected or pending:
        if pending:
            addr, words = pending[0]
            dut.request__valid.value = 1
            dut.request__payload.value = addr | (words << JOB["addr_bits"])
        else:
            dut.request__valid.value = 0
        dut.data__ready.value = 1 if rng.random() < ready_prob else 0
        await ReadOnly()
        if int(dut.axi__arvalid.value) and int(dut.axi__arready.value):
            record["bursts"].append([cycle, int(dut.axi__araddr.value), int(dut.axi__arlen.value),
                                     int(dut.axi__arsize.value), int(dut.axi__arburst.value)])
        if int(dut.data__valid.value) and int(dut.data__ready.value):
            record["beats"].append([cycle, int(dut.data__payload.value)])
            got += 1
        if pending and int(dut.request__ready.value):
            record["accepted"].append(cycle)
            pending.pop(0)
        await RisingEdge(dut.clk)
        cycle += 1
        if cycle > 200000:
            raise AssertionError("the reader stopped making progress")
    record["error"] = int(dut.error.value)


@cocotb.test()
async def against_axi_ram(dut):
    """BurstReader against cocotbext-axi's AxiRamRead with random stalls on every channel."""
    from cocotbext.axi import AxiRamRead, AxiReadBus
    if JOB.get("memory") != "axi_ram":
        return
    Clock(dut.clk, 10, unit="ns").start()
    nbytes = JOB["data_bits"] // 8
    ram = AxiRamRead(AxiReadBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=1 << 16)
    ram.write(0, b"".join(_word(a, nbytes).to_bytes(nbytes, "little") for a in range(0, 1 << 16, nbytes)))
    rng = random.Random(JOB["seed"])
    ram.ar_channel.set_pause_generator(iter(lambda: rng.random() < 0.3, None))
    ram.r_channel.set_pause_generator(iter(lambda: rng.random() < 0.3, None))
    await _reset(dut)
    record = {"bursts": [], "beats": [], "accepted": []}
    await _run_requests(dut, JOB["requests"], 0.7, rng, record)
    record["expected"] = [_word(a + i * nbytes, nbytes) for a, w in JOB["requests"] for i in range(w)]
    open(os.environ["FIRSTSPIKE_AXI_RESULT"], "w").write(json.dumps(record))


@cocotb.test()
async def against_deterministic_memory(dut):
    """BurstReader against sim.axi_memory with a consumer that never stalls: exact timing."""
    if JOB.get("memory") != "deterministic":
        return
    Clock(dut.clk, 10, unit="ns").start()
    await _reset(dut)
    record = {"bursts": [], "beats": [], "accepted": []}
    await _run_requests(dut, JOB["requests"], 1.0, random.Random(0), record)
    open(os.environ["FIRSTSPIKE_AXI_RESULT"], "w").write(json.dumps(record))

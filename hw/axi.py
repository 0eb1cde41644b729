"""AXI4 read access to external memory: the bus signature and a burst reader.

The processor keeps descriptors, weights, biases and thresholds in external memory and
reads them through ``BurstReader``: a request stream (byte address, word count) in, a
stream of data words out, AXI4 INCR bursts on the bus. Port names follow the AXI
specification (``axi__araddr``, ``axi__rdata``, ...) so FPGA tools and bus models
(cocotbext-axi's ``AxiRamRead``) connect by prefix.
"""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

#: AXI4 limits: an INCR burst has at most 256 beats and must not cross a 4 KB boundary
MAX_BURST = 256
BOUNDARY = 4096
BURST_INCR = 0b01
RESP_OKAY = 0b00
#: cycles from a read address to its first data beat in the simulation memory
#: (sim/axi_memory.py), and what the cycle model (hw/perf.py) assumes by default
MEMORY_LATENCY = 8


class AxiReadBus(wiring.Signature):
    """The AXI4 read address (AR) and read data (R) channels, from the manager's side."""

    def __init__(self, addr_bits: int, data_bits: int, id_bits: int = 1):
        if data_bits not in (8, 16, 32, 64, 128, 256, 512, 1024):
            raise ValueError(f"AXI data width must be a power of two from 8 to 1024 bits, not {data_bits}")
        self.addr_bits, self.data_bits, self.id_bits = addr_bits, data_bits, id_bits
        super().__init__({
            "arid": Out(id_bits), "araddr": Out(addr_bits), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
            "rready": Out(1),
        })

    @property
    def bytes_per_beat(self) -> int:
        return self.data_bits // 8


def read_request(addr_bits: int, max_words: int) -> data.StructLayout:
    """Read ``words`` consecutive data words from byte address ``addr`` (aligned to the data width)."""
    return data.StructLayout({"addr": unsigned(addr_bits), "words": range(max_words + 1)})


def bursts(addr: int, words: int, bytes_per_beat: int) -> list[tuple[int, int]]:
    """(byte address, beats) of the bursts ``BurstReader`` issues for one request: the host-side
    mirror used by the cycle model and the tests."""
    out = []
    while words:
        room = (BOUNDARY - addr % BOUNDARY) // bytes_per_beat
        beats = min(words, MAX_BURST, room)
        out.append((addr, beats))
        addr += beats * bytes_per_beat
        words -= beats
    return out


class BurstReader(wiring.Component):
    """Turns read requests into AXI4 INCR bursts and streams the words back in order.

    A request of ``words`` words becomes bursts of full-width beats (``arsize`` = log2 of
    the bytes per beat), each at most 256 beats long and never crossing a 4 KB boundary
    (``bursts`` computes the same split in Python). One burst is in flight at a time, so
    data arrive in request order with one transaction ID. ``data.ready`` is the bus's
    ``rready``: a consumer that stalls stalls the memory, nothing is buffered or lost.
    A zero-word request completes without a bus transaction. ``error`` goes high, and
    stays high until reset, when a beat returns SLVERR or DECERR.

    Members
    -------
    request : In(stream.Signature(read_request))
    data : Out(stream.Signature(data_bits))
    error : Out(1)
    axi : Out(AxiReadBus)
    """

    def __init__(self, addr_bits: int, data_bits: int = 64, max_words: int = 1 << 16):
        self.bus = AxiReadBus(addr_bits, data_bits)
        self.max_words = max_words
        super().__init__({
            "request": In(stream.Signature(read_request(addr_bits, max_words))),
            "data": Out(stream.Signature(data_bits)),
            "error": Out(1),
            "axi": Out(self.bus),
        })

    def elaborate(self, platform):
        m = Module()
        axi, bus = self.axi, self.bus
        size = (bus.bytes_per_beat - 1).bit_length()
        addr = Signal.like(axi.araddr)
        remaining = Signal(range(self.max_words + 1))
        beats = Signal(range(MAX_BURST + 1))  # of the burst being issued or received
        received = Signal(range(MAX_BURST + 1))
        room = Signal(range(BOUNDARY // bus.bytes_per_beat + 1))
        m.d.comb += [room.eq((BOUNDARY - addr[:12]) >> size),
                     axi.arsize.eq(size), axi.arburst.eq(BURST_INCR), axi.arid.eq(0),
                     axi.araddr.eq(addr), axi.arlen.eq(beats - 1)]
        first = Mux(remaining < MAX_BURST, remaining, MAX_BURST)
        m.d.comb += beats.eq(Mux(first < room, first, room))
        burst_beats = Signal.like(beats)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.request.ready.eq(1)
                with m.If(self.request.valid):
                    m.d.sync += [addr.eq(self.request.payload.addr), remaining.eq(self.request.payload.words)]
                    m.d.sync += Assert(self.request.payload.addr[:size] == 0 if size else 1,
                                       "read request address not aligned to the data width")
                    with m.If(self.request.payload.words != 0):
                        m.next = "ADDRESS"
            with m.State("ADDRESS"):
                m.d.comb += axi.arvalid.eq(1)
                with m.If(axi.arready):
                    m.d.sync += [burst_beats.eq(beats), received.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [self.data.valid.eq(axi.rvalid), self.data.payload.eq(axi.rdata),
                             axi.rready.eq(self.data.ready)]
                with m.If(axi.rvalid & self.data.ready):
                    m.d.sync += received.eq(received + 1)
                    m.d.sync += Assert(axi.rlast == (received == burst_beats - 1),
                                       "rlast does not mark the burst's last beat")
                    with m.If(axi.rresp[1]):
                        m.d.sync += self.error.eq(1)
                    with m.If(axi.rlast):
                        m.d.sync += [addr.eq(addr + (burst_beats << size)), remaining.eq(remaining - burst_beats)]
                        with m.If(remaining == burst_beats):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "ADDRESS"
        return m

"""A deterministic AXI4 read memory for simulation: fixed latency, one beat per cycle.

The external memory inside the Verilator testbench. Its contents come from a ``$readmemh``
file (no Python per cycle, no VPI), and its timing is a formula, so cycle counts stay
exactly predictable: the first beat of a burst is valid ``latency`` cycles after the
cycle its address was accepted, and the following beats come one per cycle while
``rready`` is high. One burst at a time: ``arready`` is low while a burst is pending.
Beats beyond the loaded contents read as zero. With the plusarg ``+axi_error_from=N`` every
beat from word N on answers SLVERR (its data still correct), so tests can check that the
manager reports a failing memory.

It also checks the manager's side of the protocol on every accepted address and stops
the simulation (``$fatal``) on a violation: a burst type other than INCR, a beat size
other than the bus width, an address not aligned to it, a burst crossing a 4 KB
boundary, or one reaching beyond the memory's last word (a real interconnect answers
such a read with a decode error; wrapping around would hide a wrong high address bit).
So a design that only works because this model ignores a field fails here.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from firstspike.hw.axi import AxiReadBus
from firstspike.hw.external import memory_hex

MODULE = "firstspike_axi_memory"


def axi_memory_verilog(addr_bits: int, data_bits: int, depth_words: int, latency: int) -> str:
    """Verilog source of the memory model (module ``firstspike_axi_memory``, ports ``axi__*`` as the
    manager's, plus ``clk``, ``rst`` and the contents file name in the ``+axi_memory=`` plusarg)."""
    if latency < 1:
        raise ValueError(f"latency must be at least 1 cycle, not {latency}")
    if data_bits % 8 or data_bits & (data_bits - 1):
        raise ValueError(f"data_bits must be a power-of-two number of bytes, not {data_bits}")
    size = (data_bits // 8 - 1).bit_length()
    index_bits = max(1, (depth_words - 1).bit_length())
    return f"""`timescale 1ns/1ps
// {MODULE}: deterministic AXI4 read subordinate (firstspike.sim.axi_memory)
module {MODULE}(input clk, input rst,
    input [0:0] axi__arid, input [{addr_bits - 1}:0] axi__araddr, input [7:0] axi__arlen, input [2:0] axi__arsize,
    input [1:0] axi__arburst, input axi__arvalid, output axi__arready,
    output [0:0] axi__rid, output [{data_bits - 1}:0] axi__rdata, output [1:0] axi__rresp, output axi__rlast,
    output axi__rvalid, input axi__rready);
  reg [{data_bits - 1}:0] mem [0:{depth_words - 1}];
  string file;
  integer i;
  initial begin
    for (i = 0; i < {depth_words}; i = i + 1) mem[i] = 0;
    if ($value$plusargs("axi_memory=%s", file)) $readmemh(file, mem);
  end
  reg pending;
  reg [{index_bits - 1}:0] index;
  reg [7:0] left;
  reg [{max(1, latency.bit_length())}:0] wait_cycles;
  assign axi__arready = !pending;
  assign axi__rvalid = pending && wait_cycles == 0;
  assign axi__rdata = mem[index];
  assign axi__rlast = left == 0;
  // +axi_error_from=N: beats from word N on answer SLVERR (a failing memory, for the error path's tests)
  reg [31:0] error_from;
  initial if (!$value$plusargs("axi_error_from=%d", error_from)) error_from = {depth_words};
  assign axi__rresp = index >= error_from ? 2'b10 : 2'b00;
  assign axi__rid = 1'b0;
  always @(posedge clk) if (!rst && !pending && axi__arvalid) begin
    if (axi__arburst != 2'b01) $fatal(1, "axi memory: burst type %0d, not INCR", axi__arburst);
    if (axi__arsize != 3'd{size}) $fatal(1, "axi memory: arsize %0d, not the bus width ({size})", axi__arsize);
    if ((axi__araddr % {data_bits // 8}) != 0) $fatal(1, "axi memory: address %0h not aligned", axi__araddr);
    if ((axi__araddr % 4096) + ((axi__arlen + 1) * {data_bits // 8}) > 4096)
      $fatal(1, "axi memory: burst at %0h of %0d beats crosses 4 KB", axi__araddr, axi__arlen + 1);
    if ((axi__araddr >> {size}) + axi__arlen >= {depth_words})
      $fatal(1, "axi memory: burst at %0h of %0d beats reaches beyond the memory's %0d bytes", axi__araddr,
             axi__arlen + 1, {depth_words * (data_bits // 8)});
  end
  always @(posedge clk) begin
    if (rst) begin
      pending <= 1'b0;
    end else if (!pending) begin
      if (axi__arvalid) begin
        pending <= 1'b1;
        index <= axi__araddr[{index_bits + size - 1}:{size}];
        left <= axi__arlen;
        wait_cycles <= {latency - 1};
      end
    end else if (wait_cycles != 0) begin
      wait_cycles <= wait_cycles - 1;
    end else if (axi__rready) begin
      index <= index + 1;
      left <= left - 1;
      if (left == 0) pending <= 1'b0;
    end
  end
endmodule
"""


def write_contents(path, words: list[int], data_bits: int, offset: int = 0) -> None:
    """The ``$readmemh`` file of the memory: one hex word per line from word address ``offset``
    (an ``@`` line: the words below it stay zero and cost nothing to load)."""
    write_sections(path, [(offset, words)], data_bits)


def write_sections(path, sections: list[tuple[int, list[int]]], data_bits: int) -> None:
    """The ``$readmemh`` file of several blocks of words, each (word offset, words); they must
    not overlap."""
    sections = sorted(sections, key=lambda sec: sec[0])
    for (a, wa), (b, _) in zip(sections, sections[1:]):
        if a + len(wa) > b:
            raise ValueError(f"memory blocks at words {a} ({len(wa)} words) and {b} overlap")
    with open(path, "w") as f:
        for offset, words in sections:
            f.write((f"@{offset:x}\n" if offset else "") + memory_hex(words, data_bits))


class AxiMemoryModel(wiring.Component):
    """The same memory as an Amaranth component, for Amaranth-simulator runs (sim.amaranth_backend):
    contents from ``words`` (Memory init), the timing of ``axi_memory_verilog``."""

    def __init__(self, addr_bits: int, data_bits: int, words: list[int], latency: int):
        self.data_bits, self.words, self.latency = data_bits, list(words), latency
        super().__init__({"axi": In(AxiReadBus(addr_bits, data_bits))})

    def elaborate(self, platform):
        m = Module()
        depth = max(2, len(self.words))
        m.submodules.mem = mem = memory.Memory(shape=self.data_bits, depth=depth, init=self.words)
        rd = mem.read_port(domain="comb")
        size = (self.data_bits // 8 - 1).bit_length()
        axi = self.axi
        pending = Signal()
        index = Signal(range(depth))
        left = Signal(8)
        wait = Signal(range(self.latency + 1))
        m.d.comb += [axi.arready.eq(~pending), axi.rvalid.eq(pending & (wait == 0)), rd.addr.eq(index),
                     axi.rdata.eq(rd.data), axi.rlast.eq(left == 0)]
        with m.If(~pending):
            with m.If(axi.arvalid):
                m.d.sync += [pending.eq(1), index.eq(axi.araddr[size:]), left.eq(axi.arlen),
                             wait.eq(self.latency - 1)]
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(axi.rready):
            m.d.sync += [index.eq(index + 1), left.eq(left - 1)]
            with m.If(left == 0):
                m.d.sync += pending.eq(0)
        return m

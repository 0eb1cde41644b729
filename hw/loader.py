"""BufferLoader: fills the PEs' weight or bias buffers from external memory."""
from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import external
from .axi import read_request
from .config import ArrayConfig
from .layouts import LoadTarget, addr_width, header_words, layer_header, load_command
from .unpack import RowUnpacker


def max_request_words(cfg: ArrayConfig) -> int:
    return (1 << load_command(cfg)["beats"].shape.width) - 1


class BufferLoader(wiring.Component):
    """One load command: read ``beats`` bus words from ``addr``, cut them into ``rows`` rows
    (hw/external.py packs them), write row r to address ``first_row + r`` of every PE's target
    buffer, PE p taking its slice of the row. One row per cycle; the words come from a ``BurstReader``.

    Rows are cut by one ``RowUnpacker`` per target (weight rows are 5 bits per PE, bias rows
    ``acc_width``); while the loader is idle both are flushed, so every block starts at a
    word boundary. A layer header (one row of whole words) shifts into the ``header``
    register a word at a time, which holds it until the next header load. ``busy`` is high
    from the cycle after a command is taken until the cycle after its last row (for a
    header: its last word) is written.

    Members
    -------
    command : In(stream.Signature(load_command))
    request : Out(stream.Signature(read_request))  to the BurstReader
    words : In(stream.Signature(bus_bits))  from the BurstReader
    weight_w, bias_w : In(memory.WritePort.Signature)  a row for all PEs (the loader drives the write ports)
    header : Out(layer_header)  the last header loaded
    busy : Out(1)
    """

    def __init__(self, cfg: ArrayConfig):
        self.cfg = cfg
        self.weight_row_bits = external.weight_row_bits(cfg.pes)
        self.bias_row_bits = external.bias_row_bits(cfg.pes, cfg.acc_width)
        super().__init__({
            "command": In(stream.Signature(load_command(cfg))),
            "request": Out(stream.Signature(read_request(external.ADDR_BITS, max_request_words(cfg)))),
            "words": In(stream.Signature(cfg.bus_bits)),
            "weight_w": In(memory.WritePort.Signature(addr_width=addr_width(cfg.weight_buffer),
                                                       shape=self.weight_row_bits)),
            "bias_w": In(memory.WritePort.Signature(addr_width=addr_width(cfg.bias_buffer),
                                                    shape=self.bias_row_bits)),
            "header": Out(layer_header(cfg)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.weight_rows = weight_rows = RowUnpacker(cfg.bus_bits, self.weight_row_bits)
        m.submodules.bias_rows = bias_rows = RowUnpacker(cfg.bus_bits, self.bias_row_bits)
        command = Signal(load_command(cfg))
        row = Signal.like(command.rows)
        words = header_words(cfg)
        header = Signal(words * cfg.bus_bits)  # word 0 ends up lowest
        word_count = Signal.like(command.beats)
        m.d.comb += self.header.eq(header[:layer_header(cfg).size])
        m.d.comb += [self.weight_w.addr.eq(command.first_row + row), self.weight_w.data.eq(weight_rows.rows.payload),
                     self.bias_w.addr.eq(command.first_row + row), self.bias_w.data.eq(bias_rows.rows.payload)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.command.ready.eq(1), weight_rows.flush.eq(1), bias_rows.flush.eq(1)]
                m.d.sync += Assert(~self.words.valid, "external memory sent more words than the rows of a load use")
                with m.If(self.command.valid):
                    m.d.sync += [command.eq(self.command.payload), row.eq(0), word_count.eq(0)]
                    m.d.sync += Assert(self.command.payload.rows != 0, "load command of zero rows")
                    m.next = "REQUEST"
            with m.State("REQUEST"):
                m.d.comb += [self.busy.eq(1), self.request.valid.eq(1),
                             self.request.payload.addr.eq(command.addr), self.request.payload.words.eq(command.beats)]
                with m.If(self.request.ready):
                    m.next = "ROWS"
            with m.State("ROWS"):
                m.d.comb += self.busy.eq(1)
                with m.If(command.target == LoadTarget.HEADER):
                    m.d.comb += self.words.ready.eq(1)
                    with m.If(self.words.valid):
                        m.d.sync += [header.eq(Cat(header[cfg.bus_bits:], self.words.payload)),
                                     word_count.eq(word_count + 1)]
                        with m.If(word_count == command.beats - 1):
                            m.next = "IDLE"
                for target, unpacker, port in ((LoadTarget.WEIGHTS, weight_rows, self.weight_w),
                                               (LoadTarget.BIASES, bias_rows, self.bias_w)):
                    with m.If(command.target == target):
                        m.d.comb += [unpacker.words.valid.eq(self.words.valid),
                                     unpacker.words.payload.eq(self.words.payload),
                                     self.words.ready.eq(unpacker.words.ready),
                                     unpacker.rows.ready.eq(1), port.en.eq(unpacker.rows.valid)]
                        with m.If(unpacker.rows.valid):
                            m.d.sync += row.eq(row + 1)
                            with m.If(row == command.rows - 1):
                                m.next = "IDLE"
        return m


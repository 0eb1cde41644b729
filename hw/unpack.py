"""RowUnpacker: a stream of bus words in, a stream of buffer rows out (rows packed back to back)."""
from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class RowUnpacker(wiring.Component):
    """Cuts ``row_bits``-wide rows from a stream of ``word_bits``-wide words, LSB first.

    Rows are packed back to back in external memory (a row of 16 weight codes is 80 bits:
    four rows fill five 64-bit words), so no bus bandwidth is lost to padding. A row
    leaves in every cycle in which the held bits make one (at most one row per cycle,
    what one buffer write port takes); a word is taken in every cycle in which it still
    fits after that row left. With ``row_bits >= word_bits`` the input therefore never
    stalls; narrower rows stall the bus while a word's rows leave one per cycle.
    ``flush`` drops the held bits (the rest of a block's last word), so the next block
    starts at a word boundary. ``hw.perf.load_cycles`` mirrors this timing.

    Members
    -------
    words : In(stream.Signature(word_bits))
    rows : Out(stream.Signature(row_bits))
    flush : In(1)  drop what is held (takes priority; no transfer happens in that cycle)
    """

    def __init__(self, word_bits: int, row_bits: int):
        self.word_bits, self.row_bits = word_bits, row_bits
        super().__init__({"words": In(stream.Signature(word_bits)), "rows": Out(stream.Signature(row_bits)),
                          "flush": In(1)})

    def elaborate(self, platform):
        W, R = self.word_bits, self.row_bits
        capacity = W + R - 1  # enough that a word always fits when no row can leave
        m = Module()
        held = Signal(capacity)
        level = Signal(range(capacity + 1))
        m.d.comb += [self.rows.valid.eq((level >= R) & ~self.flush), self.rows.payload.eq(held[:R])]
        out = Signal()
        m.d.comb += out.eq(self.rows.valid & self.rows.ready)
        after_out = Signal.like(level)
        m.d.comb += after_out.eq(Mux(out, level - R, level))
        m.d.comb += self.words.ready.eq((after_out + W <= capacity) & ~self.flush)
        take = Signal()
        m.d.comb += take.eq(self.words.valid & self.words.ready)
        shifted = Signal(capacity)
        m.d.comb += shifted.eq(Mux(out, held >> R, held))
        with m.If(self.flush):
            m.d.sync += [level.eq(0), held.eq(0)]
        with m.Elif(take):
            m.d.sync += [held.eq(shifted | (self.words.payload << after_out)), level.eq(after_out + W)]
        with m.Else():
            m.d.sync += [held.eq(shifted), level.eq(after_out)]
        m.d.sync += Assert(level <= capacity, "unpacker holds more bits than it has")
        return m

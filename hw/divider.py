"""FloorDivider: floor(dividend / t) for a signed dividend and a small step number t."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class FloorDivider(wiring.Component):
    """Combinational ``floor(dividend / divisor)``, rounding toward minus infinity (Python's
    ``//``), for divisors 1..``most``: the running means of diff_if neurons (docs/spec.md,
    section 13.2) divide by the step number.

    Long division of |dividend|, one quotient bit per stage, each stage a compare and subtract
    as wide as the divisor (not as the dividend): ``width`` stages of ``most.bit_length() + 1``
    bits, no multiplier and no general divider. A negative dividend gives ``-(q + (r != 0))``
    for ``|dividend| = q * divisor + r``: the floor, not the truncation.

    Members
    -------
    dividend : In(signed(width))
    divisor : In(range(most + 1))  1..most (0 gives a quotient of all ones; never used)
    quotient : Out(signed(width))
    """

    def __init__(self, width: int, most: int):
        self.width, self.most = width, most
        super().__init__({"dividend": In(signed(width)), "divisor": In(range(most + 1)),
                          "quotient": Out(signed(width))})

    def elaborate(self, platform):
        W, k = self.width, self.most.bit_length()
        m = Module()
        negative = self.dividend < 0
        magnitude = Signal(unsigned(W))
        m.d.comb += magnitude.eq(Mux(negative, -self.dividend, self.dividend))
        remainder = Const(0, k)  # always below the divisor
        bits = []
        for i in reversed(range(W)):
            shifted = Signal(unsigned(k + 1), name=f"shifted{i}")
            fits = Signal(name=f"q{i}")
            after = Signal(unsigned(k), name=f"r{i}")
            m.d.comb += [shifted.eq(Cat(magnitude[i], remainder)), fits.eq(shifted >= self.divisor),
                         after.eq(Mux(fits, shifted - self.divisor, shifted))]
            bits.append(fits)
            remainder = after
        quotient = Signal(unsigned(W))
        m.d.comb += quotient.eq(Cat(*reversed(bits)))
        m.d.comb += self.quotient.eq(Mux(negative, -(quotient + (remainder != 0)), quotient))
        return m

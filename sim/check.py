"""Bit-exact comparison of RTL results with the golden model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstspike.hw.host import RunResult
from firstspike.sw.golden import GoldenResult


@dataclass
class Mismatch:
    """The first difference of one image: where, what the golden model said, what the RTL said."""

    image: int
    layer: str  #: "input", "hidden k" or "output"
    neuron: int
    expected: int
    got: int
    what: str  #: "spike time" or "potential"

    def __str__(self) -> str:
        return (f"image {self.image}: {self.layer} neuron {self.neuron}: {self.what} expected {self.expected}, "
                f"got {self.got} (-1 = no spike)")


def first_mismatch(image: int, golden: GoldenResult, b: int, rtl: RunResult) -> Mismatch | None:
    """Compare image ``b`` of a golden batch with one RTL run; None when identical."""
    for k, got in enumerate(rtl.spikes):
        exp = golden.spikes[k][b]
        diff = np.flatnonzero(exp != got)
        if diff.size:
            j = int(diff[0])
            name = "input" if k == 0 else f"hidden {k - 1}"
            return Mismatch(image, name, j, int(exp[j]), int(got[j]), "spike time")
    exp = golden.potentials[b]
    diff = np.flatnonzero(exp != rtl.potentials)
    if diff.size:
        j = int(diff[0])
        return Mismatch(image, "output", j, int(exp[j]), int(rtl.potentials[j]), "potential")
    return None

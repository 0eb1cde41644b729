"""The external memory image: where a network's biases and weights live, and how they are packed.

The processor reads them over its AXI4 bus (hw/axi.py) into fixed-size on-chip buffers
(hw/loader.py). Per layer, beat-aligned blocks follow each other from byte address 0:

- the **bias block**: ``slots`` rows, row s holding the biases of channels ``s * P + p``
  for p = 0..P-1 (``acc_width`` bits each, two's complement, PE 0 in the low bits);
- the **weight tiles**: a layer whose weights do not fit the weight buffer runs in tiles
  of ``tile_slots`` channel groups (slots). Tile t holds the rows of its slots,
  slot-major then input (c, ky, kx), row r holding PE p's weight code at bits
  ``5p .. 5p + 4``; the PE buffer address of row r is r.

Rows are packed back to back, LSB first, into ``bus_bits``-wide words (no padding inside
a block; hw/unpack.py cuts them apart again), and each block starts on a new word.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstspike.sw.formats import WEIGHT_BITS

#: width of the external (AXI) byte address
ADDR_BITS = 32


@dataclass(frozen=True)
class Block:
    """One contiguous read: ``beats`` bus words from byte address ``addr`` carrying ``rows`` rows."""

    addr: int
    beats: int
    rows: int


@dataclass(frozen=True)
class LayerTiles:
    """How a layer's weights are split to fit the weight buffer."""

    slots: int  #: channel groups of the layer (ceil(C_out / P))
    fan_in: int  #: weight rows per slot (C_in * KH * KW)
    tile_slots: int  #: slots per tile (the last tile may have fewer)

    @property
    def count(self) -> int:
        return -(-self.slots // self.tile_slots)

    def slots_of(self, t: int) -> int:
        return min(self.tile_slots, self.slots - t * self.tile_slots)


def tiling(slots: int, fan_in: int, weight_buffer: int) -> LayerTiles:
    """As many whole slots per tile as the buffer holds (at least one must fit: check_fits says so)."""
    return LayerTiles(slots=slots, fan_in=fan_in, tile_slots=max(1, min(slots, weight_buffer // fan_in)))


def beats(rows: int, row_bits: int, bus_bits: int) -> int:
    return -(-rows * row_bits // bus_bits)


def pack_rows(rows: np.ndarray, value_bits: int, bus_bits: int) -> list[int]:
    """Bus words of a block: ``rows`` (n, P) of unsigned values, each ``value_bits`` wide,
    packed row after row, PE 0 lowest, into words of ``bus_bits`` (the last one zero-padded)."""
    values = np.asarray(rows, dtype=np.int64).reshape(-1)
    bits = ((values[:, None] >> np.arange(value_bits)) & 1).astype(np.uint8).reshape(-1)  # LSB first
    n = -(-bits.size // bus_bits)
    bits = np.concatenate([bits, np.zeros(n * bus_bits - bits.size, dtype=np.uint8)])
    data = np.packbits(bits, bitorder="little").reshape(n, bus_bits // 8)
    return [int.from_bytes(word.tobytes(), "little") for word in data]


def memory_hex(words: list[int], bus_bits: int) -> str:
    """An external memory image as ``$readmemh`` text: one hex bus word per line from address 0."""
    digits = bus_bits // 4
    return "".join(f"{w:0{digits}x}\n" for w in words)


def weight_row_bits(pes: int) -> int:
    return WEIGHT_BITS * pes


def bias_row_bits(pes: int, acc_width: int) -> int:
    return acc_width * pes

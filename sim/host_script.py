"""Host scripts: the bus transactions of many runs as files the bench wrapper replays.

The Verilator bench wrapper (``sim.verilator.bench_top``) holds a small host sequencer:
it loads a script with ``$readmemh``, performs its writes, reads and runs one bus word
per clock cycle inside the simulator, and dumps every word it read with ``$writememh``.
Python writes the scripts before the simulation and decodes the captures after it, so
no Python runs per clock cycle, not even for loading inputs or reading results. The
transactions themselves come from ``hw.host``, as for every other testbench.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firstspike.hw.config import ArrayConfig, Counter, Region
from firstspike.hw.host import input_writes, result_reads, stats_reads

#: script operations (the top OP_BITS bits of a script word)
OP_END, OP_WRITE, OP_READ, OP_RUN, OP_READ_COUNTED = range(5)
OP_BITS = 3
#: smallest script and capture memories of the wrapper (entries)
MIN_DEPTH = 1 << 16


@dataclass
class HostScript:
    """A list of bus operations; ``captures`` bounds the words its reads return."""

    ops: list[tuple[int, int, int]] = field(default_factory=list)  #: (op, address, data)
    captures: int = 0
    images: int = 0

    def write(self, pairs) -> None:
        self.ops += [(OP_WRITE, int(a), int(d)) for a, d in pairs]

    def read(self, addrs) -> None:
        self.ops += [(OP_READ, int(a), 0) for a in addrs]
        self.captures += len(addrs)

    def run(self) -> None:
        """Pulse start, wait for done."""
        self.ops.append((OP_RUN, 0, 0))

    def read_counted(self, addr: int, most: int) -> None:
        """Read N consecutive addresses from ``addr``, N = the last word read (at most ``most``)."""
        self.ops.append((OP_READ_COUNTED, int(addr), 0))
        self.captures += most

    def extend(self, other: HostScript) -> None:
        self.ops += other.ops
        self.captures += other.captures
        self.images += other.images

    def hex_lines(self, addr_bits: int, data_bits: int) -> list[str]:
        """One hex word per operation, then OP_END: {op, address, data}."""
        digits = -(-(OP_BITS + addr_bits + data_bits) // 4)
        lines = []
        for op, a, d in self.ops + [(OP_END, 0, 0)]:
            if not (0 <= a < 1 << addr_bits and 0 <= d < 1 << data_bits):
                raise ValueError(f"script operation {(op, a, d)} does not fit {addr_bits} address and "
                                 f"{data_bits} data bits")
            lines.append(f"{(op << (addr_bits + data_bits)) | (a << data_bits) | d:0{digits}x}")
        return lines


def image_script(cfg: ArrayConfig, times: np.ndarray, shapes: list) -> HostScript:
    """One inference: input events, run, counters, the count of events, every event, outputs."""
    n_layers = len(shapes) - 1
    s = HostScript(images=1)
    s.write(input_writes(cfg, times, shapes[0]))
    s.run()
    s.read(stats_reads(cfg, n_layers) + [cfg.address(Region.CONTROL, Counter.EVENTS_IN)])
    s.read_counted(cfg.address(Region.EVENTS, 0), cfg.event_depth)
    s.read(result_reads(cfg, 0, int(np.prod(shapes[-1]))))
    return s


def split_image_captures(cfg: ArrayConfig, shapes: list, words: list[int], images: int):
    """Per image (stats, words) as hw.host.decode_results takes them, from a capture stream."""
    n_stats = len(stats_reads(cfg, len(shapes) - 1))
    n_out = int(np.prod(shapes[-1]))
    out, pos = [], 0
    for _ in range(images):
        stats = words[pos:pos + n_stats]
        count = words[pos + n_stats]
        body = words[pos + n_stats + 1:pos + n_stats + 1 + count + n_out]
        if len(stats) != n_stats or len(body) != count + n_out:
            raise RuntimeError(f"the bench captured {len(words)} words, fewer than {images} images need")
        out.append((stats, body))
        pos += n_stats + 1 + count + n_out
    if pos != len(words):
        raise RuntimeError(f"the bench captured {len(words) - pos} words more than {images} images return")
    return out


def depths(cfg: ArrayConfig) -> tuple[int, int]:
    """(script, capture) memory depths of the wrapper: powers of two that hold any one image
    the configuration can run (inputs and events up to event_depth, outputs up to every
    accumulator), so one build serves every network that fits it."""
    stats = len(Counter) + 2 * cfg.max_layers
    outputs = cfg.pes * cfg.slot_depth
    ops = cfg.event_depth + 1 + 1 + stats + 1 + 1 + outputs + 1  # inputs, count, run, reads, END
    captures = stats + 1 + cfg.event_depth + outputs
    return tuple(max(MIN_DEPTH, 1 << (n - 1).bit_length()) for n in (ops, captures))


def chunk_scripts(cfg: ArrayConfig, shapes: list, input_times: np.ndarray, load_writes, script_depth: int,
                  capture_depth: int, images_per_chunk: int = 32) -> list[HostScript]:
    """Scripts that fit the wrapper's memories: network loads first, then images.

    At most ``images_per_chunk`` images per script, so progress shows between scripts.
    """
    chunks: list[HostScript] = []
    loads = list(load_writes or [])
    room = script_depth - 1  # the OP_END
    for start in range(0, len(loads), room):
        s = HostScript()
        s.write(loads[start:start + room])
        chunks.append(s)
    current = HostScript()
    for times in input_times:
        one = image_script(cfg, times, shapes)
        if current.images and (len(current.ops) + len(one.ops) > room or current.captures + one.captures
                               > capture_depth or current.images == images_per_chunk):
            chunks.append(current)
            current = HostScript()
        current.extend(one)
    if current.images:
        chunks.append(current)
    return chunks


def write_chunks(chunks: list[HostScript], work: Path, addr_bits: int, data_bits: int) -> None:
    for i, s in enumerate(chunks):
        (work / f"script{i}.hex").write_text("\n".join(s.hex_lines(addr_bits, data_bits)) + "\n")
        (work / f"capture{i}.hex").unlink(missing_ok=True)


def read_capture(path: Path) -> list[int]:
    """Words of a $writememh file (comments and address marks skipped); none if it was not written."""
    if not path.exists():
        return []
    words = []
    for line in path.read_text().split("\n"):
        line = line.split("//")[0].strip()
        if line and not line.startswith("@"):
            words.append(int(line, 16))
    return words

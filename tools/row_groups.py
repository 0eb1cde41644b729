#!/usr/bin/env python3
"""What event groups by input row would save: an estimate for a dataflow not built yet.

Today a group holds the events of one input position (hw/grouper.py), so a layer with one
input channel has groups of one event and pays an accumulator read-modify-write per
synaptic event per kernel tap. A *row group* would hold the events of one input row (any
positions, still at most ``group_size``): per kernel row and slot, the walker would visit
each output column the group reaches once, running over the group's events whose kernel
window covers it, so one write-back serves the events of up to KW neighbouring positions.
The commands (and cycles) stay those of today; the write-backs fall.

For each layer of an SNN model file this prints the accumulator read-modify-writes per
image, all PEs, of position groups (what the RTL does: hw/perf.py counts the same) and of
row groups, on the golden model's spikes, and the on-chip energy per synaptic event at
28 nm if every layer took whichever is fewer. docs/hardware.md quotes it for the digits CNN:

    .venv/bin/python tools/row_groups.py build/model/cnn/snn.npz
"""
from __future__ import annotations

import argparse

import numpy as np


def column_reach(w_in: int, kw: int, w_out: int, stride: int, padding: int) -> list[set[int]]:
    """Per input column x: the output columns whose kernel window covers it."""
    return [{(x + padding - k) // stride for k in range(kw)
             if x + padding - k >= 0 and (x + padding - k) % stride == 0 and (x + padding - k) // stride < w_out}
            for x in range(w_in)]


def writebacks(events: np.ndarray, rows_reached: np.ndarray, reach: list[set[int]], group_size: int,
               by_row: bool) -> int:
    """Write-backs per PE and slot of one image's events (y, x) in storage order: groups are runs
    of one position (``by_row`` False) or of one row, cut every ``group_size`` events."""
    total, i = 0, 0
    while i < len(events):
        j = i
        same = (lambda e: e[0] == events[i][0]) if by_row else (lambda e: tuple(e) == tuple(events[i]))
        while j < len(events) and j - i < group_size and same(events[j]):
            j += 1
        total += int(rows_reached[events[i][0]]) * len(set().union(*(reach[x] for _, x in events[i:j])))
        i = j
    return total


def layer_writebacks(model, spikes: np.ndarray, k: int, group_size: int, by_row: bool) -> np.ndarray:
    """Per image: accumulator write-backs of layer ``k``, all PEs, over its input ``spikes``
    (batch, n_in; the golden model's ``spikes[k]``), with position groups or row groups.
    Each (group, tap, slot) writes back in the PEs holding a channel of the slot: c_out of
    them over all slots, whatever the PE count."""
    from firstspike.hw.config import hardware_geometry
    from firstspike.hw.perf import axis_taps
    from firstspike.sw.formats import NO_SPIKE
    g = hardware_geometry(model.layers[k])
    rows = axis_taps(g["h_in"], g["kh"], g["h_out"], g["stride"], g["padding"])
    reach = column_reach(g["w_in"], g["kw"], g["w_out"], g["stride"], g["padding"])
    active = (spikes != NO_SPIKE).reshape(-1, g["c_in"], g["h_in"], g["w_in"])
    return np.array([writebacks(np.argwhere(a.transpose(1, 2, 0))[:, :2], rows, reach, group_size, by_row)
                     for a in active], dtype=np.int64) * g["c_out"]


def main(argv=None) -> None:
    from firstspike.flow import processor_cost
    from firstspike.hw.config import ArrayConfig
    from firstspike.sim import energy
    from firstspike.sw.data import load_dataset
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.model import SnnModel

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="SNN model file (.npz) of a data set load_dataset knows (digits by default)")
    p.add_argument("--pes", type=int, default=16)
    p.add_argument("--images", type=int, default=0, help="test images (0: all)")
    a = p.parse_args(argv)
    model = SnnModel.load(a.model)
    x = load_dataset(model.info.get("dataset", "digits"), data_dir=model.info.get("data_dir")).x_test
    x = x[:a.images] if a.images else x
    golden = GoldenModel(model).run(x)
    cfg = ArrayConfig.for_model(model, a.pes)
    table = energy.energy_table("28nm")
    acc_rw = 2 * cfg.acc_width * table.sram_pj_per_bit(cfg.slot_depth * cfg.acc_width)
    saved = 0.0
    for k in range(len(model.layers)):
        today, rows = (layer_writebacks(model, golden.spikes[k], k, cfg.group_size, by_row).mean()
                       for by_row in (False, True))
        saved += max(0.0, today - rows) * acc_rw
        print(f"layer {k} ({model.layers[k].in_shape[0]} input channels): accumulator write-backs / image, "
              f"position groups {today:,.0f}, row groups {rows:,.0f} ({rows / max(1.0, today):.2f}x)")
    _, pj = processor_cost(model, a.pes, golden, table)
    sops = float(GoldenModel(model).synaptic_ops(golden).mean())
    print(f"on-chip energy at 28 nm: {pj / sops:.3f} pJ per synaptic event today; {(pj - saved) / sops:.3f} "
          "with row groups where they need fewer write-backs")


if __name__ == "__main__":
    main()

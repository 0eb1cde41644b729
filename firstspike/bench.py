"""Benchmarks (`make bench`): golden vs float model speed, RTL simulation speed, build times.

Prints a table and writes build/bench.json. Numbers, not pass/fail: the targets (golden
model no slower than 3x the float model; >= 1 M simulated processor cycles per second)
are printed beside the measurements.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from firstspike.errors import InputError
from firstspike.hw.config import ArrayConfig, network_image
from firstspike.hw.verilog import write_design
from firstspike.sw.files import write_text
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.random_models import random_input_times, random_model

from firstspike.sim import verilator
from firstspike.sw.checkpoint import ann_network, load_ann
from .flow import dataset_of, model_ann_path


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_bench(model_path="build/model/cnn/snn.npz", *, pes: int = 16, batch: int = 4096, rtl_images: int = 449,
              wave_images: int = 50, out="build/bench.json", make_sim: bool = True) -> dict:
    model = SnnModel.load(model_path)
    ds = dataset_of(model)
    x = np.resize(ds.x_test, (batch, ds.x_test.shape[1])).astype(np.float32)
    ann = model_ann_path(model, model_path)
    if ann is None:
        raise InputError(f"{model_path}: the ANN checkpoint it was converted from is gone; the bench compares with it")
    net = ann_network(load_ann(ann))
    xt = torch.as_tensor(x)
    golden = GoldenModel(model)

    def float_run():
        with torch.no_grad():
            net(xt).argmax(1)

    float_s = _best_of(float_run, 7)
    golden_s = _best_of(lambda: golden.run(x).predictions, 7)

    cfg = ArrayConfig.for_model(model, pes)
    rtl = {}
    with tempfile.TemporaryDirectory(prefix="firstspike-bench-") as tmp:
        v = write_design(Path(tmp) / "v", cfg, model)
        times = golden.encode(ds.x_test)
        for waves, n in ((False, rtl_images), (True, wave_images)):
            built = verilator.build(v, cfg, Path(tmp) / "cache", waves=waves)  # cold: fresh cache
            run = verilator.run(built, cfg, model.shapes, times[:n], network_image(model, cfg).memory,
                                work_dir=Path(tmp) / f"run{int(waves)}",
                                waves=waves)
            rtl[waves] = {"build_s": built.build_seconds, "images": n,
                          "seconds_per_image": run.wall_seconds / n,
                          "cycles_per_s": run.sim_cycles / run.sim_seconds,
                          "busy_fraction": run.busy_cycles / run.sim_cycles}

        # long-running workload: per-image start/done overhead no longer matters
        rng = np.random.default_rng(0)
        big = random_model(rng, [256, 256, 256, 10], model.timing)
        big_cfg = ArrayConfig.for_model(big, 2)
        big_v = write_design(Path(tmp) / "big", big_cfg, big)
        built = verilator.build(big_v, big_cfg, Path(tmp) / "cache")
        run = verilator.run(built, big_cfg, big.shapes, random_input_times(rng, 256, 4, model.timing),
                            network_image(big, big_cfg).memory,
                            work_dir=Path(tmp) / "runbig")
        rtl["long"] = {"cycles_per_image": run.busy_cycles / 4, "cycles_per_s": run.sim_cycles / run.sim_seconds}

    result = {
        "batch": batch,
        "float_images_per_s": batch / float_s,
        "golden_images_per_s": batch / golden_s,
        "golden_vs_float": float_s / golden_s,
        "rtl_cycles_per_s": rtl[False]["cycles_per_s"],
        "rtl_busy_fraction": rtl[False]["busy_fraction"],
        "rtl_long_cycles_per_s": rtl["long"]["cycles_per_s"],
        "rtl_long_cycles_per_image": rtl["long"]["cycles_per_image"],
        "rtl_seconds_per_image": rtl[False]["seconds_per_image"],
        "rtl_images": rtl_images,
        "rtl_waves_cycles_per_s": rtl[True]["cycles_per_s"],
        "rtl_waves_seconds_per_image": rtl[True]["seconds_per_image"],
        "verilator_build_s": rtl[False]["build_s"],
        "verilator_build_waves_s": rtl[True]["build_s"],
        "pe_count": pes,
    }
    if make_sim and Path("Makefile").is_file():  # run from a checkout: time the warm `make sim`
        start = time.perf_counter()
        subprocess.run(["make", "-s", "sim"], check=True, capture_output=True)
        result["make_sim_s"] = time.perf_counter() - start
    result["verification"] = verification_summary(Path(out).parent)
    write_text(out, json.dumps(result, indent=2) + "\n", "benchmark results")
    print_bench(result)
    return result


def verification_summary(build_dir) -> dict:
    """Headline numbers of the latest ``make mutation``, ``make formal`` and ``make fuzz``
    runs (their JSON files in ``build_dir``), so one file holds every measured number;
    a run that has not happened is absent."""
    out = {}
    files = {name: Path(build_dir) / f"{name}.json" for name in ("mutation", "formal", "fuzz")}
    if files["mutation"].is_file():
        m = json.loads(files["mutation"].read_text())
        out["mutation"] = {k: m[k] for k in ("mutants", "killed", "survived", "score", "seed", "seconds",
                                             "equivalent", "score_non_equivalent") if k in m}
    if files["formal"].is_file():
        f = json.loads(files["formal"].read_text())
        out["formal"] = {p["name"]: {"passed": p["passed"], "reached": p["reached"], "depth": p["depth"]} for p in f}
    if files["fuzz"].is_file():
        z = json.loads(files["fuzz"].read_text())
        out["fuzz"] = {k: z[k] for k in ("configurations", "mismatching_configurations", "configurations_per_s")}
    return out


def print_bench(r: dict) -> None:
    rows = [
        ("float model (PyTorch)", f"{r['float_images_per_s']:,.0f} images/s (batch {r['batch']})"),
        ("golden model (NumPy, integer)", f"{r['golden_images_per_s']:,.0f} images/s = "
                                          f"{r['golden_vs_float']:.2f}x float (target >= 0.33x)"),
        ("RTL, digits images", f"{r['rtl_cycles_per_s']:,.0f} cycles/s (target >= 1,000,000; host I/O "
                               f"included, array busy {r['rtl_busy_fraction']:.0%} of them)"),
        ("RTL, per image", f"{r['rtl_seconds_per_image'] * 1e3:.2f} ms wall over {r['rtl_images']} images "
                           "(simulator start-up included)"),
        ("RTL, long runs", f"{r['rtl_long_cycles_per_s']:,.0f} cycles/s, "
                           f"{r['rtl_long_cycles_per_image']:,.0f}-cycle images"),
        ("RTL with VCD tracing", f"{r['rtl_waves_cycles_per_s']:,.0f} cycles/s, "
                                 f"{r['rtl_waves_seconds_per_image'] * 1e3:.1f} ms/image"),
        ("Verilator build (cold)", f"{r['verilator_build_s']:.1f} s; "
                                   f"with tracing {r['verilator_build_waves_s']:.1f} s"),
    ]
    if "make_sim_s" in r:
        rows.append(("make sim (warm)", f"{r['make_sim_s']:.1f} s"))
    v = r.get("verification", {})
    if "mutation" in v:
        m = v["mutation"]
        rows.append(("mutation score (make mutation)",
                     f"{m['killed']}/{m['mutants']} killed ({100 * m['score']:.1f} %)"
                     + (f"; {m['equivalent']} equivalent, {100 * m['score_non_equivalent']:.1f} % of the others"
                        if "equivalent" in m else "")))
    if "formal" in v:
        proofs = v["formal"]
        rows.append(("formal proofs (make formal)", f"{sum(p['passed'] and p['reached'] for p in proofs.values())}"
                                                    f"/{len(proofs)} hold"))
    if "fuzz" in v:
        z = v["fuzz"]
        rows.append(("fuzz (make fuzz)", f"{z['configurations']} networks, {z['mismatching_configurations']} "
                                         f"mismatching, {z['configurations_per_s']:.1f} networks/s"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    import sys
    run_bench(*sys.argv[1:2])

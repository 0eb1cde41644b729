"""The whole flow as functions: train, convert, generate, simulate in RTL, compare, report.

The command line (sim.cli) and the tests call these; nothing here prints except the
progress bars and the summary table of ``simulate``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hw.config import ArrayConfig
from hw.host import decode_results
from hw.layouts import spike_event
from hw.verilog import write_design
from sw import ann as ann_lib
from sw.convert import calibrate, convert
from sw.data import load_dataset
from sw.formats import Timing
from sw.golden import GoldenModel
from sw.model import ModelFileError, SnnModel

from . import energy, perf, verilator
from .check import first_mismatch

ROOT_DIR = Path(__file__).resolve().parent.parent
ANN_FORMAT = "firstspike-ann"
ANN_VERSION = 2


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------
ARCHS = ("mlp", "cnn", "vgg11", "vgg16")


def build_network(arch: str, *, features: int, classes: int, shape: tuple = (), hidden=(64, 32),
                  width: float = 1.0, seed: int = 0) -> torch.nn.Module:
    """The float network of a recipe for a data set's sizes (flat inputs for every recipe)."""
    if arch == "mlp":
        return ann_lib.mlp([features, *hidden, classes], seed=seed)
    if not shape:
        raise ValueError(f"the {arch} recipe needs image-shaped data")
    if arch == "cnn":
        return ann_lib.digits_cnn(tuple(shape), classes, seed=seed, width=max(1, int(round(16 * width))))
    if arch in ann_lib.VGG_CONFIGS:
        return ann_lib.vgg(arch, tuple(shape), classes, width=width, seed=seed)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def train_ann(out: str | os.PathLike, *, dataset: str = "digits", arch: str = "mlp", hidden: list[int] = (64, 32),
              width: float = 1.0, method: str = "cat", timing: Timing = Timing(), epochs: int = 60,
              cat_epochs: int = 40, seed: int = 0, quiet: bool = False,
              data_dir: str | os.PathLike | None = None) -> dict:
    """Train a float network, then (method "cat") fine-tune it with conversion-aware training.

    Saves a checkpoint with the float weights, the CAT network (BatchNorm folded, the
    weights and thresholds CAT learned) and the accuracies.
    """
    if method not in ("float", "cat"):
        raise ValueError(f"method must be 'float' or 'cat', not {method!r}")
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None
    ds = load_dataset(dataset, seed=seed, data_dir=data_dir)
    recipe = {"arch": arch, "features": ds.features, "classes": ds.classes, "shape": list(ds.shape),
              "hidden": list(hidden), "width": width, "seed": seed}
    net = build_network(**recipe)
    total = epochs + (cat_epochs if method == "cat" else 0)
    with tqdm(total=total, desc="train", unit="epoch", disable=quiet) as bar:
        ann_lib.train(net, ds.x_train, ds.y_train, ann_lib.TrainConfig(epochs=epochs, seed=seed), progress=bar)
        float_acc = ann_lib.accuracy(net, ds.x_test, ds.y_test)
        ckpt = {"format": ANN_FORMAT, "version": ANN_VERSION, "dataset": dataset, "data_dir": data_dir,
                "recipe": recipe, "seed": seed,
                "method": method, "float_state_dict": {k: v.clone() for k, v in net.state_dict().items()},
                "float_accuracy": float_acc, "input_theta": 1.0,
                "timing": {"T": timing.T, "B": timing.B, "frac_bits": timing.frac_bits}}
        if method == "cat":
            thetas = calibrate(net, ds.x_train, "percentile")
            cat = ann_lib.CatNetwork(net, timing, 1.0, thetas)
            ann_lib.train(cat, ds.x_train, ds.y_train,
                          ann_lib.TrainConfig(epochs=cat_epochs, lr=1e-3, seed=seed), progress=bar)
            ckpt.update(cat_state_dict=cat.state_dict(), thetas=cat.thetas,
                        cat_accuracy=ann_lib.accuracy(cat, ds.x_test, ds.y_test))
        else:
            ckpt.update(cat_state_dict=None, thetas=None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, out)
    return ckpt


def load_ann(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ANN checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise ModelFileError(f"{path}: not a readable ANN checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != ANN_FORMAT:
        raise ModelFileError(f"{path}: not a firstspike ANN checkpoint")
    if ckpt.get("version") != ANN_VERSION:
        raise ModelFileError(f"{path}: ANN checkpoint version {ckpt.get('version')!r} is not supported "
                             f"(this firstspike reads version {ANN_VERSION}; retrain with 'firstspike train')")
    return ckpt


def ann_network(ckpt: dict) -> torch.nn.Module:
    """The float network of a checkpoint, in eval mode."""
    net = build_network(**ckpt["recipe"])
    net.load_state_dict(ckpt["float_state_dict"])
    return net.eval()


def cat_network(ckpt: dict) -> ann_lib.CatNetwork:
    """The network CAT trained (quantisers on), with its learned thresholds."""
    if ckpt.get("cat_state_dict") is None:
        raise ValueError("this checkpoint was trained without CAT; use --calibration max, percentile or iteration")
    cat = ann_lib.CatNetwork(ann_network(ckpt), Timing(**ckpt["timing"]), ckpt["input_theta"], ckpt["thetas"])
    cat.load_state_dict(ckpt["cat_state_dict"])
    return cat.eval()


# ---------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------
def convert_ann(ann_path: str | os.PathLike, out: str | os.PathLike, *, calibration: str = "cat",
                percentile: float = 99.9, timing: Timing | None = None) -> SnnModel:
    """Convert a checkpoint: "cat" uses the network and thresholds CAT learned (and its T, B);
    "max"/"percentile"/"iteration" calibrate the float network's thresholds on the training set."""
    ckpt = load_ann(ann_path)
    ds = load_dataset(ckpt["dataset"], seed=ckpt["seed"], data_dir=ckpt.get("data_dir"))
    if calibration == "cat":
        trained = Timing(**ckpt["timing"])
        if timing is not None and timing != trained:
            raise ValueError(f"CAT trained with {trained}; converting at {timing} would lose what CAT learned. "
                             "Retrain with the wanted T and B, or use --calibration max/percentile/iteration")
        cat = cat_network(ckpt)
        net, thetas, timing = cat.stages, cat.thetas, trained
    else:
        net = ann_network(ckpt)
        timing = timing or Timing(**ckpt["timing"])
        thetas = calibrate(net, ds.x_train, calibration, percentile, timing=timing)
    model = convert(net, timing, ckpt["input_theta"], thetas, name=f"{ckpt['dataset']}-{ckpt['recipe']['arch']}",
                    info={"dataset": ckpt["dataset"], "data_dir": ckpt.get("data_dir"), "seed": ckpt["seed"],
                          "calibration": calibration, "arch": ckpt["recipe"]["arch"],
                          "ann": str(Path(ann_path).resolve()), "float_accuracy": ckpt["float_accuracy"]})
    model.save(out)
    return model


def dataset_of(model: SnnModel):
    """The data set a converted model was trained on (its test split is what we evaluate)."""
    info = model.info
    return load_dataset(info.get("dataset", "digits"), seed=info.get("seed", 0), data_dir=info.get("data_dir"))


# ---------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------
def array_geometry(cfg: ArrayConfig, clock_mhz: float) -> energy.ArrayGeometry:
    ev = spike_event(cfg).size
    return energy.ArrayGeometry(
        pes=cfg.pes, T=cfg.timing.T, acc_width=cfg.acc_width, event_bits=ev,
        weight_macro_bits=cfg.weight_depth * 5, acc_macro_bits=cfg.slot_depth * cfg.acc_width,
        event_macro_bits=cfg.event_bank_depth * ev, threshold_macro_bits=cfg.max_layers * cfg.timing.T * cfg.acc_width,
        clock_mhz=clock_mhz)


def simulate(model_path: str | os.PathLike, *, pes: int = 16, images: int = 0, out_dir="build/sim",
             verilog_dir="build/verilog", quiet: bool = False, clock_mhz: float = 100.0, tech: str = "45nm",
             energy_overrides: str | None = None, synth_target: str | None = None) -> dict:
    """Run test images through the golden model and the generated RTL; write report.json."""
    if not isinstance(images, int) or images < 0:
        raise ValueError(f"images must be a non-negative integer (0: the whole test set), not {images!r}")
    if clock_mhz <= 0:
        raise ValueError(f"clock_mhz must be positive, not {clock_mhz!r}")
    model = SnnModel.load(model_path)
    ds = dataset_of(model)
    dataset = ds.name
    n = len(ds.x_test) if images in (0, None) else min(images, len(ds.x_test))
    x, y = ds.x_test[:n], ds.y_test[:n]
    golden = GoldenModel(model).run(x)

    float_acc = None
    if "ann" in model.info and Path(model.info["ann"]).is_file():
        net = ann_network(load_ann(model.info["ann"]))
        float_acc = ann_lib.accuracy(net, x, y)

    cfg = ArrayConfig.for_model(model, pes)
    v_path = write_design(verilog_dir, cfg, model)
    t0 = time.perf_counter()
    built = verilator.build(v_path, cfg)
    with tqdm(total=n, desc="RTL", unit="image", disable=quiet) as bar:
        run = verilator.run(built, cfg, model.shapes, golden.spikes[0], progress=bar,
                            work_dir=Path(out_dir) / "work")
    results = [decode_results(cfg, model.shapes, run.stats[b], run.words[b]) for b in range(n)]
    mismatches = [m for b, r in enumerate(results) if (m := first_mismatch(b, golden, b, r))]
    rtl_pred = np.array([int(np.argmax(r.potentials)) for r in results])

    counts = perf.layer_counts(model, pes, golden, cfg.spike_lanes)
    geometry = array_geometry(cfg, clock_mhz)
    table = energy.energy_table(tech, energy_overrides)
    per_image = [[energy.layer_energy_pj(c, geometry, table, b) for c in counts] for b in range(n)]
    layer_pj = [{k: float(np.mean([per_image[b][k_][k] for b in range(n)])) for k in energy.COMPONENTS}
                for k_ in range(len(counts))]
    total_pj = float(np.mean([sum(sum(e.values()) for e in img) for img in per_image]))
    rtl_cycles = np.array([r.counters["cycles"] for r in results])
    model_cycles = perf.total_cycles(counts)
    mean = lambda key: float(np.mean([r.counters[key] for r in results]))  # noqa: E731
    baselines = energy.ann_baselines_pj([(layer.n_in, layer.n_neurons, layer.connections(), layer.weights.size)
                                         for layer in model.layers], table,
                                        mean("acc_updates"))
    report = {
        "dataset": dataset, "images": n, "model": str(model_path),
        "float_accuracy": float_acc,
        "golden_accuracy": float((golden.predictions == y).mean()),
        "rtl_accuracy": float((rtl_pred == y).mean()),
        "mismatches": len(mismatches),
        "first_mismatch": str(mismatches[0]) if mismatches else None,
        "cycles_per_image": float(rtl_cycles.mean()),
        "cycles_model_per_image": float(model_cycles.mean()),
        "cycle_model_exact": bool(np.array_equal(rtl_cycles, model_cycles) and all(
            [int(c.cycles[b]) for c in counts] == r.layer_cycles for b, r in enumerate(results))),
        "cycles_per_image_max": int(rtl_cycles.max()),
        "clock_mhz": clock_mhz,
        "latency_us": perf.latency_us(float(rtl_cycles.mean()), clock_mhz),
        "throughput_per_s": perf.throughput_per_s(float(rtl_cycles.mean()), clock_mhz),
        "synaptic_events_per_image": mean("acc_updates"),
        "weight_reads_per_image": mean("weight_reads"),
        "events_in_per_image": mean("events_in"),
        "spikes_per_image": mean("spikes"),
        "energy_per_image_uj": total_pj * 1e-6,
        "energy_technology": table.name,
        "energy_breakdown_pj": {k: sum(layer[k] for layer in layer_pj) for k in energy.COMPONENTS},
        "energy_baselines_pj": baselines,
        "energy_constants": {k: {"value": table.values[k], "source": table.sources[k]} for k in table.values},
        "layers": [{"kind": c.kind, "maxpool": layer.pool, "in_shape": list(layer.in_shape),
                    "out_shape": list(layer.out_shape), "n_in": layer.n_in, "n_out": layer.n_out,
                    "cycles": float(np.mean([r.layer_cycles[k] for r in results])),
                    "cycles_model": float(c.cycles.mean()),
                    "input_events": float(np.mean([r.layer_events[k] for r in results])),
                    "spikes": float(c.spikes.mean()),
                    "synaptic_events": float(c.acc_updates.mean()),
                    "pe_utilization": float(c.pe_utilization.mean()),
                    "accumulate_cycles": float(c.accumulate_cycles.mean()),
                    "accumulate_utilization": float(c.accumulate_utilization.mean()),
                    "energy_pj": layer_pj[k]}
                   for k, (c, layer) in enumerate(zip(counts, model.layers))],
        "pe_count": pes, "T": model.timing.T, "B": model.timing.B, "frac_bits": model.timing.frac_bits,
        "acc_width": cfg.acc_width,
        "memory_bits_per_pe": {"weights": cfg.weight_depth * 5, "biases": cfg.bias_depth * cfg.acc_width,
                               "accumulators": cfg.slot_depth * cfg.acc_width},
        "verilog": str(v_path),
        "verilator_build_s": built.build_seconds, "rtl_wall_s": run.wall_seconds,
        "flow_wall_s": time.perf_counter() - t0,
    }
    if synth_target:
        from hw.synth import synthesize
        report["synthesis"] = synthesize(v_path, Path(out_dir) / "synth", target=synth_target)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print_summary(report)
    return report


def print_summary(r: dict) -> None:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"
    rows = [
        ("dataset / images", f"{r['dataset']} / {r['images']}"),
        ("array", f"{r['pe_count']} PEs, T={r['T']}, B={r['B']}, acc {r['acc_width']} bits"),
        ("float ANN accuracy", pct(r["float_accuracy"])),
        ("golden SNN accuracy", pct(r["golden_accuracy"])),
        ("RTL accuracy", pct(r["rtl_accuracy"])),
        ("mismatches (images)", str(r["mismatches"])),
        ("cycles / image", f"{r['cycles_per_image']:.1f} (max {r['cycles_per_image_max']}); "
                           f"model {r['cycles_model_per_image']:.1f}, exact: {r['cycle_model_exact']}"),
        ("latency / throughput", f"{r['latency_us']:.2f} us, {r['throughput_per_s']:.0f} images/s "
                                 f"at {r['clock_mhz']:g} MHz"),
        ("synaptic events / image", f"{r['synaptic_events_per_image']:.1f}"),
        ("spikes / image", f"{r['spikes_per_image']:.1f} (+ {r['layers'][0]['input_events']:.1f} input)"),
        ("energy / image", f"{r['energy_per_image_uj'] * 1e3:.3f} nJ ({r['energy_technology']} event model); "
                           f"int8 ANN {r['energy_baselines_pj']['ann_int8_pj'] / 1e3:.3f} nJ"),
        ("Verilator build", f"{r['verilator_build_s']:.1f} s (0 = reused)"),
        ("RTL simulation", f"{r['rtl_wall_s']:.1f} s"),
        ("Verilog", r["verilog"]),
    ]
    if r.get("synthesis"):
        sy = r["synthesis"]
        rows.append(("synthesis", f"{sy['cells']} generic cells, {sy['ram_bits']} RAM bits; {sy['target']}: "
                                  f"{sy['luts']} LUTs, {sy['flip_flops']} FFs"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if r["first_mismatch"]:
        print(f"\n  FIRST MISMATCH: {r['first_mismatch']}")

"""The whole flow as functions: train, convert, generate, simulate in RTL, compare, report.

The command line (firstspike.cli), the Python API (firstspike.api) and the tests call
these; nothing here prints except the progress bars and the summary table of ``simulate``.
Training and checkpoints live in firstspike.sw.checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firstspike.errors import InputError
from firstspike.hw import perf
from firstspike.hw.axi import MEMORY_LATENCY
from firstspike.hw.config import ArrayConfig, network_image
from firstspike.hw.host import decode_results
from firstspike.hw.layouts import count_shape, group_entry, spike_event
from firstspike.hw.verilog import write_design
from firstspike.sim import energy, verilator
from firstspike.sim.check import first_mismatch
from firstspike.sw import ann as ann_lib
from firstspike.sw.checkpoint import (absolute_module, ann_network, cat_network, input_layout,  # noqa: F401
                                      input_shape_of, load_ann, load_user_network, load_user_weights, train_ann)
from firstspike.sw.convert import CALIBRATIONS, LOSS_WARNING, calibrate, CALIBRATED_ROUNDING, convert
from firstspike.sw.data import load_dataset
from firstspike.sw.files import check_output_dir, check_output_file, write_text
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.model import SnnModel
from firstspike.sw.initial_calibration import calibrate_initial
from firstspike.sw.neurons import coding_of
from firstspike.sw.input_spikes import expand_input
from firstspike.sw.unfold import folded_first_layer, unfold_input

# ---------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------
def convert_ann(ann_path: str | os.PathLike, out: str | os.PathLike, *, calibration: str = "cat",
                percentile: float = 99.9, timing: Timing | None = None,
                data_dir: str | os.PathLike | None = None, neuron: str = "ttfs", rounding: str | None = None,
                initial_calibration: bool | None = None, layer_finetune: bool = False, unfold: bool = False,
                input_spikes: int | None = None, **options) -> SnnModel:
    """Convert a checkpoint: "cat" uses the network and thresholds CAT learned (and its T, B)
    and reads no data; "max"/"percentile"/"iteration" calibrate the float network's
    thresholds on the training set. ``timing`` overrides the checkpoint's; ``data_dir``
    replaces the data directory the checkpoint recorded (a moved data set). ``neuron``
    and ``options``: the neuron model of every layer and its options (sw/neurons).
    ``rounding`` of the weights (sw/convert.ROUNDINGS): "nearest" for CAT (it trained for
    it), by default "adaptive" for calibrations (on the training set).
    ``initial_calibration`` (rate_if): calibrate each channel's initial potential on the
    training set (sw/initial_calibration.py); by default on for two-stage checkpoints.
    ``layer_finetune``: with it, also fine-tune each layer's weights, bias and initial
    potentials with a surrogate gradient (two-stage conversion's stage II b). ``unfold``:
    unfold the first conv layer over its input (sw/unfold.py: the same spikes, fewer
    accumulator write-backs on the processor). ``input_spikes``: spikes per input value
    (sw/input_spikes.py); by default what CAT trained with (the checkpoint's), else 1."""
    out = check_output_file(out, "model file")
    if calibration not in ("cat", *CALIBRATIONS):
        raise InputError(f"calibration must be cat or one of {', '.join(CALIBRATIONS)}, not {calibration!r}")
    if calibration == "cat" and rounding == "adaptive":
        raise InputError("CAT trained its weights for nearest rounding; adaptive rounding is for calibrated "
                         "conversions of float networks")
    rounding = rounding or ("nearest" if calibration == "cat" else CALIBRATED_ROUNDING)
    ckpt = load_ann(ann_path)
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else ckpt.get("data_dir")
    input_shape = input_shape_of(ckpt)
    if calibration == "cat":
        trained = Timing(**ckpt["timing"])
        coding = ckpt.get("coding", "ttfs")
        if ckpt.get("cat_state_dict") is not None and coding_of(neuron) not in ((coding,) if coding == "ttfs"
                                                                               else ("rate", "diff")):
            what = "CAT learned thresholds for ttfs" if coding == "ttfs" else "noise-aware or two-stage training " \
                "learned thresholds for rate_if (and diff_if)"
            raise InputError(f"{what} neurons, not {neuron}; other neuron models calibrate: --calibration max, "
                             "percentile or iteration")
        if timing is not None and timing != trained:
            raise InputError(f"CAT trained with {trained}; converting at {timing} would lose what CAT learned. "
                             "Retrain with the wanted T and B, or use --calibration max/percentile/iteration")
        trained_spikes = ckpt.get("input_spikes", 1)
        if input_spikes is not None and input_spikes != trained_spikes:
            raise InputError(f"CAT trained with {trained_spikes} spike(s) per input value; converting with "
                             f"{input_spikes} would lose what CAT learned. Retrain with --input-spikes "
                             f"{input_spikes}, or use --calibration max/percentile/iteration")
        input_spikes = trained_spikes
        cat = cat_network(ckpt)
        net, thetas, timing, x_calibration = cat.stages, cat.thetas, trained, None
    else:
        net = ann_network(ckpt)
        timing = timing or Timing(**ckpt["timing"])
        ds = load_dataset(ckpt["dataset"], seed=ckpt["seed"], data_dir=data_dir)
        thetas = calibrate(net, ds.x_train, calibration, percentile, timing=timing, input_shape=input_shape,
                           neuron=neuron)
        x_calibration = ds.x_train
    if initial_calibration is None:
        initial_calibration = layer_finetune or (ckpt["method"] == "twostage" and calibration == "cat")
    if layer_finetune and not initial_calibration:
        raise InputError("layer-wise fine-tuning runs within the initial-potential calibration; "
                         "it cannot be on with initial_calibration=False")
    arch = ckpt["recipe"]["arch"]
    model = convert(net, timing, ckpt["input_theta"], thetas, name=f"{ckpt['dataset']}-{arch}",
                    input_shape=input_shape, neuron=neuron, rounding=rounding, calibration_data=x_calibration,
                    **options,
                    info={"dataset": ckpt["dataset"], "data_dir": data_dir, "seed": ckpt["seed"],
                          "calibration": calibration, "arch": arch, "neuron": neuron, "rounding": rounding, **options,
                          "ann": os.path.relpath(Path(ann_path).resolve(), out.resolve().parent),
                          "float_accuracy": ckpt["float_accuracy"]})
    if initial_calibration:
        ds = load_dataset(ckpt["dataset"], seed=ckpt["seed"], data_dir=data_dir)
        model = calibrate_initial(model, net, ds.x_train, input_shape=input_shape, finetune=layer_finetune)
    model = expand_input(model, 1 if input_spikes is None else input_spikes)
    model = unfold_input(model) if unfold else model
    model.save(out)
    return model


def convert_module(module: str, weights: str | os.PathLike | None, out: str | os.PathLike, *,
                   dataset: str = "digits", data_dir: str | os.PathLike | None = None,
                   calibration: str = "percentile", percentile: float = 99.9, timing: Timing = Timing(),
                   seed: int = 0, neuron: str = "ttfs", rounding: str = "adaptive", unfold: bool = False,
                   input_spikes: int = 1, **options) -> SnnModel:
    """Convert a user's own network, ``FILE.py:FUNCTION`` with its state dict, training-free.

    Thresholds are calibrated on the data set's training split (inputs scaled to [0, 1]);
    the float network's test accuracy is recorded in the model file's info. ``unfold`` and
    ``input_spikes``: as for convert_ann.
    """
    out = check_output_file(out, "model file")
    if calibration not in CALIBRATIONS:
        raise InputError(f"calibration of a user network must be one of {', '.join(CALIBRATIONS)}, not "
                         f"{calibration!r} (for CAT, fine-tune first: firstspike train --from {module})")
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None
    ds = load_dataset(dataset, seed=seed, data_dir=data_dir)
    net = load_user_network(module)
    if weights is not None:
        load_user_weights(net, weights)
    shape = input_layout(net, ds)
    x_test = ds.x_test if shape is None else ds.x_test.reshape(len(ds.x_test), *shape)
    float_acc = ann_lib.accuracy(net.eval(), x_test, ds.y_test)
    thetas = calibrate(net, ds.x_train, calibration, percentile, timing=timing, input_shape=shape, neuron=neuron)
    spec_path = module.rpartition(":")[0]
    model = convert(net, timing, 1.0, thetas, name=f"{dataset}-{Path(spec_path).stem}", input_shape=shape,
                    neuron=neuron, rounding=rounding, calibration_data=ds.x_train, **options,
                    info={"dataset": dataset, "data_dir": data_dir, "seed": seed, "calibration": calibration,
                          "neuron": neuron, "rounding": rounding, **options,
                          "arch": "module", "module": absolute_module(module),
                          "weights": None if weights is None else str(Path(weights).resolve()),
                          "float_accuracy": float_acc})
    model = expand_input(model, input_spikes)
    model = unfold_input(model) if unfold else model
    model.save(out)
    return model


def accuracy_check(model: SnnModel, *, data_dir: str | os.PathLike | None = None) -> dict:
    """Golden accuracy on the model's test split next to the float accuracy recorded at conversion.

    ``warning`` is set when conversion lost more than one point: CAT usually recovers it.
    """
    ds = dataset_of(model, data_dir=data_dir)
    golden = float((GoldenModel(model).run(ds.x_test).predictions == ds.y_test).mean())
    float_acc = model.info.get("float_accuracy")
    result = {"images": len(ds.x_test), "golden_accuracy": golden, "float_accuracy": float_acc, "warning": None}
    if float_acc is not None and float_acc - golden > LOSS_WARNING:
        lost = f"conversion lost {100 * (float_acc - golden):.2f} points; "
        if model.coding == "ttfs":
            result["warning"] = lost + ("conversion-aware training usually recovers them ('firstspike train "
                                        "--method cat', or --from FILE.py:FUNCTION for your own network)")
        else:
            result["warning"] = lost + ("rate coding loses less with more time steps (--T) and with "
                                        "--calibration iteration or percentile")
    return result


def golden_summary(model: SnnModel, ds, *, images: int = 0, batch: int = 100, pes: int = 16, tech: str = "45nm",
                   quiet: bool = False, array: dict | None = None) -> dict:
    """The golden model on the data set's test split (its first ``images``; 0: all), ``batch``
    images at a time (a VGG-16 gathers 1.7 M table rows per image): accuracy next to the
    float accuracy recorded at conversion, spikes per layer, synaptic operations, and the processor's exact cycles and
    on-chip energy per image on ``pes`` PEs (means over the images), its sizes ``array``
    (ArrayConfig fields) or the model's defaults."""
    from tqdm import tqdm
    golden, table = GoldenModel(model), energy.energy_table(tech)
    n = min(images, len(ds.x_test)) if images else len(ds.x_test)
    correct, spikes, sops, cycles, pj = 0, 0.0, 0.0, 0.0, 0.0
    with tqdm(total=n, desc="golden", unit="image", disable=quiet) as bar:
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            r = golden.run(ds.x_test[start:stop])
            k = stop - start
            correct += int((r.predictions == ds.y_test[start:stop]).sum())
            spikes = spikes + r.spike_counts().sum(0)
            sops += float(golden.synaptic_ops(r).sum())
            c, e = processor_cost(model, pes, r, table, array)
            cycles, pj = cycles + c * k, pj + e * k
            bar.update(k)
    return {"images": n, "accuracy": correct / n, "float_accuracy": model.info.get("float_accuracy"),
            "spikes_per_layer": [round(float(v) / n, 2) for v in spikes], "hidden_spikes": float(spikes[1:].sum()) / n,
            "synaptic_ops": sops / n, "pes": pes, "tech": tech, "cycles": cycles / n, "energy_nj": pj / n / 1e3,
            "pj_per_sop": pj / sops if sops else None}


def model_ann_path(model: SnnModel, model_path: str | os.PathLike) -> Path | None:
    """The checkpoint a model was converted from, if it still exists.

    Model files record it relative to their own folder, so a moved build tree keeps the link
    and the answer does not depend on the directory a command runs in.
    """
    ann = model.info.get("ann")
    if not ann:
        return None
    path = Path(model_path).resolve().parent / ann  # an absolute path (older files) stays as it is
    return path if path.is_file() else None


def dataset_of(model: SnnModel, data_dir: str | os.PathLike | None = None):
    """The data set a converted model was trained on (its test split is what we evaluate).

    ``data_dir`` replaces the directory recorded at conversion (a moved data set)."""
    info = model.info
    data_dir = data_dir if data_dir is not None else info.get("data_dir")
    return load_dataset(info.get("dataset", "digits"), seed=info.get("seed", 0), data_dir=data_dir)


# ---------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------
def checkpoint_for_sweeps(ann_path: str | os.PathLike, data_dir: str | os.PathLike | None = None):
    """(checkpoint, input shape, data set, float network, its test accuracy): what a sweep over
    conversions of one checkpoint starts from. ``data_dir`` replaces the recorded directory."""
    ckpt = load_ann(ann_path)
    shape = input_shape_of(ckpt)
    ds = load_dataset(ckpt["dataset"], seed=ckpt["seed"], data_dir=data_dir or ckpt.get("data_dir"))
    net = ann_network(ckpt)
    float_acc = ann_lib.accuracy(net, ds.x_test if shape is None else ds.x_test.reshape(-1, *shape), ds.y_test)
    return ckpt, shape, ds, net, float_acc


def processor_cost(model: SnnModel, pes: int, golden, table: energy.EnergyTable,
                   array: dict | None = None) -> tuple[float, float]:
    """(cycles, on-chip energy in pJ) per image on the array of ``pes`` PEs for ``model`` (its
    defaults, or the sizes ``array``), means over the images of the golden result: the exact
    cycle model and the energy model (external memory traffic not included: ``firstspike sim``
    reports it separately)."""
    cfg = ArrayConfig.for_model(model, pes, **(array or {}))
    counts = perf.layer_counts(model, cfg, golden)
    return float(perf.total_cycles(counts).mean()), float(np.mean(energy.on_chip_pj(counts, array_geometry(cfg, 100.0),
                                                                                   table)))


def array_geometry(cfg: ArrayConfig, clock_mhz: float) -> energy.ArrayGeometry:
    ev = spike_event(cfg).size
    return energy.ArrayGeometry(
        pes=cfg.pes, T=cfg.timing.T, acc_width=cfg.acc_width, event_bits=ev,
        weight_macro_bits=cfg.weight_buffer * 5, acc_macro_bits=cfg.slot_depth * cfg.acc_width,
        event_macro_bits=cfg.event_bank_depth * ev, threshold_macro_bits=cfg.max_layers * cfg.timing.T * cfg.acc_width,
        group_entry_bits=group_entry(cfg).size, clock_mhz=clock_mhz, bus_bits=cfg.bus_bits)


def simulate(model_path: str | os.PathLike, *, pes: int = 16, images: int = 0, out_dir="build/sim",
             verilog_dir="build/verilog", quiet: bool = False, clock_mhz: float = 100.0, tech: str = "45nm",
             energy_overrides: str | None = None, synth_target: str | None = None,
             data_dir: str | os.PathLike | None = None, array: dict | None = None) -> dict:
    """Run the test images of the model's data set through the golden model and the RTL; write report.json.

    ``array``: sizes of the array (ArrayConfig fields) instead of its defaults."""
    check_simulation_inputs(clock_mhz=clock_mhz, tech=tech, energy_overrides=energy_overrides, images=images)
    check_output_dir(out_dir, "report directory")
    check_output_dir(verilog_dir, "Verilog directory")
    model = SnnModel.load(model_path)
    ds = dataset_of(model, data_dir)
    n = len(ds.x_test) if images == 0 else min(images, len(ds.x_test))
    x, y = ds.x_test[:n], ds.y_test[:n]
    float_acc = None
    ann_path = model_ann_path(model, model_path)
    if ann_path is not None:
        net = ann_network(load_ann(ann_path))
        float_acc = ann_lib.accuracy(net, x, y)
    return simulate_model(model, x, y, pes=pes, out_dir=out_dir, verilog_dir=verilog_dir, quiet=quiet,
                          clock_mhz=clock_mhz, tech=tech, energy_overrides=energy_overrides,
                          synth_target=synth_target, float_accuracy=float_acc, dataset=ds.name,
                          model_label=str(Path(model_path).resolve()), array=array)


def check_simulation_inputs(*, clock_mhz: float, tech: str, energy_overrides: str | None, images: int = 0) -> None:
    """Every check of a simulation's parameters, before anything expensive runs."""
    if not isinstance(images, int) or isinstance(images, bool) or images < 0:
        raise InputError(f"images must be a non-negative integer (0: the whole test set), not {images!r}")
    if not (isinstance(clock_mhz, (int, float)) and math.isfinite(clock_mhz) and clock_mhz > 0):
        raise InputError(f"clock_mhz must be a positive finite number, not {clock_mhz!r}")
    energy.energy_table(tech, energy_overrides)  # raises EnergyTableError for a bad preset or file


def ann_layers(model: SnnModel, cfg: ArrayConfig) -> list[energy.AnnLayer]:
    """The equivalent ANN's layers for energy.ann_baselines_pj, on the array's weight tiles: each
    layer, and each residual shortcut as a layer of its own (its add is part of the MACs). An
    unfolded first layer (sw/unfold.py) counts as the conv layer it was: the ANN's MACs and
    input re-reads are the folded layer's."""
    from firstspike.hw.config import hardware_geometry, layer_descriptors
    descriptors, shortcut_descriptors = layer_descriptors(model, cfg, shortcuts=True)
    out = []
    for k, layer in enumerate(model.layers):
        layer = folded_first_layer(model) if k == 0 else layer
        geo = hardware_geometry(layer)
        positions = geo["h_out"] * geo["w_out"]
        out.append(energy.AnnLayer(layer.n_in, layer.n_neurons, layer.connections(), layer.weights.size,
                                   c_in=geo["c_in"], c_out=geo["c_out"], out_positions=positions,
                                   biases=layer.channels, tiles=descriptors[k].tiles, bands=descriptors[k].bands,
                                   line_inputs=geo["kh"] * geo["w_in"] * geo["c_in"]))
        synapses = model.shortcut_synapses(k)
        if synapses is not None:
            sc = hardware_geometry(synapses)
            out.append(energy.AnnLayer(synapses.n_in, 0, synapses.connections(), synapses.weights.size,
                                       c_in=sc["c_in"], c_out=geo["c_out"], out_positions=positions,
                                       tiles=shortcut_descriptors[k].tiles, bands=shortcut_descriptors[k].bands,
                                       line_inputs=sc["kh"] * sc["w_in"] * sc["c_in"]))
    return out


def ann_baselines(model: SnnModel, cfg: ArrayConfig, table: energy.EnergyTable, sops: float) -> dict:
    """energy.ann_baselines_pj of ``model``'s equivalent ANN on the array ``cfg``: its PEs, group
    size, weight-buffer and accumulator entries."""
    return energy.ann_baselines_pj(ann_layers(model, cfg), table, sops, pes=cfg.pes, group_size=cfg.group_size,
                                   weight_buffer=cfg.weight_buffer, acc_depth=cfg.slot_depth)


#: the processor's targets at the 28 nm preset (docs/hardware.md, "Energy estimate"):
#: figure -> (what the summary calls it, ">=" or "<=", value)
ENERGY_TARGETS = {"pj_per_synaptic_event": ("pJ per synaptic event", "<=", 1.5),
                  "snn_vs_int8": ("SNN / int8", "<=", 0.5),
                  "conv_pe_utilization": ("conv PE utilisation", ">=", 0.8)}


def energy_targets(model: SnnModel, cfg: ArrayConfig, counts, overrides: str | None, clock_mhz: float = 100.0) -> dict:
    """The targets' figures at the 28 nm preset (with ``overrides``), whatever preset the
    report uses: on-chip pJ per synaptic event, on-chip energy over the int8 ANN's, and the
    PE utilisation of the conv layers together (synaptic events / (P x their cycles))."""
    table = energy.energy_table("28nm", overrides)
    on_chip = np.mean(energy.on_chip_pj(counts, array_geometry(cfg, clock_mhz), table))
    events = np.mean(sum(c.acc_updates for c in counts))
    int8 = ann_baselines(model, cfg, table, events)["ann_int8_pj"]
    conv = [c for c in counts if c.kind == "conv"]
    figures = {"pj_per_synaptic_event": float(on_chip / max(1.0, events)), "snn_vs_int8": float(on_chip / int8),
               "conv_pe_utilization": float(sum(c.acc_updates.sum() for c in conv)
                                            / (cfg.pes * sum(c.cycles.sum() for c in conv))) if conv else None}
    out = {"technology": "28nm"}
    for k, v in figures.items():
        _, op, target = ENERGY_TARGETS[k]
        out[k] = {"value": v, "target": target, "met": None if v is None else bool(v >= target if op == ">=" else
                                                                                   v <= target)}
    return out


def targets_line(t: dict) -> str:
    return "; ".join(f"{label} {t[k]['value']:.2f} ({op} {target:g}: {'met' if t[k]['met'] else 'missed'})"
                     for k, (label, op, target) in ENERGY_TARGETS.items() if t[k]["value"] is not None)


def simulate_model(model: SnnModel, x: np.ndarray, y: np.ndarray | None = None, *, pes: int = 16,
                   out_dir="build/sim", verilog_dir="build/verilog", quiet: bool = False, clock_mhz: float = 100.0,
                   tech: str = "45nm", energy_overrides: str | None = None, synth_target: str | None = None,
                   float_accuracy: float | None = None, dataset: str = "", model_label: str = "",
                   array: dict | None = None) -> dict:
    """Run inputs ``x`` (floats, one row per image) through the golden model and the RTL; write report.json.

    ``y`` (labels) is optional: without it the report has no accuracies.
    """
    check_simulation_inputs(clock_mhz=clock_mhz, tech=tech, energy_overrides=energy_overrides)
    check_output_dir(out_dir, "report directory")
    check_output_dir(verilog_dir, "Verilog directory")
    x = np.asarray(x).reshape(len(x), -1)
    if len(x) == 0:
        raise InputError("no images to simulate")
    n = len(x)
    cfg = ArrayConfig.for_model(model, pes, **(array or {}))
    golden = GoldenModel(model).run(x)
    image = network_image(model, cfg)
    v_path = write_design(verilog_dir, cfg, model, image=image)
    t0 = time.perf_counter()
    built = verilator.build(v_path, cfg)
    with tqdm(total=n, desc="RTL", unit="image", disable=quiet) as bar:
        run = verilator.run(built, cfg, model.shapes, golden.spikes[0], image.memory,
                            progress=bar, work_dir=Path(out_dir) / "work")
    results = [decode_results(cfg, model.shapes, run.stats[b], run.words[b], coding=model.coding)
               for b in range(n)]
    mismatches = [m for b, r in enumerate(results) if (m := first_mismatch(b, golden, b, r))]
    rtl_pred = np.array([int(np.argmax(r.potentials)) for r in results])

    counts = perf.layer_counts(model, cfg, golden)
    geometry = array_geometry(cfg, clock_mhz)
    table = energy.energy_table(tech, energy_overrides)
    per_image = [[energy.layer_energy_pj(c, geometry, table, b) for c in counts] for b in range(n)]
    layer_pj = [{k: float(np.mean([per_image[b][k_][k] for b in range(n)])) for k in energy.COMPONENTS}
                for k_ in range(len(counts))]
    total_pj = float(np.mean([sum(sum(e.values()) for e in img) for img in per_image]))
    on_chip_pj = float(np.mean([sum(e[k] for e in img for k in energy.ON_CHIP) for img in per_image]))
    rtl_cycles = np.array([r.counters["cycles"] for r in results])
    model_cycles = perf.total_cycles(counts)
    mean = lambda key: float(np.mean([r.counters[key] for r in results]))  # noqa: E731
    baselines = ann_baselines(model, cfg, table, mean("acc_updates"))
    report = {
        "dataset": dataset, "images": n, "model": model_label,
        "float_accuracy": float_accuracy,
        "golden_accuracy": None if y is None else float((golden.predictions == y).mean()),
        "rtl_accuracy": None if y is None else float((rtl_pred == y).mean()),
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
        "acc_writebacks_per_image": mean("acc_writebacks"),
        "group_size": cfg.group_size,
        "events_in_per_image": mean("events_in"),
        "spikes_per_image": mean("spikes"),
        "energy_per_image_uj": total_pj * 1e-6,
        "on_chip_energy_per_image_uj": on_chip_pj * 1e-6,
        "on_chip_pj_per_synaptic_event": on_chip_pj / max(1.0, mean("acc_updates")),
        "external_bytes_per_image": mean("memory_beats") * cfg.bus_bits / 8,
        "memory_latency_cycles": MEMORY_LATENCY,
        "energy_technology": table.name,
        "energy_breakdown_pj": {k: sum(layer[k] for layer in layer_pj) for k in energy.COMPONENTS},
        "energy_baselines_pj": baselines,
        "energy_targets": energy_targets(model, cfg, counts, energy_overrides, clock_mhz),
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
                    "weight_tiles": c.tiles, "bands": c.bands,
                    "energy_pj": layer_pj[k]}
                   for k, (c, layer) in enumerate(zip(counts, model.layers))],
        "pe_count": pes, "T": model.timing.T, "B": model.timing.B, "frac_bits": model.timing.frac_bits,
        "acc_width": cfg.acc_width,
        "memory_bits_per_pe": {"weights": cfg.weight_buffer * 5, "biases": cfg.bias_buffer * cfg.acc_width,
                               "accumulators": cfg.slot_depth * cfg.acc_width,
                               "spike_counts": cfg.slot_depth * count_shape(cfg).width,
                               "diff_states": cfg.slot_depth * 4 * cfg.acc_width if cfg.diff_state else 0},
        "verilog": str(v_path),
        "verilator_build_s": built.build_seconds, "rtl_wall_s": run.wall_seconds,
        "flow_wall_s": time.perf_counter() - t0,
    }
    if synth_target:
        from firstspike.hw.synth import synthesize
        report["synthesis"] = synthesize(v_path, Path(out_dir) / "synth", target=synth_target)
    out = Path(out_dir)
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n", "simulation report")
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
        ("synaptic events / image", f"{r['synaptic_events_per_image']:.1f}; accumulator memory accesses "
                                    f"{r['acc_writebacks_per_image']:.1f} (event groups of {r['group_size']})"),
        ("spikes / image", f"{r['spikes_per_image']:.1f} (+ {r['layers'][0]['input_events']:.1f} input)"),
        ("on-chip energy / image", f"{r['on_chip_energy_per_image_uj'] * 1e3:.3f} nJ "
                                   f"({r['on_chip_pj_per_synaptic_event']:.2f} pJ per synaptic event, "
                                   f"{r['energy_technology']}); int8 ANN "
                                   f"{r['energy_baselines_pj']['ann_int8_pj'] / 1e3:.3f} nJ"),
        ("external memory / image", f"{r['external_bytes_per_image']:.0f} bytes, "
                                    f"{r['energy_breakdown_pj']['external_memory'] / 1e3:.3f} nJ (DRAM); int8 ANN "
                                    f"{r['energy_baselines_pj']['ann_int8_external_bytes']} bytes, "
                                    f"{r['energy_baselines_pj']['ann_int8_external_pj'] / 1e3:.3f} nJ"),
        ("targets (28 nm)", targets_line(r["energy_targets"])),
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

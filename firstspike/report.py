"""`firstspike report`: an HTML page with plots from a simulation run, synthesis and a sweep.

- sweep: golden-model accuracy, spikes and energy per image for each conversion method
  (max, percentile, iteration calibration with adaptive weight rounding, CAT) at several
  T and B, on the model's data set (the
  RTL equals the golden model bit for bit, so the sweep needs no RTL run);
- from build/sim/report.json: cycles, PE utilisation and energy per layer and component;
- spike-time histograms per layer from the golden model;
- from build/synth/synth.json: the synthesis table.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from firstspike.sw import ann as ann_lib  # noqa: E402
from firstspike.sw.convert import convert, convert_calibrated  # noqa: E402
from firstspike.sw.formats import NO_SPIKE, Timing  # noqa: E402
from firstspike.sw.files import write_text  # noqa: E402
from firstspike.sw.golden import GoldenModel  # noqa: E402
from firstspike.sw.model import SnnModel  # noqa: E402

from firstspike.sim import energy  # noqa: E402
from firstspike.sw.checkpoint import ann_network  # noqa: E402
from .flow import checkpoint_for_sweeps, dataset_of, processor_cost, targets_line  # noqa: E402

SWEEP_T = (4, 8, 16)
SWEEP_B = (1, 2)
METHODS = ("max", "percentile", "iteration", "cat")


def sweep(ann_path: str | os.PathLike, *, Ts=SWEEP_T, Bs=SWEEP_B, methods=METHODS, pes: int = 16,
          cat_epochs: int = 40, quiet: bool = False, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Accuracy, spikes and energy per image for each (method, T, B) on the test set.

    ``data_dir`` replaces the data directory the checkpoint recorded."""
    ckpt, shape, ds, float_net, float_acc = checkpoint_for_sweeps(ann_path, data_dir)
    table = energy.energy_table()
    rows = []
    combos = [(m, T, B) for m in methods for B in Bs for T in Ts]
    for method, T, B in tqdm(combos, desc="sweep", disable=quiet):
        timing = Timing(T=T, B=B, frac_bits=16)
        if method == "cat":
            cat = ann_lib.cat_finetune(ann_network(ckpt), ds.x_train, ds.y_train, timing, ckpt["input_theta"],
                                       epochs=cat_epochs, seed=ckpt["seed"], input_shape=shape)
            model = convert(cat.stages, timing, ckpt["input_theta"], cat.thetas)
        else:
            model = convert_calibrated(float_net, ds.x_train, method, timing, ckpt["input_theta"], input_shape=shape)
        g = GoldenModel(model).run(ds.x_test)
        cycles, e = processor_cost(model, pes, g, table)
        rows.append({"method": method, "T": T, "B": B, "accuracy": float((g.predictions == ds.y_test).mean()),
                     "float_accuracy": float_acc, "images": len(ds.x_test),
                     "spikes_per_image": float(g.spike_counts()[:, 1:].sum(1).mean()),
                     "energy_per_image_uj": e * 1e-6, "cycles_per_image": cycles})
    return rows


def pes_note(r: dict) -> str:
    return f"{r['pe_count']} PEs"


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(out_dir: str | os.PathLike, *, sim_report: str | os.PathLike = "build/sim/report.json",
                 synth_json: str | os.PathLike | None = "build/synth/synth.json",
                 sweep_rows: list[dict] | None = None,
                 compare_json: str | os.PathLike | None = "build/compare/compare.json") -> Path:
    """Write index.html, the PNGs and report.json (the sim report plus the sweep) to out_dir;
    the coding comparison of ``firstspike compare`` is included where ``compare_json`` exists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim_path = Path(sim_report)
    if not sim_path.is_file():
        raise FileNotFoundError(f"{sim_path}: no simulation report; run 'firstspike sim' first")
    r = json.loads(sim_path.read_text())
    model = SnnModel.load(r["model"])
    ds = dataset_of(model)
    golden = GoldenModel(model).run(ds.x_test[: r["images"]])
    sections = []

    # summary
    f = lambda v: "n/a" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    sections.append("<h2>Summary</h2>" + _table(["quantity", "value"], [
        ["data set / images", f"{r['dataset']} / {r['images']}"],
        ["array", f"{r['pe_count']} PEs, T={r['T']}, B={r['B']}, accumulator {r['acc_width']} bits"],
        ["float ANN / golden SNN / RTL accuracy", f"{f(r['float_accuracy'])} / {f(r['golden_accuracy'])} / "
                                                  f"{f(r['rtl_accuracy'])}"],
        ["RTL mismatches (images)", r["mismatches"]],
        ["cycles per image (RTL / model)", f"{r['cycles_per_image']:.1f} / {r['cycles_model_per_image']:.1f}"],
        ["latency, throughput", f"{r['latency_us']:.2f} us, {r['throughput_per_s']:.0f} images/s at "
                                f"{r['clock_mhz']:g} MHz"],
        ["on-chip energy per image", f"{r['on_chip_energy_per_image_uj'] * 1e3:.2f} nJ "
                                     f"({r['on_chip_pj_per_synaptic_event']:.2f} pJ per synaptic event, "
                                     f"{r['energy_technology']})"],
        ["int8 ANN baseline, on chip", f"{r['energy_baselines_pj']['ann_int8_pj'] / 1e3:.2f} nJ"],
        *([["targets at 28 nm", targets_line(r["energy_targets"])]] if "energy_targets" in r else []),
        ["external memory per image (SNN / int8 ANN)",
         f"{r['external_bytes_per_image']:.0f} / {r['energy_baselines_pj']['ann_int8_external_bytes']} bytes, "
         f"{r['energy_breakdown_pj']['external_memory'] / 1e3:.2f} / "
         f"{r['energy_baselines_pj']['ann_int8_external_pj'] / 1e3:.2f} nJ"],
        ["total energy per image (SNN)", f"{r['energy_per_image_uj'] * 1e3:.2f} nJ"],
        ["literature convention: SNN SOPs x 0.9 pJ / ANN MACs x 4.6 pJ",
         f"{r['energy_baselines_pj']['snn_sop_fp32_add_pj'] / 1e3:.2f} nJ / "
         f"{r['energy_baselines_pj']['ann_mac_fp32_pj'] / 1e3:.2f} nJ"],
    ]))

    # sweep: accuracy vs T per method
    if sweep_rows:
        fig, axes = plt.subplots(1, len(sorted({s["B"] for s in sweep_rows})), figsize=(10, 3.8), squeeze=False)
        for ax, B in zip(axes[0], sorted({s["B"] for s in sweep_rows})):
            for method in METHODS:
                pts = sorted((s["T"], s["accuracy"]) for s in sweep_rows if s["B"] == B and s["method"] == method)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=method)
            ax.axhline(sweep_rows[0]["float_accuracy"], color="gray", ls="--", label="float ANN")
            ax.set(title=f"B = {B}", xlabel="T (time steps per layer)", ylabel="golden accuracy")
            ax.legend()
        name = _save(fig, out / "accuracy_vs_T.png")
        sections.append(f"<h2>Accuracy vs T per conversion method</h2><p>Golden model on all "
                        f"{sweep_rows[0]['images']} test images; float ANN {f(sweep_rows[0]['float_accuracy'])}. "
                        f"Energy: 45 nm event model, {pes_note(r)}.</p><img src='{name}'>" + _table(
            ["method", "T", "B", "accuracy", "spikes/image", "energy/image (nJ)", "cycles/image"],
            [[s["method"], s["T"], s["B"], f"{100 * s['accuracy']:.2f} %", f"{s['spikes_per_image']:.1f}",
              f"{s['energy_per_image_uj'] * 1e3:.2f}", f"{s['cycles_per_image']:.0f}"] for s in sweep_rows]))

    # when spikes happen, per layer: ttfs spike times; rate-coded trains: spikes at each step
    n_hist = len(golden.spikes)
    fig, axes = plt.subplots(1, n_hist, figsize=(3.2 * n_hist, 3), squeeze=False)
    steps = np.arange(model.timing.T)
    for k, (ax, s) in enumerate(zip(axes[0], golden.spikes)):
        if s.ndim == 3:  # trains (images, T, neurons)
            ax.bar(steps, (s != 0).sum(axis=(0, 2)), width=0.9)
        else:
            ax.hist(s[s != NO_SPIKE], bins=np.arange(model.timing.T + 1) - 0.5)
        ax.set(title="input" if k == 0 else f"hidden {k - 1}", xlabel="spike time t" if s.ndim == 2 else "step t",
               ylabel="spikes")
    what = "Spike times" if golden.spikes[0].ndim == 2 else "Spikes at each step"
    sections.append(f"<h2>{what} per layer</h2><img src='{_save(fig, out / 'spike_times.png')}'>")

    # per layer: cycles, utilisation, energy
    layers = r["layers"]
    idx = np.arange(len(layers))
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.6))
    a1.bar(idx - 0.2, [lay["cycles"] for lay in layers], 0.4, label="RTL")
    a1.bar(idx + 0.2, [lay["cycles_model"] for lay in layers], 0.4, label="model")
    a1.set(title="cycles per layer", xlabel="layer")
    a1.legend()
    a2.bar(idx, [100 * lay["pe_utilization"] for lay in layers])
    a2.set(title="PE utilisation (%)", xlabel="layer", ylim=(0, 100))
    bottom = np.zeros(len(layers))
    for comp in energy.COMPONENTS:
        vals = np.array([lay["energy_pj"][comp] / 1e3 for lay in layers])
        a3.bar(idx, vals, bottom=bottom, label=comp)
        bottom += vals
    a3.set(title="energy per layer (nJ)", xlabel="layer")
    for ax in (a1, a2, a3):
        ax.set_xticks(idx)
    a3.legend(fontsize=8)
    sections.append(f"<h2>Per layer</h2><img src='{_save(fig, out / 'layers.png')}'>" + _table(
        ["layer", "kind", "n_in x n_out", "weight tiles x bands", "cycles (RTL)", "cycles (model)", "input events",
         "synaptic events", "PE utilisation", "energy (nJ)"],
        [[k, lay["kind"], f"{lay['n_in']} x {lay['n_out']}", f"{lay.get('weight_tiles', 1)} x {lay.get('bands', 1)}",
          f"{lay['cycles']:.1f}", f"{lay['cycles_model']:.1f}",
          f"{lay['input_events']:.1f}", f"{lay['synaptic_events']:.1f}", f"{100 * lay['pe_utilization']:.1f} %",
          f"{sum(lay['energy_pj'].values()) / 1e3:.2f}"] for k, lay in enumerate(layers)]))
    sections.append("<h2>Energy by component</h2>" + _table(
        ["component", "pJ per image"], [[k, f"{v:.1f}"] for k, v in r["energy_breakdown_pj"].items()]))
    sections.append("<h2>Energy constants</h2>" + _table(
        ["constant", "value", "source"], [[k, f"{v['value']:.5g}", v["source"]]
                                          for k, v in r["energy_constants"].items()]))

    # codings x methods (firstspike compare)
    comparison = None
    if compare_json is not None and Path(compare_json).is_file():
        from .compare import markdown_table
        comparison = json.loads(Path(compare_json).read_text())
        rows = [line.strip("|").split("|") for line in markdown_table(comparison["rows"]).splitlines()]
        png = Path(compare_json).with_suffix(".png")
        img = ""
        if png.is_file():
            (out / "compare.png").write_bytes(png.read_bytes())
            img = "<img src='compare.png'>"
        sections.append(f"<h2>Codings and conversion methods</h2><p>{html.escape(comparison['note'])}</p>{img}"
                        + _table([c.strip() for c in rows[0]], [[c.strip() for c in r] for r in rows[2:]]))

    # synthesis
    synth = None
    if synth_json is not None and Path(synth_json).is_file():
        synth = json.loads(Path(synth_json).read_text())
        sections.append("<h2>Synthesis</h2>" + _table(["quantity", "value"], [
            ["Yosys", synth["yosys_version"]], ["generic cells", synth["cells"]], ["RAM bits", synth["ram_bits"]],
            [f"{synth['target']} LUTs", synth["luts"]], [f"{synth['target']} flip-flops", synth["flip_flops"]],
            [f"{synth['target']} block RAMs", sum(synth["bram_blocks"].values())],
            ["memory bits per PE", ", ".join(f"{k} {v}" for k, v in r["memory_bits_per_pe"].items())]]))
    else:
        sections.append("<h2>Synthesis</h2><p>No synthesis results: run <code>make synth</code>.</p>")

    page = ("<!doctype html><html><head><meta charset='utf-8'><title>firstspike report</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
            "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}"
            "</style></head><body><h1>firstspike report</h1>" + "".join(sections) + "</body></html>")
    write_text(out / "index.html", page, "HTML report")
    combined = dict(r, sweep=sweep_rows, synthesis=synth, comparison=comparison)
    write_text(out / "report.json", json.dumps(combined, indent=2) + "\n", "report")
    return out / "index.html"

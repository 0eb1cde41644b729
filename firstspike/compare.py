"""`firstspike compare`: one table of codings x conversion methods x T on one trained network.

For each neuron model (ttfs, rate_if, diff_if), threshold calibration (max, percentile,
iteration) and window T, the float network is converted training-free (adaptive weight
rounding) and the golden model runs the test set: accuracy,
spikes and synaptic operations per image, the literature's SOP energy (SOPs x fp32 add, Horowitz 45 nm), and for the
models the processor runs, its exact cycles and energy per image (the RTL equals the
golden model bit for bit, which `make test` and `make sim` check). A combination that
cannot be converted (say, an accumulator wider than 48 bits) is listed with the reason.
Written as compare.json, compare.md and compare.png.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from firstspike.errors import FirstspikeError, InputError  # noqa: E402
from firstspike.hw.config import unsupported  # noqa: E402
from firstspike.sim import energy  # noqa: E402
from firstspike.sw.convert import CALIBRATIONS, convert_calibrated  # noqa: E402
from firstspike.sw.files import write_text  # noqa: E402
from firstspike.sw.formats import Timing  # noqa: E402
from firstspike.sw.golden import GoldenModel  # noqa: E402
from firstspike.sw.neurons import NEURON_MODELS  # noqa: E402

from .flow import checkpoint_for_sweeps, processor_cost  # noqa: E402

COMPARE_T = (2, 4, 8, 16)


def compare(ann_path: str | os.PathLike, *, Ts=COMPARE_T, B: int = 2, neurons=tuple(NEURON_MODELS),
            methods=CALIBRATIONS, pes: int = 16, data_dir: str | os.PathLike | None = None,
            quiet: bool = False) -> list[dict]:
    """One row per (neuron model, calibration, T), on the checkpoint's test set."""
    unknown = [n for n in neurons if n not in NEURON_MODELS] + [m for m in methods if m not in CALIBRATIONS]
    if unknown:
        raise InputError(f"unknown neuron model or calibration {', '.join(unknown)}; neuron models: "
                         f"{', '.join(NEURON_MODELS)}; calibrations: {', '.join(CALIBRATIONS)}")
    ckpt, shape, ds, net, float_acc = checkpoint_for_sweeps(ann_path, data_dir)
    table = energy.energy_table()
    rows = []
    combos = [(n, m, T) for n in neurons for m in methods for T in Ts]
    for neuron, method, T in tqdm(combos, desc="compare", disable=quiet):
        timing = Timing(T=T, B=B)
        row = {"neuron": neuron, "coding": NEURON_MODELS[neuron].CODING, "method": method, "T": T, "B": B,
               "dataset": ckpt["dataset"], "images": len(ds.x_test), "float_accuracy": float_acc}
        try:
            model = convert_calibrated(net, ds.x_train, method, timing, ckpt["input_theta"], input_shape=shape,
                                       neuron=neuron)
        except FirstspikeError as e:
            rows.append({**row, "skipped": str(e)})
            continue
        g = GoldenModel(model)
        r = g.run(ds.x_test)
        sops = g.synaptic_ops(r).astype(np.float64)
        row.update(accuracy=float((r.predictions == ds.y_test).mean()),
                   spikes_per_image=float(r.spike_counts()[:, 1:].sum(1).mean()),
                   sops_per_image=float(sops.mean()),
                   sop_energy_nj=float(sops.mean() * table["fp32_add_pj"] * 1e-3),
                   cycles_per_image=None, energy_per_image_nj=None)
        if not unsupported(model):  # the processor runs it (diff_if: not yet with max pooling)
            cycles, e = processor_cost(model, pes, r, table)
            row.update(cycles_per_image=cycles, energy_per_image_nj=e * 1e-3, pes=pes)
        rows.append(row)
    return rows


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown_table(rows: list[dict]) -> str:
    """The table as markdown, one line per row (skipped combinations with their reason)."""
    head = ("| neuron | method | T | accuracy | spikes / image | SOPs / image | SOP energy (nJ) | cycles / image "
            "| processor energy (nJ) |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['neuron']} | {r['method']} | {r['T']} | not applicable: {r['skipped']} |||||| |")
            continue
        lines.append(f"| {r['neuron']} | {r['method']} | {r['T']} | {100 * r['accuracy']:.2f} % | "
                     f"{r['spikes_per_image']:.0f} | {r['sops_per_image']:.0f} | {r['sop_energy_nj']:.2f} | "
                     f"{_fmt(r['cycles_per_image'], '.0f')} | {_fmt(r['energy_per_image_nj'], '.1f')} |")
    return head + "\n".join(lines) + "\n"


def write_comparison(out_dir: str | os.PathLike, rows: list[dict]) -> Path:
    """compare.json, compare.md and compare.png (accuracy against T, and against SOPs per image)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = [r for r in rows if "skipped" not in r]
    if not done:
        raise InputError("nothing to compare: every combination was skipped")
    first = done[0]
    note = (f"{first['dataset']}, {first['images']} test images, float ANN {100 * first['float_accuracy']:.2f} %, "
            f"B = {first['B']}, training-free (adaptive weight rounding)")
    write_text(out / "compare.json", json.dumps({"note": note, "rows": rows}, indent=1))
    write_text(out / "compare.md", f"{note}\n\n" + markdown_table(rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({(r["neuron"], r["method"]) for r in done}):
        pts = sorted((r["T"], r["accuracy"], r["sops_per_image"]) for r in done if (r["neuron"], r["method"]) == key)
        t, acc, sops = zip(*pts)
        style = {"ttfs": "-o", "rate_if": "--s", "diff_if": ":^"}.get(key[0], "-")
        a1.plot(t, [100 * a for a in acc], style, label=f"{key[0]} {key[1]}")
        a2.plot(sops, [100 * a for a in acc], style, label=f"{key[0]} {key[1]}")
    for ax in (a1, a2):
        ax.axhline(100 * first["float_accuracy"], color="gray", lw=0.8, label="float ANN")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(max(0, 100 * first["float_accuracy"] - 25), 100)
    a1.set_xscale("log", base=2)
    a1.set_xlabel("time steps T")
    a2.set_xscale("log")
    a2.set_xlabel("synaptic operations per image")
    a2.legend(fontsize=7, loc="lower right")
    fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=110)
    plt.close(fig)
    return out / "compare.md"

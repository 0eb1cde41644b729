"""`make bench-accuracy`: every conversion method on real data, golden == RTL on a sample.

For each benchmark network (``BENCH_NETWORKS``: an MLP, a LeNet-style CNN and ResNet-8 on
MNIST, VGG-11 and ResNet-20 at reduced width on CIFAR-10) a float network is trained once, then
for each T in {4, 8, 16} and B in {1, 2}:

- training-free conversions (max, percentile and iteration calibration of the float
  network) and CAT (fine-tuned from the float network at that timing);
- the golden model runs the test set: accuracy, spikes and synaptic operations per image,
  and the processor's exact cycles and on-chip energy per image (hw/perf.py, sim/energy.py,
  16 PEs);
- a sample of test images of every converted network runs through the RTL (one Verilator
  build per network and timing, every method's model in one simulator run) and must equal
  the golden model bit and cycle for cycle.

Trained networks are checkpointed under ``--out`` (the float network, and CAT per timing), and
each training keeps its state after every epoch, so a rerun resumes where an interrupted one
stopped, within a training too. Written as accuracy.json (after every timing, so an
interrupted run keeps the rows it measured; with ``--keep-measured`` a rerun measures only
the timings that are missing), accuracy.md and accuracy.png. Data: ``--data-dir`` holds
``mnist/`` and ``cifar10/`` in the layouts that ../shared/datasets' scripts write (``make
bench-accuracy`` runs them); the tables label them honestly: "MNIST test set, 8k/2k split"
and "CIFAR-10 (JPEG copy)".

    python -m firstspike.accuracy --data-dir build/data [--networks mnist-mlp,mnist-cnn] [--methods ...]
        [--out build/accuracy] [--keep-measured] [--input-spikes K] [--distill W]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from firstspike.errors import FirstspikeError, InputError

#: name -> training recipe (sw.checkpoint.train_ann arguments)
BENCH_NETWORKS = {
    "mnist-mlp": dict(dataset="mnist", arch="mlp", hidden=[256, 128], epochs=20, cat_epochs=6),
    "mnist-cnn": dict(dataset="mnist", arch="cnn", width=1.0, epochs=15, cat_epochs=5),
    "mnist-resnet8": dict(dataset="mnist", arch="resnet8", width=1.0, epochs=10, cat_epochs=3),
    "cifar10-vgg11": dict(dataset="cifar10", arch="vgg11", width=0.25, epochs=30, cat_epochs=8),
    "cifar10-resnet20": dict(dataset="cifar10", arch="resnet20", width=0.5, epochs=30, cat_epochs=8),
}
#: what the data in ../shared/datasets is, as its README asks numbers to be labelled
DATA_LABELS = {"mnist": "MNIST test set, 8k/2k split", "cifar10": "CIFAR-10 (JPEG copy)"}
BENCH_T = (4, 8, 16)
BENCH_B = (1, 2)
METHODS = ("max", "percentile", "iteration", "cat")
#: test images the golden model runs at once in the benchmark
GOLDEN_CHUNK = 1000


def float_checkpoint(name: str, out: Path, data_dir: Path, quiet: bool) -> Path:
    """The benchmark network's float checkpoint, trained on first use."""
    from firstspike.sw.checkpoint import train_ann
    recipe = dict(BENCH_NETWORKS[name])
    path = out / name / "float.pt"
    if not path.is_file():
        dataset = recipe.pop("dataset")
        recipe.pop("cat_epochs")
        recipe.pop("cat_distill", None)
        train_ann(path, dataset=dataset, method="float", data_dir=data_dir / dataset, quiet=quiet, **recipe)
    return path


def spikes_suffix(input_spikes: int, distill: float = 0.0) -> str:
    """What a file or folder name of a timing gets for its spikes per input value ("" for one)
    and its CAT distillation weight ("" for none)."""
    return (f"-K{input_spikes}" if input_spikes > 1 else "") + (f"-D{distill:g}" if distill else "")


def cat_network_for(name: str, ckpt: dict, ds, timing, out: Path, quiet: bool, input_spikes: int = 1,
                    distill: float | None = None):
    """CAT fine-tuned from the float network at ``timing`` (its input coded with
    ``input_spikes`` spikes per value; the float network as its teacher with weight ``distill``,
    None: the recipe's ``cat_distill``), checkpointed (state and thresholds)."""
    import torch

    from firstspike.sw import ann
    from firstspike.sw.checkpoint import ann_network
    if distill is None:
        distill = BENCH_NETWORKS[name].get("cat_distill", 0.0)
    path = out / name / f"cat-T{timing.T}-B{timing.B}{spikes_suffix(input_spikes, distill)}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        cat = ann.CatNetwork(ann_network(ckpt), timing, 1.0, saved["thetas"], input_spikes=input_spikes)
        cat.load_state_dict(saved["state"])
        return cat.eval()
    from tqdm import tqdm
    epochs = BENCH_NETWORKS[name]["cat_epochs"]
    with tqdm(total=epochs, desc=f"CAT T={timing.T} B={timing.B}", unit="epoch", disable=quiet, leave=False) as bar:
        state = path.with_name(path.name + ".state")
        cat = ann.cat_finetune(ann_network(ckpt), ds.x_train, ds.y_train, timing, 1.0, epochs=epochs, progress=bar,
                               resume=state, distill=distill,
                               input_spikes=input_spikes)
    torch.save({"state": cat.state_dict(), "thetas": cat.thetas}, path)
    state.unlink()
    return cat.eval()


def golden_figures(model, ds, pes: int, quiet: bool) -> dict:
    """A row's golden figures on the test split of ``ds``: flow.golden_summary, GOLDEN_CHUNK
    images at a time (10,000 CIFAR-10 images at once would hold every layer's potentials for
    all of them), at the 45 nm preset."""
    from firstspike.flow import golden_summary
    s = golden_summary(model, ds, batch=GOLDEN_CHUNK, pes=pes, quiet=quiet)
    return {"accuracy": s["accuracy"], "spikes_per_image": s["hidden_spikes"], "sops_per_image": s["synaptic_ops"],
            "cycles_per_image": s["cycles"], "energy_per_image_nj": s["energy_nj"]}


def bench_network(name: str, *, data_dir: Path, out: Path, Ts=BENCH_T, Bs=BENCH_B, methods=METHODS,
                  rtl_images: int = 4, pes: int = 16, quiet: bool = False, skip=(), on_timing=None,
                  input_spikes: int = 1, distill: float | None = None) -> list[dict]:
    """One row per (T, B, method) of benchmark network ``name``, timings ``skip`` ((T, B) pairs)
    left out; ``on_timing(rows)`` gets each timing's rows as soon as they are measured.
    ``input_spikes``: spikes per input value of every converted network (sw/input_spikes.py;
    CAT trains with that input code). ``distill``: CAT's distillation weight (the float
    network as teacher; None: the recipe's ``cat_distill``)."""
    from tqdm import tqdm

    from firstspike.hw.config import ArrayConfig
    from firstspike.hw.verilog import write_design
    from firstspike.sim import verilator
    from firstspike.sim.check import check_networks_on_rtl
    from firstspike.sw import ann
    from firstspike.sw.checkpoint import ann_network, load_ann
    from firstspike.sw.convert import convert, convert_calibrated
    from firstspike.sw.data import load_dataset
    from firstspike.sw.formats import Timing
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.input_spikes import expand_input
    recipe = BENCH_NETWORKS[name]
    if distill is None:
        distill = recipe.get("cat_distill", 0.0)
    ckpt = load_ann(float_checkpoint(name, out, data_dir, quiet))
    ds = load_dataset(recipe["dataset"], data_dir=data_dir / recipe["dataset"])
    net = ann_network(ckpt)
    float_acc = ann.accuracy(net, ds.x_test, ds.y_test)
    rows = []
    for T, B in tqdm([(T, B) for T in Ts for B in Bs if (T, B) not in skip], desc=name, unit="timing",
                     disable=quiet):
        timing = Timing(T=T, B=B)
        models, first_row = [], len(rows)
        for method in methods:
            row = {"network": name, "data": DATA_LABELS[recipe["dataset"]], "T": T, "B": B, "method": method,
                   "input_spikes": input_spikes, "float_accuracy": float_acc, "test_images": len(ds.x_test)}
            try:
                if method == "cat":
                    cat = cat_network_for(name, ckpt, ds, timing, out, quiet, input_spikes, distill)
                    row["cat_distill"] = distill
                    row["cat_float_accuracy"] = ann.accuracy(cat, ds.x_test, ds.y_test)
                    model = convert(cat.stages, timing, 1.0, cat.thetas)
                else:
                    model = convert_calibrated(net, ds.x_train, method, timing)
                model = expand_input(model, input_spikes)
            except FirstspikeError as e:
                rows.append({**row, "skipped": str(e)})
                continue
            row.update(golden_figures(model, ds, pes, quiet), pes=pes)
            row["loss_pp"] = 100 * (float_acc - row["accuracy"])
            rows.append(row)
            models.append((row, model))
        if rtl_images and models:
            sample = ds.x_test[:rtl_images]
            cfg = ArrayConfig.for_models([m for _, m in models], pes)
            suffix = spikes_suffix(input_spikes, distill if "cat" in methods else 0.0)
            built = verilator.build(write_design(out / name / f"v-T{T}-B{B}{suffix}", cfg), cfg)
            nets = [(m, GoldenModel(m).encode(sample)) for _, m in models]
            problems = check_networks_on_rtl(built, cfg, nets, out / name / f"rtl-T{T}-B{B}{suffix}")
            for (row, _), p in zip(models, problems):
                row.update(rtl_images=rtl_images, rtl_bit_exact=not p, rtl_problem=p[0] if p else None)
        if on_timing is not None:
            on_timing(rows[first_row:])
    return rows


def markdown_table(rows: list[dict]) -> str:
    """One table per network: accuracy (and its loss against the float network), spikes, cycles,
    energy, RTL check."""
    out = []
    for name in dict.fromkeys(r["network"] for r in rows):
        mine = sorted((r for r in rows if r["network"] == name),
                      key=lambda r: (r["T"], r["B"], variant_of(r), METHODS.index(r["method"])))
        r0 = mine[0]
        out += [f"**{name}** ({r0['data']}, {r0['test_images']} test images; float network "
                f"{100 * r0['float_accuracy']:.2f} %)", "",
                "| T | B | method | SNN accuracy | vs float | spikes / image | cycles / image | on-chip nJ / image "
                "| RTL = golden |", "|---|---|---|---|---|---|---|---|---|"]
        for r in mine:
            spikes, distill = variant_of(r)
            method = r["method"] + (f", {spikes} input spikes" if spikes > 1 else "") + (
                f", distill {distill:g}" if distill else "")
            if "skipped" in r:
                out.append(f"| {r['T']} | {r['B']} | {method} | skipped: {r['skipped']} | | | | | |")
                continue
            rtl = "-" if "rtl_bit_exact" not in r else (f"yes ({r['rtl_images']} images)" if r["rtl_bit_exact"]
                                                         else f"**no**: {r['rtl_problem']}")
            out.append(f"| {r['T']} | {r['B']} | {method} | {100 * r['accuracy']:.2f} % | "
                       f"{0.0 - r['loss_pp']:+.2f} pp | {r['spikes_per_image']:.0f} | {r['cycles_per_image']:.0f} | "
                       f"{r['energy_per_image_nj']:.1f} | {rtl} |")
        out.append("")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy against T per method (B = 2 solid, B = 1 dashed), one panel per network."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["network"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = [r for r in rows if r["network"] == name and "accuracy" in r and variant_of(r) == (1, 0.0)]
        for k, method in enumerate(METHODS):
            for B, style in ((2, "-"), (1, "--")):
                pts = sorted((r["T"], 100 * r["accuracy"]) for r in mine if r["method"] == method and r["B"] == B)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=f"C{k}", label=f"{method} B={B}")
        if mine:
            ax.axhline(100 * mine[0]["float_accuracy"], color="k", lw=0.8, label="float")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("T (time steps)")
        ax.set_ylabel("SNN accuracy (%)")
        ax.set_title(name)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _earlier_rows(path: Path) -> list[dict]:
    """The rows an earlier run wrote (none if there is no readable file)."""
    try:
        return list(json.loads(path.read_text())["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def input_spikes_of(row: dict) -> int:
    """A row's spikes per input value (rows written before there was a choice: 1)."""
    return int(row.get("input_spikes", 1))


def variant_of(row: dict) -> tuple[int, float]:
    """What besides (network, T, B, method) tells a row from another: its spikes per input
    value and, for CAT, its distillation weight (0.0 for the training-free methods and for
    rows written before there was a choice)."""
    return input_spikes_of(row), float(row.get("cat_distill", 0.0))


def _variant(method: str, input_spikes: int, distill: float) -> tuple[int, float]:
    """The variant a row of ``method`` gets in a run of ``input_spikes`` and ``distill``."""
    return input_spikes, distill if method == "cat" else 0.0


def _measured_timings(rows: list[dict], methods, input_spikes: int = 1,
                      distill: float = 0.0) -> set[tuple[str, int, int]]:
    """(network, T, B) of which ``rows`` hold a measured row of every one of ``methods`` with
    ``input_spikes`` (and, for CAT, ``distill``)."""
    have = {(r["network"], r["T"], r["B"], r["method"]) for r in rows
            if "accuracy" in r and variant_of(r) == _variant(r["method"], input_spikes, distill)}
    return {(n, T, B) for n, T, B, _ in have if all((n, T, B, m) in have for m in methods)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m firstspike.accuracy", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, type=Path, help="holds mnist/ and cifar10/ (make bench-accuracy)")
    p.add_argument("--networks", default="mnist-mlp,mnist-cnn",
                   help=f"comma-separated, of {', '.join(BENCH_NETWORKS)}")
    p.add_argument("--T", default=",".join(map(str, BENCH_T)), help="time windows")
    p.add_argument("--B", default=",".join(map(str, BENCH_B)), help="steps per octave")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated, of {', '.join(METHODS)} (default: all; cat trains a network per timing)")
    p.add_argument("--rtl-images", type=int, default=4, help="test images of every converted network run in RTL")
    p.add_argument("--out", type=Path, default=Path("build/accuracy"))
    p.add_argument("--input-spikes", type=int, default=1,
                   help="spikes per input value (residual input spikes, sw/input_spikes.py; CAT trains with them)")
    p.add_argument("--distill", type=float, default=None,
                   help="CAT's distillation weight, the float network as teacher (default: the recipe's, 0)")
    p.add_argument("--keep-measured", action="store_true",
                   help="timings whose rows (every method asked for) an earlier run wrote are not measured again")
    args = p.parse_args(argv)
    try:
        names = [n for n in args.networks.split(",") if n]
        unknown = [n for n in names if n not in BENCH_NETWORKS]
        if unknown or not names:
            raise InputError(f"unknown networks {unknown}; choose from {', '.join(BENCH_NETWORKS)}")
        try:
            Ts, Bs = [int(v) for v in args.T.split(",")], [int(v) for v in args.B.split(",")]
        except ValueError:
            raise InputError(f"--T and --B take comma-separated integers, not {args.T!r} / {args.B!r}") from None
        methods = tuple(m for m in args.methods.split(",") if m)
        if not methods or set(methods) - set(METHODS):
            raise InputError(f"unknown methods {sorted(set(methods) - set(METHODS))}; choose from {', '.join(METHODS)}")
        if args.rtl_images < 0:
            raise InputError("--rtl-images must be >= 0")
        if args.input_spikes < 1:
            raise InputError("--input-spikes must be >= 1")
        if args.distill is not None and not 0.0 <= args.distill <= 1.0:
            raise InputError("--distill must be between 0 and 1")
        K = args.input_spikes
        distill = {n: BENCH_NETWORKS[n].get("cat_distill", 0.0) if args.distill is None else args.distill
                   for n in names}
        args.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()

        def measured_here(r) -> bool:  # a row this run would write (network, timing, method, variant)
            return (r["network"] in names and r["method"] in methods and r["T"] in Ts and r["B"] in Bs
                    and variant_of(r) == _variant(r["method"], K, distill[r["network"]]))
        # rows this run does not measure stay (a run of one network or method adds to the tables)
        earlier = _earlier_rows(args.out / "accuracy.json")
        rows = [r for r in earlier if not measured_here(r)]
        kept = {(n, T, B) for n in names for _, T, B in _measured_timings(
                    [r for r in earlier if r["network"] == n], methods, K, distill[n])
                if args.keep_measured and T in Ts and B in Bs}
        rows += [r for r in earlier if (r["network"], r["T"], r["B"]) in kept and measured_here(r)]

        # the earlier rows this run measures again stay in the file until their new rows come
        key = lambda r: (r["network"], r["T"], r["B"], r["method"], variant_of(r))  # noqa: E731
        staying = {key(r) for r in rows}
        pending = {key(r): r for r in earlier if key(r) not in staying}

        def add(new_rows):  # written after every timing, so an interrupted run keeps what it has measured
            rows.extend(new_rows)
            for r in new_rows:
                pending.pop(key(r), None)
            (args.out / "accuracy.json").write_text(json.dumps(
                {"rows": rows + list(pending.values()), "seconds": time.perf_counter() - start}, indent=1))
        for name in names:
            (args.out / name).mkdir(exist_ok=True)
            bench_network(name, data_dir=args.data_dir, out=args.out, Ts=Ts, Bs=Bs, methods=methods,
                          rtl_images=args.rtl_images, skip={(T, B) for n, T, B in kept if n == name}, on_timing=add,
                          input_spikes=K, distill=distill[name])
        (args.out / "accuracy.md").write_text(markdown_table(rows))
        plot(rows, args.out / "accuracy.png")
    except FirstspikeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(rows))
    print(f"wrote {args.out / 'accuracy.json'}, accuracy.md, accuracy.png")
    bad = [r for r in rows if r.get("rtl_bit_exact") is False]
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

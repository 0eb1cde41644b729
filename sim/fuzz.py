"""RTL fuzzing (`make fuzz`): many random networks through the Verilog, bit-exact and cycle-exact.

Each configuration is a random MLP, CNN or residual net (seeded: configuration ``i`` is built from
``numpy.random.default_rng(i)``) on one of a few array shapes (PE count and timing). A quarter
of the MLPs and CNNs have rate_if neurons (docs/spec.md section 12; decided, thresholds and
input trains drawn from ``default_rng([i, 7])``, so the ttfs networks stay what they were), and
a fifth of the other MLPs and CNNs diff_if neurons (section 13; drawn from
``default_rng([i, 11])``), half of those with 2 to 8 spike levels (section 13.7).
Per shape one Verilog design, large enough for every network of that shape, is built
once (the build cache is shared and locked) and each network is put into the bench's
external memory, so the Verilator compile is paid once per shape, not per network. Worker
processes (one per core by default) take the networks of a shape in chunks.

Beside them, ``--banded N`` ttfs CNNs and residual nets (``random_banded_network``, seeds
from BANDED_SEED0) run on an array of shape BANDED_SHAPE whose accumulator memory and weight
buffer are the smallest that fit them, so their larger layers run in bands of output rows
(docs/hardware.md, "Bands"; their conv layers stay in one weight tile, the output layer's
fan-in sizing the buffer).

    python -m firstspike.sim.fuzz --configs 1000 [--banded 250] [--jobs N] [--out build/fuzz.json]

Reproduce a failure: ``random_network(seed)`` (or ``random_banded_network(seed)``) gives the
failing network and inputs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from firstspike.hw.config import ArrayConfig
from firstspike.sw.formats import Timing
from firstspike.sw.random_models import (as_rate_if, random_cnn, random_input_times, random_input_trains,
                                           random_model, random_resnet, with_levels)

#: (PEs, T, B, frac_bits) of the array shapes networks are spread over
SHAPES = [(1, 8, 1, 12), (4, 16, 2, 14), (16, 8, 4, 12), (4, 6, 8, 10)]
IMAGES = 2
#: the fraction of MLPs and CNNs that get rate_if neurons
RATE_FRACTION = 0.25
#: the fraction of the other MLPs and CNNs that get diff_if neurons
DIFF_FRACTION = 0.2
#: the array shape of the banded configurations, and their first seed
BANDED_SHAPE = 1
BANDED_SEED0 = 10 ** 6


def random_network(seed: int):
    """(shape index, model, input times) of fuzz configuration ``seed``."""
    rng = np.random.default_rng(seed)
    index = seed % len(SHAPES)
    pes, T, B, F = SHAPES[index]
    timing = Timing(T=T, B=B, frac_bits=F)
    kind = rng.random()
    if kind < 0.2:  # residual (docs/spec.md section 14)
        c, h = int(rng.integers(1, 4)), int(rng.integers(3, 9))
        model = _residual_net(rng, timing, c, h)
    elif kind < 0.6:
        sizes = [int(s) for s in rng.integers(1, 25, size=int(rng.integers(2, 5)))]
        model = random_model(rng, sizes, timing, zero_fraction=float(rng.choice([0.0, 0.2, 0.8])))
    else:
        c, h = int(rng.integers(1, 4)), int(rng.integers(3, 10))
        model = _conv_net(rng, timing, c, h)
    times = random_input_times(rng, model.layers[0].n_in, IMAGES, timing,
                               silent_fraction=float(rng.choice([0.0, 0.3, 0.9])))
    rate = np.random.default_rng([seed, 7])
    if kind >= 0.2 and rate.random() < RATE_FRACTION:
        model = as_rate_if(rate, model)
        return index, model, random_input_trains(rate, model.layers[0].n_in, IMAGES, timing)
    diff = np.random.default_rng([seed, 11])
    if kind >= 0.2 and diff.random() < DIFF_FRACTION:
        model = as_rate_if(diff, model, neuron="diff_if")
        if diff.random() < 0.5:  # the multi-threshold variant
            model = with_levels(diff, model)
        return index, model, random_input_trains(diff, model.layers[0].n_in, IMAGES, timing, signed=True)
    return index, model, times


def _residual_net(rng: np.random.Generator, timing: Timing, c: int, h: int):
    """A random residual net on c x h x h inputs: 1-2 blocks (stride 1/2, pooling, identity, 1x1
    or 3x3 shortcuts), a stem conv in 70 % of them."""
    blocks, size = [], h
    for _ in range(int(rng.integers(1, 3))):
        stride = int(rng.choice([1, 2]))
        size = (size - 1) // stride + 1
        pool = 2 if size >= 2 and rng.random() < 0.3 else 1
        size //= pool
        blocks.append(dict(channels=int(rng.integers(1, 13)), stride=stride, pool=pool,
                           shortcut_kernel=int(rng.choice([1, 1, 3]))))
    return random_resnet(rng, (c, h, h), blocks, int(rng.integers(1, 8)), timing, stem=bool(rng.random() < 0.7))


def _conv_net(rng: np.random.Generator, timing: Timing, c: int, h: int):
    """A random CNN on c x h x h inputs: 1-2 conv layers (kernels 1, 2, 3, 5, strides 1/2,
    padding, pooling), then 0-1 hidden linear layers."""
    convs, size = [], h
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.choice([1, 2, 3, 5]))
        p, s = int(rng.integers(0, k // 2 + 1)), int(rng.choice([1, 2]))
        if k > size + 2 * p:
            k, p = 1, 0
        size = (size + 2 * p - k) // s + 1
        pool = 2 if size >= 2 and rng.random() < 0.4 else 1
        size //= pool
        convs.append(dict(channels=int(rng.integers(1, 13)), kernel=k, stride=s, padding=p, pool=pool))
    hidden = [int(rng.integers(1, 13))] if rng.random() < 0.5 else []
    return random_cnn(rng, (c, h, h), convs, hidden, int(rng.integers(1, 8)), timing)


def random_banded_network(seed: int):
    """(BANDED_SHAPE, model, input times) of banded configuration ``seed`` (>= BANDED_SEED0): a
    ttfs CNN (70 %) or residual net (30 %) on 6x6 to 12x12 inputs."""
    rng = np.random.default_rng(seed)
    _, T, B, F = SHAPES[BANDED_SHAPE]
    timing = Timing(T=T, B=B, frac_bits=F)
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 13))
    model = _residual_net(rng, timing, c, h) if rng.random() < 0.3 else _conv_net(rng, timing, c, h)
    times = random_input_times(rng, model.layers[0].n_in, IMAGES, timing,
                               silent_fraction=float(rng.choice([0.0, 0.3, 0.9])))
    return BANDED_SHAPE, model, times


def network_of(seed: int):
    """(shape index, model, input times) of any fuzz configuration, banded ones included."""
    return random_banded_network(seed) if seed >= BANDED_SEED0 else random_network(seed)


def shape_config(index: int, seeds: list[int]) -> ArrayConfig:
    """The smallest array of shape ``index`` that runs every network in ``seeds``."""
    return ArrayConfig.for_models((random_network(s)[1] for s in seeds), SHAPES[index][0])


def banded_config(seeds: list[int]) -> ArrayConfig:
    """The array of the banded configurations ``seeds``: shape BANDED_SHAPE, its accumulator
    memory and weight buffer the smallest that fit them (bands and weight tiles)."""
    return ArrayConfig.for_models((random_banded_network(s)[1] for s in seeds), SHAPES[BANDED_SHAPE][0],
                                  smallest_weight_buffer=True, smallest_acc_buffer=True)


def _work(job):
    """Worker: build (or reuse) the shape's design, then check each network of the chunk."""
    from firstspike.hw.verilog import write_design
    from firstspike.sim import verilator
    from firstspike.sim.check import check_networks_on_rtl
    cfg_dict, seeds, work = job
    cfg = ArrayConfig.from_dict(cfg_dict)
    work = Path(work)
    built = verilator.build(write_design(work / "v", cfg), cfg)
    nets = [network_of(seed)[1:] for seed in seeds]
    failures = []
    for seed, (model, _), problems in zip(seeds, nets, check_networks_on_rtl(built, cfg, nets, work / f"n{seeds[0]}")):
        if problems:
            failures.append({"seed": seed, "shapes": [list(s) for s in model.shapes], "problems": problems[:3]})
    return len(seeds), failures


def fuzz(configs: int = 1000, jobs: int | None = None, chunk: int = 25, quiet: bool = False,
         banded: int | None = None) -> dict:
    """``configs`` fuzz configurations over SHAPES and ``banded`` banded ones (default a quarter
    of ``configs``) through the RTL; the report."""
    from tqdm import tqdm

    from firstspike.hw.config import layer_descriptors
    jobs = jobs or os.cpu_count() or 1
    banded = configs // 4 if banded is None else banded
    by_shape: dict[int, list[int]] = {}
    for seed in range(configs):
        by_shape.setdefault(seed % len(SHAPES), []).append(seed)
    configs_of = {index: shape_config(index, seeds) for index, seeds in by_shape.items()}
    banded_seeds = list(range(BANDED_SEED0, BANDED_SEED0 + banded))
    if banded_seeds:
        by_shape["banded"] = banded_seeds
        configs_of["banded"] = banded_config(banded_seeds)
    start = time.perf_counter()
    failures, done = [], 0
    with tempfile.TemporaryDirectory(prefix="firstspike-fuzz-") as tmp:
        work = []
        for index, seeds in by_shape.items():
            cfg = configs_of[index].to_dict()
            for i in range(0, len(seeds), chunk):
                work.append((cfg, seeds[i:i + chunk], str(Path(tmp) / f"s{index}c{i}")))
        with Pool(jobs) as pool, tqdm(total=configs + banded, desc="fuzz", unit="net", disable=quiet) as bar:
            for n, fails in pool.imap_unordered(_work, work):
                done += n
                failures += fails
                bar.update(n)
    seconds = time.perf_counter() - start
    codings = [random_network(seed)[1].coding for seed in range(configs)]
    bands = [max(d.bands for d in layer_descriptors(random_banded_network(s)[1], configs_of["banded"]))
             for s in banded_seeds]
    return {"configurations": done, "rate_if_configurations": codings.count("rate"),
            "diff_if_configurations": codings.count("diff"), "banded_configurations": len(banded_seeds),
            "configurations_in_bands": sum(b > 1 for b in bands), "most_bands": max(bands, default=0),
            "images_per_configuration": IMAGES,
            "mismatching_configurations": len(failures),
            "failures": failures[:20], "shapes": SHAPES, "jobs": jobs, "seconds": seconds,
            "configurations_per_s": done / seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firstspike.sim.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--banded", type=int, default=None,
                        help="banded configurations besides (default: a quarter of --configs)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--out", default="build/fuzz.json")
    args = parser.parse_args(argv)
    if args.configs < 1 or (args.banded is not None and args.banded < 0):
        parser.error("--configs must be at least 1 and --banded at least 0")
    r = fuzz(args.configs, args.jobs, banded=args.banded)
    from firstspike.sw.files import write_text
    write_text(args.out, json.dumps(r, indent=2) + "\n", "fuzz results")
    print(f"{r['configurations']} random networks ({r['rate_if_configurations']} rate_if, "
          f"{r['diff_if_configurations']} diff_if, {r['banded_configurations']} on the banded array of which "
          f"{r['configurations_in_bands']} run in bands, up to {r['most_bands']}) x {IMAGES} images "
          f"through the RTL on {r['jobs']} processes: "
          f"{r['mismatching_configurations']} mismatching, {r['seconds']:.0f} s "
          f"({r['configurations_per_s']:.1f} networks/s); wrote {args.out}")
    for f in r["failures"]:
        print(f"  seed {f['seed']} {f['shapes']}: {f['problems'][0]}")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

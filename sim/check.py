"""Bit-exact comparison of RTL results with the golden model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstspike.hw.host import RunResult
from firstspike.sw.golden import GoldenResult


@dataclass
class Mismatch:
    """The first difference of one image: where, what the golden model said, what the RTL said."""

    image: int
    layer: str  #: "input", "hidden k" or "output"
    neuron: int
    expected: int
    got: int
    what: str  #: "spike time" or "potential"

    def __str__(self) -> str:
        hint = " (-1 = no spike)" if self.what == "spike time" else ""
        return (f"image {self.image}: {self.layer} neuron {self.neuron}: {self.what} expected {self.expected}, "
                f"got {self.got}{hint}")


def first_mismatch(image: int, golden: GoldenResult, b: int, rtl: RunResult) -> Mismatch | None:
    """Compare image ``b`` of a golden batch with one RTL run; None when identical."""
    for k, got in enumerate(rtl.spikes):
        exp = golden.spikes[k][b]
        diff = np.argwhere(exp != got)
        if diff.size:
            name = "input" if k == 0 else f"hidden {k - 1}"
            if exp.ndim == 2:  # a rate train (T, n): the first step that differs
                t, j = (int(v) for v in diff[0])
                return Mismatch(image, name, j, int(exp[t, j]), int(got[t, j]), f"spike at step {t}")
            j = int(diff[0][0])
            return Mismatch(image, name, j, int(exp[j]), int(got[j]), "spike time")
    exp = golden.potentials[b]
    diff = np.flatnonzero(exp != rtl.potentials)
    if diff.size:
        j = int(diff[0])
        return Mismatch(image, "output", j, int(exp[j]), int(rtl.potentials[j]), "potential")
    return None


#: where check_networks_on_rtl puts the first network in external memory (bus words): 128 KB
#: below 12 MB and not on a 4 KB boundary, so a run of many networks crosses 12 MB (the first
#: ones at 0xBExxxx, the later ones at 0xC0xxxx): every address bit up to 23 is set in some
#: network's reads and clear in others'; a run too large to fit above it starts lower, so
#: that its last network ends at the top of the bench memory
NETWORK_OFFSET_WORDS = (3 << 19) - (1 << 14) + 1001
#: words between two networks of one run, so each starts at a different offset in its 4 KB page
NETWORK_GAP_WORDS = 1001


def check_network_on_rtl(built, cfg, model, times, work_dir, mutant: int = 0) -> list[str]:
    """``check_networks_on_rtl`` for one network: its problems (empty: bit-exact and cycle-exact)."""
    return check_networks_on_rtl(built, cfg, [(model, times)], work_dir, mutant)[0]


def check_networks_on_rtl(built, cfg, nets, work_dir, mutant: int = 0,
                          failing_memory_from: int | None = None) -> list[list[str]]:
    """Put every (model, times) of ``nets`` into a built array's external memory (at odd offsets,
    one after another, each selected over the host bus before its images), run them all in one
    simulator run, and compare every image with the golden model and the cycle model
    (hw/perf.py), layer by layer and counter by counter. Returns each network's problems
    (empty: bit-exact and cycle-exact). The one RTL check loop of the test suites, the fuzzer
    and the mutation score (``mutant``: which mutant of a mutated build runs). A run that
    takes ten times the cycles the model predicts is stopped (a hung design) and fails
    with RuntimeError.

    The array's ``memory_error`` output must stay low. With ``failing_memory_from`` = i, the
    bench memory answers every read of network i and later ones with an error response (the
    data still right): from network i on, the flag must be high, and the results still
    exact."""
    from firstspike.hw.config import network_image
    from firstspike.hw.host import decode_results, network_writes
    from firstspike.hw.perf import layer_counts
    from firstspike.sim import verilator
    from firstspike.sw.golden import GoldenModel
    word_bytes = cfg.bus_bits // 8
    jobs, expected, limit = [], [], 10_000
    images = [network_image(model, cfg) for model, _ in nets]
    # networks too large to fit above NETWORK_OFFSET_WORDS start lower, so that they end at the top
    total = sum(len(image.memory) + NETWORK_GAP_WORDS for image in images)
    offset = max(NETWORK_GAP_WORDS, min(NETWORK_OFFSET_WORDS, verilator.MEMORY_WORDS - total))
    for (model, times), image in zip(nets, images):
        golden = GoldenModel(model).run_times(times)
        # the image sits at a network address that is not a multiple of 4 KB, so bursts split
        # differently than from address 0 (the cycle model follows)
        counts = layer_counts(model, cfg, golden, network_addr=offset * word_bytes)
        writes = network_writes(cfg, offset * word_bytes)
        limit = max(limit, 10 * (len(writes) + sum(int(c.cycles.sum()) for c in counts) + np.asarray(times).size)
                    + 10_000)
        jobs.append(verilator.RtlJob(model.shapes, times, image.memory, offset, writes))
        expected.append((model, golden, counts))
        offset += len(image.memory) + NETWORK_GAP_WORDS
    error_from = None if failing_memory_from is None else jobs[failing_memory_from].memory_offset
    runs = verilator.run_jobs(built, cfg, jobs, work_dir=work_dir, mutant=mutant, cycle_limit=limit,
                              error_from_word=error_from)
    problems = []
    for j, ((model, golden, counts), run) in enumerate(zip(expected, runs)):
        results = [decode_results(cfg, model.shapes, st, w, coding=model.coding) for st, w in zip(run.stats, run.words)]
        found = result_problems(cfg, model, golden, counts, results)
        failing = failing_memory_from is not None and j >= failing_memory_from
        if run.memory_error != failing:
            found.append(f"memory_error {'low' if failing else 'high'} after the network's images, with "
                         f"{'a failing' if failing else 'a working'} memory")
        problems.append(found)
    return problems


def result_problems(cfg, model, golden: GoldenResult, counts, results: list[RunResult]) -> list[str]:
    """What differs between runs of the array (one per image of a golden batch) and the golden
    model (spikes, potentials) or the cycle model ``counts`` (hw/perf.py layer_counts: layer
    cycles and events, every counter), or whose status register does not say done.
    Empty: bit-exact and cycle-exact."""
    problems = []
    for b, result in enumerate(results):
        mismatch = first_mismatch(b, golden, b, result)
        if mismatch is not None:
            problems.append(str(mismatch))
            continue
        if result.counters["status"] != 2:  # bit 1 done, bit 0 busy
            problems.append(f"image {b}: status {result.counters['status']} after the run, not done (2)")
        if sum(result.layer_cycles) != result.counters["cycles"]:
            problems.append(f"image {b}: layer cycles {result.layer_cycles} do not add up to "
                            f"{result.counters['cycles']}")
        checks = [("layer cycles", result.layer_cycles, [int(c.cycles[b]) for c in counts]),
                  ("layer events", result.layer_events, [int(c.input_events[b]) for c in counts])]
        checks += [(key, result.counters[key], sum(int(getattr(c, key)[b]) for c in counts))
                   for key in ("weight_reads", "acc_updates", "acc_writebacks", "spikes", "memory_beats")]
        checks.append(("events in", result.counters["events_in"], sum(int(c.input_events[b]) for c in counts)))
        problems += [f"image {b}: {name}: RTL {rtl}, cycle model {model_value}"
                     for name, rtl, model_value in checks if rtl != model_value]
    return problems

"""Generated Verilog under Verilator + cocotb, bit-exact against the golden model.

Random networks: reproduce a failure with the seed printed in the assertion message,
e.g. ``random_model(np.random.default_rng(SEED), sizes, timing)`` as in ``_networks``.
"""
import numpy as np
import pytest

from hw.config import ArrayConfig, network_image, requirements
from hw.host import decode_results, network_writes
from hw.verilog import write_design
from sim import verilator
from sim.check import first_mismatch
from sim.flow import simulate
from sim.perf import layer_counts
from sw.formats import Timing
from sw.golden import GoldenModel
from sw.random_models import random_input_times, random_model

# (PEs, T, B, frac_bits): 1, 4 and 16 PEs; B in 1, 2, 4, 8
CONFIGS = [(1, 8, 1, 12), (4, 16, 2, 16), (16, 8, 4, 14), (4, 5, 8, 10), (16, 32, 2, 16), (1, 12, 4, 12)]
NETWORKS_PER_CONFIG = 9
IMAGES_PER_NETWORK = 3


def _networks(index, timing):
    """Random depths (1-3 weight layers) and widths (1-24), one seed per network."""
    out = []
    for n in range(NETWORKS_PER_CONFIG):
        seed = 1000 * index + n
        rng = np.random.default_rng(seed)
        depth = int(rng.integers(1, 4))
        sizes = [int(s) for s in rng.integers(1, 25, size=depth + 1)]
        out.append((seed, random_model(rng, sizes, timing), random_input_times(rng, sizes[0], IMAGES_PER_NETWORK, timing)))
    return out


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[f"pes{c[0]}-T{c[1]}-B{c[2]}" for c in CONFIGS])
def test_random_networks_bit_exact(index, tmp_path):
    pes, T, B, F = CONFIGS[index]
    timing = Timing(T=T, B=B, frac_bits=F)
    nets = _networks(index, timing)
    # one array big enough for every network of this group: built once, loaded per network
    need = [requirements(model, pes) for _, model, _ in nets]
    cfg = ArrayConfig(pes=pes, timing=timing, **{k: max(n[k] for n in need) for k in need[0]})
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    for seed, model, times in nets:
        golden = GoldenModel(model).run_times(times)
        counts = layer_counts(model, pes, golden)
        run = verilator.run(built, cfg, model.sizes, times, load_writes=network_writes(cfg, network_image(model, cfg)),
                            work_dir=tmp_path / f"net{seed}")
        for b in range(len(times)):
            result = decode_results(cfg, model.sizes, run.stats[b], run.words[b])
            mismatch = first_mismatch(b, golden, b, result)
            assert mismatch is None, f"seed {seed}, sizes {model.sizes}, {timing}, {pes} PEs: {mismatch}"
            assert sum(result.layer_cycles) == result.counters["cycles"]
            # the performance model is exact, layer by layer and counter by counter
            assert result.layer_cycles == [int(c.cycles[b]) for c in counts], f"seed {seed}"
            assert result.layer_events == [int(c.input_events[b]) for c in counts], f"seed {seed}"
            for key, attr in (("weight_reads", "weight_reads"), ("acc_updates", "acc_updates"), ("spikes", "spikes")):
                assert result.counters[key] == sum(int(getattr(c, attr)[b]) for c in counts), f"seed {seed}: {key}"


def test_random_networks_exercise_the_design():
    """The generator is worth testing with: spikes at many times, silent neurons, all codes."""
    timing = Timing(T=16, B=2, frac_bits=16)
    times_seen, silent, codes = set(), 0, set()
    for seed, model, times in _networks(1, timing):
        g = GoldenModel(model).run_times(times)
        for s in g.spikes[1:]:
            times_seen |= set(s[s >= 0].tolist())
            silent += int((s < 0).sum())
        for layer in model.layers:
            codes |= set(layer.weights.ravel().tolist())
    assert len(times_seen) >= 12 and silent > 0 and len(codes) == 31


def test_digits_model_bit_exact_on_rtl(digits_model, tmp_path):
    """The trained CAT model, baked into the Verilog, on 120 test images."""
    _, snn_path, _ = digits_model
    report = simulate(snn_path, pes=16, images=120, out_dir=tmp_path / "sim", verilog_dir=tmp_path / "v", quiet=True)
    assert report["images"] == 120
    assert report["mismatches"] == 0, report["first_mismatch"]
    assert report["rtl_accuracy"] == report["golden_accuracy"]
    assert abs(report["golden_accuracy"] - report["float_accuracy"]) <= 0.01
    assert report["cycle_model_exact"] is True
    assert report["cycles_model_per_image"] == report["cycles_per_image"]
    assert [layer["cycles_model"] for layer in report["layers"]] == [layer["cycles"] for layer in report["layers"]]
    assert report["energy_per_image_uj"] > 0 and report["energy_baselines_pj"]["ann_macs"] == 64 * 64 + 64 * 32 + 32 * 10
    assert (tmp_path / "sim" / "report.json").exists()


def test_mismatch_is_reported_precisely():
    timing = Timing(T=8, B=2, frac_bits=12)
    model = random_model(np.random.default_rng(5), [6, 5, 3], timing)
    times = random_input_times(np.random.default_rng(6), 6, 1, timing)
    golden = GoldenModel(model).run_times(times)
    from hw.host import RunResult
    spikes = [s[0].copy() for s in golden.spikes]
    spikes[1][2] = 7 if spikes[1][2] != 7 else 6
    bad = RunResult(spikes=spikes, potentials=golden.potentials[0].copy(), counters={}, layer_cycles=[], layer_events=[])
    m = first_mismatch(4, golden, 0, bad)
    assert (m.image, m.layer, m.neuron, m.got) == (4, "hidden 0", 2, spikes[1][2])
    assert "image 4: hidden 0 neuron 2: spike time expected" in str(m)

"""Slow RTL suites (`make test-slow`): larger networks, a reduced-width VGG-11, full-width
VGG-16 and every digits image at 1 and 4 PEs.

Reproduce a random-network failure from the seed in the assertion message.
"""
from dataclasses import replace

import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig, network_image
from firstspike.hw.host import decode_results, network_writes
from firstspike.hw.verilog import write_design
from firstspike.sim import verilator
from firstspike.sim.check import first_mismatch, result_problems
from firstspike.flow import simulate
from firstspike.hw.perf import layer_counts
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import random_input_times, random_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed,sizes,pes,T,B", [
    (1, [784, 128, 64, 10], 16, 16, 2),  # an MNIST-sized MLP
    (2, [300, 200, 100, 50, 10], 7, 32, 4),  # PE count dividing nothing
    (3, [256, 256, 10], 1, 8, 1),
])
def test_large_random_networks(seed, sizes, pes, T, B, tmp_path):
    timing = Timing(T=T, B=B, frac_bits=16)
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, timing)
    times = random_input_times(rng, sizes[0], 10, timing)
    cfg = ArrayConfig.for_model(model, pes)
    built = verilator.build(write_design(tmp_path / "v", cfg), cfg)
    image = network_image(model, cfg)
    run = verilator.run(built, cfg, model.shapes, times, image.memory, load_writes=network_writes(cfg),
                        work_dir=tmp_path / "run")
    golden = GoldenModel(model).run_times(times)
    counts = layer_counts(model, cfg, golden)
    for b in range(len(times)):
        result = decode_results(cfg, model.shapes, run.stats[b], run.words[b])
        assert first_mismatch(b, golden, b, result) is None, f"seed {seed}: {first_mismatch(b, golden, b, result)}"
        assert result.layer_cycles == [int(c.cycles[b]) for c in counts], f"seed {seed}"


@pytest.mark.parametrize("pes", [1, 4])
def test_digits_all_images(digits_model, pes, tmp_path):
    _, snn, _ = digits_model
    report = simulate(snn, pes=pes, images=0, out_dir=tmp_path / "sim", verilog_dir=tmp_path / "v", quiet=True)
    assert report["images"] == 449 and report["mismatches"] == 0, report["first_mismatch"]
    assert report["cycle_model_exact"] and report["rtl_accuracy"] == report["golden_accuracy"]


def test_reduced_width_vgg11_bit_exact(tmp_path):
    """VGG-11 for 32x32x3 inputs at 1/16 width (4..32 channels, 8 conv layers, 5 max pools),
    converted with max calibration, 3 random images through the RTL at 16 PEs."""
    import torch

    from firstspike.sw.ann import vgg
    from firstspike.sw.convert import calibrate, convert
    net = vgg("vgg11", (3, 32, 32), 10, width=1 / 16, seed=0).eval()
    rng = np.random.default_rng(0)
    x = rng.random((64, 3 * 32 * 32)).astype(np.float32)
    with torch.no_grad():
        for m in net.modules():  # non-trivial BatchNorm statistics, as after training
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(0.0, 0.3)
    timing = Timing(T=16, B=2, frac_bits=14)
    model = convert(net, timing, 1.0, calibrate(net, x, "percentile", 99.0))
    assert sum(layer.kind == "conv" for layer in model.layers) == 8
    cfg = ArrayConfig.for_model(model, 16)
    built = verilator.build(write_design(tmp_path / "v", cfg, model), cfg)
    golden = GoldenModel(model).run(x[:3])
    run = verilator.run(built, cfg, model.shapes, golden.spikes[0], network_image(model, cfg).memory,
                        work_dir=tmp_path / "run")
    counts = layer_counts(model, cfg, golden)
    for b in range(3):
        result = decode_results(cfg, model.shapes, run.stats[b], run.words[b])
        assert first_mismatch(b, golden, b, result) is None
        assert result.layer_cycles == [int(c.cycles[b]) for c in counts]
    assert golden.spike_counts()[:, 1:].sum() > 100  # the network is not silent


def _untrained_cifar_snn(net):
    """(model, 16 random inputs): ``net`` for CIFAR shapes with non-trivial BatchNorm statistics,
    as after training, converted at T=16, B=2 with percentile calibration on the inputs."""
    import torch

    from firstspike.sw.convert import calibrate, convert
    net = net.eval()
    x = np.random.default_rng(0).random((16, 3 * 32 * 32)).astype(np.float32)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(0.0, 0.3)
    return convert(net, Timing(T=16, B=2, frac_bits=14), 1.0, calibrate(net, x, "percentile", 99.0)), x


def _two_images_bit_exact(model, x, tmp_path, cfg=None):
    """The first two inputs through the RTL at 16 PEs with the default buffers (or the array
    ``cfg``); asserts every spike, score and counter equals the golden and cycle models.
    Returns (cfg, image, run, results)."""
    cfg = ArrayConfig.for_model(model, 16) if cfg is None else cfg
    image = network_image(model, cfg)
    built = verilator.build(write_design(tmp_path / "v", cfg, model), cfg)
    golden = GoldenModel(model).run(x[:2])
    run = verilator.run(built, cfg, model.shapes, golden.spikes[0], image.memory, work_dir=tmp_path / "run")
    counts = layer_counts(model, cfg, golden)
    results = [decode_results(cfg, model.shapes, run.stats[b], run.words[b]) for b in range(2)]
    assert result_problems(cfg, model, golden, counts, results) == []  # bit-exact, every counter as modelled
    return cfg, image, run, results


def test_full_width_vgg16_bit_exact(digits_cnn, tmp_path):
    """VGG-16 for CIFAR-10 shapes at full width (13 conv layers of 64..512 channels, 14.7 M
    weights), converted with percentile calibration on random data (untrained), 2 images
    through the RTL at 16 PEs with the default 8192-code weight buffer: the 512-channel
    layers run in 32 weight tiles, every weight comes from external memory. The array has
    1024 accumulators per PE (VGG-16's layers at 32x32 and 16x16 need 4096 and 2048 at once,
    so they run in bands of output rows), and it runs the digits CNN from byte-identical
    Verilog. Prints the cycles and the external memory traffic per image."""
    from firstspike.flow import convert_ann
    from firstspike.sw.ann import vgg
    model, x = _untrained_cifar_snn(vgg("vgg16", (3, 32, 32), 10, width=1.0, seed=0))
    assert sum(layer.weights.size for layer in model.layers) > 14_000_000
    digits = convert_ann(digits_cnn[0], tmp_path / "digits.npz", calibration="percentile", timing=model.timing,
                         unfold=True)
    cfg = replace(ArrayConfig.for_models([model, digits], 16), slot_depth=1024)
    cfg, image, run, results = _two_images_bit_exact(model, x, tmp_path, cfg)
    digits_v = write_design(tmp_path / "digits_v", cfg, digits)
    assert digits_v.read_bytes() == (tmp_path / "v" / digits_v.name).read_bytes()
    assert max(d.tiles for d in image.descriptors) == 32
    assert [d.bands for d in image.descriptors] == [5, 6, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    # every bias and weight read once, but a layer of several weight tiles reads them in every band
    again = sum((d.bands - 1) * (d.tile_beats * (d.tiles - 1) + d.last_beats) for d in image.descriptors
                if d.tiles > 1)
    assert again > 0
    for b, result in enumerate(results):
        assert result.counters["memory_beats"] == len(image.memory) + again
        # event groups: a 64..512-channel position's events share each accumulator access
        assert result.counters["acc_writebacks"] * 8 < result.counters["weight_reads"]
        print(f"VGG-16 image {b}: {result.counters['cycles']} cycles, {result.counters['acc_updates']} synaptic "
              f"events, {result.counters['memory_beats'] * cfg.bus_bits // 8} bytes from external memory; "
              f"simulated in {run.wall_seconds:.0f} s")


def test_reduced_width_resnet20_bit_exact(tmp_path):
    """ResNet-20 for CIFAR-10 shapes at half width (8..32 channels, 19 conv layers, 9 residual
    blocks: 7 identity and 2 1x1-conv shortcuts), converted with percentile calibration on
    random data (untrained), 2 images through the RTL at 16 PEs with 256 accumulators per PE
    (a quarter of what its 32x32 layers need at once: they run in 5 bands of output rows, the
    16x16 ones in 2): every shortcut pass bit- and cycle-exact, band by band. Prints the cycles
    and the shortcut passes' share of the synaptic events."""
    from firstspike.sw.ann import ResNet
    model, x = _untrained_cifar_snn(ResNet(20, (3, 32, 32), 10, width=0.5, seed=0))
    assert sum(layer.shortcut is not None for layer in model.layers) == 9
    assert GoldenModel(model).run(x[:2]).spike_counts()[:, -2].min() > 0  # spikes reach the last block
    cfg = replace(ArrayConfig.for_model(model, 16), slot_depth=256)
    cfg, image, run, results = _two_images_bit_exact(model, x, tmp_path, cfg)
    assert [d.bands for d in image.descriptors] == [5] * 7 + [2] * 6 + [1] * 7
    for b, result in enumerate(results):
        assert result.counters["memory_beats"] == len(image.memory)  # every bias and weight read once
        print(f"ResNet-20/2 image {b}: {result.counters['cycles']} cycles, {result.counters['acc_updates']} synaptic "
              f"events, {result.counters['memory_beats'] * cfg.bus_bits // 8} bytes from external memory; "
              f"simulated in {run.wall_seconds:.0f} s")

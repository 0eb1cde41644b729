"""Host scripts of the Verilator bench: encoding, chunking, decoding of captures.

The RTL tests (tests/test_rtl.py) run these scripts through the sequencer; here the
pure-Python side is checked against hand-computed words and limits.
"""
import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig, Counter, Region, requirements
from firstspike.hw.host import stats_reads
from firstspike.sim import host_script
from firstspike.sim.host_script import OP_END, OP_READ, OP_READ_COUNTED, OP_RUN, OP_WRITE, HostScript
from firstspike.sw.formats import NO_SPIKE, Timing
from firstspike.sw.random_models import random_model


def _cfg():
    model = random_model(np.random.default_rng(3), [6, 5, 4], Timing(T=8, B=2))
    return model, ArrayConfig(pes=2, timing=model.timing, **requirements(model, 2))


def test_script_words_pack_op_address_and_data():
    s = HostScript()
    s.write([(5, 0x1234)])
    s.read([7])
    s.run()
    s.read_counted(9, most=4)
    # 3 op bits, 8 address bits, 16 data bits: 27 bits, 7 hex digits
    assert s.hex_lines(8, 16) == [f"{(OP_WRITE << 24) | (5 << 16) | 0x1234:07x}", f"{(OP_READ << 24) | (7 << 16):07x}",
                                  f"{OP_RUN << 24:07x}", f"{(OP_READ_COUNTED << 24) | (9 << 16):07x}",
                                  f"{OP_END << 24:07x}"]
    assert s.captures == 1 + 4
    with pytest.raises(ValueError, match="does not fit"):
        HostScript([(OP_WRITE, 256, 0)]).hex_lines(8, 16)
    with pytest.raises(ValueError, match="does not fit"):
        HostScript([(OP_WRITE, 0, 1 << 16)]).hex_lines(8, 16)


def test_image_script_runs_then_reads_counters_events_and_outputs():
    model, cfg = _cfg()
    times = np.array([0, NO_SPIKE, 3, NO_SPIKE, NO_SPIKE, 7])
    s = host_script.image_script(cfg, times, model.shapes)
    ops = [op for op, _, _ in s.ops]
    # three input events and their count, the run, counters, the event count, the events, 4 outputs
    n_stats = len(stats_reads(cfg, 2))
    assert ops == [OP_WRITE] * 4 + [OP_RUN] + [OP_READ] * (n_stats + 1) + [OP_READ_COUNTED] + [OP_READ] * 4
    assert s.ops[4 + 1 + n_stats][1] == cfg.address(Region.CONTROL, Counter.EVENTS_IN)
    assert s.captures == n_stats + 1 + cfg.event_depth + 4


def test_chunks_respect_memory_depths_and_keep_every_image_in_order():
    model, cfg = _cfg()
    times = np.zeros((10, 6), dtype=np.int64)
    one = host_script.image_script(cfg, times[0], model.shapes)
    loads = [(1, i) for i in range(25)]
    chunks = host_script.chunk_scripts(cfg, model.shapes, times[:0], loads, script_depth=11, capture_depth=1)
    # 25 writes in scripts of 10 (one entry is the END)
    assert [(c.images, len(c.ops)) for c in chunks] == [(0, 10), (0, 10), (0, 5)]
    assert [d for c in chunks for _, _, d in c.ops] == list(range(25))
    by_captures = host_script.chunk_scripts(cfg, model.shapes, times, loads, 1 << 16, 3 * one.captures)
    assert [c.images for c in by_captures] == [0, 3, 3, 3, 1]
    by_ops = host_script.chunk_scripts(cfg, model.shapes, times, None, 2 * len(one.ops) + 1, 1 << 16)
    assert [c.images for c in by_ops] == [2] * 5
    by_count = host_script.chunk_scripts(cfg, model.shapes, times, None, 1 << 16, 1 << 16, images_per_chunk=4)
    assert [c.images for c in by_count] == [4, 4, 2]
    assert [op for c in by_count for op in c.ops] == [op for c in by_ops for op in c.ops]


def test_captures_split_per_image_and_wrong_lengths_are_reported():
    model, cfg = _cfg()
    n_stats = len(stats_reads(cfg, 2))
    image = lambda events: list(range(n_stats)) + [events] + [100 + e for e in range(events)] + [7, 8, 9, 10]  # noqa: E731
    words = image(2) + image(0)
    split = host_script.split_image_captures(cfg, model.shapes, words, 2)
    assert split == [(list(range(n_stats)), [100, 101, 7, 8, 9, 10]), (list(range(n_stats)), [7, 8, 9, 10])]
    with pytest.raises(RuntimeError, match="fewer"):
        host_script.split_image_captures(cfg, model.shapes, words[:-1], 2)
    with pytest.raises(RuntimeError, match="more"):
        host_script.split_image_captures(cfg, model.shapes, words + [0], 2)


def test_wrapper_memories_hold_any_image_of_the_configuration():
    """Every input spiking and the outputs of the largest fitting network: one script, one capture."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        model = random_model(rng, [int(v) for v in rng.integers(1, 300, size=4)], Timing(T=8, B=2))
        cfg = ArrayConfig(pes=4, timing=model.timing, **requirements(model, 4))
        script_depth, capture_depth = host_script.depths(cfg)
        s = host_script.image_script(cfg, np.zeros(model.layers[0].n_in, dtype=np.int64), model.shapes)
        assert len(s.ops) + 1 <= script_depth and s.captures <= capture_depth
        assert script_depth >= host_script.MIN_DEPTH and script_depth & (script_depth - 1) == 0

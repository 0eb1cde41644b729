"""tools/row_groups.py, the estimate docs/hardware.md quotes for event groups by input row:
its count for today's position groups must be the RTL's (hw/perf.py's) count."""
import numpy as np
import pytest

from firstspike.hw.config import ArrayConfig
from firstspike.hw.perf import layer_counts
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.random_models import random_cnn, random_input_times
from conftest import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("row_groups")


def test_a_row_group_writes_each_output_column_back_once(tool):
    """Three events in row 0 of a 3x3 image, 3x3 kernel, padding 1: each reaches two output
    rows; the columns it reaches are {0, 1}, {0, 1, 2} and {1, 2}."""
    reach = tool.column_reach(3, 3, 3, 1, 1)
    assert reach == [{0, 1}, {0, 1, 2}, {1, 2}]
    rows = np.array([2, 3, 2])
    events = np.array([[0, 0], [0, 1], [0, 2]])
    assert tool.writebacks(events, rows, reach, 16, by_row=False) == 2 * (2 + 3 + 2)
    assert tool.writebacks(events, rows, reach, 16, by_row=True) == 2 * 3
    # groups of two: (0, 0) and (0, 1) reach columns {0, 1, 2}, (0, 2) {1, 2}
    assert tool.writebacks(events, rows, reach, 2, by_row=True) == 2 * (3 + 2)
    # stride 2: output column o covers input columns 2o - 1 .. 2o + 1
    assert tool.column_reach(4, 3, 2, 2, 1) == [{0}, {0, 1}, {1}, {1}]


@pytest.mark.parametrize("seed", [0, 1])
def test_position_groups_count_what_the_rtl_counts(tool, seed):
    """On a random CNN (one input channel; a strided conv over 40 channels, whose positions'
    events are cut into 16-event groups; a 5x5 conv over 24 channels), the tool's position-group count equals
    the cycle model's write-backs (which tests/test_rtl.py checks against the RTL's counter);
    on the one-channel layer, row groups need at most as many. Reproduce: this seed."""
    rng = np.random.default_rng(seed)
    timing = Timing(T=8, B=2, frac_bits=10)
    model = random_cnn(rng, (1, 9, 9), [dict(channels=40, kernel=3, padding=1),
                                        dict(channels=24, kernel=3, padding=1, stride=2),
                                        dict(channels=8, kernel=5, padding=2)], [12], 4, timing)
    golden = GoldenModel(model).run_times(random_input_times(rng, 81, 6, timing))
    cfg = ArrayConfig.for_model(model, 8)
    counts = layer_counts(model, cfg, golden)
    assert max(int(c.acc_writebacks.max()) for c in counts[1:3]) > 0
    for k, c in enumerate(counts):
        today = tool.layer_writebacks(model, golden.spikes[k], k, cfg.group_size, by_row=False)
        assert today.tolist() == c.acc_writebacks.tolist(), f"layer {k}"
    rows = tool.layer_writebacks(model, golden.spikes[0], 0, cfg.group_size, by_row=True)
    assert (rows <= counts[0].acc_writebacks).all() and rows.sum() < counts[0].acc_writebacks.sum()

"""The fuzzer's generators (sim/fuzz.py; `make fuzz` runs them through the RTL)."""
from firstspike.hw.config import layer_descriptors
from firstspike.sim.fuzz import BANDED_SEED0, BANDED_SHAPE, SHAPES, banded_config, network_of, random_banded_network


def test_banded_configurations_run_in_bands_and_tiles():
    """The banded configurations are ttfs CNNs and residual nets on an array whose accumulator
    memory and weight buffer are the smallest that fit them: most run in bands (their conv layers
    stay in one weight tile: the output layer's fan-in sizes the buffer; tests/test_rtl.py's
    banded networks cover tiles in bands), and network_of tells them from the other
    configurations by their seed."""
    seeds = list(range(BANDED_SEED0, BANDED_SEED0 + 40))
    cfg = banded_config(seeds)
    assert cfg.pes == SHAPES[BANDED_SHAPE][0]
    descriptors = [layer_descriptors(random_banded_network(s)[1], cfg) for s in seeds]
    assert sum(max(d.bands for d in ds) > 1 for ds in descriptors) >= 16
    assert max(max(d.bands for d in ds) for ds in descriptors) >= 6
    models = [random_banded_network(s)[1] for s in seeds]
    assert {m.coding for m in models} == {"ttfs"} and any(layer.shortcut for m in models for layer in m.layers)
    assert network_of(BANDED_SEED0)[0] == BANDED_SHAPE and network_of(3)[0] == 3 % len(SHAPES)

"""Model file format: exact round trips, and clear errors without partial output."""
import json

import numpy as np
import pytest

from firstspike.sw.formats import FormatError, Timing
from firstspike.sw.model import ModelFileError, SnnModel
from firstspike.sw.random_models import random_model


@pytest.fixture
def model():
    return random_model(np.random.default_rng(0), [12, 8, 5], Timing(T=8, B=2, frac_bits=12))


def test_round_trip_is_exact(model, tmp_path):
    model.info = {"note": "x"}
    model.save(tmp_path / "m.npz")
    back = SnnModel.load(tmp_path / "m.npz")
    assert back.timing == model.timing and back.input_theta == model.input_theta and back.info == {"note": "x"}
    for a, b in zip(model.layers, back.layers):
        assert np.array_equal(a.weights, b.weights) and a.weights.dtype == b.weights.dtype
        assert np.array_equal(a.bias, b.bias)
        assert (a.thresholds is None and b.thresholds is None) or np.array_equal(a.thresholds, b.thresholds)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        SnnModel.load(tmp_path / "nope.npz")


def test_corrupt_file(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable firstspike model file|corrupt|invalid"):
        SnnModel.load(path)
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable"):
        SnnModel.load(tmp_path / "t.npz")


def _rewrite_meta(path, change):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_wrong_version_and_format(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    _rewrite_meta(path, lambda m: m.update(version=99))
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        SnnModel.load(path)
    _rewrite_meta(path, lambda m: m.update(version=1, format="other"))
    with pytest.raises(ModelFileError, match="not a firstspike model file"):
        SnnModel.load(path)


def test_invalid_contents(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["layer0_weights"] = arrays["layer0_weights"].copy()
    arrays["layer0_weights"][0, 0] = 0b11111
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="negative zero"):
        SnnModel.load(path)


def test_failed_save_leaves_no_file(model, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_layer_shapes_must_chain(model):
    model.layers[1].weights = model.layers[1].weights[:, :3]
    with pytest.raises(FormatError, match=r"layer 1: weights have 3 inputs but in_shape \(8, 1, 1\) holds 8"):
        model.validate()


def test_version_2_file_without_neuron_field_loads_as_ttfs(model, tmp_path):
    """Files written before the neuron-model field (version 2) load as TTFS and run the same."""
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.random_models import random_input_times
    path = tmp_path / "m.npz"
    model.save(path)

    def as_v2(meta):
        assert meta["version"] == 7
        meta["version"] = 2
        for layer in meta["layers"]:
            del layer["neuron"], layer["shortcut"], layer["levels"]
    _rewrite_meta(path, as_v2)
    back = SnnModel.load(path)
    assert [layer.neuron for layer in back.layers] == ["ttfs"] * len(model.layers) and back.coding == "ttfs"
    times = random_input_times(np.random.default_rng(1), 12, 4, model.timing)
    assert np.array_equal(GoldenModel(back).run_times(times).potentials,
                          GoldenModel(model).run_times(times).potentials)


def test_model_file_and_simulator_bench_load_without_torch():
    """The cocotb bench runs inside every simulator process: importing torch there (through the
    model file's neuron models) once made each RTL check five times slower."""
    import subprocess
    import sys
    code = ("import sys, firstspike.sw.model, firstspike.sim.cocotb_bench; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_residual_model_round_trips_and_version_3_files_load(tmp_path):
    """Shortcuts (spec section 14) survive save and load; a version 3 file (no shortcut field)
    loads without shortcuts; a malformed shortcut entry is a ModelFileError."""
    from firstspike.sw.formats import Timing
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.random_models import random_input_times, random_resnet
    t = Timing(T=8, B=2, frac_bits=12)
    rng = np.random.default_rng(3)
    model = random_resnet(rng, (2, 6, 6), [dict(channels=3), dict(channels=4, stride=2, shortcut_kernel=3)], 5, t)
    path = tmp_path / "r.npz"
    model.save(path)
    back = SnnModel.load(path)
    for a, b in zip(model.layers, back.layers):
        assert (a.shortcut is None) == (b.shortcut is None)
        if a.shortcut is not None:
            assert (a.shortcut.source, a.shortcut.stride, a.shortcut.padding) == (b.shortcut.source, b.shortcut.stride,
                                                                                 b.shortcut.padding)
            assert np.array_equal(a.shortcut.weights, b.shortcut.weights)
    times = random_input_times(rng, model.layers[0].n_in, 3, t)
    assert np.array_equal(GoldenModel(back).run_times(times).potentials, GoldenModel(model).run_times(times).potentials)
    _rewrite_meta(path, lambda m: m["layers"][2].update(shortcut=[1, 2]))
    with pytest.raises(ModelFileError, match="malformed metadata"):
        SnnModel.load(path)
    plain = tmp_path / "p.npz"
    cnn = random_resnet(rng, (2, 6, 6), [], 3, t)  # a stem conv and the output layer: no shortcut
    cnn.save(plain)

    def as_v3(meta):
        meta["version"] = 3
        for layer in meta["layers"]:
            del layer["shortcut"]
    _rewrite_meta(plain, as_v3)
    assert all(layer.shortcut is None for layer in SnnModel.load(plain).layers)


def test_bad_shortcuts_are_rejected_by_name():
    from dataclasses import replace

    from firstspike.sw.formats import FormatError, Timing
    from firstspike.sw.model import Shortcut
    from firstspike.sw.random_models import random_resnet
    t = Timing(T=8, B=2, frac_bits=12)
    model = random_resnet(np.random.default_rng(4), (2, 6, 6), [dict(channels=3)], 5, t)
    sc = model.layers[2].shortcut

    def with_shortcut(k, shortcut):
        layers = list(model.layers)
        layers[k] = replace(layers[k], shortcut=shortcut)
        return SnnModel(timing=t, input_theta=1.0, layers=layers)
    with pytest.raises(FormatError, match="layer 2: shortcut source must be 0"):
        with_shortcut(2, replace(sc, source=3))
    with pytest.raises(FormatError, match="layer 2: shortcut weights are 3x2 channels but"):
        with_shortcut(2, replace(sc, weights=np.full((3, 2, 1, 1), 15, dtype=np.uint8)))
    with pytest.raises(FormatError, match="gives .* positions, the layer"):
        with_shortcut(2, replace(sc, stride=2))
    with pytest.raises(FormatError, match="only hidden ttfs and rate_if conv layers take a shortcut"):
        with_shortcut(3, Shortcut(source=0, weights=np.full((5, 2, 1, 1), 15, dtype=np.uint8)))
    with pytest.raises(FormatError, match="layer 2 shortcut: code 0b11111"):
        with_shortcut(2, replace(sc, weights=np.full(sc.weights.shape, 31, dtype=np.uint8)))

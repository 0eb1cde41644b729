"""Shared fixtures. The trained digits model is built once per session (about 10 s)."""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

from firstspike.sw.formats import Timing


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory):
    """(ann checkpoint path, SNN model path, SnnModel) of the default recipe: float + CAT."""
    from firstspike import flow
    d = tmp_path_factory.mktemp("digits")
    flow.train_ann(d / "ann.pt", timing=Timing(), quiet=True)
    model = flow.convert_ann(d / "ann.pt", d / "snn.npz")
    return d / "ann.pt", d / "snn.npz", model


@pytest.fixture(scope="session")
def digits_cnn(tmp_path_factory):
    """(ann checkpoint path, SNN model path, SnnModel) of the digits CNN recipe: float + CAT."""
    from firstspike import flow
    d = tmp_path_factory.mktemp("digits_cnn")
    flow.train_ann(d / "ann.pt", arch="cnn", timing=Timing(), quiet=True)
    model = flow.convert_ann(d / "ann.pt", d / "snn.npz")
    return d / "ann.pt", d / "snn.npz", model


@pytest.fixture
def cifar_dir(tmp_path):
    """A CIFAR-10 folder in the official python layout: 4 random images per batch file."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, 4)], b"batch_label": b"x"}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
    return tmp_path


def load_tool(name: str):
    """tools/NAME.py as a module (the scripts there are not part of the package)."""
    path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Shared fixtures. The trained digits model is built once per session (about 10 s)."""
from __future__ import annotations

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

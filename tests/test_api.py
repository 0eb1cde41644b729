"""The public Python API and the bring-your-own-model paths (Python and command line)."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import firstspike
from firstspike.cli import main
from firstspike.errors import FirstspikeError, InputError

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example(name: str) -> str:
    text = README.read_text()
    m = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README has no example marked {name}"
    return m.group(1)


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python API example, exactly as printed there."""
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the LogSoftmax note
        exec(compile(_readme_example("python-api"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    snn_acc = float(re.search(r"SNN accuracy ([\d.]+)", out).group(1))
    cat_acc = float(re.search(r"CAT accuracy ([\d.]+)", out).group(1))
    assert snn_acc > 0.85 and cat_acc > 0.9, out
    assert (tmp_path / "my_net.npz").is_file()
    assert firstspike.load(tmp_path / "my_net.npz").model.sizes == [64, 48, 10]


def _digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target


def _trained_cnn(x, y):
    """A CNN taking (N, 1, 8, 8) images, with layers the converter used to refuse."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding="same"), nn.ReLU(), nn.Dropout2d(0.1), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 10), nn.Softmax(dim=1))
    xt, yt = torch.tensor(x).reshape(-1, 1, 8, 8), torch.tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.nll_loss(torch.log(net(xt) + 1e-9), yt).backward()
        opt.step()
    return net.eval()


def test_convert_image_shaped_cnn_with_harmless_layers():
    x, y = _digits()
    net = _trained_cnn(x[:1400], y[:1400])
    images = x.reshape(-1, 1, 8, 8)
    with pytest.warns(UserWarning, match="Softmax .* dropped"):
        snn = firstspike.convert(net, images[:1400], method="percentile", rounding="nearest")
    assert snn.model.sizes == [64, 128, 256, 10]  # the global average pool is folded into the Linear
    # the integer golden model computes what the float network computes with the SNN's quantisers
    # (5-bit log weights, TTFS activations); training-free accuracy itself suffers from the 16-input
    # log-weight classifier head, which is what CAT is for
    from firstspike.sw.ann import CatNetwork
    thetas = [layer.theta for layer in snn.model.layers[:-1]]
    quantised = CatNetwork(net, snn.timing, snn.model.input_theta, thetas, input_shape=(1, 8, 8)).eval()
    with torch.no_grad():
        expected = quantised(torch.tensor(x[1400:])).argmax(1).numpy()
    assert (snn.predict(images[1400:]) == expected).mean() > 0.95
    # the golden model sees the same spikes whichever way the images are given
    np.testing.assert_array_equal(snn.predict(images[1400:1500]), snn.predict(x[1400:1500]))
    # adaptive rounding (the default) recovers much of what nearest rounding loses on this head
    with pytest.warns(UserWarning, match="Softmax .* dropped"):
        adaptive = firstspike.convert(net, images[:1400], method="percentile")
    nearest_acc = snn.accuracy(images[1400:], y[1400:])
    assert adaptive.accuracy(images[1400:], y[1400:]) > nearest_acc + 0.05, nearest_acc


def test_conversion_check_warns_and_points_at_cat():
    x, y = _digits()
    net = _trained_cnn(x[:1400], y[:1400])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = firstspike.convert(net, x.reshape(-1, 1, 8, 8)[:1400], T=2, B=1, method="max")
    from firstspike.api import conversion_check
    with pytest.warns(UserWarning, match="finetune_cat"):
        r = conversion_check(net, snn, x.reshape(-1, 1, 8, 8)[1400:], y[1400:])
    assert r["loss"] > 0.01


@pytest.mark.parametrize("bad, message", [
    (lambda x: -x, "only values >= 0"),
    (lambda x: x * np.nan, "NaN"),
    (lambda x: x[:0], "at least one input"),
    (lambda x: x[0], "at least one input"),
])
def test_convert_refuses_bad_calibration_data(bad, message):
    x, _ = _digits()
    net = nn.Sequential(nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(InputError, match=message):
        firstspike.convert(net, bad(x[:100]))


def test_convert_refuses_cat_as_calibration_and_bad_timing():
    x, _ = _digits()
    net = nn.Sequential(nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(InputError, match="finetune_cat"):
        firstspike.convert(net, x[:100], method="cat")
    with pytest.raises(FirstspikeError, match="T .* must be an integer"):
        firstspike.convert(net, x[:100], T=0)


def test_snn_labels_are_checked():
    x, y = _digits()
    net = nn.Sequential(nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 10))
    snn = firstspike.convert(net, x[:100])
    with pytest.raises(InputError, match="labels must be 50 integers"):
        snn.accuracy(x[:50], y[:49])


USER_NET = '''
from torch import nn

def build():
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, 10), nn.LogSoftmax(1))

def not_a_network():
    return 42
'''


@pytest.fixture(scope="module")
def user_net(tmp_path_factory):
    """A user's network file and its trained state dict."""
    d = tmp_path_factory.mktemp("user")
    (d / "my_net.py").write_text(USER_NET)
    ns = {}
    exec(USER_NET, ns)
    net = ns["build"]()
    x, y = _digits()
    xt, yt = torch.tensor(x[:1347]), torch.tensor(y[:1347])
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.nll_loss(net(xt), yt).backward()
        opt.step()
    torch.save(net.state_dict(), d / "weights.pt")
    return d


def test_cli_convert_user_module(user_net, tmp_path, capsys):
    out = tmp_path / "snn.npz"
    with pytest.warns(UserWarning, match="LogSoftmax"):
        code = main(["convert", "--module", f"{user_net / 'my_net.py'}:build", "--weights",
                     str(user_net / "weights.pt"), "--calibration", "percentile", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    m = re.search(r"SNN \(golden model\) ([\d.]+) %, float network ([\d.]+) %", text)
    assert m, text
    golden, flt = float(m.group(1)), float(m.group(2))
    assert flt > 85 and golden > flt - 5
    model = firstspike.load(out).model
    assert model.info["arch"] == "module" and model.sizes == [64, 128, 10]


def test_cli_train_from_user_module_then_convert(user_net, tmp_path, capsys):
    ann, snn = tmp_path / "ann.pt", tmp_path / "snn.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "--from", f"{user_net / 'my_net.py'}:build", "--weights", str(user_net / "weights.pt"),
                     "--cat-epochs", "3", "--out", str(ann)]) == 0
        assert main(["convert", str(ann), "--out", str(snn)]) == 0
    out = capsys.readouterr().out
    assert "CAT accuracy" in out and "SNN (golden model)" in out
    assert firstspike.load(snn).model.info["calibration"] == "cat"


@pytest.mark.parametrize("args, message", [
    (["--module", "nofile.py:build"], "nofile.py: no such Python file"),
    (["--module", "my_net.py"], "FILE.py:FUNCTION"),
    (["--module", "{d}/my_net.py:missing"], "has no function 'missing'"),
    (["--module", "{d}/my_net.py:not_a_network"], "returned a int, not a torch.nn.Module"),
    (["--module", "{d}/my_net.py:build", "--weights", "{d}/my_net.py"], "not a state dict"),
    (["--module", "{d}/my_net.py:build", "--calibration", "cat"], "train --from"),
    (["--weights", "{d}/weights.pt"], "--weights belongs to --module"),
])
def test_cli_convert_user_module_errors(user_net, tmp_path, capsys, args, message):
    args = [a.format(d=user_net) for a in args]
    assert main(["convert", *args, "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_user_weights_that_do_not_fit(user_net, tmp_path, capsys):
    torch.save({"0.weight": torch.zeros(3)}, tmp_path / "w.pt")
    assert main(["convert", "--module", f"{user_net / 'my_net.py'}:build", "--weights", str(tmp_path / "w.pt"),
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "does not fit the network: missing" in capsys.readouterr().err

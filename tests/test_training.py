"""Training large networks: the on-device weight quantiser, augmentation, training settings,
the ResNet-18 recipe and the batched golden summary (what the GPU flow of
tools/train_cifar_gpu.py relies on)."""
import json

import numpy as np
import pytest
import torch

from firstspike.cli import main
from firstspike.sw import ann
from firstspike.sw.formats import MAX_MAG, decode_weights, encode_weights


@pytest.mark.parametrize("scale", [-9, -3, 0, 4])
def test_log_round_equals_the_model_files_codes(scale):
    """CAT's quantiser (torch, any device) gives exactly the values of the codes the model file
    will hold, midpoints and the zero boundary included (seed 0)."""
    levels = 2.0 ** (scale - np.arange(MAX_MAG + 2))
    edges = np.concatenate([0.75 * levels, 1.5 * levels, levels, np.nextafter(0.75 * levels, 0),
                            np.nextafter(1.5 * levels, np.inf), [0.0]])
    w = np.concatenate([np.random.default_rng(0).normal(0, 2.0 ** scale, 5000), edges, -edges])
    w = w[np.abs(w) < 1.5 * 2.0 ** scale]
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(w, dtype=dtype)
        expected = decode_weights(encode_weights(t.double().numpy(), scale), scale)
        got = ann.log_round(t, scale)
        assert got.dtype == dtype
        assert np.array_equal(got.double().numpy(), expected)


def test_log_quantise_weights_shares_one_scale():
    w, more = torch.tensor([0.5, -0.01]), torch.tensor([3.0, 0.2])
    qw, qm = ann.log_quantise_weights(w, more)
    # max|w| = 3 sets scale 2 (3 in [0.75, 1.5) * 4); 3 is the midpoint of 2 and 4 and goes up
    assert qw.tolist() == [0.5, -2.0 ** -7] and qm.tolist() == [4.0, 0.25]


def test_random_crop_flip_shifts_and_mirrors():
    """Every augmented image is the original shifted by at most 4 pixels (zeros coming in),
    mirrored or not; over 200 images every shift and both orientations occur (seed 3)."""
    b, shape = 200, (2, 6, 5)
    x = torch.arange(1, b * 60 + 1, dtype=torch.float32).reshape(b, 60)  # flat rows, distinct values
    out = ann.random_crop_flip(x, shape, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    seen = set()
    for i in range(b):
        padded = torch.nn.functional.pad(x[i].reshape(shape), (4, 4, 4, 4))
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if torch.equal(out[i].reshape(shape),
                                  (lambda v: v.flip(2) if flip else v)(padded[:, dy:dy + 6, dx:dx + 5]))]
        assert len(matches) == 1, f"image {i}: {matches}"
        seen.add(matches[0])
    assert {dy for dy, _, _ in seen} == set(range(9)) and {f for _, _, f in seen} == {False, True}
    # image-shaped input keeps its layout
    assert ann.random_crop_flip(x.reshape(b, *shape), shape, torch.Generator().manual_seed(3)).shape == (b, *shape)


def test_calibration_images_bounds_the_samples():
    from firstspike.sw.checkpoint import build_network
    small = build_network("cnn", features=64, classes=10, shape=(1, 8, 8))
    assert ann.calibration_images(small, np.zeros((300, 64), np.float32)) == 300
    big = build_network("vgg16", features=3072, classes=10, shape=(3, 32, 32))
    per_image = 64 * 1024 * 2 + 128 * 256 * 2 + 256 * 64 * 3 + 512 * 16 * 3 + 512 * 4 * 3  # its 13 conv layers
    assert ann.calibration_images(big.eval(), np.zeros((50000, 3072), np.float32)) == 2 ** 28 // per_image == 970


def test_resnet18_recipe():
    """The CIFAR ResNet-18: 3x3 stem, four stages of two basic blocks, 11.2 M weights at full width."""
    from firstspike.sw.checkpoint import build_network
    net = build_network("resnet18", features=3072, classes=10, shape=(3, 32, 32))
    assert len(net.blocks) == 8 and [blk.conv2.out_channels for blk in net.blocks[1::2]] == [64, 128, 256, 512]
    weights = sum(m.weight.numel() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    stem, fc = 3 * 64 * 9, 512 * 10
    stages = sum(9 * (cin * c + 3 * c * c) + (cin * c if cin != c else 0)  # 4 conv3 and the 1x1 downsampling
                 for cin, c in ((64, 64), (64, 128), (128, 256), (256, 512)))
    assert weights == stem + stages + fc == 11_164_352
    with pytest.raises(Exception, match="depth 6n \\+ 2"):
        ann.ResNet(depth=18)


def test_gpu_recipe_on_cifar_through_train_convert_golden(cifar_dir, tmp_path, capsys):
    """The settings tools/train_cifar_gpu.py uses (SGD, augmentation, batch size, CAT at its own
    learning rate) on a ResNet-18 at 1/16 width: recorded in the checkpoint; the converted
    model's batched golden summary equals one golden run over the whole test split."""
    ckpt_path, snn = tmp_path / "a.pt", tmp_path / "s.npz"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(cifar_dir), "--arch", "resnet18", "--width",
                 "0.0625", "--epochs", "1", "--cat-epochs", "1", "--optimizer", "sgd", "--lr", "0.05",
                 "--weight-decay", "5e-4", "--cat-lr", "2e-4", "--batch-size", "8", "--augment", "--distill", "0.25",
                 "--out", str(ckpt_path)]) == 0
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["training"] == {"lr": 0.05, "cat_lr": 2e-4, "optimizer": "sgd", "weight_decay": 5e-4, "amp": False,
                                "distill": 0.25, "batch_size": 8, "augment": [3, 32, 32], "epochs": 1, "cat_epochs": 1}
    assert main(["convert", str(ckpt_path), "--out", str(snn)]) == 0
    capsys.readouterr()
    assert main(["golden", str(snn), "--batch", "3", "--out", str(tmp_path / "g.json")]) == 0
    summary = json.loads((tmp_path / "g.json").read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary

    from firstspike.sw.data import load_dataset
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.model import SnnModel
    model = SnnModel.load(snn)
    ds = load_dataset("cifar10", data_dir=cifar_dir)
    whole = GoldenModel(model).run(ds.x_test)
    assert summary["images"] == 4
    assert summary["accuracy"] == float((whole.predictions == ds.y_test).mean())
    assert summary["spikes_per_layer"] == whole.spike_counts().mean(0).round(2).tolist()
    assert summary["synaptic_ops"] == pytest.approx(GoldenModel(model).synaptic_ops(whole).mean(), rel=1e-12)
    # the first 3 images in runs of 2: the last run is cut at the third image
    assert main(["golden", str(snn), "--images", "3", "--batch", "2"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["images"] == 3 and first["accuracy"] == float((whole.predictions[:3] == ds.y_test[:3]).mean())
    assert first["spikes_per_layer"] == whole.spike_counts()[:3].mean(0).round(2).tolist()


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--cat-lr", "-1"], "cat_lr must be a positive number"),
    (["--weight-decay", "-0.1"], "weight_decay must be a non-negative number"),
    (["--distill", "1.5"], "distill must be a number from 0 to 1"),
    (["--distill", "0.5", "--method", "noise"], "distillation is part of CAT (method cat), not of noise"),
])
def test_bad_training_settings_are_refused_before_training(args, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "a.pt"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()


def test_golden_refuses_a_zero_batch(digits_model, capsys):
    assert main(["golden", str(digits_model[1]), "--batch", "0"]) == 2
    assert "--batch and --pes must be at least 1" in capsys.readouterr().err
    assert main(["golden", str(digits_model[1]), "--images", "-1"]) == 2


def test_gpu_training_script_fits_its_budget_and_writes_the_model(cifar_dir, tmp_path):
    """tools/train_cifar_gpu.py on a CPU with a budget of one second: the epochs of each phase
    are what its measured seconds per epoch allow of its share (70 % float, 30 % CAT; at least
    one), and it writes the model file and the summary of the run."""
    import math
    import importlib.util
    from pathlib import Path

    from firstspike.sw.model import SnnModel
    path = Path(__file__).resolve().parent.parent / "tools" / "train_cifar_gpu.py"
    spec = importlib.util.spec_from_file_location("train_cifar_gpu", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--arch", "resnet20", "--width", "0.125", "--data-dir", str(cifar_dir), "--out",
                        str(tmp_path), "--budget", "1", "--probe-batches", "1", "--batch-size", "4", "--T", "8"]) == 0
    summary = json.loads((tmp_path / "resnet20.json").read_text())
    fits = [max(1, min(200, math.floor(share / summary[key])))
            for share, key in ((0.7, "float_epoch_s"), (0.3, "cat_epoch_s"))]
    assert [summary["training"]["epochs"], summary["training"]["cat_epochs"]] == fits
    assert summary["training"]["optimizer"] == "sgd" and summary["training"]["augment"] == [3, 32, 32]
    assert summary["data"] == "CIFAR-10 (JPEG copy)" and summary["T"] == 8
    model = SnnModel.load(tmp_path / "resnet20.npz")
    assert model.timing.T == 8 and model.info["arch"] == "resnet20" and model.info["calibration"] == "cat"
    assert summary["weights"] == sum(layer.weights.size for layer in model.layers)


class _Interrupt(Exception):
    pass


class _Progress:
    """A progress bar that stops the training at its ``stop_at``-th update."""

    def __init__(self, stop_at=None):
        self.updates, self.stop_at = [], stop_at

    def update(self, n):
        self.updates.append(n)
        if len(self.updates) == self.stop_at:
            raise _Interrupt


def _tiny(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path):
    """Stopped after its second epoch and run again with the same state file, a 4-epoch SGD
    training (seed 0) ends with exactly the weights of the uninterrupted one, though the
    second run starts from other weights: the model, optimiser, schedule and generators all
    come from the file."""
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 6)).astype(np.float32), rng.integers(0, 3, 100)
    cfg = ann.TrainConfig(epochs=4, batch_size=16, lr=0.05, optimizer="sgd", seed=0)
    straight = _tiny(1)
    ann.train(straight, x, y, cfg)
    state = tmp_path / "train.state"
    with pytest.raises(_Interrupt):
        ann.train(_tiny(1), x, y, cfg, progress=_Progress(stop_at=2), resume=state)
    saved = torch.load(state, weights_only=False)
    assert saved["epochs_done"] == 2
    for name in ("distill", "distill_temperature"):  # a state saved before these settings existed
        del saved["config"][name]
    torch.save(saved, state)
    resumed, progress = _tiny(7), _Progress()
    ann.train(resumed, x, y, cfg, progress=progress, resume=state)
    assert progress.updates == [2, 1, 1]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(_tiny(7).state_dict().values(), resumed.state_dict().values()))
    # a finished state trains no more; one of other settings is refused, naming the file
    again = _tiny(7)
    ann.train(again, x, y, cfg, resume=state)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), resumed.state_dict().values()))
    from firstspike.errors import InputError
    with pytest.raises(InputError, match="train.state: the training state of other settings"):
        ann.train(_tiny(1), x, y, ann.TrainConfig(epochs=5, batch_size=16, lr=0.05, optimizer="sgd"), resume=state)


def test_train_ann_resumes_its_phases_and_removes_their_states(tmp_path, monkeypatch):
    """firstspike train on digits, stopped in its CAT phase: run again, it takes the float
    phase's finished state (no float epoch is trained again), goes on with CAT from its
    state, and removes both state files once the checkpoint is written."""
    from firstspike.sw import checkpoint
    out = tmp_path / "ann.pt"
    calls = []
    real_train = ann.train

    def counting(model, x, y, cfg, progress=None, after_epoch=None, resume=None, teacher=None):
        calls.append((type(model).__name__, resume.name if resume else None))
        return real_train(model, x, y, cfg, progress=progress, after_epoch=after_epoch, resume=resume,
                          teacher=teacher)

    monkeypatch.setattr(ann, "train", counting)
    interrupted = _Progress(stop_at=3)  # float epochs 1, 2, then the first CAT epoch
    monkeypatch.setattr(checkpoint, "tqdm", lambda **kw: _Bar(interrupted))
    with pytest.raises(_Interrupt):
        checkpoint.train_ann(out, arch="mlp", hidden=(8,), epochs=2, cat_epochs=2, quiet=True)
    assert checkpoint.resume_file(out, "float").is_file() and checkpoint.resume_file(out, "cat").is_file()
    resumed = _Progress()
    monkeypatch.setattr(checkpoint, "tqdm", lambda **kw: _Bar(resumed))
    checkpoint.train_ann(out, arch="mlp", hidden=(8,), epochs=2, cat_epochs=2, quiet=True)
    assert resumed.updates == [2, 1, 1]  # float: 2 done; CAT: 1 done, 1 more
    assert calls[-2:] == [("Sequential", "ann.pt.float-state"), ("CatNetwork", "ann.pt.cat-state")]
    assert out.is_file() and not list(tmp_path.glob("*-state"))


class _Bar:
    def __init__(self, progress):
        self.progress = progress

    def __enter__(self):
        return self.progress

    def __exit__(self, *exc):
        return False


def test_distillation_loss_is_the_tempered_kl_divergence():
    out = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.nn.Identity()  # its "outputs" are its inputs
    target = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    T = 2.0

    def softmax(v):
        e = np.exp(v / T - (v / T).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    p, q = softmax(target.numpy().astype(np.float64)), softmax(out.numpy().astype(np.float64))
    expected = T * T * (p * (np.log(p) - np.log(q))).sum(1).mean()
    assert float(ann._distillation_loss(out, teacher, target, T)) == pytest.approx(expected, rel=1e-6)


def test_distillation_alone_ignores_the_labels_and_needs_a_teacher():
    """With distill = 1 the labels carry no weight: training on shuffled labels ends with the
    same weights; with distill = 0 the teacher changes nothing. Bad settings are refused."""
    from firstspike.errors import InputError
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    teacher = _tiny(3).eval()

    def trained(labels, distill, with_teacher=True):
        model = _tiny(1)
        ann.train(model, x, labels, ann.TrainConfig(epochs=2, batch_size=16, lr=0.05, distill=distill),
                  teacher=teacher if with_teacher else None)
        return model.state_dict().values()
    shuffled = rng.permutation(y)
    assert all(torch.equal(a, b) for a, b in zip(trained(y, 1.0), trained(shuffled, 1.0)))
    assert not all(torch.equal(a, b) for a, b in zip(trained(y, 0.5), trained(shuffled, 0.5)))
    assert all(torch.equal(a, b) for a, b in zip(trained(y, 0.0), trained(y, 0.0, with_teacher=False)))
    with pytest.raises(InputError, match="needs a teacher"):
        trained(y, 0.5, with_teacher=False)
    with pytest.raises(InputError, match="distill must be in"):
        trained(y, 1.5)


def test_cat_distils_from_its_float_network_in_image_layout():
    """CAT with distillation on a network that takes images: the teacher gets the flat rows
    reshaped; the float network itself is left as it was."""
    from firstspike.sw.formats import Timing
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(256, 3)).eval()
    before = [v.clone() for v in net.state_dict().values()]
    rng = np.random.default_rng(1)
    x, y = rng.random((48, 64)).astype(np.float32), rng.integers(0, 3, 48)
    plain = ann.cat_finetune(net, x, y, Timing(T=8, B=1), 1.0, epochs=1, input_shape=(1, 8, 8), batch_size=16)
    kd = ann.cat_finetune(net, x, y, Timing(T=8, B=1), 1.0, epochs=1, input_shape=(1, 8, 8), batch_size=16,
                          distill=0.7)
    assert all(torch.equal(a, b) for a, b in zip(before, net.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kd.state_dict().values()))

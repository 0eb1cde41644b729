"""Data loaders on small files written in the official formats."""
import gzip
import pickle

import numpy as np
import pytest

from firstspike.sw.data import DataError, load_dataset


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n, gz in (("train", 12, True), ("t10k", 5, False)):
        write_idx(tmp_path / (f"{split}-images-idx3-ubyte" + (".gz" if gz else "")),
                  rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(tmp_path / (f"{split}-labels-idx1-ubyte" + (".gz" if gz else "")), rng.integers(0, 10, n), gz)
    return tmp_path


def test_mnist_gz_and_raw(mnist_dir):
    ds = load_dataset("mnist", data_dir=mnist_dir)
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784) and ds.shape == (1, 28, 28)
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1 and ds.y_test.dtype == np.int64
    raw = gzip.open(mnist_dir / "train-images-idx3-ubyte.gz").read()
    assert ds.x_train[0, 0] == pytest.approx(raw[16] / 255)


def test_mnist_errors(mnist_dir, tmp_path):
    (mnist_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing MNIST files \['t10k-labels-idx1-ubyte'\]"):
        load_dataset("mnist", data_dir=mnist_dir)
    write_idx(mnist_dir / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(DataError, match="test images .* and labels .* do not match"):
        load_dataset("mnist", data_dir=mnist_dir)
    (mnist_dir / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")
    with pytest.raises(DataError, match="IDX header says"):
        load_dataset("mnist", data_dir=mnist_dir)
    (mnist_dir / "t10k-labels-idx1-ubyte").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="bad magic"):
        load_dataset("mnist", data_dir=mnist_dir)
    with pytest.raises(DataError, match="pass --data-dir"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="no such data directory"):
        load_dataset("mnist", data_dir=tmp_path / "nope")


def test_cifar10(cifar_dir):
    ds = load_dataset("cifar10", data_dir=cifar_dir)
    assert ds.x_train.shape == (20, 3072) and ds.x_test.shape == (4, 3072) and ds.shape == (3, 32, 32)
    with open(cifar_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)
    assert np.allclose(ds.x_test, raw[b"data"] / 255) and ds.y_test.tolist() == raw[b"labels"]


def test_cifar10_errors(cifar_dir):
    d = cifar_dir / "cifar-10-batches-py"
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match="data_batch_3: data must be uint8 \\(n, 3072\\)"):
        load_dataset("cifar10", data_dir=cifar_dir)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with open(d / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset("cifar10", data_dir=cifar_dir)
    (d / "test_batch").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR-10 batch files \['test_batch'\]"):
        load_dataset("cifar10", data_dir=cifar_dir)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet")


def test_mnist_through_the_flow(mnist_dir, tmp_path):
    """train -> convert -> golden on user-supplied IDX files (784 inputs)."""
    from firstspike.cli import main
    assert main(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--hidden", "16", "--epochs", "2",
                 "--cat-epochs", "1", "--out", str(tmp_path / "a.pt")]) == 0
    assert main(["convert", str(tmp_path / "a.pt"), "--out", str(tmp_path / "s.npz")]) == 0
    from firstspike.sw.model import SnnModel
    model = SnnModel.load(tmp_path / "s.npz")
    assert model.sizes == [784, 16, 10] and model.info["dataset"] == "mnist"
    assert main(["golden", str(tmp_path / "s.npz")]) == 0

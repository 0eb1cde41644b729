"""make bench-accuracy's machinery (firstspike/accuracy.py) on a tiny MNIST-format data set:
every method at one timing, the tables, the plot, the RTL check of the converted networks."""
import json

import numpy as np
import pytest

from firstspike import accuracy


def test_bench_rows_tables_and_rtl_check(tmp_path, monkeypatch):
    from test_data import write_idx
    rng = np.random.default_rng(0)
    mnist = tmp_path / "data" / "mnist"
    mnist.mkdir(parents=True)
    for split, n in (("train", 120), ("t10k", 40)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for k, label in enumerate(labels):  # a learnable pattern: a bright row per class
            images[k, 2 + 2 * label] = 255
        write_idx(mnist / f"{split}-images-idx3-ubyte", images)
        write_idx(mnist / f"{split}-labels-idx1-ubyte", labels)
    monkeypatch.setitem(accuracy.BENCH_NETWORKS, "mnist-mlp",
                        dict(dataset="mnist", arch="mlp", hidden=[12], epochs=40, cat_epochs=3))
    out = tmp_path / "out"
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--rtl-images", "2", "--out", str(out)]) == 0
    rows = json.loads((out / "accuracy.json").read_text())["rows"]
    assert [r["method"] for r in rows] == list(accuracy.METHODS)
    assert all(r["data"] == "MNIST test set, 8k/2k split" and r["test_images"] == 40 for r in rows)
    assert all(r["rtl_bit_exact"] and r["rtl_images"] == 2 for r in rows)
    assert rows[0]["float_accuracy"] > 0.5  # the pattern was learnt
    cat = rows[-1]
    assert 0 <= cat["accuracy"] <= 1 and cat["spikes_per_image"] > 0 and cat["cycles_per_image"] > 0
    assert (out / "mnist-mlp" / "float.pt").is_file() and (out / "mnist-mlp" / "cat-T8-B2.pt").is_file()
    assert not list((out / "mnist-mlp").glob("*state"))  # the training states go once the checkpoints are kept
    table = (out / "accuracy.md").read_text()
    assert "**mnist-mlp** (MNIST test set, 8k/2k split, 40 test images" in table and table.count("yes (2 images)") == 4
    assert (out / "accuracy.png").stat().st_size > 10_000
    # a rerun resumes from the checkpoints: no training, the same numbers
    mtime = (out / "mnist-mlp" / "cat-T8-B2.pt").stat().st_mtime
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--rtl-images", "0", "--out", str(out)]) == 0
    again = json.loads((out / "accuracy.json").read_text())["rows"]
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
    # rows of other networks, from earlier runs, stay in the tables
    data = json.loads((out / "accuracy.json").read_text())
    data["rows"].append({**rows[0], "network": "mnist-cnn"})
    (out / "accuracy.json").write_text(json.dumps(data))
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--rtl-images", "0", "--out", str(out)]) == 0
    assert [r["network"] for r in json.loads((out / "accuracy.json").read_text())["rows"]] == ["mnist-cnn"] + [
        "mnist-mlp"] * 4
    assert "**mnist-cnn**" in (out / "accuracy.md").read_text()
    assert (out / "mnist-mlp" / "cat-T8-B2.pt").stat().st_mtime == mtime


    # --keep-measured: T=8 is not measured again; T=4 and T=16 are, and an interruption in
    # T=16's first method leaves the file with every row it had and T=4's new ones
    calls = []

    def interrupted(model, ds, pes, quiet):
        calls.append(model.timing.T)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(model, ds, pes, quiet)
    real = accuracy.golden_figures
    monkeypatch.setattr(accuracy, "golden_figures", interrupted)
    before = json.loads((out / "accuracy.json").read_text())["rows"]
    with pytest.raises(KeyboardInterrupt):
        accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "4,8,16", "--B", "2",
                       "--rtl-images", "0", "--out", str(out), "--keep-measured"])
    assert calls == [4, 4, 4, 4, 16]
    after = json.loads((out / "accuracy.json").read_text())["rows"]
    assert after[:len(before)] == before and [(r["T"], r["method"]) for r in after[len(before):]] == [
        (4, m) for m in accuracy.METHODS]
    (out / "accuracy.json").write_text(json.dumps({"rows": before}))
    monkeypatch.setattr(accuracy, "golden_figures", real)
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--rtl-images", "0", "--out", str(out), "--keep-measured"]) == 0
    assert json.loads((out / "accuracy.json").read_text())["rows"] == before  # nothing measured, nothing lost

    # one method again: the other methods' rows stay, the table keeps its order
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--methods", "max", "--rtl-images", "0", "--out", str(out)]) == 0
    rows = [r for r in json.loads((out / "accuracy.json").read_text())["rows"] if r["network"] == "mnist-mlp"]
    assert sorted(r["method"] for r in rows) == sorted(accuracy.METHODS) and "rtl_images" not in rows[-1]
    table = (out / "accuracy.md").read_text()
    assert [table.index(f"| 8 | 2 | {m} |") for m in accuracy.METHODS] == sorted(
        table.index(f"| 8 | 2 | {m} |") for m in accuracy.METHODS)

    # residual input spikes: CAT trains on the two-spike input code, its own checkpoint and
    # rows beside the one-spike ones, bit-exact on the array
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--methods", "cat", "--input-spikes", "2", "--rtl-images", "2", "--out", str(out)]) == 0
    rows = [r for r in json.loads((out / "accuracy.json").read_text())["rows"] if r["network"] == "mnist-mlp"]
    two = [r for r in rows if accuracy.input_spikes_of(r) == 2]
    assert len(rows) == 5 and [r["method"] for r in two] == ["cat"] and two[0]["rtl_bit_exact"]
    assert (out / "mnist-mlp" / "cat-T8-B2-K2.pt").is_file()
    assert "| 8 | 2 | cat, 2 input spikes |" in (out / "accuracy.md").read_text()

    # distillation during CAT (the float network as teacher): its own checkpoint and row beside
    # the undistilled one of the same input code
    assert accuracy.main(["--data-dir", str(tmp_path / "data"), "--networks", "mnist-mlp", "--T", "8", "--B", "2",
                          "--methods", "cat", "--input-spikes", "2", "--distill", "0.5", "--rtl-images", "0",
                          "--out", str(out)]) == 0
    rows = [r for r in json.loads((out / "accuracy.json").read_text())["rows"] if r["network"] == "mnist-mlp"]
    assert sorted(accuracy.variant_of(r) for r in rows if r["method"] == "cat") == [(1, 0.0), (2, 0.0), (2, 0.5)]
    assert (out / "mnist-mlp" / "cat-T8-B2-K2-D0.5.pt").is_file()
    assert "| 8 | 2 | cat, 2 input spikes, distill 0.5 |" in (out / "accuracy.md").read_text()


def test_bench_refuses_unknown_networks(tmp_path, capsys):
    assert accuracy.main(["--data-dir", str(tmp_path), "--networks", "imagenet-vit"]) == 2
    assert "unknown networks ['imagenet-vit']" in capsys.readouterr().err
    assert accuracy.main(["--data-dir", str(tmp_path), "--methods", "max,qcfs"]) == 2
    assert "unknown methods ['qcfs']" in capsys.readouterr().err
    assert accuracy.main(["--data-dir", str(tmp_path), "--distill", "1.5"]) == 2
    assert "--distill must be between 0 and 1" in capsys.readouterr().err


def test_golden_figures_are_the_same_in_chunks(monkeypatch):
    """The benchmark runs the golden model GOLDEN_CHUNK test images at a time
    (flow.golden_summary): chunks of 7 (the last one short) give the figures of one run over
    all 40 images."""
    from types import SimpleNamespace

    from firstspike.flow import processor_cost
    from firstspike.sim.energy import energy_table
    from firstspike.sw.formats import Timing
    from firstspike.sw.golden import GoldenModel
    from firstspike.sw.random_models import random_model
    rng = np.random.default_rng(3)
    model = random_model(rng, [20, 12, 5], Timing(T=8, B=2, frac_bits=10))
    ds = SimpleNamespace(x_test=rng.random((40, 20)).astype(np.float32), y_test=rng.integers(0, 5, 40))
    monkeypatch.setattr(accuracy, "GOLDEN_CHUNK", 7)
    chunked = accuracy.golden_figures(model, ds, 4, quiet=True)
    golden = GoldenModel(model)
    result = golden.run(ds.x_test)
    cycles, pj = processor_cost(model, 4, result, energy_table("45nm"))
    expected = {"accuracy": (result.predictions == ds.y_test).mean(),
                "sops_per_image": golden.synaptic_ops(result).mean(),
                "spikes_per_image": result.spike_counts()[:, 1:].sum(1).mean(), "cycles_per_image": cycles,
                "energy_per_image_nj": pj * 1e-3}
    assert chunked == pytest.approx(expected, rel=1e-12)
    assert 0 < chunked["accuracy"] < 1 and chunked["sops_per_image"] > 0

"""`firstspike compare`: the codings x calibrations x T table."""
import json

import numpy as np

from firstspike.cli import main


def test_compare_table_rows_files_and_skips(digits_model, digits_cnn, tmp_path, capsys):
    ann, _, _ = digits_model
    out = tmp_path / "cmp"
    assert main(["compare", str(ann), "--T", "4,8", "--methods", "percentile", "--pes", "4", "--out", str(out)]) == 0
    data = json.loads((out / "compare.json").read_text())
    rows = data["rows"]
    assert [(r["neuron"], r["T"]) for r in rows] == [(n, t) for n in ("ttfs", "rate_if", "diff_if") for t in (4, 8)]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["sops_per_image"] > r["spikes_per_image"] > 0
        assert np.isclose(r["sop_energy_nj"], r["sops_per_image"] * 0.9e-3)
        assert r["cycles_per_image"] > 0 and r["energy_per_image_nj"] > 0  # all three run on the processor
    by = {(r["neuron"], r["T"]): r for r in rows}
    assert by[("rate_if", 8)]["spikes_per_image"] > by[("rate_if", 4)]["spikes_per_image"]
    assert by[("rate_if", 8)]["accuracy"] > 0.85 and by[("ttfs", 8)]["accuracy"] > 0.85
    assert (out / "compare.png").stat().st_size > 10_000
    assert "| rate_if | percentile | 8 |" in (out / "compare.md").read_text()
    assert "| ttfs | percentile | 4 |" in capsys.readouterr().out
    # the CNN max-pools: every coding has its pooling rule
    cnn_ann, _, _ = digits_cnn
    assert main(["compare", str(cnn_ann), "--T", "8", "--methods", "percentile", "--out", str(tmp_path / "c2")]) == 0
    rows = json.loads((tmp_path / "c2" / "compare.json").read_text())["rows"]
    assert [r["neuron"] for r in rows] == ["ttfs", "rate_if", "diff_if"] and all(r["accuracy"] > 0.9 for r in rows)
    assert main(["compare", str(ann), "--neurons", "lif", "--out", str(tmp_path / "c3")]) == 2
    assert "unknown neuron model or calibration lif" in capsys.readouterr().err

"""The HTML report: files, key numbers, and a clear error without a simulation run."""
import json

import pytest

from firstspike.flow import simulate
from firstspike.report import sweep, write_report


def test_report_for_a_small_run(digits_model, tmp_path):
    ann, snn, _ = digits_model
    sim = simulate(snn, pes=16, images=20, out_dir=tmp_path / "sim", verilog_dir=tmp_path / "v", quiet=True)
    # a flat input's events all sit at one position: groups of 16 share each accumulator access
    assert sim["group_size"] == 16 and 4 * sim["acc_writebacks_per_image"] < sim["weight_reads_per_image"]
    rows = sweep(ann, Ts=(4, 8), Bs=(1,), methods=("max", "cat"), cat_epochs=2, quiet=True)
    assert [(r["method"], r["T"]) for r in rows] == [("max", 4), ("max", 8), ("cat", 4), ("cat", 8)]
    # a trained digits MLP stays far above chance; TTFS: each of the 64 + 32 hidden neurons
    # fires at most once per image
    assert all(0.5 < r["accuracy"] <= 1 and 1 < r["spikes_per_image"] <= 64 + 32 for r in rows)
    assert all(r["energy_per_image_uj"] > 0 for r in rows)
    from firstspike.compare import compare, write_comparison
    write_comparison(tmp_path / "cmp", compare(ann, Ts=(4,), methods=("max",), neurons=("ttfs", "rate_if"),
                                               quiet=True))
    page = write_report(tmp_path / "report", sim_report=tmp_path / "sim" / "report.json", synth_json=None,
                        sweep_rows=rows, compare_json=tmp_path / "cmp" / "compare.json")
    text = page.read_text()
    for png in ("accuracy_vs_T.png", "spike_times.png", "layers.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000
        assert png in text
    assert f"{sim['cycles_per_image']:.1f} / {sim['cycles_model_per_image']:.1f}" in text
    assert f"{100 * rows[0]['accuracy']:.2f} %" in text
    assert "No synthesis results" in text
    # an MLP has no conv layer: its targets line names the other two figures
    t = sim["energy_targets"]
    assert t["conv_pe_utilization"]["value"] is None
    assert f"SNN / int8 {t['snn_vs_int8']['value']:.2f} (&lt;= 0.5: " in text and "conv PE utilisation" not in text
    assert "Spike times per layer" in text  # a ttfs network: spike times (rate networks: spikes per step)
    assert "<th>weight tiles x bands</th>" in text and "<td>1 x 1</td>" in text  # every layer at once
    assert "Codings and conversion methods" in text and "<td>rate_if</td>" in text and "compare.png" in text
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["sweep"] == rows and saved["mismatches"] == 0
    assert [r["neuron"] for r in saved["comparison"]["rows"]] == ["ttfs", "rate_if"]


def test_report_needs_a_simulation(tmp_path):
    with pytest.raises(FileNotFoundError, match="no simulation report"):
        write_report(tmp_path, sim_report=tmp_path / "missing.json", compare_json=None)

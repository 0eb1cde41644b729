"""Mutation score machinery (sim/mutation.py): the mutants are sampled, parsed and built
into one design behind a select input; the slow test runs a few of them."""
import re

import pytest

from firstspike.sim.mutation import (BANDED_NETWORKS, BOUND_NETWORKS, DIFF_EDGE_NETWORKS, EDGE_NETWORKS,
                                     FAILING_MEMORY,
                                     FULL_GROUP_NETWORKS, PROBES, RATE_EDGE_NETWORKS, VALUE_RANGE_NETWORKS,
                                     EQUIVALENT, RESIDUAL_NETWORKS, WIDE_NETWORKS, _parse, _short, classify, fault,
                                     mutated_design, mutation_score, suite, suite_config, suite_seeds)


def test_suite_is_the_fuzz_networks_of_one_shape_and_their_threshold_edges():
    assert suite_seeds(5) == [1, 5, 9, 13, 17]
    nets = suite(5, 6)
    # fuzz network 1 is diff_if and 17 rate_if: the threshold edges are the ttfs networks'
    edges = (5, 9, 13)[:EDGE_NETWORKS]
    assert [name for name, _, _ in nets] == [f"fuzz {s}" for s in (1, 5, 9, 13, 17)] + [
        f"fuzz {s} at thresholds" for s in edges] + [
        name for k in range(RATE_EDGE_NETWORKS) for name in (f"rate threshold edges {k}", f"rate pooled {k}")] + [
        name for k in range(DIFF_EDGE_NETWORKS) for name in (f"diff threshold edges {k}", f"diff pooled {k}")] + [
        name for k in range(RESIDUAL_NETWORKS) for name in (f"residual {k}", f"rate residual {k}")] + [
        f"banded {k}" for k in range(BANDED_NETWORKS)] + list(VALUE_RANGE_NETWORKS) + [
        f"threshold probe {k}" for k in range(PROBES)] + [f"wide {k}" for k in range(WIDE_NETWORKS)] + [
        f"full groups {k}" for k in range(FULL_GROUP_NETWORKS)] + list(BOUND_NETWORKS) + [FAILING_MEMORY]
    assert [model.coding for _, model, _ in nets].count("rate") == 2 + 2 * RATE_EDGE_NETWORKS + RESIDUAL_NETWORKS
    assert nets[0][1].coding == "diff" and nets[0][2].shape == (6, 16, nets[0][1].layers[0].n_in)
    assert (nets[0][2] == -1).any() and suite_config(nets).diff_state  # signed trains; the diff datapath is built
    assert all(model.layers[0].pool == 2 for name, model, _ in nets if "pooled" in name)
    diff = [model.coding for name, model, _ in nets if name.startswith("diff")]
    assert diff == ["diff"] * (2 * DIFF_EDGE_NETWORKS + 1)  # the edge and pooled pairs, and the large thresholds
    assert nets[4][2].shape == (6, 16, nets[4][1].layers[0].n_in)  # a rate network's 6 input trains
    tail = WIDE_NETWORKS + FULL_GROUP_NETWORKS + len(BOUND_NETWORKS) + 1  # the networks after the probes
    probes = nets[-PROBES - tail:-tail]
    # the probes meet every (t, exactly / one below) pair of every hidden layer's table at least
    # twice in each of the suite array's 4 PEs (channel c in PE c % 4)
    met = {}
    for _, model, _ in probes:
        for layer in model.layers[:-1]:
            th = list(layer.thresholds)
            for c, b in enumerate(layer.bias.tolist()):
                for d in (0, 1):
                    if b + d in th:
                        met[c % 4, th.index(b + d), d] = met.get((c % 4, th.index(b + d), d), 0) + 1
    assert sorted(met) == [(p, t, d) for p in range(4) for t in range(16) for d in (0, 1)]
    assert min(met.values()) >= 2
    assert all(len(times) == 6 for _, _, times in nets[:-PROBES - tail])  # a probe needs one image
    groups = nets[-FULL_GROUP_NETWORKS - len(BOUND_NETWORKS) - 1:-len(BOUND_NETWORKS) - 1]
    edge = nets[-PROBES - tail - len(VALUE_RANGE_NETWORKS) - BANDED_NETWORKS
                - 2 * (RATE_EDGE_NETWORKS + DIFF_EDGE_NETWORKS + RESIDUAL_NETWORKS) - 1]
    assert edge[0].endswith("at thresholds") and (edge[2][0] == -1).all()  # a silent image first
    cfg = suite_config(nets)
    assert (cfg.pes, cfg.timing.T, cfg.timing.B, cfg.timing.frac_bits) == (4, 16, 2, 14)
    # the full-group networks fill whole event groups up to x = 7, and do not change the array
    from firstspike.hw.perf import group_schedule
    for _, model, times in groups:
        active = (times >= 0).reshape(len(times), 20, 2, 8)
        assert max(max(group_schedule(a, active[0, 0], cfg.group_size)[0]) for a in active) == cfg.group_size
        assert active[:, :, :, 7].any()
    full = suite(12, 2)  # make mutation's 12 fuzz networks: the full-group and bound networks leave the array
    cfg = suite_config(full)
    assert cfg == suite_config([n for n in full if not n[0].startswith("full groups") and n[0] not in BOUND_NETWORKS])
    # and so do the diff_if, residual and wide networks (an earlier report's survivors stay the same faults)
    assert cfg == suite_config([n for n in full if not n[0].startswith(("diff", "residual", "rate residual", "wide",
                                                                         FAILING_MEMORY))])
    from firstspike.hw.config import network_image
    # the bound networks reach what their names say: 8 taps on each axis at max_size 8, output
    # weights past 8 KB into the image, a shortcut from its layer's own input in the third layer
    from firstspike.hw.config import hardware_geometry
    from firstspike.hw.perf import kernel_taps
    bound = {name: model for name, model, _ in full if name in BOUND_NETWORKS}
    assert kernel_taps(hardware_geometry(bound["full kernel"].layers[0])).max() == 8 * 8 == cfg.max_size ** 2
    assert network_image(bound["large image"], cfg).descriptors[1].weight_addr >= 8192
    own = bound["own-input shortcut"]
    assert len(own.layers) == cfg.max_layers and own.layers[2].shortcut.source == 2
    # the residual ones: the ttfs block's conv in two tiles, the rate_if one's two weight sets in one buffer
    residual = {name: network_image(model, cfg).descriptors for name, model, _ in full if "residual" in name}
    assert all(d[2].tiles == 2 for name, d in residual.items() if name.startswith("residual"))
    assert all(d[2].tiles == 1 and d[2].tile_rows == 90 for name, d in residual.items() if name.startswith("rate"))
    # bands of output rows: the banded ones (the first in two weight tiles, the second with a shortcut
    # from its own input, whose two weight sets stay in the buffer) and the fuzz, residual and bound ones
    images = {name: network_image(model, cfg) for name, model, _ in full}
    assert images["banded 0"].descriptors[0].bands > 1 and images["banded 0"].descriptors[0].tiles == 2
    assert images["banded 1"].descriptors[0].bands > 1 and images["banded 1"].shortcuts[0] is not None
    assert sum(max(d.bands for d in image.descriptors) > 1 for image in images.values()) >= 8
    # the value-range ones: a rate_if first layer stepping by one unit onto thresholds of 2 to 5; a
    # diff_if one whose thresholds reach 2^15 and whose every neuron spikes at step 1
    unit = next(model for name, model, _ in full if name == VALUE_RANGE_NETWORKS[0]).layers[0]
    assert (unit.bias == 1).all() and unit.thresholds.min() >= 2 and unit.thresholds.max() <= 5
    large = next(model for name, model, _ in full if name == VALUE_RANGE_NETWORKS[1]).layers[0]
    assert large.thresholds.min() == 1 << 14 and large.thresholds.max() > 1 << 15
    # the wide ones: a channel's first tap at weight buffer row 512 or more
    wide = [model.layers[0] for name, model, _ in full if name.startswith("wide")]
    assert all((layer.in_shape[0] - 1) * layer.weights.shape[2] * layer.weights.shape[3] >= 512 for layer in wide)
    tiled = [name for name, model, _ in full if max(d.tiles for d in network_image(model, cfg).descriptors) > 1]
    assert len(tiled) >= 3 and tiled[-FULL_GROUP_NETWORKS - 2:] == [
        f"full groups {k}" for k in range(FULL_GROUP_NETWORKS)] + ["full kernel", "large image"]


def test_mutated_design_has_every_mutant_behind_the_select_input(tmp_path):
    cfg = suite_config(suite(2, 2))
    verilog, mutants, bits = mutated_design(cfg, 12, 7, tmp_path)
    assert [m.id for m in mutants] == list(range(1, 13)) and bits == 4
    assert {m.mode for m in mutants} <= {"inv", "const0", "const1", "cnot0", "cnot1"}
    text = verilog.read_text()
    assert re.search(r"input \[3:0\] mutsel;", text)
    # each mutant compares the select input with its own number
    assert all(f"4'h{m.id:x}" in text for m in mutants)
    again = mutated_design(cfg, 12, 7, tmp_path / "again")[1]
    assert [m.command for m in again] == [m.command for m in mutants]  # seeded: the same sample


def test_mutation_commands_are_parsed():
    m = _parse(r"mutate -ctrl mutsel 8 17 -mode cnot1 -module neuron_array -cell $flatten\fire.$310 -port Y "
               r"-portbit 1 -ctrlbit 0 -src /x/hw/sequencer.py:69.5-69.20 -src /x/hw/fire.py:120")
    assert (m.id, m.mode, m.cell, m.port, m.bit) == (17, "cnot1", r"$flatten\fire.$310", "Y", 1)
    assert m.src == "hw/sequencer.py:69 hw/fire.py:120"
    assert _short("/a/b/lib/memory.py:401.1-401.9") == "lib/memory.py:401"


def test_equivalent_mutants_are_named_by_fault_and_scored_out():
    """A fault is its mutate command without select and source lines (so a table entry holds in
    any sample and checkout); survivors the table lists leave the denominator; a killed mutant
    in the table is an error, not a silent pass; every shipped entry gives its class and reason."""
    cmd = (r"mutate -ctrl mutsel 8 17 -mode cnot1 -module neuron_array -cell $flatten\fire.$310 -port Y -portbit 1 "
           r"-ctrlbit 0 -src /x/hw/fire.py:120")
    assert fault(cmd) == (r"mutate -mode cnot1 -module neuron_array -cell $flatten\fire.$310 -port Y -portbit 1 "
                          r"-ctrlbit 0")
    assert fault(cmd.replace("mutsel 8 17", "mutsel 6 3").replace("/x/", "/y/")) == fault(cmd)
    rows = [{"id": i, "command": cmd.replace("portbit 1", f"portbit {i}"), "killed": i < 6} for i in range(10)]
    table = [{"mutant": fault(rows[i]["command"]), "class": "arithmetic", "why": "w"} for i in (7, 8)]
    out = classify(rows, table)
    assert out == {"equivalent": 2, "score_non_equivalent": 6 / 8, "unclassified": [6, 9]}
    assert rows[7]["equivalent"] == {"class": "arithmetic", "why": "w"} and "equivalent" not in rows[6]
    with pytest.raises(RuntimeError, match=r"mutants \[2\] were killed"):
        classify(rows, table + [{"mutant": fault(rows[2]["command"]), "class": "x", "why": "y"}])
    import json
    table = json.loads(EQUIVALENT.read_text())
    shipped = table["equivalent"]
    assert len(shipped) >= 20 and all(e["why"] and e["class"] and e["mutant"] == fault(e["mutant"]) for e in shipped)
    # they hold for make mutation's suite array, the one the file names
    assert table["config"] == suite_config(suite(12, 8)).to_dict()


@pytest.mark.slow
def test_mutants_are_killed_and_survivors_listed(tmp_path):
    report = mutation_score(mutants=8, seed=3, networks=3, images=3, jobs=2, work=tmp_path, quiet=True)
    assert report["mutants"] == 8 and report["killed"] + report["survived"] == 8
    assert report["killed"] >= 4  # single-bit faults in the datapath change spikes or cycles
    assert all(r["why"] for r in report["killed_list"])
    # three fuzz networks make a smaller array than make mutation's: the equivalence table is not used
    assert not report["equivalent_table_applies"] and report["equivalent"] == 0
    assert sum(k for k, _ in report["by_file"].values()) == report["killed"]


def test_bench_keeps_the_mutation_score_and_its_equivalents(tmp_path):
    """`make bench`'s JSON carries the latest mutation report's score over the non-equivalent
    mutants next to the raw one (and an older report without them still reads)."""
    import json

    from firstspike.bench import verification_summary
    report = {"mutants": 200, "killed": 176, "survived": 24, "score": 0.88, "seed": 1, "seconds": 9.0,
              "equivalent": 22, "score_non_equivalent": 176 / 178, "survivors": []}
    (tmp_path / "mutation.json").write_text(json.dumps(report))
    m = verification_summary(tmp_path)["mutation"]
    assert (m["equivalent"], round(m["score_non_equivalent"], 4), m["killed"]) == (22, 0.9888, 176)
    (tmp_path / "mutation.json").write_text(json.dumps({k: report[k] for k in list(report)[:6]}))
    assert "equivalent" not in verification_summary(tmp_path)["mutation"]

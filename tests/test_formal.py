"""Formal proofs (sim/formal.py): every proof holds and is not vacuous; a planted bug
in each block turns its proof into a counterexample."""
import pytest

from firstspike.sim.formal import PLANTS, PROOFS, plant_bug, run_proof


@pytest.mark.parametrize("name", list(PROOFS))
def test_proof_holds_and_its_covers_are_reached(name, tmp_path):
    result = run_proof(name, PROOFS[name](), tmp_path)
    assert result.passed, result.log_tail
    assert result.reached, result.log_tail


@pytest.mark.parametrize("name, plant", [("pe_T8_B2", "pe_sign_ignored"), ("fire_P2_L1", "fire_ties_late"),
                                         ("unpack_W8_R5", "unpacker_row_late"),
                                         ("grouper_N4_G2", "grouper_x_inverted"), ("taps_K2", "taps_count_max"),
                                         ("divider_W10_T11", "divider_rounds_wrong"),
                                         ("diffstep_T5_K3", "diffstep_ties_late")])
def test_planted_bug_gives_a_counterexample(name, plant, tmp_path):
    result = run_proof(name, PROOFS[name](), tmp_path, plant=plant)
    assert not result.passed
    assert "counterexample trace" in result.log_tail
    assert result.reached  # the same harness still reaches its covers: the failure is the bug


def test_planted_bug_edits_one_cell_of_the_named_block():
    text = ("module \\top\n  cell $ge $1\n  end\nend\n"
            "module \\top.fire\n  cell $lt $2\n  end\n  cell $ge $3\n  end\n  cell $ge $4\n  end\nend\n")
    edited = plant_bug(text, "fire_ties_late")
    assert edited.count("cell $gt ") == 1 and "cell $gt $3" in edited and "cell $ge $1" in edited
    with pytest.raises(ValueError, match="unknown planted bug"):
        plant_bug(text, "nope")
    assert set(PLANTS) == {"pe_sign_ignored", "fire_ties_late", "unpacker_row_late", "grouper_x_inverted",
                           "taps_count_max", "divider_rounds_wrong", "diffstep_ties_late"}
    nth = ("module \\top.grouper\n  cell $eq $1\n  end\n  cell $eq $2\n  end\n  cell $eq $3\n  end\n"
           "  cell $eq $4\n  end\nend\n")
    assert plant_bug(nth, "grouper_x_inverted").split("cell $ne ")[1].startswith("$4")  # the fourth, as named

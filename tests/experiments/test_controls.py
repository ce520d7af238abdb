"""The pretrained auxiliary against its random and permuted controls, paired by seed."""

from __future__ import annotations

import pytest

from m2pt.experiments.aggregate import summarize
from m2pt.experiments.controls import control_comparisons, controls_markdown


def row(arm: str, seed: int, top1: float, group: str = "main", modality: str = "image") -> dict:
    return {"run_id": f"scratch/{modality}/{arm}/seed{seed}", "arm": arm, "group": group, "setting": "scratch",
            "modality": modality, "seed": seed, "baseline_arm": None if "baseline" in arm else "baseline",
            "metrics": {"top1": top1}}


def test_a_consistent_per_seed_lead_is_significant_paired_though_seeds_vary_more():
    # seeds move accuracy by ±5 points; the pretrained arm leads its permuted control by 1.0-1.2 on every seed
    rows = [row("baseline", s, v) for s, v in enumerate((80.0, 85.0, 90.0))]
    rows += [row("aux-point", s, v) for s, v in enumerate((81.0, 86.2, 91.1))]
    rows += [row("permuted-point", s, v) for s, v in enumerate((80.0, 85.0, 90.0))]
    rows += [row("random-point", s, v) for s, v in enumerate((81.5, 85.5, 91.0))]
    comparisons = {c.control: c for c in control_comparisons(summarize(rows), rows)}
    permuted, random_control = comparisons["permuted-point"], comparisons["random-point"]
    assert permuted.paired_n == 3 and permuted.paired_difference == pytest.approx(1.1)
    assert 2 * permuted.se > abs(permuted.difference)  # unpaired, the seed spread hides it
    assert permuted.verdict == "yes" and random_control.verdict == "no"
    table = controls_markdown(list(comparisons.values()))
    assert "| main | scratch | image | aux-point | permuted-point | 3, 3 | +1.10 |" in table


def test_extra_seeds_of_the_control_alone_stay_out_of_the_difference():
    # seeds 3 and 4 went to the random control and the baseline only (an uncertain comparison of theirs)
    rows = [row("baseline", s, 80.0 + 5 * s) for s in range(5)]
    rows += [row("aux-point", s, 81.0 + 5 * s) for s in range(3)]
    rows += [row("random-point", s, 80.0 + 5 * s) for s in range(5)]
    (comparison,) = control_comparisons(summarize(rows), rows)
    assert (comparison.n_aux, comparison.n_control) == (3, 3)
    assert comparison.difference == pytest.approx(1.0) and comparison.paired_difference == pytest.approx(1.0)


def test_minilm_fixacc_and_budget_arms_meet_their_own_controls():
    rows = []
    for arm, group in (("small-aux-minilm", "minilm"), ("small-random-minilm", "minilm"),
                       ("fixacc-aux-point", "fixacc"), ("fixacc-permuted-point", "fixacc"),
                       ("aux-point-b4x", "budget"), ("random-point-b4x", "budget"), ("random-point", "main")):
        rows += [row(arm, s, 70.0 + s, group) for s in range(2)]
    pairs = {(c.arm, c.control) for c in control_comparisons(summarize(rows), rows)}
    assert pairs == {("small-aux-minilm", "small-random-minilm"), ("fixacc-aux-point", "fixacc-permuted-point"),
                     ("aux-point-b4x", "random-point-b4x")}


def test_no_controls_no_section():
    rows = [row("baseline", 0, 80.0), row("aux-point", 0, 81.0)]
    assert control_comparisons(summarize(rows), rows) == [] and controls_markdown([]) == ""

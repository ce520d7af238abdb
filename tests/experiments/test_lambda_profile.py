"""Where λ engages: rank correlation of per-layer ‖λW′‖/‖W‖ profiles across seeds and with controls."""

from __future__ import annotations

import math

import pytest

from m2pt.experiments.aggregate import summarize
from m2pt.experiments.convergence import study_sections
from m2pt.experiments.lambda_profile import lambda_profile_markdown, lambda_profiles, rank_correlation

LAYERS = [f"blocks.{block}.{name}" for block in range(2) for name in ("attn.qkv", "attn.proj", "mlp.fc1")]


def _row(arm: str, seed: int, deltas: list[float] | None, modality: str = "audio") -> dict:
    layers = {name: {"lambda": -d, "abs_lambda": d, "rel_delta": d} for name, d in zip(LAYERS, deltas or [])}
    return {"run_id": f"scratch/{modality}/{arm}/seed{seed}", "arm": arm, "group": "main", "setting": "scratch",
            "modality": modality, "seed": seed, "preset": "tiny", "aux": "mae:point" if deltas else None,
            "baseline_arm": "baseline" if deltas else None, "metrics": {"top1": 80.0}, "wall_seconds": 1.0,
            "pathway_stats": {"layers": layers} if layers else {}}


def test_rank_correlation_is_spearman_with_tied_ranks_averaged():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4e-3, 3e-3, 2e-3, 1e-3]) == pytest.approx(-1.0)
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5)
    assert rank_correlation([0.1, 0.5, 0.5, 0.9], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert math.isnan(rank_correlation([1, 2], [1, 2]))
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="one length, got 3 and 2"):
        rank_correlation([1, 2, 3], [1, 2])


def test_profiles_name_the_largest_layer_and_compare_pathway_with_control_on_shared_seeds():
    same_order = [0.30, 0.01, 0.02, 0.03, 0.004, 0.005]
    rows = [_row("baseline", seed, None) for seed in range(3)]
    rows += [_row("aux-point", seed, same_order) for seed in range(3)]
    rows += [_row("random-point", 0, same_order), _row("random-point", 1, [1 / d for d in same_order]),
             _row("random-point", 5, same_order)]  # seed 5 has no pathway run to compare with
    profiles = {p.arm: p for p in lambda_profiles(rows)}
    assert set(profiles) == {"aux-point", "random-point"}
    pathway = profiles["aux-point"]
    assert (pathway.top_layer, pathway.top_layer_seeds, pathway.seeds) == ("blocks.0.attn.qkv", 3, [0, 1, 2])
    assert pathway.top_value == pytest.approx(0.30)
    assert pathway.median_value == pytest.approx((0.01 + 0.02) / 2)
    assert pathway.across_seeds == pytest.approx(1.0)
    value, shared = pathway.vs_controls["random-point"]
    assert (value, shared) == (pytest.approx(0.0), 2)  # +1 on seed 0, -1 on seed 1
    control = profiles["random-point"]
    assert control.vs_controls == {} and control.top_layer_seeds == 2  # seeds 0 and 5 of 3
    assert control.across_seeds == pytest.approx((-1 + 1 - 1) / 3)

    text = lambda_profile_markdown(list(profiles.values()))
    assert ("| scratch | audio | aux-point | 3 | blocks.0.attn.qkv (3 of 3) | 0.3 | 0.015 | +1.00 | "
            "random-point: +0.00 (2) |") in text
    assert "### Where λ engages" in study_sections(summarize(rows), rows)


def test_no_profile_without_per_layer_values():
    rows = [_row("baseline", 0, None), _row("aux-point", 0, None) | {"aux": "mae:point"}]
    assert lambda_profiles(rows) == []
    assert lambda_profile_markdown([]) == ""
    single = lambda_profiles([_row("aux-point", 0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])])[0]
    assert math.isnan(single.across_seeds) and single.top_layer == "blocks.1.mlp.fc1"


def test_top_layer_figure_draws_the_pathway_and_its_controls_from_row_histories(tmp_path):
    from m2pt.experiments.figures import plot_top_layer_lambda

    profile = [0.30, 0.01, 0.02, 0.03, 0.004, 0.005]
    rows = [_row("baseline", 0, None), _row("aux-point", 0, profile), _row("permuted-point", 0, profile)]
    assert plot_top_layer_lambda(rows, tmp_path / "none.png") is None  # no row keeps a λ history
    assert not (tmp_path / "none.png").exists()
    for row in rows[1:]:
        row["history"] = {"lambda": {"steps": [0, 10, 20],
                                     "layers": {name: [0.0, -d / 2, -d] for name, d in zip(LAYERS, profile)}}}
    path = plot_top_layer_lambda(rows, tmp_path / "top.png")
    assert path == tmp_path / "top.png" and path.stat().st_size > 1000

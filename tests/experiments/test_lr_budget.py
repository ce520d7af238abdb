"""λ's learning-rate sum: the schedule, λ's lr_scale (checked against param_groups), the paper recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from m2pt.experiments.lr_budget import (describe_sums, lambda_lr_scales, lambda_lr_sums, schedule_lr_sum,
                                        steps_per_epoch)
from m2pt.train.schedule import lr_at

REPO = Path(__file__).resolve().parents[2]


def test_schedule_sum_matches_the_trainer_schedule():
    assert schedule_lr_sum(100, 0, 1e-3, 1e-3) == pytest.approx(0.1)
    # linear warm-up of 10 steps: (1 + ... + 10) / 10 * lr; cosine to 0 over 90 steps: half of 90 * lr
    assert schedule_lr_sum(100, 10, 1e-3, 0.0) == pytest.approx(5.5e-3 + 45e-3 + 0.5e-3, rel=2e-2)
    assert schedule_lr_sum(37, 5, 2e-3, 1e-5) == pytest.approx(sum(lr_at(t, 37, 5, 2e-3, 1e-5) for t in range(37)))


@pytest.mark.parametrize("layer_decay, mult", [(None, 1.0), (0.65, 1.0), (0.75, 10.0)])
def test_lambda_lr_scale_is_that_of_param_groups(layer_decay, mult):
    from m2pt import create_model
    from m2pt.pathway import PathwayConfig, add_pathways, param_groups

    model = create_model("image", "tiny", num_classes=10, depth=3)
    add_pathways(model, {k: torch.zeros_like(v) for k, v in model.state_dict().items() if k.startswith("blocks.")},
                 PathwayConfig(scale_lr_mult=mult))
    groups = [g for g in param_groups(model, layer_decay=layer_decay) if g["name"].endswith("_scale")]
    assert [g["lr_scale"] for g in groups] == pytest.approx(lambda_lr_scales(3, layer_decay, mult))


def test_run_sums_follow_steps_layer_decay_and_fixed_lambda():
    options = {"epochs": 2, "batch_size": 10, "lr": 1e-2, "warmup_epochs": 0.0, "min_lr": 1e-2, "preset": "tiny",
               "data_options": {"train_size": 105}, "layer_decay": 0.5}
    assert steps_per_epoch(105, 10) == 10
    sums = lambda_lr_sums(options, depth=2)
    assert sums == pytest.approx([0.2 * 0.25, 0.2 * 0.5])
    assert lambda_lr_sums(options, {"scale_lr_mult": 10.0}, depth=2) == pytest.approx([0.5, 1.0])
    assert lambda_lr_sums(options, {"train_scale": False}, depth=2) == [0.0, 0.0]
    assert len(lambda_lr_sums({**options, "layer_decay": None})) == 6  # tiny preset: 6 blocks
    assert describe_sums([1.0, 1.0]) == "1"
    assert describe_sums([0.5, 2.0]) == "0.5 (block 0) .. 2 (block 1), mean 1.25"


def test_paper_imagenet_recipe_with_layer_decay():
    options = json.loads((REPO / "configs/paper/in1k_mae_m2pt_point.json").read_text())
    options["lr"] = None
    sums = lambda_lr_sums(options, options["pathway"], train_items=1_281_167, world_size=8)
    assert len(sums) == 12
    assert sums[0] == pytest.approx(0.71, abs=0.01) and sums[-1] == pytest.approx(81.4, abs=0.1)
    assert sum(sums) / 12 == pytest.approx(19.3, abs=0.1)


def test_paper_script_prints_the_corrected_numbers():
    result = subprocess.run([sys.executable, "scripts/paper_lambda_lr_sum.py"], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert "1251 steps/epoch x 100 epochs = 125100 steps" in result.stdout
    assert "block 0: 0.71; block 11: 81.4; mean over blocks: 19.3; without layer decay: 125.2" in result.stdout

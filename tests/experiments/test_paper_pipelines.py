"""The paper-scale fine-tuning configurations read their data through the base methods' pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2pt.cli import build_parser, config_from_args
from m2pt.train.recipes import recipe

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.json"))
PIPELINES = {"image": "mae", "video": "videomae", "audio": "audiomae", "point": "pointmae"}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.split("_")[0] in ("in1k", "k400", "modelnet40",
                                                                                  "audioset")
                                  and "fixacc" not in p.stem], ids=lambda p: p.stem)
def test_paper_finetuning_uses_the_base_method_pipeline(path):
    args = build_parser().parse_args(["finetune", "--config", str(path)])
    config = config_from_args(args, "finetune")
    assert config.task == "finetune" and config.augment == PIPELINES[config.modality]


@pytest.mark.parametrize("modality", sorted(PIPELINES))
def test_paper_recipes_use_the_base_method_pipeline(modality):
    assert recipe(modality)["augment"] == PIPELINES[modality]

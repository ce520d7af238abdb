"""The paper-scale fine-tuning configurations read their data through the base methods' pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2pt.experiments.paper_configs import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.json"))
PIPELINES = {"image": "mae", "video": "videomae", "audio": "audiomae", "point": "pointmae"}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.split("_")[0] in ("in1k", "k400", "modelnet40",
                                                                                  "audioset")
                                  and "fixacc" not in p.stem], ids=lambda p: p.stem)
def test_paper_finetuning_uses_the_base_method_pipeline(path):
    config = load_config(path)
    assert config.task == "finetune" and config.augment == PIPELINES[config.modality]

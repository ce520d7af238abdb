"""Shared fixtures: tiny configurations and an auxiliary checkpoint file, all on real components."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from m2pt.train.config import TrainConfig
from tests.fixtures import data_cache  # noqa: F401 - an autouse fixture

TINY_MODEL = {"embed_dim": 32, "depth": 2, "num_heads": 2}
TINY_IMAGES = {"train_size": 48, "test_size": 16}


def tiny_config(output: Path, **changes) -> TrainConfig:
    """A fine-tuning run that takes about a second: width 32, depth 2, 48 Fashion-MNIST images."""
    options = dict(task="finetune", modality="image", preset="tiny", model_overrides=dict(TINY_MODEL),
                   data_options=dict(TINY_IMAGES), output=str(output), epochs=2, batch_size=8, lr=2e-3,
                   warmup_epochs=0.5, eval_every=1, seed=0)
    options.update(changes)
    return TrainConfig(**options)


@pytest.fixture(scope="session")
def aux_file(tmp_path_factory) -> Path:
    """An auxiliary checkpoint in the m2pt format: a tiny audio transformer of the target's width and depth."""
    from m2pt.models import create_model
    from m2pt.checkpoints import save_model

    torch.manual_seed(123)
    model = create_model("audio", "tiny", num_classes=0, **TINY_MODEL)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() == 2:
                param.normal_(0, 0.1)
    return save_model(model, tmp_path_factory.mktemp("aux") / "audio_aux.safetensors")

"""Fixtures of the hostile-input suite: tiny runs on real components."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from m2pt.train.config import TrainConfig
from tests.fixtures import data_cache  # noqa: F401 - an autouse fixture

TINY_MODEL = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def tiny_run(output: Path, **changes) -> TrainConfig:
    """A fine-tuning run of about a second: width 32, depth 2, 48 built-in Fashion-MNIST images."""
    options = dict(task="finetune", modality="image", preset="tiny", model_overrides=dict(TINY_MODEL),
                   data_options={"train_size": 48, "test_size": 16}, output=str(output), epochs=2, batch_size=8,
                   lr=2e-3, warmup_epochs=0.5, eval_every=1, seed=0)
    options.update(changes)
    return TrainConfig(**options)


@pytest.fixture(scope="session")
def aux_file(tmp_path_factory) -> Path:
    """A tiny audio transformer of the target's width and depth, saved as an auxiliary checkpoint."""
    from m2pt.checkpoints import save_model
    from m2pt.models import create_model

    torch.manual_seed(123)
    model = create_model("audio", "tiny", num_classes=0, **TINY_MODEL)
    return save_model(model, tmp_path_factory.mktemp("aux") / "audio_aux.safetensors")

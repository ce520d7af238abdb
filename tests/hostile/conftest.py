"""Fixtures of the hostile-input suite: tiny runs on real components."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures import data_cache  # noqa: F401 - an autouse fixture

from tests.train.conftest import TINY_MODEL
from tests.train.conftest import tiny_config as tiny_run  # noqa: F401 - the suite's tiny fine-tuning run


@pytest.fixture(scope="session")
def aux_file(tmp_path_factory) -> Path:
    """A tiny audio transformer of the target's width and depth, saved as an auxiliary checkpoint."""
    from m2pt.checkpoints import save_model
    from m2pt.models import create_model

    torch.manual_seed(123)
    model = create_model("audio", "tiny", num_classes=0, **TINY_MODEL)
    return save_model(model, tmp_path_factory.mktemp("aux") / "audio_aux.safetensors")

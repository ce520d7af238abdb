"""Fixtures shared by several test folders (imported by their ``conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory) -> Path:
    """Built-in datasets are generated once per session (or reused from $M2PT_DATA); one thread."""
    if "M2PT_DATA" not in os.environ:
        os.environ["M2PT_DATA"] = str(tmp_path_factory.mktemp("m2pt_data"))
    torch.set_num_threads(1)
    return Path(os.environ["M2PT_DATA"])

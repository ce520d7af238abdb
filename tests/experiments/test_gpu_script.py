"""scripts/gpu_reproduce.sh: its CPU dry path, and a clear refusal without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_reproduce.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os
    import sys

    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_list_prints_the_gpu_plan():
    result = _run("--list")
    assert result.returncode == 0, result.stderr
    assert "profile gpu: 1 MAE pretraining(s), 27 fine-tuning run(s)" in result.stdout
    assert "small-permuted-minilm" in result.stdout and "50000 train / 10000 test items" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_without_a_gpu_stops_before_writing_anything(tmp_path):
    result = _run("run", str(tmp_path / "out"))
    assert result.returncode == 2 and "no CUDA device visible to torch" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_mode_prints_the_usage():
    result = _run("launch")
    assert result.returncode == 2 and "usage: scripts/gpu_reproduce.sh" in result.stderr

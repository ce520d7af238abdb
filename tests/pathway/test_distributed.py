"""A 2-process CPU (gloo) DDP run, launched as torchrun does, equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import m2pt

from . import ddp_worker
from .helpers import tiny_vit

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_rank_ddp_matches_single_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(ddp_worker.__file__)), str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)

    reference = ddp_worker.build()
    ddp_worker.train(reference, rank=0, world_size=1)
    expected = reference.state_dict()

    assert set(rank0) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(rank0[key], rank1[key], atol=0, rtol=0, msg=f"ranks differ at {key}")
        torch.testing.assert_close(rank0[key], value, atol=1e-6, rtol=0, msg=f"DDP != single process at {key}")
    scales = [v for k, v in expected.items() if k.endswith(".scale")]
    assert all(abs(float(s) - 0.05) > 1e-4 for s in scales), "λ must have trained"

    merged = torch.load(tmp_path / "merged.pt", weights_only=True)
    tiny_vit().load_state_dict(merged, strict=True)
    torch.testing.assert_close(merged["blocks.0.mlp.fc1.weight"],
                               m2pt.merge_pathways(reference).state_dict()["blocks.0.mlp.fc1.weight"], atol=1e-6, rtol=0)

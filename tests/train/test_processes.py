"""Multi-process behaviour: SIGTERM leaves a valid checkpoint; 2-rank DDP equals one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from m2pt.io import load_tensor_file
from m2pt.train.finetuning import finetune
from m2pt.train.state import load_training_state

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("finetune_worker.py")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigterm_finishes_the_step_and_leaves_a_resumable_checkpoint(tmp_path):
    config = tiny_config(tmp_path / "run", epochs=200, data_options={"train_size": 16, "test_size": 8})
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    process = subprocess.Popen([sys.executable, str(WORKER), str(config_file)], cwd=REPO, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-2000:]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "stopped by SIGTERM" in (tmp_path / "run" / "train.log").read_text()

    state = load_training_state(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] >= 1 and state["epoch"] < 200
    assert not (tmp_path / "run" / "final_metrics.json").exists()
    # the resumed run continues from the saved step (a short budget so the test stays fast)
    resumed = finetune(config.replace(epochs=state["epoch"] + 1), resume=True, quiet=True)
    assert resumed["finished"] and resumed["step"] == (state["epoch"] + 1) * 2


@pytest.mark.slow
def test_two_rank_ddp_equals_one_process_on_the_same_global_batch(tmp_path, aux_file):
    # λ starts at 0.05, not 0: at λ = 0 the gradient of W' is 0 and Adam would amplify float noise in it
    options = dict(aux=[str(aux_file)], pathway={"scale_init": 0.05}, epochs=1, lr=5e-3, eval_every=0,
                   max_train_batches=4,
                   data_options={"train_size": 64, "test_size": 8})
    ddp = tiny_config(tmp_path / "ddp", batch_size=4, **options)
    config_file = tmp_path / "ddp.json"
    config_file.write_text(json.dumps(ddp.to_dict()))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), str(config_file)]
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2

    single = finetune(tiny_config(tmp_path / "single", batch_size=8, **options), quiet=True)
    assert single["step"] == 4
    distributed = load_tensor_file(tmp_path / "ddp" / "pathways.safetensors")
    reference = load_tensor_file(tmp_path / "single" / "pathways.safetensors")
    assert set(distributed) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(distributed[key], value, atol=1e-5, rtol=1e-4, msg=f"DDP != 1 process at {key}")
    scales = [v for k, v in reference.items() if k.endswith(".scale")]
    assert scales and all(abs(float(s) - 0.05) > 1e-4 for s in scales), "λ must have trained"

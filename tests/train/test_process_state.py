"""A library import or call leaves the process alone; entry points (the CLI) set what they need."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from m2pt.train.config import TrainConfig
from m2pt.train.distributed import DistInfo
from m2pt.train.loop import fit
from m2pt.train.signals import StopRequest

ROOT = Path(__file__).resolve().parents[2]

LIBRARY_USE = r"""
import json, os, signal, sys
env_before = dict(os.environ)
import m2pt
assert "torch" not in sys.modules, "import m2pt must not import torch (entry points set OpenMP options first)"
assert dict(os.environ) == env_before
import timm, torch, torch._dynamo  # what third-party imports set themselves (torch sets TORCHINDUCTOR_CACHE_DIR)
env_before = dict(os.environ)
calls = []
original = torch.set_num_threads
torch.set_num_threads = lambda n: (calls.append(n), original(n))[1]
threads = torch.get_num_threads()
handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
point = m2pt.create_model("point", "tiny", num_classes=3, num_points=64, num_groups=8, group_size=8)
point(torch.randn(2, 64, 3))
m2pt.FbankTransform(target_length=40)(torch.randn(8000))
target = m2pt.create_model("image", "tiny", num_classes=3)
m2pt.add_pathways(target, m2pt.create_model("image", "tiny", num_classes=3))
target(torch.randn(2, 1, 28, 28))
print(json.dumps({"env_changed": sorted(k for k in set(os.environ) | set(env_before)
                                        if os.environ.get(k) != env_before.get(k)),
                  "set_num_threads_calls": calls, "threads_same": torch.get_num_threads() == threads,
                  "handlers_same": handlers == [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]}))
"""

CLI_USE = r"""
import os, sys
import m2pt.cli
assert "torch" not in sys.modules
m2pt.cli.main(["finetune", "--recipe", "cpu", "--print-config"])
print("OMP_WAIT_POLICY=" + os.environ.get("OMP_WAIT_POLICY", "unset"))
"""


def _run(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_library_import_and_calls_leave_env_threads_and_handlers_unchanged():
    report = json.loads(_run(LIBRARY_USE).strip().splitlines()[-1])
    assert report == {"env_changed": [], "set_num_threads_calls": [], "threads_same": True, "handlers_same": True}


def test_the_cli_sets_openmp_passive_waiting_before_torch_loads():
    assert _run(CLI_USE).strip().splitlines()[-1] == "OMP_WAIT_POLICY=PASSIVE"


def test_fit_installs_signal_handlers_only_when_asked(tmp_path):
    seen = []

    def loss_fn(model, x, y):
        seen.append(signal.getsignal(signal.SIGTERM))
        return F.cross_entropy(model(x), y)

    data = torch.utils.data.TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    config = TrainConfig(output=str(tmp_path), epochs=1, batch_size=4, lr=1e-2, amp=False)
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    before = signal.getsignal(signal.SIGTERM)
    fit(config, torch.nn.Linear(3, 2), data, loss_fn, info, None, logging.getLogger("test"))
    assert seen == [before, before]
    fit(config, torch.nn.Linear(3, 2), data, loss_fn, info, None, logging.getLogger("test"), handle_signals=True)
    assert all(getattr(h, "__self__", None).__class__ is StopRequest for h in seen[2:])
    assert signal.getsignal(signal.SIGTERM) == before

"""The optimiser step: fp16 loss scaling (on CPU autocast), clipping, LARS, the loss read every N steps."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from m2pt.train.config import TrainConfig
from m2pt.train.distributed import DistInfo
from m2pt.train.loop import build_optimizer, fit
from m2pt.train.precision import MixedPrecision

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def test_fp16_scaler_scales_the_loss_and_skips_steps_with_overflowing_gradients():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = MixedPrecision("cpu", "fp16", enabled=True)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    with precision.autocast():
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    assert logits.dtype == torch.float16
    precision.backward(loss)
    reference = torch.autograd.grad(F.cross_entropy(model(x), y), model.weight)[0]
    torch.testing.assert_close(model.weight.grad / precision.scaler.get_scale(), reference, rtol=2e-2, atol=1e-4)
    before = model.weight.detach().clone()
    precision.step(optimizer, model.parameters())
    assert not torch.equal(model.weight, before) and precision.scaler.get_scale() == 65536.0

    with precision.autocast():
        loss = F.cross_entropy(model(x), y) * float("inf")
    precision.backward(loss)
    before = model.weight.detach().clone()
    precision.step(optimizer, model.parameters())
    assert torch.equal(model.weight, before), "a step with inf gradients must be skipped"
    assert precision.scaler.get_scale() == 32768.0
    assert model.weight.grad is None


def test_scaler_state_survives_a_resume():
    saved = MixedPrecision("cpu", "fp16", enabled=True)
    saved.scaler.scale(torch.ones(()))
    saved.scaler.update(1024.0)
    resumed = MixedPrecision("cpu", "fp16", enabled=True)
    resumed.load_state_dict(saved.state_dict())
    assert resumed.scaler.get_scale() == 1024.0
    MixedPrecision("cpu", "bf16", enabled=True).load_state_dict(saved.state_dict())  # no scaler: ignored


def test_bf16_and_float32_need_no_scaler():
    assert not MixedPrecision("cpu", "bf16", enabled=True).scaler.is_enabled()
    assert not MixedPrecision("cpu", "fp16", enabled=False).scaler.is_enabled()
    assert not MixedPrecision.for_run(torch.device("cpu"), amp=True, dtype="fp16").enabled  # CPU trains in float32


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_clipping_bounds_the_update(dtype):
    model = torch.nn.Linear(4, 4, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    precision = MixedPrecision("cpu", dtype, enabled=True)
    with precision.autocast():
        loss = model(torch.ones(2, 4)).float().mean()  # gradient norm 1.0
    precision.backward(loss)
    before = model.weight.detach().clone()
    precision.step(optimizer, list(model.parameters()), clip_grad=0.5)
    assert (model.weight - before).norm().item() == pytest.approx(0.5, rel=1e-3)


def test_lars_adapts_weight_matrices_only():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = build_optimizer(model, TrainConfig(optimizer="lars", weight_decay=0.0), base_lr=0.1)
    from timm.optim import Lars

    assert isinstance(optimizer, Lars)
    adapt = {tuple(p.shape): g["always_adapt"] for g in optimizer.param_groups for p in g["params"]}
    assert adapt == {(4, 4): True, (4,): False}


def _fit(tmp_path, compute_loss, steps: int = 12, **changes):
    data = torch.utils.data.TensorDataset(torch.randn(steps * 4, 3), torch.randint(0, 2, (steps * 4,)))
    model = torch.nn.Linear(3, 2)
    config = TrainConfig(output=str(tmp_path), epochs=1, batch_size=4, lr=1e-2, warmup_epochs=0, amp=False,
                         **changes)
    return fit(config, model, data, compute_loss, CPU, tmp_path, logging.getLogger("test"), log_every=5)


def test_loss_is_read_every_n_steps_and_a_nan_stops_before_any_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss_fn(model, x, y):
        calls["n"] += 1
        loss = F.cross_entropy(model(x), y)
        return loss * float("nan") if calls["n"] == 3 else loss

    with pytest.raises(FloatingPointError, match=r"loss is nan at step 5 \(last read finite at step 1\)"):
        _fit(tmp_path, loss_fn)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_metrics_hold_the_loss_of_the_logged_steps(tmp_path):
    result = _fit(tmp_path, lambda model, x, y: F.cross_entropy(model(x), y))
    records = [r for r in __import__("m2pt.train.run_dir", fromlist=["MetricsWriter"]).MetricsWriter(tmp_path).read()
               if "loss" in r]
    assert [r["step"] for r in records] == [1, 5, 10]
    assert result.finished and result.history[0]["train_loss"] > 0

"""Which parameters learn, under the paper's settings and its ablations."""

from __future__ import annotations

import pytest
import torch

import m2pt

from .helpers import images, tiny_vit


def _step(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(images()).logsumexp(-1).mean().backward()
    optimizer.step()
    return before


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor], suffix: str) -> list[bool]:
    return [not torch.equal(p, before[n]) for n, p in model.named_parameters() if n.endswith(suffix)]


def test_at_zero_scale_lambda_gets_gradient_and_aux_weight_none():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1))
    model(images()).logsumexp(-1).mean().backward()
    for name, param in model.named_parameters():
        if name.endswith(".scale"):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        if name.endswith(".aux_weight"):
            assert param.grad is not None and torch.count_nonzero(param.grad) == 0, name


def test_paper_default_trains_everything():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1), scale_init=0.1)
    before = _step(model)
    for suffix in (".original", ".aux_weight", ".scale", "head.weight"):
        assert all(_changed(model, before, suffix)), suffix


def test_fix_acc_setting_trains_only_lambda_and_the_rest():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1), train_target=False, train_aux=False, scale_init=0.1)
    before = _step(model)
    assert not any(_changed(model, before, ".original"))
    assert not any(_changed(model, before, ".aux_weight"))
    assert all(_changed(model, before, ".scale"))
    assert all(_changed(model, before, "head.weight"))
    summary = m2pt.pathway_summary(model)
    assert summary.params_trainable < summary.params_total - summary.params_aux


def test_fixed_scale_and_frozen_aux():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1), train_scale=False, train_aux=False,
                              scale_init=1e-2)
    before = _step(model)
    assert not any(_changed(model, before, ".scale"))
    assert not any(_changed(model, before, ".aux_weight"))
    assert all(_changed(model, before, ".original"))
    scales = [p for n, p in model.named_parameters() if n.endswith(".scale")]
    assert len(scales) == 8 and all(float(s) == pytest.approx(1e-2) for s in scales)

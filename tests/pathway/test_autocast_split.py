"""``split_under_autocast``: the pathway term survives bf16 autocast; float32 behaviour is unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import m2pt

from .helpers import images, randomize_pathways, tiny_vit


def _layer_pair(split: bool, scale: float, per_channel: bool = False, auxes: int = 1) -> tuple[nn.Module, list]:
    """A ViT-B-sized fc1 (768 -> 3072, std 0.02) with pathways to ``auxes`` random layers of the same size."""
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(768, 3072))
    aux_models = [nn.Sequential(nn.Linear(768, 3072)) for _ in range(auxes)]
    for layer in [target[0]] + [a[0] for a in aux_models]:
        nn.init.normal_(layer.weight, std=0.02)
    m2pt.add_pathways(target, aux_models, layers=["0"], split_under_autocast=split,
                      scale_shape="channel" if per_channel else "scalar")
    with torch.no_grad():
        for pathway in target[0].parametrizations.weight:
            pathway.scale.fill_(scale)
    return target, aux_models


def _pathway_term_cosine(split: bool, scale: float, **kwargs) -> float:
    """Cosine of ``out(λ) - out(0)`` under CPU bf16 autocast with the exact float64 ``Σ λ W' x``."""
    model, auxes = _layer_pair(split, scale, **kwargs)
    x = torch.randn(1024, 768, generator=torch.Generator().manual_seed(3))
    exact = sum(scale * x.double() @ a[0].weight.detach().double().T for a in auxes)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        with_scale = model(x).double()
        for pathway in model[0].parametrizations.weight:
            pathway.scale.zero_()
        without = model(x).double()
    return F.cosine_similarity((with_scale - without).flatten(), exact.flatten(), dim=0).item()


def test_bf16_autocast_loses_most_of_a_small_pathway_term_unless_split():
    merged = _pathway_term_cosine(split=False, scale=1e-3)
    split = _pathway_term_cosine(split=True, scale=1e-3)
    assert merged < 0.7, merged  # measured 0.36: the merged weight's bf16 rounding swallows λW'
    assert split > 0.999, split
    assert _pathway_term_cosine(split=True, scale=1e-3, per_channel=True) > 0.999
    assert _pathway_term_cosine(split=True, scale=1e-3, auxes=2) > 0.999


def test_split_is_the_plain_pathway_outside_autocast_and_merges_exactly():
    reference = tiny_vit()
    m2pt.add_pathways(reference, tiny_vit(seed=1))
    randomize_pathways(reference)
    split = copy.deepcopy(reference)
    for module in split.modules():
        if hasattr(module, "parametrizations"):
            module.split_under_autocast = True
    reference.eval(), split.eval()
    x = images()
    torch.testing.assert_close(split(x), reference(x), rtol=0, atol=0)
    merged = m2pt.merge_pathways(split)
    assert type(merged.blocks[0].attn.qkv) is nn.Linear
    assert not hasattr(merged.blocks[0].attn.qkv, "split_under_autocast")
    torch.testing.assert_close(merged(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_channel, auxes", [(False, 1), (True, 2)])
def test_split_gradients_under_bf16_autocast_match_float32(per_channel, auxes):
    model, _ = _layer_pair(split=True, scale=1e-3, per_channel=per_channel, auxes=auxes)
    x = torch.randn(8, 32, 768, generator=torch.Generator().manual_seed(4), requires_grad=True)
    target = torch.randn(8, 32, 3072, generator=torch.Generator().manual_seed(5))
    weights = model[0].parametrizations.weight
    params = [x, weights.original, model[0].bias] + [t for p in weights for t in (p.scale, p.aux_weight)]

    def grads(autocast: bool) -> list[torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = (model(x).float() - target).square().mean()
        return torch.autograd.grad(loss, params)

    for param, low, exact in zip(params, grads(True), grads(False)):
        assert low.shape == param.shape and low.dtype == param.dtype
        relative = ((low.double() - exact.double()).norm() / exact.double().norm()).item()
        assert relative < 0.03, (tuple(param.shape), relative)


@pytest.mark.parametrize("split", [False, True])
def test_pathway_vit_compiles_without_graph_breaks(split):
    import torch._dynamo

    model = tiny_vit()
    m2pt.add_pathways(model, tiny_vit(seed=1), split_under_autocast=split)
    torch._dynamo.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=split):
        explanation = torch._dynamo.explain(model)(images())
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_split_option_survives_save_and_load(tmp_path):
    model = tiny_vit()
    m2pt.add_pathways(model, tiny_vit(seed=1), split_under_autocast=True)
    m2pt.save_pathways(model, tmp_path / "p.safetensors")
    loaded = m2pt.load_pathways(tiny_vit(seed=2), tmp_path / "p.safetensors")
    assert loaded.pathway_config.split_under_autocast
    assert all(getattr(m, "split_under_autocast", False) for m in loaded.modules() if hasattr(m, "parametrizations"))

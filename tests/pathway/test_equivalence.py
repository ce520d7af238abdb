"""Merged and unmerged models compute the same function (RepVGG-style checks)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.utils import reparameterize_model
from torch import nn

import m2pt
from m2pt.pathway import Pathway

from .helpers import images, randomize_pathways, tiny_vit

ATOL = 1e-5


def test_zero_scale_gives_the_target_exactly():
    target = tiny_vit(seed=0).eval()
    x = images()
    expected = target(x)
    model = m2pt.add_pathways(target, tiny_vit(seed=1))
    assert torch.equal(model(x), expected)


def test_vit_merge_matches_unmerged_and_loads_strict():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1)).eval()
    randomize_pathways(model)
    x = images()
    plain_target = tiny_vit(seed=0).eval()
    with torch.no_grad():
        unmerged = model(x)
        assert (unmerged - plain_target(x)).abs().max() > 1e-2, "pathways must change the output"
        merged_model = m2pt.merge_pathways(model)
        merged = merged_model(x)
    torch.testing.assert_close(merged, unmerged, atol=ATOL, rtol=0)
    assert type(merged_model.blocks[0].attn.qkv) is nn.Linear
    assert not m2pt.has_pathways(merged_model.blocks[0].mlp.fc1)
    fresh = tiny_vit(seed=5)
    assert set(merged_model.state_dict()) == set(fresh.state_dict())
    fresh.load_state_dict(merged_model.state_dict(), strict=True)
    torch.testing.assert_close(fresh.eval()(x), unmerged, atol=ATOL, rtol=0)
    # Merging a copy must leave the pathway model itself working and unchanged.
    with torch.no_grad():
        torch.testing.assert_close(model(x), unmerged, atol=0, rtol=0)


def test_inplace_merge_keeps_parameter_identity():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1)).eval()
    randomize_pathways(model)
    original = model.blocks[0].attn.qkv.parametrizations.weight.original
    with torch.no_grad():
        expected = model(images())
    merged = m2pt.merge_pathways(model, inplace=True)
    assert merged is model and model.blocks[0].attn.qkv.weight is original
    with torch.no_grad():
        torch.testing.assert_close(model(images()), expected, atol=ATOL, rtol=0)


def test_timm_reparameterize_model_merges_pathways():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1)).eval()
    randomize_pathways(model)
    with torch.no_grad():
        expected = model(images())
        fused = reparameterize_model(model)
        torch.testing.assert_close(fused(images()), expected, atol=ATOL, rtol=0)
    assert set(fused.state_dict()) == set(tiny_vit().state_dict())


def test_bias_less_layers():
    target, aux = tiny_vit(seed=0, qkv_bias=False), tiny_vit(seed=1, qkv_bias=False)
    model = m2pt.add_pathways(target, aux).eval()
    randomize_pathways(model)
    with torch.no_grad():
        expected = model(images())
        merged = m2pt.merge_pathways(model)
        torch.testing.assert_close(merged(images()), expected, atol=ATOL, rtol=0)
    assert merged.blocks[0].attn.qkv.bias is None
    tiny_vit(qkv_bias=False).load_state_dict(merged.state_dict(), strict=True)


def test_two_auxiliary_models_add_both_pathways():
    model = m2pt.add_pathways(tiny_vit(seed=0), [tiny_vit(seed=1), tiny_vit(seed=2)]).eval()
    chain = model.blocks[1].mlp.fc2.parametrizations.weight
    assert [p.aux_index for p in chain] == [0, 1]
    randomize_pathways(model)
    w = chain.original + chain[0].scale * chain[0].aux_weight + chain[1].scale * chain[1].aux_weight
    torch.testing.assert_close(model.blocks[1].mlp.fc2.weight, w)
    with torch.no_grad():
        expected = model(images())
        torch.testing.assert_close(m2pt.merge_pathways(model)(images()), expected, atol=ATOL, rtol=0)
    assert m2pt.pathway_summary(model).num_aux == 2


def test_aux_bias_and_per_channel_scale():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1), aux_bias=True, scale_shape="channel").eval()
    randomize_pathways(model)
    qkv = model.blocks[0].attn.qkv
    bias_chain = qkv.parametrizations.bias
    assert qkv.parametrizations.weight[0].scale.shape == (qkv.out_features, 1)
    torch.testing.assert_close(
        qkv.bias, bias_chain.original + qkv.parametrizations.weight[0].scale.reshape(-1) * bias_chain[0].aux_bias)
    with torch.no_grad():
        expected = model(images())
        merged = m2pt.merge_pathways(model)
        torch.testing.assert_close(merged(images()), expected, atol=ATOL, rtol=0)
    tiny_vit().load_state_dict(merged.state_dict(), strict=True)


class VideoMAEAttention(nn.Module):
    """VideoMAE's attention: a bias-less qkv whose weight is read directly, with q/v biases."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, weight=self.qkv.weight, bias=bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class VideoMAEBlocks(nn.Module):
    def __init__(self, dim: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleDict({"attn": VideoMAEAttention(dim, 2)}) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block["attn"](x)
        return x


def test_code_reading_weight_directly_sees_the_pathway():
    torch.manual_seed(0)
    target, aux = VideoMAEBlocks(), VideoMAEBlocks()
    x = torch.randn(2, 10, 32)
    model = m2pt.add_pathways(target, aux, layers=("attn.qkv", "attn.proj")).eval()
    randomize_pathways(model)
    qkv = model.blocks[0]["attn"].qkv
    pathway = qkv.parametrizations.weight[0]
    torch.testing.assert_close(qkv.weight, qkv.parametrizations.weight.original + pathway.scale * pathway.aux_weight)
    with torch.no_grad():
        expected = model(x)
        merged = m2pt.merge_pathways(model)
        torch.testing.assert_close(merged(x), expected, atol=ATOL, rtol=0)
    plain = VideoMAEBlocks()
    plain.load_state_dict(merged.state_dict(), strict=True)


def test_resnet_conv_pathways():
    torch.manual_seed(0)
    target = timm.create_model("resnet18", num_classes=4).eval()
    aux = timm.create_model("resnet18", num_classes=7)
    model = m2pt.add_pathways(target, aux, layers=r"layer\d\.\d\.conv\d").eval()
    assert m2pt.pathway_summary(model).num_layers == 16
    randomize_pathways(model, scale=0.05)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        merged = m2pt.merge_pathways(model)
        torch.testing.assert_close(merged(x), expected, atol=ATOL, rtol=1e-5)
    timm.create_model("resnet18", num_classes=4).load_state_dict(merged.state_dict(), strict=True)
    assert type(merged.layer1[0].conv1) is nn.Conv2d


def test_merge_in_float32_then_cast_once():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1)).to(torch.bfloat16)
    randomize_pathways(model, scale=1e-2)
    fc1 = model.blocks[0].mlp.fc1
    chain = fc1.parametrizations.weight
    expected = (chain.original.float() + chain[0].scale.float() * chain[0].aux_weight.float()).to(torch.bfloat16)
    merged = m2pt.merge_pathways(model)
    assert merged.blocks[0].mlp.fc1.weight.dtype == torch.bfloat16
    assert torch.equal(merged.blocks[0].mlp.fc1.weight, expected)


def test_aux_weights_follow_target_dtype_and_state_dict():
    model = m2pt.add_pathways(tiny_vit(seed=0), tiny_vit(seed=1)).to(torch.float64)
    pathway = model.blocks[0].attn.proj.parametrizations.weight[0]
    assert isinstance(pathway, Pathway)
    assert pathway.aux_weight.dtype == torch.float64 and pathway.scale.dtype == torch.float64
    keys = model.state_dict().keys()
    assert "blocks.0.attn.proj.parametrizations.weight.0.aux_weight" in keys
    assert "blocks.0.attn.proj.parametrizations.weight.0.scale" in keys
    assert "Pathway(aux='blocks.0.attn.proj'" in repr(model)

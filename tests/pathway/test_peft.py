"""Pathways and PEFT LoRA on the same linears, in both orders: training flags and exact merges."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import m2pt
from m2pt.pathway import PathwayError

from .helpers import images, randomize_pathways, tiny_vit

peft = pytest.importorskip("peft")

TOL = 1e-5


def lora_config(**kwargs) -> "peft.LoraConfig":
    # init_lora_weights=False: B is random, so a lost LoRA update changes the outputs.
    return peft.LoraConfig(r=4, lora_alpha=8, target_modules=["qkv", "fc1"], init_lora_weights=False, **kwargs)


def pathways_then_lora(prepare: bool = True) -> nn.Module:
    model = m2pt.add_pathways(tiny_vit(0), tiny_vit(1), train_aux=False)
    randomize_pathways(model)
    peft_model = peft.get_peft_model(model, lora_config())
    return m2pt.prepare_peft_model(peft_model) if prepare else peft_model


def lora_then_pathways() -> nn.Module:
    peft_model = peft.get_peft_model(tiny_vit(0), lora_config())
    m2pt.add_pathways(peft_model, tiny_vit(1), train_aux=False)
    randomize_pathways(peft_model)
    return peft_model


def reference(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images())


def assert_plain_and_equal(plain: nn.Module, expected: torch.Tensor) -> None:
    assert not m2pt.has_pathways(plain)
    assert isinstance(plain, type(tiny_vit()))
    fresh = tiny_vit(5)
    fresh.load_state_dict(plain.state_dict(), strict=True)
    torch.testing.assert_close(reference(fresh), expected, atol=TOL, rtol=0)


MERGES = {
    "peft_merge_first": lambda m: m2pt.merge_pathways(m.merge_and_unload()),
    "peft_safe_merge_first": lambda m: m2pt.merge_pathways(m.merge_and_unload(safe_merge=True)),
    "m2pt_merge_first": lambda m: m2pt.merge_pathways(m).merge_and_unload(),
}


@pytest.mark.parametrize("build", [pathways_then_lora, lora_then_pathways], ids=["pathways_first", "lora_first"])
@pytest.mark.parametrize("merge", list(MERGES), ids=list(MERGES))
def test_merges_keep_lora_and_pathways(build, merge):
    model = build()
    expected = reference(model)
    without_lora = reference(copy.deepcopy(model).unload())
    assert (expected - without_lora).abs().max() > 1e-2  # the LoRA update matters
    assert_plain_and_equal(MERGES[merge](model), expected)


def test_peft_freezes_pathways_and_prepare_restores_them():
    model = pathways_then_lora(prepare=False)
    scales = [p for n, p in model.named_parameters() if n.endswith(".scale")]
    assert scales and not any(p.requires_grad for p in scales)
    with pytest.warns(UserWarning, match=r"froze the pathway parameters \['scale'\].*prepare_peft_model"):
        m2pt.param_groups(model)
    m2pt.prepare_peft_model(model)
    assert all(p.requires_grad for p in scales)
    aux = [p for n, p in model.named_parameters() if n.endswith(".aux_weight")]
    assert not any(p.requires_grad for p in aux)  # train_aux=False is kept


def test_unprepared_peft_merge_is_flagged():
    model = pathways_then_lora(prepare=False)
    for name, param in model.named_parameters():
        if name.endswith(".scale"):
            param.requires_grad_(True)
    with pytest.warns(UserWarning, match="would drop the LoRA update of 4 layer"):
        m2pt.param_groups(model)


@pytest.mark.parametrize("build", [pathways_then_lora, lora_then_pathways], ids=["pathways_first", "lora_first"])
def test_one_step_trains_lora_and_lambda_not_target(build):
    model = build().train()
    named = dict(model.named_parameters())
    lam = next(p for n, p in named.items() if n.endswith("qkv.base_layer.parametrizations.weight.0.scale"))
    lora_b = next(p for n, p in named.items() if "qkv.lora_B" in n)
    target = next(p for n, p in named.items() if n.endswith("qkv.base_layer.parametrizations.weight.original"))
    before = [t.detach().clone() for t in (lam, lora_b, target)]
    optimizer = torch.optim.AdamW(m2pt.param_groups(model, lr=1e-2))
    model(images()).square().mean().backward()
    optimizer.step()
    assert not torch.equal(lam, before[0]) and not torch.equal(lora_b, before[1])
    assert torch.equal(target, before[2]) and not target.requires_grad


def test_lora_first_pairs_by_plain_names():
    model = lora_then_pathways()
    names = [n for n, _ in model.named_parameters() if n.endswith(".scale")]
    assert "base_model.model.blocks.0.attn.qkv.base_layer.parametrizations.weight.0.scale" in names
    assert len(names) == 8  # qkv, proj, fc1, fc2 in both blocks, under LoRA or not


def test_prepare_without_pathways_is_a_clear_error():
    with pytest.raises(PathwayError, match="has no pathways.*add_pathways"):
        m2pt.prepare_peft_model(peft.get_peft_model(tiny_vit(0), lora_config()))


def test_first_forward_guards_an_unprepared_model():
    model = pathways_then_lora(prepare=False)
    with pytest.warns(UserWarning, match="froze the pathway parameters"):
        expected = reference(model)
    assert_plain_and_equal(MERGES["peft_merge_first"](model), expected)


def test_merged_model_keeps_no_m2pt_hook():
    from m2pt.pathway.peft_compat import LoraMergeCheck

    model = m2pt.add_pathways(tiny_vit(0), tiny_vit(1))
    assert any(isinstance(h, LoraMergeCheck) for h in model._forward_pre_hooks.values())
    assert not m2pt.merge_pathways(model)._forward_pre_hooks


def test_merge_check_hook_keeps_torch_compile_fullgraph():
    model = m2pt.add_pathways(tiny_vit(0), tiny_vit(1))
    randomize_pathways(model)
    compiled = torch.compile(model.eval(), fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(images()), model(images()))


def test_save_model_refuses_unmerged_adapters(tmp_path):
    from m2pt.checkpoints import CheckpointError, save_model

    with pytest.raises(CheckpointError, match=r"merge_and_unload\(\)"):
        save_model(peft.get_peft_model(tiny_vit(0), lora_config()), tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []

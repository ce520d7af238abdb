"""``param_groups`` obeyed by torch schedulers, timm's optimizer factory and schedulers, and Lightning."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import m2pt
from m2pt.pathway.optim import no_weight_decay_names, pathway_parameter_names

from .helpers import images, tiny_vit

LAYER_DECAY = 0.5
SCALE_MULT = 10.0


def pathway_vit(per_channel: bool = True) -> nn.Module:
    """A 2-block ViT with per-channel λ (the case timm's grouping gets wrong by rank)."""
    return m2pt.add_pathways(tiny_vit(0), tiny_vit(1), scale_shape="channel" if per_channel else "scalar",
                             scale_init=0.01, scale_lr_mult=SCALE_MULT)


def group_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def expected_scale(layer: int, is_scale: bool = False) -> float:
    # 2 blocks: layers 0 (stem), 1, 2 (blocks), 3 (head)
    return LAYER_DECAY ** (3 - layer) * (SCALE_MULT if is_scale else 1.0)


def test_lr_given_sets_each_group_lr_and_leaves_timm_key_out():
    model = pathway_vit()
    groups = m2pt.param_groups(model, lr=1e-3, layer_decay=LAYER_DECAY)
    assert all("lr_scale" not in g for g in groups)
    for group in groups:
        assert group["lr"] == pytest.approx(1e-3 * group["lr_scale_applied"])
    named = dict(model.named_parameters())
    lam = named["blocks.0.attn.qkv.parametrizations.weight.0.scale"]
    lam_group = next(g for g in groups if any(p is lam for p in g["params"]))
    assert lam.ndim == 2 and lam_group["weight_decay"] == 0.0
    assert lam_group["lr"] == pytest.approx(1e-3 * expected_scale(1, is_scale=True))
    with pytest.raises(ValueError, match="positive"):
        m2pt.param_groups(model, lr=0.0)


def test_torch_scheduler_keeps_layer_decay_and_scale_multiplier():
    model = pathway_vit()
    optimizer = torch.optim.AdamW(m2pt.param_groups(model, lr=1e-3, layer_decay=LAYER_DECAY))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    for _ in range(3):
        model(images()).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    named = dict(model.named_parameters())
    head = group_of(optimizer, named["head.weight"])["lr"]
    cosine = 1e-3 * 0.5 * (1 + torch.cos(torch.tensor(3 / 10 * torch.pi)).item())
    assert head == pytest.approx(cosine)
    block0 = group_of(optimizer, named["blocks.0.mlp.fc1.parametrizations.weight.original"])["lr"]
    lam0 = group_of(optimizer, named["blocks.0.mlp.fc1.parametrizations.weight.0.scale"])["lr"]
    stem = group_of(optimizer, named["patch_embed.proj.weight"])["lr"]
    assert block0 / head == pytest.approx(expected_scale(1))
    assert lam0 / head == pytest.approx(expected_scale(1, is_scale=True))
    assert stem / head == pytest.approx(expected_scale(0))


def test_timm_factory_and_scheduler_obey_groups():
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    model = pathway_vit()
    optimizer = create_optimizer_v2(
        model, "adamw", lr=1e-3, weight_decay=0.05,
        param_group_fn=functools.partial(m2pt.param_groups, weight_decay=0.05, layer_decay=LAYER_DECAY))
    scheduler = CosineLRScheduler(optimizer, t_initial=10, warmup_t=2, warmup_lr_init=1e-5)
    scheduler.step(5)
    value = scheduler._get_lr(5)[0]
    named = dict(model.named_parameters())
    lam = named["blocks.1.attn.proj.parametrizations.weight.0.scale"]
    lam_group = group_of(optimizer, lam)
    assert lam.ndim == 2 and lam_group["weight_decay"] == 0.0
    assert lam_group["lr"] == pytest.approx(value * expected_scale(2, is_scale=True))
    w = group_of(optimizer, named["blocks.1.attn.proj.parametrizations.weight.original"])
    assert w["weight_decay"] == 0.05 and w["lr"] == pytest.approx(value * expected_scale(2))
    aux = group_of(optimizer, named["blocks.1.attn.proj.parametrizations.weight.0.aux_weight"])
    assert aux is w


def test_timm_scheduler_with_lr_given_does_not_scale_twice():
    from timm.scheduler import CosineLRScheduler

    model = pathway_vit()
    optimizer = torch.optim.AdamW(m2pt.param_groups(model, lr=1e-3, layer_decay=LAYER_DECAY))
    scheduler = CosineLRScheduler(optimizer, t_initial=10)
    scheduler.step(0)
    named = dict(model.named_parameters())
    assert group_of(optimizer, named["patch_embed.proj.weight"])["lr"] == pytest.approx(1e-3 * expected_scale(0))


def test_lightning_fit_uses_the_group_learning_rates():
    lightning = pytest.importorskip("lightning")

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = pathway_vit()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(m2pt.param_groups(self.model, lr=1e-2, layer_decay=LAYER_DECAY))
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5),
                                     "interval": "step"}}

    data = torch.utils.data.TensorDataset(images(8), torch.randint(0, 5, (8,)))
    module = Module()
    lam = dict(module.model.named_parameters())["blocks.0.attn.qkv.parametrizations.weight.0.scale"]
    before = lam.detach().clone()
    trainer = lightning.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    optimizer = trainer.optimizers[0]
    named = dict(module.model.named_parameters())
    head = group_of(optimizer, named["head.weight"])["lr"]
    assert head == pytest.approx(1e-2 * 0.25)
    assert group_of(optimizer, lam)["lr"] / head == pytest.approx(expected_scale(1, is_scale=True))
    assert not torch.equal(lam.detach(), before)


def test_pathway_names_exposed_by_role():
    model = m2pt.add_pathways(tiny_vit(0), tiny_vit(1), aux_bias=True)
    names = pathway_parameter_names(model)
    assert len(names["scale"]) == len(names["aux_weight"]) == len(names["aux_bias"]) == 8
    assert names["scale"][0] == "blocks.0.attn.qkv.parametrizations.weight.0.scale"
    no_decay = set(no_weight_decay_names(model))
    assert set(names["scale"]) | set(names["aux_bias"]) <= no_decay
    assert {"cls_token", "pos_embed"} <= no_decay
    assert not set(names["aux_weight"]) & no_decay


def _hf_vit():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=16, patch_size=4, num_labels=3)
    return transformers.ViTForImageClassification(config)


def _by_name(model: nn.Module, groups: list[dict]) -> dict[str, dict]:
    owner = {id(p): g for g in groups for p in g["params"]}
    return {n: owner[id(p)] for n, p in model.named_parameters()}


def test_hf_vit_layers_and_no_decay_names():
    model = _hf_vit()
    groups = _by_name(model, m2pt.param_groups(model, layer_decay=LAYER_DECAY, weight_decay=0.05))
    for name in ("vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                 "vit.embeddings.patch_embeddings.projection.weight"):
        assert groups[name]["lr_scale"] == pytest.approx(expected_scale(0)), name
    blocks = [n for n in groups if ".layers.0." in n or ".layer.0." in n]
    assert blocks and all(groups[n]["lr_scale"] == pytest.approx(expected_scale(1)) for n in blocks)
    assert all(groups[n]["lr_scale"] == pytest.approx(expected_scale(2)) for n in groups if ".layers.1." in n
               or ".layer.1." in n)
    assert groups["classifier.weight"]["lr_scale"] == pytest.approx(1.0)
    assert groups["vit.embeddings.cls_token"]["weight_decay"] == 0.0
    assert groups["vit.embeddings.position_embeddings"]["weight_decay"] == 0.0
    assert groups["vit.embeddings.patch_embeddings.projection.weight"]["weight_decay"] == 0.05
    assert groups["classifier.weight"]["weight_decay"] == 0.05


def test_hf_bert_layers_and_position_embedding_not_decayed():
    transformers = pytest.importorskip("transformers")
    model = transformers.BertModel(transformers.BertConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, vocab_size=50))
    groups = _by_name(model, m2pt.param_groups(model, layer_decay=LAYER_DECAY))
    assert groups["embeddings.word_embeddings.weight"]["lr_scale"] == pytest.approx(LAYER_DECAY ** 4)
    assert groups["encoder.layer.0.attention.self.query.weight"]["lr_scale"] == pytest.approx(LAYER_DECAY ** 3)
    assert groups["encoder.layer.2.output.dense.weight"]["lr_scale"] == pytest.approx(LAYER_DECAY)
    assert groups["pooler.dense.weight"]["lr_scale"] == pytest.approx(1.0)
    assert groups["embeddings.position_embeddings.weight"]["weight_decay"] == 0.0
    assert groups["embeddings.word_embeddings.weight"]["weight_decay"] == 0.05


def test_timm_factory_without_group_fn_does_not_decay_per_channel_scales():
    from timm.optim import create_optimizer_v2

    model = pathway_vit()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=LAYER_DECAY)
    named = dict(model.named_parameters())
    scales = [p for n, p in named.items() if n.endswith(".scale")]
    assert scales and all(p.ndim == 2 for p in scales)
    assert all(group_of(optimizer, p)["weight_decay"] == 0.0 for p in scales)
    assert group_of(optimizer, named["blocks.0.attn.qkv.parametrizations.weight.0.aux_weight"])["weight_decay"] == 0.05
    assert {"cls_token", "pos_embed"} <= model.no_weight_decay()
    plain = m2pt.merge_pathways(model)
    assert "no_weight_decay" not in plain.__dict__ and plain.no_weight_decay() == tiny_vit().no_weight_decay()


def test_pathway_model_with_exposed_names_deep_copies_and_pickles(tmp_path):
    import copy
    import pickle

    model = pathway_vit()
    clone = copy.deepcopy(model)
    assert clone.no_weight_decay.model is clone and clone.no_weight_decay() == model.no_weight_decay()
    pickle.loads(pickle.dumps(m2pt.merge_pathways(model)))
